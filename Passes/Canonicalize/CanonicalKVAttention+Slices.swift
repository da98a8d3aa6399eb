import MLXCIR

/// The MLX delegate's spelling of `kv_cache_update` and `custom_sdpa` on a flat cache: one
/// `slice_update` per write, and `sdpa` over `slice(cache, 0, L)`.
extension KVAttentionRewriter {
    /// States an `sdpa` reads as its k or v, whole or through a slice along the sequence axis:
    /// the only caches whose writes this pass rewrites.
    func attentionCaches() -> Set<ValueID> {
        var producer: [ValueID: Op] = [:]
        var caches = Set<ValueID>()
        for node in nodes {
            for r in node.op.results { producer[r] = node.op }
            guard case .sdpa(let s) = node.op else { continue }
            for x in [s.k, s.v] {
                if isState(x) { caches.insert(x) }
                if case .slice(let sl)? = producer[x], isState(sl.x) { caches.insert(sl.x) }
            }
        }
        return caches
    }

    /// `c = slice_update(c, u, axis 2, s, e)` with e ≡ s + T (T = u's rows) → `index_copy` at
    /// `arange(s, e)`.
    mutating func rewriteWrite(at i: Int, caches: Set<ValueID>) -> Bool {
        guard case .sliceUpdate(let w) = nodes[i].op, caches.contains(w.dst), w.out == w.dst, cacheShape(w.dst) != nil,
              isSequenceAxis(w.axis), w.step == 1, let rows = forms.dim(w.update, 2),
              forms.form(w.stop) == forms.form(w.start) + rows, !isRingPiece(w) else { return false }
        let end = stop(after: w.start, rows, of: w.update, 2)
        let indices = positions(w.start, end, rows: dimType(w.update, 2))
        emit(.indexCopy(IndexCopyOp(dst: w.dst, update: w.update, indices: indices, out: w.out, axis: 2)))
        return true
    }

    /// `sdpa(q, slice(c_k, 0, L), slice(c_v, 0, L), …)` over whole caches: the slices dropped when
    /// L is always the cache length, else (causal, no mask) the causal rule over L keys as a mask.
    mutating func rewriteRead(at i: Int) -> Bool {
        guard case .sdpa(let s) = nodes[i].op, let (kc, kStop) = cacheSlice(s.k, before: i), let (vc, vStop) = cacheSlice(s.v, before: i),
              kc != vc, let shape = cacheShape(kc), let vShape = cacheShape(vc), shape[2] == vShape[2],
              forms.form(kStop) == forms.form(vStop) else { return false }
        // The slices were the sdpa's alone: they go.
        out.removeAll { $0.op.results.contains(s.k) || $0.op.results.contains(s.v) }
        var op = s
        (op.k, op.v) = (kc, vc)
        let stop = forms.form(kStop)
        if stop.fixed == shape[2] {
            emit(.sdpa(op))
            return true
        }
        guard s.causal, s.mask == nil, let t = forms.dim(s.q, 2) else { return false }
        let first = firstQuery(stop: kStop, rows: t, q: s.q)
        let end = self.stop(after: first, t, of: s.q, 2)
        op.mask = causalMask(first: first, stop: end, rows: dimType(s.q, 2), keys: shape[2])
        op.causal = false
        emit(.sdpa(op))
        return true
    }

    /// `x = slice(c, axis 2, 0, L, step 1)` of a state cache, read only by the sdpa, and nothing
    /// writes the cache between the slice and node `end`.
    func cacheSlice(_ x: ValueID, before end: Int) -> (ValueID, IntOrValue)? {
        guard uses[x] == 1, let j = nodes[..<end].lastIndex(where: { $0.op.results.contains(x) }),
              case .slice(let sl) = nodes[j].op, cacheShape(sl.x) != nil, isSequenceAxis(sl.axis), sl.step == 1,
              literal(sl.start) == 0, !(j + 1..<end).contains(where: { nodes[$0].op.results.contains(sl.x) }) else { return nil }
        return (sl.x, sl.stop)
    }

    /// The position of the first query, L − T, as an operand: the other addend when L is spelled
    /// `add_int(first, T)`, else a new `subtract_int`.
    mutating func firstQuery(stop: IntOrValue, rows: ScalarForm, q: ValueID) -> IntOrValue {
        if case .value(let l) = stop, case .addInt(let a)? = forms.producers[l] {
            if forms.form(a.b) == rows { return a.a }
            if forms.form(a.a) == rows { return a.b }
        }
        if let n = (forms.form(stop) - rows).fixed { return .literal(Int64(n)) }
        let t = length(rows, of: q, 2)
        let first = value(TensorType(.i64, []))
        emit(.subtractInt(SubtractIntOp(a: stop, b: t, out: first)))
        return .value(first)
    }
}
