import MLXCIR

/// Transformers' full sliding-window cache (`StaticSlidingWindowLayer.update`, one token per call once
/// the window is full) as exports trace it: the cache rolled left by one, the new row put last, the
/// result copied back and attended over:
///
///     R = take(x: S, index: g, axis: a)                     (roll: g = fmod(arange(n) + 1, n))
///     r = index_put(x: R, indices: [i], index_axes: [a], values: v)     (i = [-1])
///     … readers of r (the attention) …
///     S = copy_into(dst: S, src: r)
///
/// becomes, where the index_put was,
///
///     S = copy_into(dst: S, src: R)                          (the reordering, into the cache)
///     S = index_copy(dst: S, update: v′, indices: i′, axis: a)
///
/// with every read of r reading S and the copy back gone: the form `fuse-rope-attention` takes (an
/// in-place row write of the cache the attention reads). i′ is i with negative entries counted from
/// the end (the fused kernel wants rows in range): a literal folded, else `where(i < 0, i + n, i)`.
///
/// Exact for any gather g, not only a roll: S holds r's value from the write on, which nothing can
/// observe because no node between the take and the copy back reads or writes S, nothing else in
/// the block writes S (later reads of r see S), and no control flow comes between them; R keeps its
/// value for any other reader. The same checks as `inplace-state-writes`, whose slot rule v′ follows.
/// (An index below −n, which index_put refuses, becomes one index_copy counts from the end.)
public struct InPlaceRolledStateWrites: GraphPass {
    public let name = "inplace-rolled-state-writes"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var rewritten = 0
        for b in graph.blocks.indices where b != graph.initBlock {
            var rows: [Rows: ValueID] = [:]
            var i = 0
            while i < graph.blocks[b].nodes.count {
                if rewrite(&graph, block: b, at: i, rows: &rows) { rewritten += 1 }
                i += 1
            }
        }
        return rewritten
    }

    /// Index vectors already counted from the start, by source and row count: k and v of a layer
    /// share one, as `fuse-rope-attention` wants.
    struct Rows: Hashable { var source: ValueID, count: Int }

    func rewrite(_ graph: inout Graph, block b: Int, at p: Int, rows: inout [Rows: ValueID]) -> Bool {
        let nodes = graph.blocks[b].nodes
        guard case .indexPut(let put) = nodes[p].op, !put.accumulate, put.indices.count == 1, put.indexAxes.count == 1,
              let rt = graph[put.x].type, let it = graph[put.indices[0]].type, it.rank == 1, [.i64, .i32].contains(it.dtype),
              let t = nodes[..<p].lastIndex(where: { $0.op.results.contains(put.x) }),
              case .take(let take) = nodes[t].op, case .value(let gather) = take.index,
              case .state = graph[take.x].kind, let st = graph[take.x].type, st == rt,
              graph[gather].type?.rank == 1 else { return false }
        let state = take.x, r = put.out
        var axis = put.indexAxes[0], takeAxis = take.axis
        if axis < 0 { axis += st.rank }
        if takeAxis < 0 { takeAxis += st.rank }
        guard axis == takeAxis, (0..<st.rank).contains(axis), let n = st.shape[axis].fixedValue else { return false }
        // The copy of r back into the state, and nothing touching the state from the take to it.
        guard InPlaceStateWrites.copyBack(of: r, into: state, in: nodes, after: p, from: t) != nil else { return false }
        // A literal row past either end is index_put's error: left to it (checked before the graph changes).
        if case .constant(.literal(let xs)) = graph[put.indices[0]].kind,
           !xs.allSatisfy({ $0 == $0.rounded() && $0 >= Double(-n) && $0 < Double(n) }) { return false }
        var slot = st.shape
        slot[axis] = it.shape[0]
        guard let update = InPlaceStateWrites().slotValue(put.values, slot: slot, graph: &graph, block: b, before: p),
              let (indices, prelude) = rows[Rows(source: put.indices[0], count: n)].map({ ($0, []) })
                ?? rowsFromStart(put.indices[0], count: n, &graph) else { return false }
        rows[Rows(source: put.indices[0], count: n)] = indices
        var rewritten = graph.blocks[b].nodes
        let at = rewritten.firstIndex(of: nodes[p])!
        let origin = nodes[p].origin
        rewritten.replaceSubrange(at...at, with: prelude.map { Node($0, origin: origin) } + [
            Node(.copyInto(CopyIntoOp(dst: state, src: take.out, out: state)), origin: origin),
            Node(.indexCopy(IndexCopyOp(dst: state, update: update, indices: indices, out: state, axis: axis)), origin: origin),
        ])
        InPlaceStateWrites.dropCopyBack(of: r, into: state, block: b, nodes: rewritten, &graph)
        return true
    }

    /// Indices `i` into an axis of `count` rows with negatives counted from the end: a literal
    /// folded (nil when one is out of range), else `where(i < 0, i + count, i)` computed per call.
    func rowsFromStart(_ i: ValueID, count: Int, _ graph: inout Graph) -> (ValueID, [Op])? {
        guard let it = graph[i].type else { return nil }
        if case .constant(.literal(let xs)) = graph[i].kind {
            guard xs.allSatisfy({ $0 == $0.rounded() && $0 >= Double(-count) && $0 < Double(count) }) else { return nil }
            if xs.allSatisfy({ $0 >= 0 }) { return (i, []) }
            return (graph.addValue(it, .constant(.literal(xs.map { $0 < 0 ? $0 + Double(count) : $0 }))), [])
        }
        let zero = graph.addValue(TensorType(it.dtype, []), .constant(.literal([0])))
        let n = graph.addValue(TensorType(it.dtype, []), .constant(.literal([Double(count)])))
        let negative = graph.addValue(TensorType(.bool, it.shape), .computed)
        let shifted = graph.addValue(it, .computed), out = graph.addValue(it, .computed)
        return (out, [.less(LessOp(a: i, b: zero, out: negative)), .add(AddOp(a: i, b: n, out: shifted)),
                      .where(WhereOp(condition: negative, x: shifted, y: i, out: out))])
    }
}
