/// Scalar ops (rank-0 values: i64 for ints, f64 for floats, bool for bools) and custom kernels.
extension ShapeRules {
    static let i64Scalar = TensorType(.i64, [])
    static let f64Scalar = TensorType(.f64, [])
    static let boolScalar = TensorType(.bool, [])

    static func symSize(_ o: SymSizeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.a)
        let d = o.dim < 0 ? o.dim + x.rank : o.dim
        guard d >= 0 && d < x.rank else { throw fail("sym_size", "dim \(o.dim) is out of range for shape \(text(x.shape))") }
        return i64Scalar
    }

    /// item_int / item: the one element of a one-element tensor.
    static func item(_ name: String, _ v: ValueID, _ dtype: DType, _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        guard count(x.shape).contains(1) else { throw fail(name, "needs a one-element tensor, got shape \(text(x.shape))") }
        return TensorType(dtype, [])
    }

    /// ExecuTorch's prim ops on int, float and bool scalars.
    static func scalarMath(_ o: ScalarMathOp, _ e: Env) throws -> TensorType {
        let name = "scalar_math \(o.kind)"
        let arity: Int
        switch o.kind {
        case "neg", "ceil", "round", "trunc", "sym_float", "sym_int", "sym_not", "numel": arity = 1
        case "sym_ite": arity = 3
        case "truediv", "eq", "gt", "ge", "lt", "le", "sym_max", "sym_min", "add", "sub", "mul", "floordiv", "mod": arity = 2
        default: throw fail("scalar_math", "unknown kind \"\(o.kind)\"")
        }
        guard o.args.count == arity else { throw fail(name, "takes \(arity) arguments, got \(o.args.count)") }
        if o.kind == "numel" { _ = try e.t(o.args[0]); return i64Scalar }
        var args: [TensorType] = []
        args.reserveCapacity(arity)
        for a in o.args {
            let t = try e.t(a)
            guard count(t.shape).contains(1) else { throw fail(name, "arguments must be scalars, got shape \(text(t.shape))") }
            args.append(t)
        }
        let anyFloat = args.contains { isFloat($0.dtype) }
        switch o.kind {
        case "truediv", "sym_float": return f64Scalar
        case "eq", "gt", "ge", "lt", "le", "sym_not": return boolScalar
        case "ceil", "round", "trunc", "sym_int": return i64Scalar
        case "neg":
            guard args[0].dtype != .bool else { throw fail(name, "not defined for bool") }
            return anyFloat ? f64Scalar : i64Scalar
        case "sym_ite":
            // The chosen argument itself.
            if let c = e.scalar(o.args[0]).exact { return c != 0 ? args[1] : args[2] }
            if let b = e.scalar(o.args[0]).lo, b > 0 { return args[1] }
            if args[1] == args[2] { return args[1] }
            guard args[1].dtype == args[2].dtype, args[1].rank == args[2].rank else { throw Unknown() }
            return TensorType(args[1].dtype, zip(args[1].shape, args[2].shape).map { hull($0, $1) })
        default:
            // add, sub, mul, floordiv, mod, sym_max, sym_min.
            return anyFloat ? f64Scalar : i64Scalar
        }
    }

    /// metal_kernel: the declared output shapes (`output_shapes_flat`, cut by `output_shape_lengths`)
    /// and dtypes; nil where they are not given.
    static func metalKernel(_ o: MetalKernelOp, _ e: Env) throws -> [TensorType?] {
        let n = o.outputs.count
        var lengths = o.outputShapeLengths
        if lengths.isEmpty && n == 1 { lengths = [o.outputShapesFlat.count] }
        guard lengths.count == n, o.outputDtypes.count == n, lengths.allSatisfy({ $0 >= 0 }),
              lengths.reduce(0, +) == o.outputShapesFlat.count else {
            return [TensorType?](repeating: nil, count: n)
        }
        var result: [TensorType?] = []
        var at = 0
        for (i, length) in lengths.enumerated() {
            var shape: [Dim] = []
            for s in o.outputShapesFlat[at..<(at + length)] {
                shape.append(try size(e.int(s), "metal_kernel \"\(o.name)\"", "output shape \(i)"))
            }
            at += length
            result.append(TensorType(o.outputDtypes[i], shape))
        }
        return result
    }
}
