import MLXCIR

/// A cache write that rewrites the whole cache at the same rows on every call: `index_copy(dst: c, update: u,
/// indices: i, axis)` where i names every row of the axis and does not depend on the call — a constant of that
/// length, or `arange(0, n, 1)` with n the axis length. optimum-executorch writes its cross-attention K/V so
/// (XNNPACK: a constant `arange(1500)`; portable: the arange op itself): the cache is not incremental, its contents
/// depend only on the update, so the write stays a step of its own (cross-call reuse skips it while the encoder's
/// states are unchanged) and the attention reads the cache as a plain `sdpa`.
public enum WholeCacheRewrite {
    /// Whether `indices` names all `length` rows on every call. `producer`: the op computing a value, if any.
    public static func coversAxis(_ indices: ValueID, length: Int, graph: Graph, producer: (ValueID) -> Op?) -> Bool {
        guard graph.values.indices.contains(indices.index), length > 0 else { return false }
        switch graph[indices].kind {
        case .constant:
            guard let t = graph[indices].type, t.rank == 1 else { return false }
            return t.shape[0].fixedValue == length
        case .computed:
            guard case .arange(let a)? = producer(indices), a.scalarType?.isFloatingPoint != true,
                  case .literal(0) = a.start, case .literal(1) = a.step, case .literal(let n) = a.stop else { return false }
            return n == Int64(length)
        default:
            return false
        }
    }

    /// Whether `write` rewrites its whole rank-4 cache along `axis` at call-independent rows.
    public static func isWholeRewrite(_ write: IndexCopyOp, graph: Graph, producer: (ValueID) -> Op?) -> Bool {
        guard write.dst == write.out, let cache = graph[write.dst].type, cache.rank >= 1 else { return false }
        let axis = write.axis < 0 ? write.axis + cache.rank : write.axis
        guard cache.shape.indices.contains(axis), let n = cache.shape[axis].fixedValue else { return false }
        return coversAxis(write.indices, length: n, graph: graph, producer: producer)
    }

    /// Whether the state `cache` is written only by whole rewrites in `graph` (and written at all): an attention
    /// reading it is over a rewritten cross-attention cache, not an incremental KV cache.
    public static func onlyRewrittenWhole(_ cache: ValueID, in graph: Graph) -> Bool {
        var producer: [ValueID: Op] = [:]
        for block in graph.blocks { for node in block.nodes { for r in node.op.results { producer[r] = node.op } } }
        var writes = 0
        for block in graph.blocks {
            for node in block.nodes where node.op.results.contains(cache) {
                guard case .indexCopy(let w) = node.op, isWholeRewrite(w, graph: graph, producer: { producer[$0] }) else { return false }
                writes += 1
            }
        }
        return writes > 0
    }
}
