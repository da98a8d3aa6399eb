/// Elementwise ops (broadcast shapes, promoted dtypes) and creation ops (full, arange, tri).
extension ShapeRules {
    /// Arithmetic in the operands' common dtype (`binary`), over the broadcast shape.
    static func arithmetic(_ name: String, _ a: ValueID, _ b: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(a), y = try e.t(b)
        return TensorType(binary(x, y), try broadcast(x.shape, y.shape, name))
    }

    /// divide, atan2, log_add_exp: floating point even for int operands.
    static func floatBinary(_ name: String, _ a: ValueID, _ b: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(a), y = try e.t(b)
        return TensorType(atLeastFloat(binary(x, y)), try broadcast(x.shape, y.shape, name))
    }

    /// Comparisons and logical and/or.
    static func boolBinary(_ name: String, _ a: ValueID, _ b: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(a), y = try e.t(b)
        return TensorType(.bool, try broadcast(x.shape, y.shape, name))
    }

    static func unaryFloat(_ v: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        return TensorType(atLeastFloat(x.dtype), x.shape)
    }

    static func gelu(_ o: GeluOp, _ e: Env) throws -> TensorType {
        guard o.approximate == "none" || o.approximate == "tanh" || o.approximate.isEmpty else {
            throw fail("gelu", "approximate must be \"none\" or \"tanh\", got \"\(o.approximate)\"")
        }
        return try unaryFloat(o.x, e)
    }

    static func neg(_ o: NegOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard x.dtype != .bool else { throw fail("neg", "not supported for bool \(text(x.shape)) (use logical_not)") }
        return x
    }

    static func bitwiseInvert(_ o: BitwiseInvertOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard !isFloat(x.dtype) else { throw fail("bitwise_invert", "needs an integer or bool tensor, got \(x)") }
        return x
    }

    static func bitwise(_ name: String, _ a: ValueID, _ b: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(a), y = try e.t(b)
        guard !isFloat(x.dtype) && !isFloat(y.dtype) else { throw fail(name, "needs integer or bool tensors, got \(x) and \(y)") }
        return TensorType(binary(x, y), try broadcast(x.shape, y.shape, name))
    }

    /// `where(condition, x, y)`: the dtype of x and y together, the shape of all three.
    static func select(_ o: WhereOp, _ e: Env) throws -> TensorType {
        let c = try e.t(o.condition), x = try e.t(o.x), y = try e.t(o.y)
        let shape = try broadcast(try broadcast(c.shape, x.shape, "where"), y.shape, "where")
        return TensorType(binary(x, y), shape)
    }

    /// clip(x, a_min?, a_max?): dtypes combined left to right (`binary` over the list), shapes broadcast.
    static func clip(_ o: ClipOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let lo = try e.t(o.aMin), hi = try e.t(o.aMax)
        guard lo != nil || hi != nil else { throw fail("clip", "needs a_min or a_max (both are missing) for \(text(x.shape))") }
        var dtype = x.dtype, rank = x.rank, shape = x.shape
        for t in [lo, hi] {
            guard let t else { continue }
            dtype = binary(dtype, rank: rank, t.dtype, rank: t.rank)
            rank = Swift.max(rank, t.rank)
            shape = try broadcast(shape, t.shape, "clip")
        }
        return TensorType(dtype, shape)
    }

    static func full(_ o: FullOp, _ e: Env) throws -> TensorType {
        var shape: [Dim] = []
        shape.reserveCapacity(o.shape.count)
        for s in o.shape { shape.append(try size(e.int(s), "full", "shape \(o.shape)")) }
        try checkCount(shape, "full")
        return TensorType(o.scalarType, shape)
    }

    /// The element count of a fixed shape must stay below 2^40 (`checkedCount`).
    static func checkCount(_ shape: [Dim], _ op: String) throws {
        var n = 1
        for d in shape {
            guard case .fixed(let k) = d else { return }
            let (p, overflow) = n.multipliedReportingOverflow(by: k)
            guard !overflow, p <= 1 << 40 else { throw fail(op, "shape \(text(shape)) is too large") }
            n = p
        }
    }

    /// arange(start, stop, step): ⌈(stop − start) / step⌉ elements (at least 0). Without a dtype, the
    /// result's declared dtype, else int32 (MLX).
    static func arange(_ o: ARangeOp, _ e: Env) throws -> TensorType {
        let dtype = o.scalarType ?? e.typeOf(o.out)?.dtype ?? .i32
        guard dtype != .bool else { throw fail("arange", "bool is not supported") }
        let start = e.int(o.start), stop = e.int(o.stop), step = e.int(o.step)
        if let s = step.exact, s == 0 { throw fail("arange", "step must not be zero (start \(start), stop \(stop))") }
        if let a = start.exact, let b = stop.exact, let s = step.exact {
            let length = ((Double(b) - Double(a)) / Double(s)).rounded(.up)
            guard length <= Double(1 << 40) else { throw fail("arange", "\(a)..<\(b) step \(s) is too long") }
            return TensorType(dtype, [.fixed(Swift.max(0, Int(length)))])
        }
        // Symbolic: the length grows with stop − start (step > 0) or start − stop (step < 0).
        func ceilDiv(_ a: Int?, _ b: Int) -> Int? { a.map { -Bounds.floorDiv(-$0, b) } }
        var length = Bounds(0, nil)
        if let s = step.exact {
            let span = s > 0 ? stop - start : start - stop
            length = Bounds(ceilDiv(span.lo, Swift.abs(s)).map { Swift.max(0, $0) } ?? 0, ceilDiv(span.hi, Swift.abs(s)))
        } else if let sl = step.lo, sl >= 1 {
            length = Bounds(0, ceilDiv((stop - start).hi, sl))
        } else if let sh = step.hi, sh <= -1 {
            length = Bounds(0, ceilDiv((start - stop).hi, -sh))
        }
        return TensorType(dtype, [length.dim])
    }

    static func tri(_ o: TriOp, _ e: Env) throws -> TensorType {
        let shape = [try size(e.int(o.n), "tri", "n"), try size(e.int(o.m), "tri", "m")]
        try checkCount(shape, "tri")
        return TensorType(o.scalarType, shape)
    }

    /// MLX `random::bits`: elements of `width` bytes (1, 2 or 4) as unsigned ints.
    static func randomBits(_ o: RandomBitsOp, _ e: Env) throws -> TensorType {
        let dtype: DType
        switch o.width {
        case 1: dtype = .u8
        case 2: dtype = .u16
        case 4: dtype = .u32
        default: throw fail("random_bits", "width must be 1, 2 or 4 bytes, got \(o.width)")
        }
        var shape: [Dim] = []
        for s in o.shape { shape.append(try size(e.int(s), "random_bits", "shape \(o.shape)")) }
        return TensorType(dtype, shape)
    }
}
