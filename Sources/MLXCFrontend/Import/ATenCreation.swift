import MLXCIR

/// Ops that create tensors: full, zeros, ones, arange, scalar_tensor.
extension PlanImporter {
    static var creationTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        func outDType(_ imp: PlanImporter, _ out: ValueID) throws -> DType {
            guard let d = imp.graph.type(out)?.dtype else { throw imp.fail("creation op output has no dtype") }
            return d
        }
        func fill(_ imp: PlanImporter, _ slot: Int) throws -> FloatOrValue {
            if case .int = try imp.evalue(slot), imp.dynamicInts.contains(slot) { return .value(try imp.read(slot)) }
            return .literal(try imp.doubleArg(slot))
        }
        t["aten::full.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.full(FullOp(out: out, shape: try imp.intList(a[0]), v: try fill(imp, a[1]), scalarType: try outDType(imp, out))))
        }
        t["aten::zeros.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.full(FullOp(out: out, shape: try imp.intList(a[0]), v: .literal(0), scalarType: try outDType(imp, out))))
        }
        t["aten::ones.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.full(FullOp(out: out, shape: try imp.intList(a[0]), v: .literal(1), scalarType: try outDType(imp, out))))
        }
        t["aten::scalar_tensor.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.full(FullOp(out: out, shape: [], v: try fill(imp, a[0]), scalarType: try outDType(imp, out))))
        }
        t["aten::full_like.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.fullLike(FullLikeOp(x: try imp.read(a[0]), out: out, v: try fill(imp, a[1]), scalarType: try outDType(imp, out))))
        }
        t["aten::zeros_like.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.fullLike(FullLikeOp(x: try imp.read(a[0]), out: out, v: .literal(0), scalarType: try outDType(imp, out))))
        }
        t["aten::ones_like.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.fullLike(FullLikeOp(x: try imp.read(a[0]), out: out, v: .literal(1), scalarType: try outDType(imp, out))))
        }
        t["aten::arange.start_out"] = { imp, a in
            try imp.arity(a, 4, "arange")
            let out = try imp.write(a.last!)
            imp.emit(.arange(ARangeOp(out: out, start: try imp.intArg(a[0]), stop: try imp.intArg(a[1]), step: try imp.intArg(a[2]),
                                      scalarType: try outDType(imp, out))))
        }
        t["aten::arange.out"] = { imp, a in
            let out = try imp.write(a.last!)
            imp.emit(.arange(ARangeOp(out: out, start: .literal(0), stop: try imp.intArg(a[0]), step: .literal(1),
                                      scalarType: try outDType(imp, out))))
        }
        return t
    }
}
