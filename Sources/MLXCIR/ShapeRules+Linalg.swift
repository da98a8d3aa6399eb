/// Matrix products, convolutions (MLX channels-last layout) and the quantized-weight ops.
extension ShapeRules {
    /// NumPy/MLX matmul shape: a [..., M, K] @ b [..., K, N] with batch dims broadcast; a 1-D `a`
    /// is a row and a 1-D `b` a column, their inserted dim removed from the result.
    static func matmulShape(_ op: String, _ a: [Dim], _ b: [Dim]) throws -> [Dim] {
        guard a.count >= 1, b.count >= 1 else {
            throw fail(op, "operands must have at least one dim, got \(text(a)) and \(text(b))")
        }
        let m: Dim = a.count == 1 ? .fixed(1) : a[a.count - 2]
        let k = a[a.count - 1]
        let k2: Dim = b.count == 1 ? b[0] : b[b.count - 2]
        let n: Dim = b.count == 1 ? .fixed(1) : b[b.count - 1]
        guard meet(k, k2) != nil else { throw fail(op, "inner dims differ, \(text(a)) @ \(text(b))") }
        var shape: [Dim]
        let batchA = a.count > 2 ? Array(a[..<(a.count - 2)]) : [], batchB = b.count > 2 ? Array(b[..<(b.count - 2)]) : []
        do { shape = try broadcast(batchA, batchB, op) } catch {
            throw fail(op, "batch dims of \(text(a)) and \(text(b)) do not broadcast")
        }
        if a.count > 1 { shape.append(m) }
        if b.count > 1 { shape.append(n) }
        return shape
    }

    static func matmul(_ op: String, _ a: TensorType, _ b: TensorType) throws -> TensorType {
        TensorType(promote(a.dtype, b.dtype), try matmulShape(op, a.shape, b.shape))
    }

    /// alpha · (mat1 @ mat2) + beta · bias, the bias broadcast to the product.
    static func addmm(_ o: AddmmOp, _ e: Env) throws -> TensorType {
        let a = try e.t(o.mat1), b = try e.t(o.mat2)
        let r = try matmul("addmm", a, b)
        guard let bias = try e.t(o.bias) else { return r }
        guard broadcasts(bias.shape, to: r.shape) else {
            throw fail("addmm", "bias \(text(bias.shape)) does not broadcast to the product \(text(r.shape)) of \(text(a.shape)) @ \(text(b.shape))")
        }
        return TensorType(promote(r.dtype, bias.dtype), r.shape)
    }

    /// MLX conv and conv_transpose: x [N, *spatial, C], w [O, *kernel, C/groups] → [N, *out, O].
    /// Convolution: out = ⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1. Transposed:
    /// out = (in − 1)·stride − 2·pad + dil·(k − 1) + 1 + output_padding.
    static func conv(_ op: String, _ xv: ValueID, _ wv: ValueID, stride: [Int], padding: [Int], dilation: [Int],
                     outputPadding: [Int]?, groups: Int, _ e: Env) throws -> TensorType {
        let x = try e.t(xv), w = try e.t(wv)
        let dims = stride.count
        guard x.rank == dims + 2, w.rank == dims + 2 else {
            throw fail(op, "input \(text(x.shape)) and weight \(text(w.shape)) must both have rank \(dims + 2)")
        }
        let c = Bounds(x.shape[dims + 1]), o = Bounds(w.shape[0]), cg = Bounds(w.shape[dims + 1])
        var fits = groups >= 1
        if fits, let c = c.exact, let cg = cg.exact { fits = cg * groups == c }
        if fits, let o = o.exact { fits = o % groups == 0 }
        guard fits else { throw fail(op, "input \(text(x.shape)) and weight \(text(w.shape)) do not fit \(groups) group(s)") }
        let valid = stride.allSatisfy { $0 >= 1 } && dilation.allSatisfy { $0 >= 1 } && padding.allSatisfy { $0 >= 0 }
            && (outputPadding?.allSatisfy { $0 >= 0 } ?? true)
        guard valid else {
            throw fail(op, "invalid stride \(stride), padding \(padding), dilation \(dilation)"
                + (outputPadding.map { " or output padding \($0)" } ?? ""))
        }
        var shape: [Dim] = [x.shape[0]]
        shape.reserveCapacity(dims + 2)
        for d in 0..<dims {
            let input = Bounds(x.shape[d + 1]), kernel = Bounds(w.shape[d + 1])
            let reach = Bounds.exactly(dilation[d]) * (kernel - .exactly(1))
            if let outputPadding {
                let size = (input - .exactly(1)) * .exactly(stride[d]) - .exactly(2 * padding[d]) + reach
                    + .exactly(1 + outputPadding[d])
                if let n = size.exact, n < 0 { throw fail(op, "padding \(padding) leaves no output for input \(text(x.shape))") }
                shape.append(size.dim)
            } else {
                let span = input + .exactly(2 * padding[d]) - reach - .exactly(1)
                if let n = span.exact, n < 0 {
                    throw fail(op, "kernel \(text(w.shape)) (dilation \(dilation)) is larger than the padded input \(text(x.shape))")
                }
                let clipped = Bounds(span.lo.map { Swift.max($0, 0) }, span.hi)
                shape.append((clipped.floorDivided(by: .exactly(stride[d])) + .exactly(1)).dim)
            }
        }
        shape.append(w.shape[0])
        return TensorType(promote(x.dtype, w.dtype), shape)
    }

    /// MLX gather_mm: without index arrays a plain matmul; else the index arrays (absent ones: each
    /// operand's batch shape) broadcast to B, and the result is B + [M, N] (1-D operands as matmul).
    static func gatherMm(_ o: GatherMmOp, _ e: Env) throws -> TensorType {
        let a = try e.t(o.a), b = try e.t(o.b)
        let lhs = try e.t(o.lhsIndices), rhs = try e.t(o.rhsIndices)
        if lhs == nil && rhs == nil { return try matmul("gather_mm", a, b) }
        guard a.rank >= 1, b.rank >= 1 else {
            throw fail("gather_mm", "operands must have at least one dim, got \(text(a.shape)) and \(text(b.shape))")
        }
        let m: Dim = a.rank == 1 ? .fixed(1) : a.shape[a.rank - 2], k = a.shape[a.rank - 1]
        let k2: Dim = b.rank == 1 ? b.shape[0] : b.shape[b.rank - 2], n: Dim = b.rank == 1 ? .fixed(1) : b.shape[b.rank - 1]
        guard meet(k, k2) != nil else { throw fail("gather_mm", "inner dims differ, \(text(a.shape)) @ \(text(b.shape))") }
        let li = lhs?.shape ?? Array(a.shape.dropLast(2)), ri = rhs?.shape ?? Array(b.shape.dropLast(2))
        var shape: [Dim]
        do { shape = try broadcast(li, ri, "gather_mm") } catch {
            throw fail("gather_mm", "lhs indices \(text(li)) and rhs indices \(text(ri)) do not broadcast")
        }
        if a.rank > 1 { shape.append(m) }
        if b.rank > 1 { shape.append(n) }
        return TensorType(promote(a.dtype, b.dtype), shape)
    }

    // MARK: Quantized

    /// The dequantized shape of packed weights: uint32 words along the last axis hold
    /// words·32/bits values (4-bit codes for nvfp4/mxfp4, 8-bit for mxfp8).
    static func dequantizedShape(_ op: String, _ w: TensorType, scales: TensorType, hasBiases: Bool, groupSize: Int,
                                 bits: Int, mode: String) throws -> [Dim] {
        guard let words = w.shape.last else { throw fail(op, "packed weight of shape \(text(w.shape))") }
        let codeBits: Int
        switch mode {
        case "affine":
            guard [2, 3, 4, 5, 6, 8].contains(bits) else { throw fail(op, "\(bits)-bit affine is not supported") }
            guard hasBiases else { throw fail(op, "affine mode needs biases") }
            codeBits = bits
        case "nvfp4", "mxfp4": codeBits = 4
        case "mxfp8": codeBits = 8
        default: throw fail(op, "unknown quantization mode \"\(mode)\"")
        }
        guard groupSize > 0 else { throw fail(op, "group size must be positive, got \(groupSize)") }
        let k = (Bounds(words) * .exactly(32)).floorDivided(by: .exactly(codeBits))
        if let n = k.exact {
            guard n % groupSize == 0 else { throw fail(op, "\(n) columns do not split into groups of \(groupSize)") }
            let rows = count(Array(w.shape.dropLast()))
            if let r = rows.exact, let s = count(scales.shape).exact, s != r * (n / groupSize) {
                throw fail(op, "scales \(text(scales.shape)) do not match \(r) rows × \(n / groupSize) groups of weight \(text(w.shape))")
            }
        }
        var shape = w.shape
        shape[shape.count - 1] = k.dim
        return shape
    }

    /// dequantize: the unpacked weights (times the global scale, broadcast), in `dtype` or the scales' dtype.
    static func dequantize(_ o: DequantizeOp, _ e: Env) throws -> TensorType {
        let w = try e.t(o.w), scales = try e.t(o.scales)
        var shape = try dequantizedShape("dequantize", w, scales: scales, hasBiases: o.biases != nil, groupSize: o.groupSize,
                                         bits: o.bits, mode: o.mode)
        if let g = try e.t(o.globalScale) { shape = try broadcast(shape, g.shape, "dequantize") }
        return TensorType(o.dtype ?? scales.dtype, shape)
    }

    /// The dequantized weight as the right operand: with `transpose` the packed rows are the output
    /// columns (N = rows of w), without it N = words·32/bits.
    static func quantizedRight(_ op: String, _ w: TensorType, scales: TensorType, hasBiases: Bool, groupSize: Int, bits: Int,
                               mode: String, transpose: Bool) throws -> [Dim] {
        var shape = try dequantizedShape(op, w, scales: scales, hasBiases: hasBiases, groupSize: groupSize, bits: bits, mode: mode)
        if transpose && shape.count >= 2 { shape.swapAt(shape.count - 1, shape.count - 2) }
        return shape
    }

    /// x @ dequantize(w)ᵀ (or without the transpose), in x's dtype.
    static func quantizedMatmul(_ o: QuantizedMatmulOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), w = try e.t(o.w), scales = try e.t(o.scales)
        let right = try quantizedRight("quantized_matmul", w, scales: scales, hasBiases: o.biases != nil, groupSize: o.groupSize,
                                       bits: o.bits, mode: o.mode, transpose: o.transpose)
        return TensorType(x.dtype, try matmulShape("quantized_matmul", x.shape, right))
    }

    /// MLX gather_qmm: batches of x [..., M, K] and of the dequantized w picked by index arrays (absent
    /// ones: each operand's batch shape), broadcast to B; the result is B + [M, N] in x's dtype.
    static func gatherQmm(_ o: GatherQmmOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), w = try e.t(o.w), scales = try e.t(o.scales)
        let right = try quantizedRight("gather_qmm", w, scales: scales, hasBiases: o.biases != nil, groupSize: o.groupSize,
                                       bits: o.bits, mode: o.mode, transpose: o.transpose)
        guard x.rank >= 2, right.count >= 2 else {
            throw fail("gather_qmm", "needs matrices, got \(text(x.shape)) and \(text(right))")
        }
        let m = x.shape[x.rank - 2], k = x.shape[x.rank - 1], k2 = right[right.count - 2], n = right[right.count - 1]
        guard meet(k, k2) != nil else { throw fail("gather_qmm", "inner dimensions differ, \(text(x.shape)) @ \(text(right))") }
        let li = try e.t(o.lhsIndices)?.shape ?? Array(x.shape.dropLast(2))
        let ri = try e.t(o.rhsIndices)?.shape ?? Array(right.dropLast(2))
        var shape = try broadcast(li, ri, "gather_qmm")
        shape.append(m)
        shape.append(n)
        return TensorType(x.dtype, shape)
    }

    /// ExecuTorch quantized embedding: weight [rows, packed bytes] → indices.shape + [packed · 8/bits].
    static func quantizedEmbedding(_ o: QuantizedEmbeddingOp, _ e: Env) throws -> TensorType {
        let weight = try e.t(o.weight), scales = try e.t(o.scales), indices = try e.t(o.indices)
        guard weight.rank == 2 else { throw fail("quantized_embedding", "weight must be 2-D, got \(text(weight.shape))") }
        guard o.bits == 8 || o.bits == 4 || o.bits == 2 else {
            throw fail("quantized_embedding", "\(o.bits) bits is not supported (8, 4 or 2)")
        }
        let dim = (Bounds(weight.shape[1]) * .exactly(o.bits == 8 ? 1 : 8 / o.bits)).dim
        if scales.rank == 0 || meet(weight.shape[0], scales.shape[0]) == nil {
            throw fail("quantized_embedding", "scales \(text(scales.shape)) do not fit weight \(text(weight.shape))")
        }
        return TensorType(o.dtype ?? scales.dtype, indices.shape + [dim])
    }
}
