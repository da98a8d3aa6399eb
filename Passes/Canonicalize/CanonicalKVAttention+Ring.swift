import MLXCIR

/// The MLX delegate's ring-buffer `kv_cache_update` (a sliding-window layer's cache of R slots):
///
///     p  = mod_int(start, R)
///     a  = slice(u, axis 2, 0, R − p)            rows 0 ..< n, n = min(T, R − p)
///     b  = slice(u, axis 2, n, T)                the rest, wrapped to the front
///     c  = slice_update(c, a, axis 2, p, p + n)
///     c  = slice_update(c, b, axis 2, 0, T − n)
///
/// is one write of row t at (p + t) mod R: `index_copy(c, u, remainder(arange(p, p + T), R))`
/// (rows t < n land at p + t < R, the rest at p + t − R).
extension KVAttentionRewriter {
    /// The first piece of a wrapped write (so the flat rewrite leaves it to the ring one).
    func isRingPiece(_ w: SliceUpdateOp) -> Bool {
        guard case .value(let p) = w.start, case .modInt? = forms.producers[p] else { return false }
        return true
    }

    mutating func rewriteRingWrite(at i: Int, caches: Set<ValueID>) -> Bool {
        guard case .sliceUpdate(let w1) = nodes[i].op, caches.contains(w1.dst), w1.out == w1.dst, let shape = cacheShape(w1.dst),
              isSequenceAxis(w1.axis), w1.step == 1, case .value(let p) = w1.start,
              case .modInt(let m)? = forms.producers[p], literal(m.b) == shape[2] else { return false }
        let r = shape[2]
        // The second piece: the next write of this cache, nothing touching the cache in between.
        guard let j = nodes[(i + 1)...].firstIndex(where: { $0.op.results.contains(w1.dst) || $0.op.operands.contains(w1.dst) }),
              case .sliceUpdate(let w2) = nodes[j].op, w2.dst == w1.dst, w2.out == w1.dst, isSequenceAxis(w2.axis), w2.step == 1,
              literal(w2.start) == 0, untouched(w1.dst, from: i, to: j) else { return false }
        // Both pieces slice one update u: [0, R − p) and [rows of the first, T).
        guard let (u, aStart, aStop) = sliceOfSequence(w1.update), let (u2, bStart, bStop) = sliceOfSequence(w2.update), u == u2,
              literal(aStart) == 0, forms.form(aStop) == ScalarForm(constant: r) - forms.form(.value(p)),
              let n = forms.dim(w1.update, 2), let t = forms.dim(u, 2),
              forms.form(bStart) == n, forms.form(bStop) == t,
              forms.form(w1.stop) == forms.form(.value(p)) + n, forms.form(w2.stop) == t - n else { return false }
        // Written where the second piece was: everything both pieces read is defined by then.
        pendingRings[j] = RingWrite(cache: w1.dst, update: u, start: .value(p), count: t, slots: r,
                                    key: [forms.form(.value(p)), t, ScalarForm(constant: r)])
        return true
    }

    struct RingWrite {
        var cache: ValueID, update: ValueID, start: IntOrValue, count: ScalarForm, slots: Int
        var key: [ScalarForm]
    }

    mutating func emitRingWrite(_ w: RingWrite) {
        let indices: ValueID
        if let v = ringVectors[w.key] { indices = v } else {
            let rows = dimType(w.update, 2)
            let end = stop(after: w.start, w.count, of: w.update, 2)
            let flat = positions(w.start, end, rows: rows)
            let ring = graph.addValue(TensorType(.i64, []), .constant(.literal([Double(w.slots)])))
            indices = value(TensorType(.i64, [rows]))
            emit(.remainder(RemainderOp(a: flat, b: ring, out: indices)))
            ringVectors[w.key] = indices
        }
        emit(.indexCopy(IndexCopyOp(dst: w.cache, update: w.update, indices: indices, out: w.cache, axis: 2)))
    }

    /// `x = slice(u, axis 2, start, stop, step 1)`.
    func sliceOfSequence(_ x: ValueID) -> (ValueID, IntOrValue, IntOrValue)? {
        guard case .slice(let s)? = forms.producers[x], isSequenceAxis(s.axis), s.step == 1, forms.dim(s.x, 2) != nil else { return nil }
        return (s.x, s.start, s.stop)
    }
}
