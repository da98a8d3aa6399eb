import MLXCIR

/// ExecuTorch's prim ops: scalar (SymInt / SymFloat) arithmetic, `sym_size`, and `item()`.
/// They return into an Int/Double slot, always the last argument.
extension PlanImporter {
    static var primTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::sym_size.int"] = { imp, a in
            try imp.arity(a, 3, "sym_size")
            let x = try imp.read(a[0])
            imp.emit(.symSize(SymSizeOp(a: x, dim: imp.axis(try imp.literalInt(a[1]), of: x), out: try imp.write(a.last!))))
        }
        t["aten::sym_numel"] = { imp, a in
            imp.emit(.scalarMath(ScalarMathOp(kind: "numel", args: [try imp.read(a[0])], out: try imp.write(a.last!))))
        }
        t["aten::_local_scalar_dense"] = { imp, a in
            let x = try imp.read(a[0])
            let out = try imp.write(a.last!)
            if let dt = imp.graph.type(x)?.dtype, dt.isFloatingPoint {
                imp.emit(.item(ItemOp(x: x, out: out)))
            } else {
                imp.emit(.itemInt(ItemIntOp(x: x, out: out)))
            }
        }
        typealias IntMake = (IntOrValue, IntOrValue, ValueID) -> Op
        let intOps: [String: IntMake] = [
            "add": { .addInt(AddIntOp(a: $0, b: $1, out: $2)) }, "sub": { .subtractInt(SubtractIntOp(a: $0, b: $1, out: $2)) },
            "mul": { .multiplyInt(MultiplyIntOp(a: $0, b: $1, out: $2)) },
            "floordiv": { .floorDivideInt(FloorDivideIntOp(a: $0, b: $1, out: $2)) }, "mod": { .modInt(ModIntOp(a: $0, b: $1, out: $2)) },
        ]
        let generic = ["truediv", "eq", "gt", "ge", "lt", "le", "neg", "ceil", "round", "trunc", "sym_float", "sym_int",
                       "sym_max", "sym_min", "sym_not", "sym_ite", "add", "sub", "mul", "floordiv", "mod"]
        for kind in generic {
            let translator: ATenTranslator = { imp, a in
                let operands = Array(a.dropLast())
                let allInts = try operands.allSatisfy { if case .int = try imp.evalue($0) { return true } else { return false } }
                if let make = intOps[kind], allInts, operands.count == 2 {
                    imp.emit(make(try imp.intArg(operands[0]), try imp.intArg(operands[1]), try imp.write(a.last!)))
                } else if kind == "neg", allInts, operands.count == 1 {
                    // −n as 0 − n: integer arithmetic the compiled program does on the host (etLLM's dynamic
                    // GatedDeltaNet keeps the conv state as the last −T columns: slice(start: −sym_size)).
                    imp.emit(.subtractInt(SubtractIntOp(a: .literal(0), b: try imp.intArg(operands[0]), out: try imp.write(a.last!))))
                } else {
                    imp.emit(.scalarMath(ScalarMathOp(kind: kind, args: try operands.map { try imp.read($0) }, out: try imp.write(a.last!))))
                }
            }
            t["executorch_prim::\(kind).Scalar"] = translator
            t["executorch_prim::\(kind).int"] = translator
            t["executorch_prim::\(kind).default"] = translator
        }
        return t
    }
}
