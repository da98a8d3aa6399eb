import MLXCIR

/// Fuses attention over a KV cache whose q and k are not rotated — Whisper's decoder self-attention,
/// any model without RoPE — into one `rope_attention` op with `rope_dims` 0 (no rotation):
///
///     kc = index_copy(dst: kc, update: k, indices: i, axis: 2)     (kc, vc: state, in place)
///     vc = index_copy(dst: vc, update: v, indices: i, axis: 2)
///     o  = sdpa(q: q, k: kc, v: vc, …)
///
/// → `rope_attention(q, k, v, kc, vc, i, offset: 0, rope_dims: 0, …)`: the writes move down into the
/// attention kernel (one kernel per (batch, kv head), the new rows written then attended with an
/// online softmax). Soundness is fuse-rope-attention's: nothing between a cache write and the sdpa
/// reads or writes that cache, the sdpa reads exactly the two written caches (k then v), both writes
/// use the same indices, and q, k, v, indices and mask are not state. A q or k that is a rope's
/// output is left to fuse-rope-attention (which runs first). `FusedOps.unfused` of a rope_dims-0
/// op has no rope: the writes and the sdpa, exactly the nodes matched here. Not fused: a cache that call-independent
/// indices rewrite whole on every call (`WholeCacheRewrite`: a cross-attention K/V projected inside the decoder).
public struct FuseKVAttention: GraphPass {
    public let name = "fuse-kv-attention"
    public init() {}

    let rope = FuseRopeAttention()

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b) }
        return fused
    }

    func fuse(_ graph: inout Graph, block b: Int) -> Int {
        var nodes = graph.blocks[b].nodes
        var dead = Set<Int>(), count = 0
        var zero: ValueID? = nil
        for i in nodes.indices where !dead.contains(i) {
            guard let m = match(at: i, nodes, graph), m.absorbed.allSatisfy({ !dead.contains($0) }) else { continue }
            // The op's offset places RoPE rows; with no rotation it is never read: one i64 scalar 0.
            let offset = zero ?? graph.addValue(TensorType(.i64, []), .constant(.literal([0])))
            zero = offset
            var op = m.op
            op.offset = offset
            nodes[i].op = .ropeAttention(op)
            dead.formUnion(m.absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    struct Match { var op: RopeAttentionOp; var absorbed: [Int] }

    func match(at i: Int, _ nodes: [Node], _ graph: Graph) -> Match? {
        guard case .sdpa(let s) = nodes[i].op, s.k != s.v, rope.isState(s.k, graph), rope.isState(s.v, graph),
              let (wk, kWrite) = rope.cacheWrite(s.k, before: i, nodes, graph),
              let (wv, vWrite) = rope.cacheWrite(s.v, before: i, nodes, graph),
              kWrite.indices == vWrite.indices, kWrite.axis == vWrite.axis,
              rope.untouched(s.k, from: wk, to: i, nodes), rope.untouched(s.v, from: wv, to: i, nodes) else { return nil }
        // Rotated q or k: fuse-rope-attention's pattern (that pass declined it; so does this one).
        for (j, node) in nodes[..<i].enumerated() where node.op.results.contains(s.q) || node.op.results.contains(kWrite.update) {
            switch nodes[j].op {
            case .rope, .ropeTable: return nil
            default: continue
            }
        }
        // A cache rewritten whole on every call at call-independent rows (optimum's cross-attention K/V: arange(1500)
        // from the encoder's states, a constant or the op) is not an incremental cache: the write stays a step of its
        // own, which cross-call reuse skips while the states are unchanged, and the sdpa reads the cache (fused, the
        // write ran on every call).
        let producer = { (v: ValueID) -> Op? in nodes[..<i].last(where: { $0.op.results.contains(v) })?.op }
        if WholeCacheRewrite.isWholeRewrite(kWrite, graph: graph, producer: producer),
           WholeCacheRewrite.isWholeRewrite(vWrite, graph: graph, producer: producer) { return nil }
        let moved = [s.q, kWrite.update, vWrite.update, kWrite.indices] + [s.mask].compactMap { $0 }
        guard !moved.contains(where: { rope.isState($0, graph) }) else { return nil }
        let op = RopeAttentionOp(q: s.q, k: kWrite.update, v: vWrite.update, kCache: s.k, vCache: s.v, indices: kWrite.indices,
                                 offset: kWrite.indices, ropeDims: 0, scale: s.scale, mask: s.mask, causal: s.causal,
                                 outs: [s.out, s.k, s.v])
        return Match(op: op, absorbed: [wk, wv])
    }
}
