/// Norms, softmax, RoPE, attention and KV-cache writes.
extension ShapeRules {
    /// True unless both dims are known and differ.
    @inline(__always)
    static func agree(_ a: Dim, _ b: Dim) -> Bool { meet(a, b) != nil }

    /// rms_norm and layer_norm over the last axis: the input's type; parameters have the last dim's size.
    static func norm(_ name: String, _ v: ValueID, weight: ValueID?, bias: ValueID?, _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        guard let n = x.shape.last, n != .fixed(0) else { throw fail(name, "norm of a tensor with shape \(text(x.shape))") }
        for p in [weight, bias] {
            guard let p, let t = e.typeOf(p) else { continue }
            guard count(t.shape).overlaps(Bounds(n)) else {
                throw fail(name, "parameter of shape \(text(t.shape)) does not match the last dim \(n) of \(text(x.shape))")
            }
        }
        return x
    }

    static func softmax(_ o: SoftmaxOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let r = o.axis < 0 ? o.axis + x.rank : o.axis
        guard r >= 0 && r < Swift.max(x.rank, 1) else { throw fail("softmax", "axis \(o.axis) is out of range for rank \(x.rank)") }
        return x
    }

    /// MLX fast.rope on x [..., T, D]: the input's type; rotates `dims` (even, ≤ D) features.
    static func rope(_ o: RopeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard x.rank >= 2 else { throw fail("rope", "needs rank >= 2, got \(text(x.shape))") }
        let d = x.shape[x.rank - 1]
        guard o.dims > 0, o.dims % 2 == 0, d.upperBound.map({ o.dims <= $0 }) ?? true else {
            throw fail("rope", "dims \(o.dims) invalid for feature size \(d) of \(text(x.shape))")
        }
        if let f = o.freqs.flatMap(e.typeOf), let n = count(f.shape).exact, n != o.dims / 2 {
            throw fail("rope", "freqs \(text(f.shape)) has \(n) entries, \(o.dims / 2) expected")
        }
        return x
    }

    /// Attention on BHSD tensors: q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] (Hq a multiple
    /// of Hkv) → [B, Hq, T, Dv] in q's dtype. The mask broadcasts to [B, Hq, T, its last dim ≥ keys].
    static func attentionShape(_ op: String, q: [Dim], k: [Dim], v: [Dim], mask: [Dim]?, keys: Dim?) throws -> [Dim] {
        guard q.count == 4, k.count == 4, v.count == 4 else {
            throw fail(op, "needs rank-4 q/k/v, got \(text(q)) \(text(k)) \(text(v))")
        }
        let (b, hq, t, dk) = (q[0], q[1], q[2], q[3])
        let hkv = k[1], sAll = k[2]
        var heads = hkv != .fixed(0)
        if heads, let h = hq.fixedValue, let g = hkv.fixedValue { heads = h % g == 0 }
        guard agree(k[0], b), agree(v[0], b), agree(k[3], dk), agree(v[1], hkv), agree(v[2], sAll), heads else {
            throw fail(op, "shapes do not agree: q \(text(q)), k \(text(k)), v \(text(v))")
        }
        if let mask {
            let s = keys.map { Bounds.minimum(Bounds($0), Bounds(sAll)) } ?? Bounds(sAll)
            let width = mask.last ?? s.dim
            guard broadcasts(mask, to: [b, hq, t, width]) else {
                throw fail(op, "mask \(text(mask)) does not broadcast to \(text([b, hq, t, width]))")
            }
            if let w = width.upperBound, let need = s.lo, w < need {
                throw fail(op, "mask covers \(w) keys, \(need) needed")
            }
        }
        return [b, hq, t, v[3]]
    }

    static func sdpa(_ o: SdpaOp, _ e: Env) throws -> TensorType {
        let q = try e.t(o.q), k = try e.t(o.k), v = try e.t(o.v)
        let mask = o.mask.flatMap(e.typeOf)?.shape
        return TensorType(q.dtype, try attentionShape("sdpa", q: q.shape, k: k.shape, v: v.shape, mask: mask, keys: nil))
    }

    /// llama::custom_sdpa on BSHD tensors with the whole cache as k/v → [B, T, Hq, Dv]; attends to
    /// start_pos + T keys (or the mask's width), which must fit in the cache.
    static func customSdpa(_ o: LlamaCustomSdpaOp, _ e: Env) throws -> TensorType {
        let q = try e.t(o.q), k = try e.t(o.k), v = try e.t(o.v)
        guard q.rank == 4, k.rank == 4, v.rank == 4 else {
            throw fail("llama_custom_sdpa", "needs [B, S, H, D] tensors, got \(text(q.shape)) \(text(k.shape)) \(text(v.shape))")
        }
        let mask = o.attnMask.flatMap(e.typeOf)?.shape
        let keys: Dim = mask?.last ?? (e.int(o.startPos) + Bounds(q.shape[1])).dim
        if let need = Bounds(keys).lo, let have = k.shape[1].upperBound, need > have {
            throw fail("llama_custom_sdpa", "start_pos \(e.int(o.startPos)) + \(q.shape[1]) tokens exceed the cache length \(have)")
        }
        func bhsd(_ s: [Dim]) -> [Dim] { [s[0], s[2], s[1], s[3]] }
        let paddedMask = mask.map { [Dim](repeating: .fixed(1), count: Swift.max(0, 4 - $0.count)) + $0 }
        let y = try attentionShape("llama_custom_sdpa", q: bhsd(q.shape), k: bhsd(k.shape), v: bhsd(v.shape), mask: paddedMask, keys: keys)
        return TensorType(q.dtype, bhsd(y))
    }

    /// llama::update_cache: value [B, S, H, D] written into cache [B, L, H, D] at start_pos; the result is the cache.
    static func updateCache(_ o: LlamaUpdateCacheOp, _ e: Env) throws -> TensorType {
        let value = try e.t(o.value), cache = try e.t(o.cache)
        guard value.rank == 4, cache.rank == 4, agree(value.shape[0], cache.shape[0]), agree(value.shape[2], cache.shape[2]),
              agree(value.shape[3], cache.shape[3]) else {
            throw fail("llama_update_cache", "value \(text(value.shape)) does not fit cache \(text(cache.shape)) ([B, S, H, D])")
        }
        let start = e.int(o.startPos)
        if let s = start.exact, let n = value.shape[1].fixedValue, let size = cache.shape[1].fixedValue, n > 0, s < 0 || s + n > size {
            throw fail("llama_update_cache", "positions \(s)..<\(s + n) are outside 0..<\(size)")
        }
        return cache
    }

    static func updateCacheWithIndices(_ o: LlamaUpdateCacheWithIndicesOp, _ e: Env) throws -> TensorType {
        let value = try e.t(o.value), cache = try e.t(o.cache), indices = try e.t(o.indices)
        guard value.rank == 4, cache.rank == 4 else {
            throw fail("llama_update_cache_with_indices", "value \(text(value.shape)), cache \(text(cache.shape)), indices \(text(indices.shape))")
        }
        let n = count(indices.shape)
        guard n.overlaps(Bounds(value.shape[1])) || n.overlaps(Bounds(value.shape[0]) * Bounds(value.shape[1])),
              agree(value.shape[0], cache.shape[0]),
              (Bounds(value.shape[2]) * Bounds(value.shape[3])).overlaps(Bounds(cache.shape[2]) * Bounds(cache.shape[3])) else {
            throw fail("llama_update_cache_with_indices", "value \(text(value.shape)), cache \(text(cache.shape)), indices \(text(indices.shape))")
        }
        return cache
    }

    /// update_and_attend appends k/v [B, Hkv, T, D] to a KV cache kept outside the graph and attends
    /// q [B, Hq, T, D] over the whole history: attention's result [B, Hq, T, Dv], in `out_dtype` or q's.
    static func updateAndAttend(_ o: UpdateAndAttendOp, _ e: Env) throws -> TensorType {
        let q = try e.t(o.q), k = try e.t(o.k), v = try e.t(o.v)
        guard o.layerId != nil else { throw fail("update_and_attend", "needs a layer_id") }
        guard k.rank == 4, v.rank == 4, agree(k.shape[2], v.shape[2]) else {
            throw fail("update_and_attend", "k \(text(k.shape)) and v \(text(v.shape)) disagree")
        }
        // The keys attended to are the cache's history, whose length is known only at run time.
        var history = k.shape, values = v.shape
        history[2] = .dynamic(min: 0, max: nil)
        values[2] = history[2]
        let shape = try attentionShape("update_and_attend", q: q.shape, k: history, v: values, mask: nil, keys: nil)
        return TensorType(o.outDtype ?? q.dtype, shape)
    }
}
