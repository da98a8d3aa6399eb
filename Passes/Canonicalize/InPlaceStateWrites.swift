import MLXCIR

/// Turns a plain export's functional state update into the in-place write MLX programs make:
///
///     r = index_put(x: S, indices: [i], index_axes: [a], values: v)     (S state, i 1-D)
///     … readers of r …
///     S = copy_into(dst: S, src: r)                                       (the buffer mutation)
///
/// becomes `S = index_copy(dst: S, update: v′, indices: i, axis: a)` where the index_put was, with
/// every read of r reading S and the copy gone: one row write instead of a copy of the whole
/// cache, and the form `fuse-rope-attention` recognises. v′ is v in the indexed slot's shape:
/// v itself, the value a reshape made v from, or a reshape of v (leading 1s restored).
///
/// Sound because S holds r's value from the write on: the matcher checks that no node between the
/// index_put and the copy reads or writes S (they would see the new rows early), that nothing else
/// in the block writes S (later reads of r would see it), that no control flow (`if`, `scan`,
/// whose sub-blocks may touch S) comes between them, and that v fits the slot exactly (no
/// broadcast; the index count along `a` is checked when it runs).
public struct InPlaceStateWrites: GraphPass {
    public let name = "inplace-state-writes"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var rewritten = 0
        for b in graph.blocks.indices where b != graph.initBlock {
            var i = 0
            while i < graph.blocks[b].nodes.count {
                if rewrite(&graph, block: b, at: i) { rewritten += 1 }
                i += 1
            }
        }
        return rewritten
    }

    func isState(_ v: ValueID, _ graph: Graph) -> Bool {
        if case .state = graph[v].kind { return true }
        return false
    }

    func rewrite(_ graph: inout Graph, block b: Int, at i: Int) -> Bool {
        let nodes = graph.blocks[b].nodes
        guard case .indexPut(let put) = nodes[i].op, !put.accumulate, put.indices.count == 1, put.indexAxes.count == 1,
              isState(put.x, graph), let st = graph[put.x].type, let it = graph[put.indices[0]].type, it.rank == 1,
              [.i64, .i32].contains(it.dtype) else { return false }
        let state = put.x, r = put.out
        var axis = put.indexAxes[0]
        if axis < 0 { axis += st.rank }
        guard (0..<st.rank).contains(axis) else { return false }
        // The copy back into the state, and nothing touching the state in between or elsewhere.
        guard Self.copyBack(of: r, into: state, in: nodes, after: i, from: i) != nil else { return false }
        // v in the slot's shape: the state's shape with the index count along the axis.
        var slot = st.shape
        slot[axis] = it.shape[0]
        guard let update = slotValue(put.values, slot: slot, graph: &graph, block: b, before: i) else { return false }
        var rewritten = graph.blocks[b].nodes
        let at = rewritten.firstIndex(of: nodes[i])!
        rewritten[at].op = .indexCopy(IndexCopyOp(dst: state, update: update, indices: put.indices[0], out: state, axis: axis))
        Self.dropCopyBack(of: r, into: state, block: b, nodes: rewritten, &graph)
        return true
    }

    /// The index of the `copy_into(dst: state, src: r)` after node `after`, when no node but
    /// `from` and that copy writes `state` and none after `from` and before the copy reads it or is
    /// control flow (`if`, `scan`); nil otherwise. Shared with `inplace-rolled-state-writes`.
    static func copyBack(of r: ValueID, into state: ValueID, in nodes: [Node], after: Int, from: Int) -> Int? {
        guard let copy = nodes.indices.first(where: { j in
            if case .copyInto(let c) = nodes[j].op, c.dst == state, c.src == r { return j > after }
            return false
        }) else { return nil }
        for (j, node) in nodes.enumerated() where j != from && j != copy {
            if node.op.results.contains(state) { return nil }
            if j > from && j < copy {
                switch node.op {
                case .if, .scan: return nil
                default: if node.op.operands.contains(state) { return nil }
                }
            }
        }
        return copy
    }

    /// Block `b` as `nodes` without the copy of r back into `state`, and every read of r (there and
    /// in the outputs) reading `state`.
    static func dropCopyBack(of r: ValueID, into state: ValueID, block b: Int, nodes: [Node], _ graph: inout Graph) {
        var nodes = nodes
        nodes.removeAll { node in
            if case .copyInto(let c) = node.op { return c.dst == state && c.src == r }
            return false
        }
        graph.blocks[b].nodes = nodes
        for bb in graph.blocks.indices {
            for n in graph.blocks[bb].nodes.indices {
                graph.blocks[bb].nodes[n].op = graph.blocks[bb].nodes[n].op.mapValues { $0 == r ? state : $0 }
            }
        }
        graph.outputs = graph.outputs.map { $0 == r ? state : $0 }
    }

    /// `v` as a value of the slot's shape (same elements in the same order), inserting a reshape
    /// before node `before` if needed; nil if v's shape is not the slot's with leading 1s dropped.
    func slotValue(_ v: ValueID, slot: [Dim], graph: inout Graph, block b: Int, before: Int) -> ValueID? {
        guard let vt = graph[v].type, vt.rank <= slot.count else { return nil }
        func sameDims(_ x: [Dim], _ y: [Dim]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { a, c in a == c || (a.fixedValue == nil && c.fixedValue == nil) }
        }
        let lead = slot.count - vt.rank
        guard slot[..<lead].allSatisfy({ $0 == .fixed(1) }), sameDims(vt.shape, Array(slot[lead...])) else { return nil }
        if lead == 0 { return v }
        // A reshape that made v from a value already of the slot's shape: read that value.
        if let def = graph.blocks[b].nodes[..<before].last(where: { $0.op.results.contains(v) }), case .reshape(let rs) = def.op,
           let st = graph[rs.x].type, sameDims(st.shape, slot), st.dtype == vt.dtype {
            return rs.x
        }
        // Otherwise restore the leading 1s (at most one run-time dim: it becomes −1).
        guard slot.filter({ $0.fixedValue == nil }).count <= 1 else { return nil }
        let shape: [IntOrValue] = slot.map { .literal(Int64($0.fixedValue ?? -1)) }
        let out = graph.addValue(TensorType(vt.dtype, slot), .computed)
        graph.blocks[b].nodes.insert(Node(.reshape(ReshapeOp(x: v, out: out, shape: shape))), at: before)
        return out
    }
}
