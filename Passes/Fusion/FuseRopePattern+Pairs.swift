import MLXCIR

/// Meta-style interleaved RoPE as etLLM's `examples/models/llama/rope.py` writes it
/// (`apply_rotary_emb`, `apply_rotary_emb_to_k`) on x [B, T, H, D]:
///
///     P  = reshape(x, [B, T, H, h, 2])                          (x.reshape(x.shape[:-1] + (-1, 2)))
///     x1 = squeeze(slice(P, axis: 4, 0, 1), [4])  x2 = … 1, 2    (unbind(-1); or take(P, index 0/1, axis 4))
///     c  = reshape(slice(COS, axis: 0, p, p + T), [1, T, 1, h])  (reshape_for_broadcast; s alike)
///     …the rotation's products…, then stack([a, b], -1) or concatenate of expand_dims, then flatten
///
/// The pairs are x's even/odd lanes, so this is the interleaved `rope_table` of x. Its table rows
/// run along x's axis 1, not the rows axis rope_table reads (rank − 2): the rope reads
/// transpose(x) and a transpose puts its result back (the head swaps around attention cancel
/// these in fold-transposes).
extension FuseRopePattern {
    /// x1, x2 as the two lanes of x reshaped to pairs: P = reshape(x, [..., h, 2]) read only by the
    /// two lane selections (a slice of width 1 then a squeeze of that axis, or a take).
    func pairHalves(_ x1: ValueID, _ x2: ValueID, private_: (ValueID, Int) -> (Int, Op)?, literal: (IntOrValue) -> Int64?,
                    _ graph: Graph) -> HalfSlices? {
        guard let (p1, i1, n1) = lane(x1, private_: private_, literal: literal, graph),
              let (p2, i2, n2) = lane(x2, private_: private_, literal: literal, graph),
              p1 == p2, i1 == 0, i2 == 1,
              let (ri, rop) = private_(p1, 2), case .reshape(let r) = rop,
              let pt = graph[p1].type, pt.rank >= 3, pt.shape.last == .fixed(2), let h = pt.shape[pt.rank - 2].fixedValue,
              let xt = graph[r.x].type else { return nil }
        if pt.rank == xt.rank + 1, xt.shape.last == .fixed(2 * h), sameShape(Array(pt.shape.dropLast(2)), Array(xt.shape.dropLast())) {
            return HalfSlices(x: r.x, pair: (x1, x2), traditional: true, width: h, nodes: [ri] + n1 + n2)
        }
        // x comes flat (the export merged view(B, T, H, D) into the pairs reshape): rotate that view of it.
        guard r.shape.count == pt.rank, literal(r.shape[pt.rank - 1]) == 2,
              let w = literal(r.shape[pt.rank - 2]), w == -1 || w == Int64(h) else { return nil }
        let view = View(source: r.x, shape: Array(r.shape.dropLast(2)) + [.literal(Int64(2 * h))],
                        type: TensorType(pt.dtype, Array(pt.shape.dropLast(2)) + [.fixed(2 * h)]))
        return HalfSlices(x: r.x, pair: (x1, x2), traditional: true, width: h, nodes: [ri] + n1 + n2, view: view)
    }

    /// The [..., T, H, D] view of a flat x that the rotation reads (made when it is rewritten).
    struct View { var source: ValueID; var shape: [IntOrValue]; var type: TensorType }

    /// `v` as lane k of P's last axis (size 2), read by two products: (P, k, nodes).
    func lane(_ v: ValueID, private_: (ValueID, Int) -> (Int, Op)?, literal: (IntOrValue) -> Int64?,
              _ graph: Graph) -> (ValueID, Int64, [Int])? {
        guard let (i, op) = private_(v, 2) else { return nil }
        func last(_ axis: Int, of p: ValueID) -> Bool {
            guard let r = graph[p].type?.rank else { return false }
            return axis == -1 || axis == r - 1
        }
        switch op {
        case .take(let t):
            guard last(t.axis, of: t.x), let k = literal(t.index), graph[t.x].type?.shape.last == .fixed(2) else { return nil }
            return (t.x, k, [i])
        case .squeeze(let q):
            guard let (si, sop) = private_(q.x, 1), case .slice(let s) = sop, s.step == 1,
                  let r = graph[s.x].type?.rank, graph[s.x].type?.shape.last == .fixed(2),
                  q.dims.count == 1, last(q.dims[0], of: s.x), let a = literal(s.axis), last(Int(a), of: s.x),
                  let b = literal(s.start), let e = literal(s.stop), e == b + 1, r == (graph[v].type?.rank ?? -1) + 1 else { return nil }
            return (s.x, b, [si, i])
        default:
            return nil
        }
    }

    /// A table slice seen through `reshape_for_broadcast`: reshape(slice(T, 0, p, q), [1, …, rows, …, 1, h])
    /// with every dim 1 but the rows and the last → (table, start, stop, the rows' axis). A bare
    /// slice [rows, h] broadcasts its rows against axis −2.
    func tableView(_ v: ValueID, def: (ValueID) -> (Int, Op)?, tableSlice: (ValueID) -> (ValueID, ValueID, ValueID)?,
                   _ graph: Graph) -> (table: ValueID, start: ValueID, stop: ValueID, rowsAxis: Int?)? {
        if let (t, p, q) = tableSlice(v) { return (t, p, q, nil) }
        guard case .reshape(let r)? = def(v)?.1, let (t, p, q) = tableSlice(r.x),
              let vt = graph[v].type, vt.rank >= 2, let h = graph[t].type?.shape[1], vt.shape.last == h else { return nil }
        let other = vt.shape.indices.dropLast().filter { vt.shape[$0] != .fixed(1) }
        guard other.count <= 1 else { return nil }
        // A fixed single row: any axis of size 1 would do, so it must be named by the rows axis.
        guard let axis = other.first else { return nil }
        return (t, p, q, axis)
    }

    /// The permutation moving `axis` of a rank-`rank` tensor to rank − 2 (the others in order).
    static func rowsToSecondLast(_ axis: Int, rank: Int) -> [Int] {
        var perm = Array(0..<rank).filter { $0 != axis && $0 != rank - 1 }
        perm.append(axis)
        perm.append(rank - 1)
        return perm
    }

    static func inverse(_ perm: [Int]) -> [Int] {
        var inv = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inv[p] = i }
        return inv
    }
}
