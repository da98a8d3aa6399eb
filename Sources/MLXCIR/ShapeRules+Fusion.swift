/// Result types of the ops the fusion passes make: the types of the unfused ops they replace.
extension ShapeRules {
    /// One result per linear ("none"), or the gated product ("swiglu"); the residual, if any, has
    /// the result's shape.
    static func fusedQuantizedLinear(_ o: FusedQuantizedLinearOp, _ e: Env) throws -> [TensorType?] {
        let op = "fused_quantized_linear"
        guard !o.w.isEmpty, o.w.count == o.scales.count, o.w.count == o.biases.count else {
            throw fail(op, "needs as many weights, scales and biases (\(o.w.count), \(o.scales.count), \(o.biases.count))")
        }
        let x = try e.t(o.x)
        let products = try o.w.indices.map { i -> TensorType in
            let right = try quantizedRight(op, try e.t(o.w[i]), scales: try e.t(o.scales[i]), hasBiases: true,
                                           groupSize: o.groupSize, bits: o.bits, mode: "affine", transpose: true)
            return TensorType(x.dtype, try matmulShape(op, x.shape, right))
        }
        switch o.epilogue {
        case "none":
            guard o.outs.count == products.count else { throw fail(op, "\(products.count) linears need \(products.count) results, has \(o.outs.count)") }
            guard o.residual == nil || products.count == 1 else { throw fail(op, "a residual needs exactly one linear") }
            return products
        case "swiglu":
            guard products.count == 2, o.outs.count == 1 else { throw fail(op, "swiglu needs two linears (gate, up) and one result") }
            guard meetShapes(products[0].shape, products[1].shape) != nil else {
                throw fail(op, "gate \(text(products[0].shape)) and up \(text(products[1].shape)) differ")
            }
            return [products[0]]
        default:
            throw fail(op, "unknown epilogue \"\(o.epilogue)\" (none, swiglu)")
        }
    }

    /// [attention output like sdpa's, k_cache, v_cache].
    static func ropeAttention(_ o: RopeAttentionOp, _ e: Env) throws -> [TensorType?] {
        let q = try e.t(o.q), kCache = try e.t(o.kCache), vCache = try e.t(o.vCache)
        guard o.outs.count == 3 else { throw fail("rope_attention", "has \(o.outs.count) results, 3 expected (out, k_cache, v_cache)") }
        let mask = o.mask.flatMap(e.typeOf)?.shape
        let out = try attentionShape("rope_attention", q: q.shape, k: kCache.shape, v: vCache.shape, mask: mask, keys: nil)
        return [TensorType(q.dtype, out), kCache, vCache]
    }

    /// x's type. The tables are [R, h] alike, 2h fits in x's last dim (rows are checked when run).
    static func ropeTable(_ o: RopeTableOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), c = try e.t(o.cos), s = try e.t(o.sin)
        guard x.rank >= 2 else { throw fail("rope_table", "needs rank >= 2, got \(text(x.shape))") }
        guard c.rank == 2, meetShapes(c.shape, s.shape) != nil else {
            throw fail("rope_table", "cos \(text(c.shape)) and sin \(text(s.shape)) must be alike [rows, dims/2]")
        }
        if let h = c.shape[1].fixedValue, let d = x.shape[x.rank - 1].fixedValue, 2 * h > d || h == 0 {
            throw fail("rope_table", "tables of \(h) pairs do not fit the feature size \(d) of \(text(x.shape))")
        }
        return x
    }

    /// Two shapes that may be the same (every dim pair meets), else nil.
    static func meetShapes(_ a: [Dim], _ b: [Dim]) -> [Dim]? {
        guard a.count == b.count else { return nil }
        var out: [Dim] = []
        for (x, y) in zip(a, b) {
            guard let m = meet(x, y) else { return nil }
            out.append(m)
        }
        return out
    }
}
