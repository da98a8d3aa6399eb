import MLXCIR

/// Elementwise ATen ops: unary math, binary arithmetic with tensors or scalars, comparisons, logic.
extension PlanImporter {
    static let unaryOps: [String: (ValueID, ValueID) -> Op] = [
        "rsqrt": { .rsqrt(RsqrtOp(x: $0, out: $1)) }, "sqrt": { .sqrt(SqrtOp(x: $0, out: $1)) },
        "sigmoid": { .sigmoid(SigmoidOp(x: $0, out: $1)) }, "tanh": { .tanh(TanhOp(x: $0, out: $1)) },
        "silu": { .silu(SiluOp(x: $0, out: $1)) }, "exp": { .exp(ExpOp(x: $0, out: $1)) },
        "log": { .log(LogOp(x: $0, out: $1)) }, "abs": { .abs(AbsOp(x: $0, out: $1)) },
        "neg": { .neg(NegOp(x: $0, out: $1)) }, "sin": { .sin(SinOp(x: $0, out: $1)) },
        "cos": { .cos(CosOp(x: $0, out: $1)) }, "floor": { .floor(FloorOp(x: $0, out: $1)) },
        "ceil": { .ceil(CeilOp(x: $0, out: $1)) }, "erf": { .erf(ErfOp(x: $0, out: $1)) },
        "reciprocal": { .reciprocal(ReciprocalOp(x: $0, out: $1)) }, "sign": { .sign(SignOp(x: $0, out: $1)) },
        "logical_not": { .logicalNot(LogicalNotOp(x: $0, out: $1)) }, "log2": { .log2(Log2Op(x: $0, out: $1)) },
        "log10": { .log10(Log10Op(x: $0, out: $1)) },
        "log1p": { .log1p(Log1pOp(x: $0, out: $1)) }, "expm1": { .expm1(Expm1Op(x: $0, out: $1)) },
        "bitwise_not": { .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }, "trunc": { .trunc(TruncOp(x: $0, out: $1)) },
    ]

    static let binaryOps: [String: (ValueID, ValueID, ValueID) -> Op] = [
        "add": { .add(AddOp(a: $0, b: $1, out: $2)) }, "sub": { .subtract(SubtractOp(a: $0, b: $1, out: $2)) },
        "mul": { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }, "div": { .divide(DivideOp(a: $0, b: $1, out: $2)) },
        "maximum": { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }, "minimum": { .minimum(MinimumOp(a: $0, b: $1, out: $2)) },
        "pow": { .power(PowerOp(a: $0, b: $1, out: $2)) }, "remainder": { .remainder(RemainderOp(a: $0, b: $1, out: $2)) },
        "floor_divide": { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }, "atan2": { .atan2(Atan2Op(a: $0, b: $1, out: $2)) },
        "eq": { .equal(EqualOp(a: $0, b: $1, out: $2)) }, "ne": { .notEqual(NotEqualOp(a: $0, b: $1, out: $2)) },
        "lt": { .less(LessOp(a: $0, b: $1, out: $2)) }, "le": { .lessEqual(LessEqualOp(a: $0, b: $1, out: $2)) },
        "gt": { .greater(GreaterOp(a: $0, b: $1, out: $2)) }, "ge": { .greaterEqual(GreaterEqualOp(a: $0, b: $1, out: $2)) },
        "logical_and": { .logicalAnd(LogicalAndOp(a: $0, b: $1, out: $2)) }, "logical_or": { .logicalOr(LogicalOrOp(a: $0, b: $1, out: $2)) },
        "bitwise_and": { .bitwiseAnd(BitwiseAndOp(a: $0, b: $1, out: $2)) }, "bitwise_or": { .bitwiseOr(BitwiseOrOp(a: $0, b: $1, out: $2)) },
        "bitwise_xor": { .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) },
    ]

    static var elementwiseTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        for (name, make) in unaryOps {
            t["aten::\(name).out"] = { imp, a in
                try imp.arity(a, 2, name)
                let x = try imp.read(a[0])
                imp.emit(make(x, try imp.write(a.last!)))
            }
        }
        for (name, make) in binaryOps {
            let hasAlpha = name == "add" || name == "sub"
            // Tensor-tensor forms (`add.out` carries `alpha`).
            for overload in ["out", "Tensor_out"] {
                t["aten::\(name).\(overload)"] = { imp, a in
                    try imp.arity(a, 3, name)
                    let x = try imp.read(a[0])
                    var y = try imp.read(a[1])
                    if hasAlpha, a.count >= 4 { y = try imp.scaled(y, by: a[2]) }
                    imp.emit(make(x, y, try imp.write(a.last!)))
                }
            }
            // Tensor-scalar forms.
            t["aten::\(name).Scalar_out"] = { imp, a in
                try imp.arity(a, 3, name)
                let x = try imp.read(a[0])
                var y = try imp.scalarOperand(a[1], like: x)
                if hasAlpha, a.count >= 4 { y = try imp.scaled(y, by: a[2]) }
                imp.emit(make(x, y, try imp.write(a.last!)))
            }
        }
        t["aten::pow.Tensor_Scalar_out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.power(PowerOp(a: x, b: try imp.scalarOperand(a[1], like: x), out: try imp.write(a.last!))))
        }
        t["aten::pow.Scalar_out"] = { imp, a in
            let y = try imp.read(a[1])
            imp.emit(.power(PowerOp(a: try imp.scalarOperand(a[0], like: y), b: y, out: try imp.write(a.last!))))
        }
        t["aten::div.out_mode"] = { imp, a in
            try imp.arity(a, 4, "div.out_mode")
            let x = try imp.read(a[0]), y = try imp.read(a[1])
            let mode: String? = { if case .string(let s) = imp.plan.values[a[2]] { return s } else { return nil } }()
            let out = try imp.write(a.last!)
            switch mode {
            case nil: imp.emit(.divide(DivideOp(a: x, b: y, out: out)))
            case "floor": imp.emit(.floorDivide(FloorDivideOp(a: x, b: y, out: out)))
            case "trunc":
                let q = imp.temporary(imp.graph.type(out))
                imp.emit(.divide(DivideOp(a: x, b: y, out: q)))
                imp.emit(.trunc(TruncOp(x: q, out: out)))
            default: throw imp.fail("div rounding_mode \(mode!) is not one of None, floor, trunc")
            }
        }
        t["aten::gelu.out"] = { imp, a in
            try imp.arity(a, 3, "gelu")
            let approximate: String = { if case .string(let s) = imp.plan.values[a[1]] { return s } else { return "none" } }()
            imp.emit(.gelu(GeluOp(x: try imp.read(a[0]), out: try imp.write(a.last!), approximate: approximate)))
        }
        t["aten::relu.out"] = { imp, a in
            let x = try imp.read(a[0])
            let zero = imp.graph.addValue(TensorType(imp.graph.type(x)?.dtype ?? .f32, []), .constant(.literal([0])))
            imp.emit(.maximum(MaximumOp(a: x, b: zero, out: try imp.write(a.last!))))
        }
        t["aten::clamp.out"] = { imp, a in
            try imp.arity(a, 4, "clamp")
            let x = try imp.read(a[0])
            let lo = try imp.optionalDouble(a[1]).map { _ in try imp.scalarOperand(a[1], like: x) }
            let hi = try imp.optionalDouble(a[2]).map { _ in try imp.scalarOperand(a[2], like: x) }
            imp.emit(.clip(ClipOp(x: x, out: try imp.write(a.last!), aMin: lo, aMax: hi)))
        }
        // hardtanh(x, min_val, max_val): ReLU6 (MobileNet's activation) as the portable export spells it.
        t["aten::hardtanh.out"] = { imp, a in
            try imp.arity(a, 4, "hardtanh")
            let x = try imp.read(a[0])
            imp.emit(.clip(ClipOp(x: x, out: try imp.write(a.last!), aMin: try imp.scalarOperand(a[1], like: x),
                                  aMax: try imp.scalarOperand(a[2], like: x))))
        }
        t["aten::where.self_out"] = { imp, a in
            try imp.arity(a, 4, "where")
            imp.emit(.where(WhereOp(condition: try imp.read(a[0]), x: try imp.read(a[1]), y: try imp.read(a[2]),
                                    out: try imp.write(a.last!))))
        }
        t["aten::masked_fill.Scalar_out"] = { imp, a in
            try imp.arity(a, 4, "masked_fill")
            let x = try imp.read(a[0])
            imp.emit(.where(WhereOp(condition: try imp.read(a[1]), x: try imp.scalarOperand(a[2], like: x), y: x,
                                    out: try imp.write(a.last!))))
        }
        // fmod (C's remainder: truncated, the dividend's sign; Gemma's ring-buffer cache positions) =
        // ±remainder(|a|, |b|), negated where a < 0: Python's remainder of non-negative operands is fmod's.
        t["aten::fmod.Scalar_out"] = { imp, a in
            try imp.arity(a, 3, "fmod")
            let x = try imp.read(a[0])
            let divisor = imp.graph.addValue(TensorType(imp.graph.type(x)?.dtype ?? .f32, []), .constant(.literal([Swift.abs(try imp.doubleArg(a[1]))])))
            try imp.fmod(x, divisor: divisor, out: try imp.write(a.last!))
        }
        t["aten::fmod.Tensor_out"] = { imp, a in
            try imp.arity(a, 3, "fmod")
            let x = try imp.read(a[0]), y = try imp.read(a[1])
            let divisor = imp.temporary(imp.graph.type(y))
            imp.emit(.abs(AbsOp(x: y, out: divisor)))
            try imp.fmod(x, divisor: divisor, out: try imp.write(a.last!))
        }
        t["aten::_to_copy.out"] = { imp, a in
            let out = try imp.write(a.last!)
            guard let dt = imp.graph.type(out)?.dtype else { throw imp.fail("_to_copy output has no dtype") }
            imp.emit(.asType(AsTypeOp(x: try imp.read(a[0]), out: out, scalarType: dt)))
        }
        return t
    }

    /// fmod(x, d) for a divisor d ≥ 0: remainder(|x|, d), negated where x < 0.
    func fmod(_ x: ValueID, divisor: ValueID, out: ValueID) throws {
        let type = graph.type(x)
        let magnitude = temporary(type), r = temporary(type), negated = temporary(type)
        let negative = temporary(type.map { TensorType(.bool, $0.shape) })
        let zero = graph.addValue(TensorType(type?.dtype ?? .f32, []), .constant(.literal([0])))
        emit(.abs(AbsOp(x: x, out: magnitude)))
        emit(.remainder(RemainderOp(a: magnitude, b: divisor, out: r)))
        emit(.neg(NegOp(x: r, out: negated)))
        emit(.less(LessOp(a: x, b: zero, out: negative)))
        emit(.where(WhereOp(condition: negative, x: negated, y: r, out: out)))
    }

    /// `y * alpha` for the `alpha` argument of add/sub (no op when alpha is 1).
    func scaled(_ y: ValueID, by alphaSlot: Int) throws -> ValueID {
        let alpha = try doubleArg(alphaSlot)
        if alpha == 1 { return y }
        let factor = try scalarOperand(alphaSlot, like: y)
        let result = temporary(graph.type(y))
        emit(.multiply(MultiplyOp(a: y, b: factor, out: result)))
        return result
    }
}
