import MLXCIR

/// ExecuTorch's CPU custom ops (`--use_custom_sdpa --use_custom_kv_cache`, etLLM's plain export):
///
///     c_k = llama_update_cache(value: k [B, T, H, D], cache: c_k [B, S, H, D], start_pos: p)
///     o   = llama_custom_sdpa(q [B, T, Hq, D], c_k, c_v, start_pos: p', causal)   (keys 0 ..< p' + T)
///
/// etLLM's sliding-window layers (`local_global_attention`, CustomRingKVCache) write a ring of S cells
/// instead, and attend with the mask the program computes from each cell's position:
///
///     c_k = llama_update_cache_with_indices(value: k [1, T, H, D], cache: c_k, indices: i [1, T])
///     o   = llama_custom_sdpa(q, c_k, c_v, start_pos: 0, attn_mask: m [T, S], causal: false)
///
/// A cache only these ops touch is private to the program, so its layout is the pass's to choose:
/// it becomes [B, H, S, D] (zeros either way), each write `index_copy(c, transpose(k),
/// arange(p, p + T), axis 2)`, and the attention `transpose(sdpa(transpose(q), c_k, c_v, keep))`
/// with keep[i, j] = j ≤ p' + i — the transposes cancel against the head swaps around them.
extension KVAttentionRewriter {
    /// Zero-initialised [B, S, H, D] states that only `llama_update_cache` (in place, in this
    /// block) writes and only `llama_custom_sdpa` (causal, no mask) reads as k or v: all of their
    /// uses are rewritten, or none.
    func llamaCaches() -> Set<ValueID> {
        var writes = Set<ValueID>(), reads = Set<ValueID>(), other = Set<ValueID>()
        var pairs: [(ValueID, ValueID)] = [], masked: [(ValueID, ValueID)] = []
        func rank4(_ v: ValueID) -> TensorType? {
            guard let t = graph[v].type ?? forms.ids.type(v), t.rank == 4 else { return nil }
            return t
        }
        for (b, block) in graph.blocks.enumerated() {
            for node in block.nodes {
                switch node.op {
                case .llamaUpdateCache(let u) where b == self.block && u.out == u.cache && u.value != u.cache
                    && rank4(u.value) != nil && forms.dim(u.value, 1) != nil:
                    writes.insert(u.cache)
                case .llamaUpdateCacheWithIndices(let u) where b == self.block && u.out == u.cache && u.value != u.cache
                    && rank4(u.value)?.shape[0].fixedValue == 1 && forms.dim(u.value, 1) != nil && ringIndices(u.indices) != nil:
                    writes.insert(u.cache)
                    other.insert(u.indices)
                case .llamaCustomSdpa(let s) where b == self.block && !s.isCausal && s.attnMask != nil && s.dropoutP == 0 && s.k != s.v
                    && rank4(s.q)?.shape[3].fixedValue != nil && rank4(s.out) != nil && forms.dim(s.q, 1) != nil:
                    reads.formUnion([s.k, s.v])
                    pairs.append((s.k, s.v))
                    masked.append((s.k, s.attnMask!))
                    other.formUnion([s.q, s.attnMask!] + (s.startPos.valueID.map { [$0] } ?? []))
                case .llamaCustomSdpa(let s) where b == self.block && s.isCausal && s.attnMask == nil && s.dropoutP == 0 && s.k != s.v
                    && rank4(s.q)?.shape[3].fixedValue != nil && rank4(s.out) != nil && forms.dim(s.q, 1) != nil:
                    reads.formUnion([s.k, s.v])
                    pairs.append((s.k, s.v))
                    other.formUnion([s.q] + (s.startPos.valueID.map { [$0] } ?? []))
                default:
                    other.formUnion(node.op.operands)
                    other.formUnion(node.op.results)
                }
            }
        }
        var caches = writes.intersection(reads).subtracting(other).subtracting(graph.outputs).filter { v in
            guard cacheShape(v) != nil, case .state(initial: nil) = graph[v].kind else { return false }
            return true
        }
        // A masked read covers the whole cache: its mask has one column per cell.
        for (k, mask) in masked where caches.contains(k) {
            guard let cells = cacheShape(k)?[1], let mt = graph[mask].type ?? forms.ids.type(mask), (2...4).contains(mt.rank),
                  mt.shape.last?.fixedValue == cells else { caches.remove(k); continue }
        }
        // A read is rewritten whole: its k and v caches both, with one length, or neither.
        var changed = true
        while changed {
            changed = false
            for (k, v) in pairs where caches.contains(k) != caches.contains(v) || cacheShape(k)?[1] != cacheShape(v)?[1] {
                if caches.remove(k) != nil { changed = true }
                if caches.remove(v) != nil { changed = true }
            }
        }
        return caches
    }

    /// The ring's cell indices, [1, T] or [T] integers (one row: batch 1).
    func ringIndices(_ v: ValueID) -> TensorType? {
        guard let t = graph[v].type ?? forms.ids.type(v), [.i64, .i32].contains(t.dtype),
              t.rank == 1 || (t.rank == 2 && t.shape[0].fixedValue == 1) else { return nil }
        return t
    }

    /// `llama_update_cache_with_indices` → `index_copy(c, transpose(k), indices, axis 2)`.
    mutating func rewriteLlamaIndexedWrite(at i: Int, caches: Set<ValueID>) -> Bool {
        guard case .llamaUpdateCacheWithIndices(let u) = nodes[i].op, caches.contains(u.cache),
              let it = ringIndices(u.indices), let shape = graph[u.value].type?.shape, shape.count == 4 else { return false }
        let rows = shape[1]
        let swapped = value(TensorType(graph[u.value].type!.dtype, [shape[0], shape[2], rows, shape[3]]))
        emit(.transpose(TransposeOp(x: u.value, out: swapped, perm: [0, 2, 1, 3])))
        var indices = u.indices
        if it.rank == 2 {
            if let flat = flatIndices[u.indices] {
                indices = flat
            } else {
                indices = value(TensorType(it.dtype, [it.shape[1]]))
                emit(.reshape(ReshapeOp(x: u.indices, out: indices, shape: [.literal(-1)])))
                flatIndices[u.indices] = indices
            }
        }
        emit(.indexCopy(IndexCopyOp(dst: u.cache, update: swapped, indices: indices, out: u.cache, axis: 2)))
        return true
    }

    mutating func rewriteLlamaWrite(at i: Int, caches: Set<ValueID>) -> Bool {
        if rewriteLlamaIndexedWrite(at: i, caches: caches) { return true }
        guard case .llamaUpdateCache(let u) = nodes[i].op, caches.contains(u.cache), let t = forms.dim(u.value, 1),
              let shape = graph[u.value].type?.shape, shape.count == 4 else { return false }
        let rows = shape[1]
        let swapped = value(TensorType(graph[u.value].type!.dtype, [shape[0], shape[2], rows, shape[3]]))
        emit(.transpose(TransposeOp(x: u.value, out: swapped, perm: [0, 2, 1, 3])))
        let stop = self.stop(after: u.startPos, t, of: u.value, 1)
        let indices = positions(u.startPos, stop, rows: rows)
        emit(.indexCopy(IndexCopyOp(dst: u.cache, update: swapped, indices: indices, out: u.cache, axis: 2)))
        return true
    }

    mutating func rewriteLlamaRead(at i: Int, caches: Set<ValueID>) -> Bool {
        guard case .llamaCustomSdpa(let s) = nodes[i].op, caches.contains(s.k), caches.contains(s.v),
              let qt = graph[s.q].type ?? forms.ids.type(s.q), qt.rank == 4, let d = qt.shape[3].fixedValue,
              let keys = cacheShape(s.k)?[1], cacheShape(s.v)?[1] == keys, let t = forms.dim(s.q, 1),
              let ot = graph[s.out].type ?? forms.ids.type(s.out), ot.rank == 4 else { return false }
        let rows = qt.shape[1]
        let q = value(TensorType(qt.dtype, [qt.shape[0], qt.shape[2], rows, qt.shape[3]]))
        emit(.transpose(TransposeOp(x: s.q, out: q, perm: [0, 2, 1, 3])))
        // The program's own mask over every cell (a ring layer), else causal over start + T keys.
        let mask: ValueID
        if let given = s.attnMask {
            mask = given
        } else {
            let stop = self.stop(after: s.startPos, t, of: s.q, 1)
            mask = causalMask(first: s.startPos, stop: stop, rows: rows, keys: keys)
        }
        let y = value(TensorType(ot.dtype, [ot.shape[0], ot.shape[2], ot.shape[1], ot.shape[3]]))
        emit(.sdpa(SdpaOp(q: q, k: s.k, v: s.v, out: y, scale: s.scale ?? 1 / Double(d).squareRoot(), mask: mask, causal: false)))
        emit(.transpose(TransposeOp(x: y, out: s.out, perm: [0, 2, 1, 3])))
        return true
    }

    /// The caches become [B, H, S, D].
    mutating func relayout(_ caches: Set<ValueID>) {
        for c in caches {
            guard let t = graph[c].type else { continue }
            graph.values[c.index].type = TensorType(t.dtype, [t.shape[0], t.shape[2], t.shape[1], t.shape[3]])
        }
    }
}
