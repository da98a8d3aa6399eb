/// Reductions (sum, mean, max, any, arg reductions), cumsum, and the sorts.
extension ShapeRules {
    /// How a reduction picks its result dtype.
    enum ReductionDType {
        /// The input's (max, min).
        case same
        /// MLX `at_least_float` (mean, var, std, median, log_sum_exp).
        case atLeastFloat
        /// bool (any, all).
        case bool
        /// sum and prod: floats keep theirs; ints and bools take the result's declared integer type,
        /// else MLX's accumulator (int32 for bool and signed ints up to 32 bits, uint32 for unsigned
        /// ones, int64/uint64 for 64-bit).
        case integerAccumulator
    }

    /// The reduced axes, sorted: empty means all; negative count from the end; duplicates are an
    /// error; a rank-0 input accepts 0 and -1 and reduces nothing (`ReductionMath.axes`).
    static func reductionAxes(_ axes: [Int], rank: Int, _ name: String) throws -> UInt64 {
        guard rank <= 64 else { throw fail(name, "rank \(rank) is too large") }
        if axes.isEmpty { return rank == 64 ? ~0 : (1 << UInt64(rank)) - 1 }
        if rank == 0 {
            guard axes.allSatisfy({ $0 == 0 || $0 == -1 }) else {
                throw fail(name, "axes \(axes) are out of range for a rank-0 tensor")
            }
            return 0
        }
        var set: UInt64 = 0
        for a in axes {
            let r = a < 0 ? a + rank : a
            guard r >= 0 && r < rank else { throw fail(name, "axis \(a) is out of range for rank \(rank)") }
            guard set & (1 << UInt64(r)) == 0 else { throw fail(name, "axis \(a) appears twice in \(axes)") }
            set |= 1 << UInt64(r)
        }
        return set
    }

    static func reducedShape(_ shape: [Dim], axes: UInt64, keepdims: Bool) -> [Dim] {
        var out: [Dim] = []
        out.reserveCapacity(shape.count)
        for (d, n) in shape.enumerated() {
            if axes & (1 << UInt64(d)) != 0 { if keepdims { out.append(.fixed(1)) } } else { out.append(n) }
        }
        return out
    }

    static func reduce(_ name: String, _ v: ValueID, _ out: ValueID, _ axes: [Int], _ keepdims: Bool,
                       _ rule: ReductionDType, _ e: Env, nonEmpty: Bool = false) throws -> TensorType {
        let x = try e.t(v)
        let set = try reductionAxes(axes, rank: x.rank, name)
        let shape = reducedShape(x.shape, axes: set, keepdims: keepdims)
        if nonEmpty {
            // Every output element reduces at least one input element (max, min, median, log_sum_exp).
            var reducedEmpty = false
            for (d, n) in x.shape.enumerated() where set & (1 << UInt64(d)) != 0 && n == .fixed(0) { reducedEmpty = true }
            if reducedEmpty, count(shape).exact.map({ $0 > 0 }) ?? false {
                throw fail(name, "cannot reduce over an axis of size 0 in \(text(x.shape))")
            }
        }
        let dtype: DType
        switch rule {
        case .same: dtype = x.dtype
        case .atLeastFloat: dtype = atLeastFloat(x.dtype)
        case .bool: dtype = .bool
        case .integerAccumulator:
            if isFloat(x.dtype) {
                dtype = x.dtype
            } else {
                let fallback: DType
                switch x.dtype {
                case .i64: fallback = .i64
                case .u64: fallback = .u64
                case .u8, .u16, .u32: fallback = .u32
                default: fallback = .i32
                }
                dtype = declaredInteger(out, e, default: fallback)
            }
        }
        return TensorType(dtype, shape)
    }

    /// argmax/argmin along one axis: indices in the result's declared integer type, else uint32.
    static func argReduce(_ name: String, _ v: ValueID, _ out: ValueID, _ axis: Int, _ keepdims: Bool, _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        let a = try laneAxis(axis, rank: x.rank, name)
        if count(x.shape).exact == 0 { throw fail(name, "cannot reduce the empty shape \(text(x.shape))") }
        let shape = x.rank == 0 ? [] : reducedShape(x.shape, axes: 1 << UInt64(a), keepdims: keepdims)
        return TensorType(declaredInteger(out, e, default: .u32), shape)
    }

    /// cumsum keeps the shape; bools sum as the result's declared integer type, else int32.
    static func cumsum(_ o: CumsumOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        _ = try laneAxis(o.axis, rank: x.rank, "cumsum")
        return TensorType(x.dtype == .bool ? declaredInteger(o.out, e, default: .i32) : x.dtype, x.shape)
    }

    /// sort/partition keep the input; argsort/arg_partition give indices (declared integer type, else uint32).
    static func sortAlong(_ name: String, _ v: ValueID, _ out: ValueID, _ axis: Int, indices: Bool, kth: IntOrValue?,
                          _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        let a = try laneAxis(axis, rank: x.rank, name)
        if let kth, let k = e.int(kth).exact {
            let size = x.rank == 0 ? Dim.fixed(1) : x.shape[a]
            if case .fixed(let n) = size {
                let r = k < 0 ? k + n : k
                guard r >= 0 && r < n else { throw fail(name, "kth \(k) is out of range for axis \(axis) of shape \(text(x.shape))") }
            }
        }
        return TensorType(indices ? declaredInteger(out, e, default: .u32) : x.dtype, x.shape)
    }
}
