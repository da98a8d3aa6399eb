import MLXCIR

/// Fuses an MLX attention layer's decode/prefill core into one `rope_attention` op (one kernel):
///
///     qr = rope(q, …)            kr = rope(k, …same offset and attributes)   (or two rope_tables alike)
///     kc = index_copy(dst: kc, update: kr, indices: i, axis: 2)     (kc, vc: state, in place)
///     vc = index_copy(dst: vc, update: v,  indices: i, axis: 2)
///     o  = sdpa(q: qr, k: kc, v: vc, …)
///
/// The fused op takes the sdpa's place, so the two ropes and the cache writes move down to it.
/// That is only sound when nothing observes the difference, which the matcher checks:
/// - the rotated q and k have no other reader (nor are graph outputs);
/// - between each cache write and the sdpa no node reads or writes that cache (it would see the
///   old rows), and the sdpa reads exactly the two written caches, k then v;
/// - q, k, v, indices, offset, freqs and mask are not state (no write can come between their read
///   and the new position), and both writes use the same indices.
/// The ropes and writes may come in either order; kr may reach its write through reshapes that
/// restore its shape. `FusedOps.unfused` is the op's definition.
public struct FuseRopeAttention: GraphPass {
    public let name = "fuse-rope-attention"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b) }
        return fused
    }

    func isState(_ v: ValueID, _ graph: Graph) -> Bool {
        guard graph.values.indices.contains(v.index) else { return false }
        if case .state = graph[v].kind { return true }
        return false
    }

    func useCounts(_ graph: Graph) -> [ValueID: Int] { graph.useCounts(outputWeight: 1) }

    func fuse(_ graph: inout Graph, block b: Int) -> Int {
        let uses = useCounts(graph)
        var nodes = graph.blocks[b].nodes
        var dead = Set<Int>(), count = 0
        for i in nodes.indices where !dead.contains(i) {
            guard let m = match(at: i, nodes, uses, graph), m.absorbed.allSatisfy({ !dead.contains($0) }) else { continue }
            nodes[i].op = .ropeAttention(m.op)
            dead.formUnion(m.absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    struct Match { var op: RopeAttentionOp; var absorbed: [Int] }

    /// The in-place `index_copy` along the sequence axis that last wrote `cache` before node `end`,
    /// if no node in between (other than `allowed`) reads or writes the cache.
    func cacheWrite(_ cache: ValueID, before end: Int, _ nodes: [Node], _ graph: Graph) -> (node: Int, op: IndexCopyOp)? {
        var j = end - 1
        while j >= 0 {
            let op = nodes[j].op
            if op.results.contains(cache) {
                guard case .indexCopy(let w) = op, w.dst == cache, w.out == cache else { return nil }
                let rank = graph[cache].type?.rank
                guard w.axis == 2 || (w.axis == -2 && rank == 4) else { return nil }
                return (j, w)
            }
            j -= 1
        }
        return nil
    }

    /// No node strictly between `from` and `to` touches `v`. Control flow (`if`, `scan`) counts as
    /// touching: its sub-blocks may read the cache without naming it as an operand.
    func untouched(_ v: ValueID, from: Int, to: Int, _ nodes: [Node]) -> Bool {
        guard from + 1 < to else { return true }
        return (from + 1..<to).allSatisfy { j in
            switch nodes[j].op {
            case .if, .scan: return false
            default: return !nodes[j].op.operands.contains(v) && !nodes[j].op.results.contains(v)
            }
        }
    }

    func match(at i: Int, _ nodes: [Node], _ uses: [ValueID: Int], _ graph: Graph) -> Match? {
        guard case .sdpa(let s) = nodes[i].op, s.k != s.v, isState(s.k, graph), isState(s.v, graph),
              let (wk, kWrite) = cacheWrite(s.k, before: i, nodes, graph),
              let (wv, vWrite) = cacheWrite(s.v, before: i, nodes, graph),
              kWrite.indices == vWrite.indices, kWrite.axis == vWrite.axis else { return nil }
        // The written caches are read by nothing between their write and the sdpa (the other
        // cache's write reads only its own cache).
        guard untouched(s.k, from: wk, to: i, nodes), untouched(s.v, from: wv, to: i, nodes) else { return nil }
        // The rotated q and k: produced in this block, read only by the sdpa and the k write.
        var producer: [ValueID: Int] = [:]
        for (j, node) in nodes[..<i].enumerated() { for r in node.op.results { producer[r] = j } }
        guard uses[s.q] == 1, uses[kWrite.update] == 1, let rq = producer[s.q],
              let (rk, views) = throughViews(kWrite.update, nodes, producer, uses, graph), rq != rk,
              var op = ropes(nodes[rq].op, nodes[rk].op, graph) else { return nil }
        let moved = [op.q, op.k, vWrite.update, kWrite.indices, op.offset] + [op.freqs, s.mask, op.cosTable, op.sinTable, op.tableStop].compactMap { $0 }
        guard !moved.contains(where: { isState($0, graph) }) else { return nil }
        (op.v, op.kCache, op.vCache, op.indices) = (vWrite.update, s.k, s.v, kWrite.indices)
        (op.scale, op.mask, op.causal, op.outs) = (s.scale, s.mask, s.causal, [s.out, s.k, s.v])
        return Match(op: op, absorbed: [rq, rk, wk, wv] + views)
    }

    /// The node producing `v`, through reshapes that end where they began: `v` may be the rotated k
    /// reshaped away and back to its own shape (the bench's XNNPACK export writes k[0] as [H, T, D],
    /// and the cache write restores [1, H, T, D]). Every reshape is read only by the next. → the
    /// producer and the reshapes, which the fused op absorbs.
    func throughViews(_ v: ValueID, _ nodes: [Node], _ producer: [ValueID: Int], _ uses: [ValueID: Int],
                      _ graph: Graph) -> (Int, [Int])? {
        guard var i = producer[v] else { return nil }
        var views: [Int] = []
        while case .reshape(let r) = nodes[i].op, uses[r.x] == 1, let j = producer[r.x], views.count < 4 {
            views.append(i)
            i = j
        }
        guard !views.isEmpty else { return (i, []) }
        // The chain's source has v's shape (at most one run-time dim, in the same place).
        var inferred: [TensorType?]? = nil
        func type(_ x: ValueID) -> TensorType? {
            if let t = graph[x].type { return t }
            if inferred == nil { inferred = ShapeInference.infer(graph).types }
            return x.index < inferred!.count ? inferred![x.index] : nil
        }
        guard let src = nodes[i].op.results.first, let st = type(src), let vt = type(v), st.dtype == vt.dtype,
              st.rank == vt.rank, st.shape.filter({ $0.fixedValue == nil }).count <= 1,
              zip(st.shape, vt.shape).allSatisfy({ a, b in a == b || (a.fixedValue == nil && b.fixedValue == nil) }) else { return nil }
        return (i, views)
    }

    /// The rotation part of the fused op, if q and k turn alike: two MLX `rope`s with the same
    /// attributes and offset, or two `rope_table`s of the same tables and rows.
    func ropes(_ qOp: Op, _ kOp: Op, _ graph: Graph) -> RopeAttentionOp? {
        switch (qOp, kOp) {
        case (.rope(let q), .rope(let k)):
            guard q.offset == k.offset, q.dims == k.dims, q.freqs == k.freqs, q.traditional == k.traditional,
                  q.base == k.base, q.scale == k.scale else { return nil }
            return RopeAttentionOp(q: q.x, k: k.x, v: q.x, kCache: q.x, vCache: q.x, indices: q.x, offset: q.offset, ropeDims: q.dims,
                                   freqs: q.freqs, traditional: q.traditional, base: q.base, ropeScale: q.scale, outs: [])
        case (.ropeTable(let q), .ropeTable(let k)):
            guard q.cos == k.cos, q.sin == k.sin, q.start == k.start, q.stop == k.stop, q.traditional == k.traditional,
                  let h = graph[q.cos].type?.shape.last?.fixedValue else { return nil }
            return RopeAttentionOp(q: q.x, k: k.x, v: q.x, kCache: q.x, vCache: q.x, indices: q.x, offset: q.start, ropeDims: 2 * h,
                                   traditional: q.traditional, outs: [], cosTable: q.cos, sinTable: q.sin, tableStop: q.stop)
        default:
            return nil
        }
    }
}
