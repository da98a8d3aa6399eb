import MLXCIR

/// Turns scaled-dot-product attention as plain (non-delegated) ExecuTorch exports decompose it back
/// into one `sdpa` op (B batch, Hq query heads, Hkv kv heads, n = Hq / Hkv, T queries, S keys):
///
///     kr = id_copy(broadcast_to(expand_dims(id_copy(k), axis: 2), [B, Hkv, n, S, D]))  (repeat_interleave;
///     k4 = reshape(kr, [B, Hq, S, D])                                                    absent when Hq == Hkv)
///     q3 = reshape(broadcast_to(multiply(q, a), [B, Hq, T, D]), [B·Hq, T, D])
///     k3 = reshape(broadcast_to(multiply(transpose(k4, [0, 1, 3, 2]), b), [B, Hq, D, S]), [B·Hq, D, S])
///     s  = add(reshape(matmul(q3, k3), [B, Hq, T, S]), mask)
///     sm = softmax(s, axis: -1)
///     p  = where(logical_not(any(logical_not(equal(s, -inf)), axes: [-1], keepdims: true)), full_like(sm, 0), sm)
///     o  = reshape(matmul(reshape(broadcast_to(p, [B, Hq, T, S]), [B·Hq, T, S]), v3), [B, Hq, T, Dv])
///
/// (v3 like k3, without the transpose) into `o = sdpa(q: q, k: k, v: v, scale: a·b, mask: mask)`,
/// reading k and v — the KV cache — directly instead of the repeated copies. Also accepted: the
/// scale factors missing or on the other side of the transpose or on the scores, the broadcasts
/// missing, no mask, a bool mask as `where(m, s, -inf)` (keep-mask m) or `masked_fill` (its
/// `where(m, -inf, s)`, fused with `logical_not(m)` as the keep-mask).
///
/// Soundness, which the matcher checks:
/// - every shape and axis: the reshapes only merge/split [B, Hq], the broadcasts are identities
///   (symbolic dims proved by `holds`), the transpose swaps the last two axes, softmax and the guard
///   reduce the last axis, the repeat is exactly a repeat_interleave (kv head h / n, sdpa's GQA);
/// - the folded scale factors are literal scalar constants (a multiply by anything else stays,
///   computing q); the mask's last dim is S (sdpa does not broadcast over keys);
/// - the guard is torch's safe softmax, so fully masked rows give 0 as sdpa's do. A plain softmax
///   without the guard gives NaN there, so it is fused only with no mask at all: then a row is all
///   -inf only if every q·k is, i.e. non-finite inputs, where no two engines agree anyway;
/// - every intermediate is read only inside the pattern, is not a graph output and is not state;
///   a state operand (a cache written in place) is not written between the pattern's first read of
///   it and the sdpa (writes before that read, even among the pattern's nodes, are seen by both).
/// The sdpa takes the place of the last reshape; the other matched nodes are removed.
public struct FuseAttentionPattern: GraphPass {
    public let name = "fuse-attention-pattern"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        let uses = graph.useCounts(outputWeight: 1)
        var fused = 0
        // XNNPACK payloads leave their temporaries untyped (optimum's Whisper encoder): the matcher reads
        // inferred types where the graph states none.
        var typed = graph
        if typed.values.contains(where: { $0.type == nil }) {
            let inferred = ShapeInference.infer(graph).types
            for i in typed.values.indices where typed.values[i].type == nil && i < inferred.count {
                typed.values[i].type = inferred[i]
            }
        }
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, typed: typed, block: b, uses) }
        return fused
    }

    func fuse(_ graph: inout Graph, typed: Graph, block b: Int, _ uses: [ValueID: Int]) -> Int {
        var nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        var dead = Set<Int>(), before: [Int: Node] = [:], count = 0
        for i in nodes.indices where !dead.contains(i) {
            var m = AttentionMatcher(graph: typed, nodes: nodes, producer: producer, end: i, uses: uses)
            guard var found = m.match(), dead.isDisjoint(with: found.absorbed) else { continue }
            if let drop = found.dropMask {
                guard let t = typed.type(drop) else { continue }   // no keep-mask type: leave it unfused
                // masked_fill fills where m is true; sdpa's bool mask keeps where it is true.
                let keep = graph.addValue(TensorType(.bool, t.shape), .computed)
                before[i] = Node(.logicalNot(LogicalNotOp(x: drop, out: keep)), origin: nodes[i].origin)
                found.op.mask = keep
            }
            nodes[i].op = .sdpa(found.op)
            dead.formUnion(found.absorbed)
            count += 1
        }
        var result: [Node] = []
        for (i, node) in nodes.enumerated() where !dead.contains(i) {
            if let extra = before[i] { result.append(extra) }
            result.append(node)
        }
        graph.blocks[b].nodes = result
        return count
    }
}

/// One attempt to match the pattern ending at node `end` (the output reshape). `claim` records the
/// nodes that will be absorbed; the reader check runs over all of them at the end.
struct AttentionMatcher {
    let graph: Graph
    let nodes: [Node]
    let producer: [ValueID: Int]
    let end: Int
    let uses: [ValueID: Int]
    var claimed = Set<Int>()

    struct Found {
        var op: SdpaOp
        var absorbed: Set<Int>
        /// A masked_fill mask (true = masked out) whose negation becomes the sdpa's mask.
        var dropMask: ValueID?
    }

    /// The op defining `v` earlier in this block, if `v` is a plain computed value.
    func op(_ v: ValueID) -> Op? {
        guard graph.values.indices.contains(v.index), case .computed = graph[v].kind, let i = producer[v], i < end else { return nil }
        return nodes[i].op
    }

    mutating func claim(_ v: ValueID) { if let i = producer[v] { claimed.insert(i) } }

    func literalScalar(_ v: ValueID) -> Double? {
        guard graph.values.indices.contains(v.index), case .constant(.literal(let xs)) = graph[v].kind, xs.count == 1 else { return nil }
        return xs[0]
    }

    func isState(_ v: ValueID) -> Bool {
        guard graph.values.indices.contains(v.index), case .state = graph[v].kind else { return false }
        return true
    }

    func lastAxis(_ axis: Int, rank: Int) -> Bool { axis == -1 || axis == rank - 1 }

    /// If `v = x · c` with c a literal scalar (either side) and v of x's type, absorbs it: x, scale · c.
    mutating func unscaled(_ v: ValueID, _ scale: inout Double) -> ValueID {
        guard case .multiply(let m)? = op(v), let vt = graph.type(v) else { return v }
        for (x, c) in [(m.a, m.b), (m.b, m.a)] {
            if let f = literalScalar(c), graph.type(x) == vt {
                claim(v)
                scale *= f
                return x
            }
        }
        return v
    }

    /// `v = reshape(broadcast_to?(x, [B, H, r, c]), [B·H, r, c])` with the broadcast an identity: x.
    mutating func unbatched(_ v: ValueID, _ b: Int, _ h: Int, _ r: AttentionExtent, _ c: AttentionExtent) -> ValueID? {
        guard case .reshape(let rs)? = op(v), target(rs.shape, is: [.fixed(b * h), r, c]) else { return nil }
        claim(v)
        let full: [AttentionExtent] = [.fixed(b), .fixed(h), r, c]
        var x = rs.x
        if case .broadcastTo(let bc)? = op(x), target(bc.shape, is: full) {
            claim(x)
            x = bc.x
        }
        return holds(x, full) ? x : nil
    }

    /// The cache a `[B, Hq, S, D]` operand repeats, and its head count: through the
    /// repeat_interleave chain (a rank-5 reshape must be exactly that), else the operand itself.
    mutating func unrepeated(_ x4: ValueID, _ b: Int, _ hq: Int, _ s: AttentionExtent, _ d: Int) -> (ValueID, Int)? {
        guard case .reshape(let merge)? = op(x4), graph.type(merge.x)?.rank == 5 else {
            // No repeat (Hq = Hkv): the operand itself, through the clones of the cache (`.contiguous()`).
            var x = x4
            while case .idCopy(let c)? = op(x) { claim(x); x = c.x }
            return holds(x, [.fixed(b), .fixed(hq), s, .fixed(d)]) ? (x, hq) : nil
        }
        guard target(merge.shape, is: [.fixed(b), .fixed(hq), s, .fixed(d)]) else { return nil }
        claim(x4)
        var x = merge.x
        while case .idCopy(let c)? = op(x) { claim(x); x = c.x }
        guard case .broadcastTo(let bc)? = op(x), bc.shape.count == 5,
              case .fixed(let hkv)? = AttentionExtent(bc.shape[1]), case .fixed(let n)? = AttentionExtent(bc.shape[2]),
              hkv > 0, hkv * n == hq, target(bc.shape, is: [.fixed(b), .fixed(hkv), .fixed(n), s, .fixed(d)]) else { return nil }
        claim(x)
        x = bc.x
        guard case .expandDims(let e)? = op(x), e.axis == 2 || e.axis == -3 else { return nil }
        claim(x)
        x = e.x
        while case .idCopy(let c)? = op(x) { claim(x); x = c.x }
        return holds(x, [.fixed(b), .fixed(hkv), s, .fixed(d)]) ? (x, hkv) : nil
    }

    /// `p` as softmax over the last axis of the scores, with torch's fully-masked-row guard or
    /// without: (scores, guarded).
    mutating func unsoftmaxed(_ p: ValueID) -> (ValueID, Bool)? {
        if case .softmax(let sm)? = op(p) {
            guard lastAxis(sm.axis, rank: 4) else { return nil }
            claim(p)
            return (sm.x, false)
        }
        guard case .where(let w)? = op(p), case .softmax(let sm)? = op(w.y), lastAxis(sm.axis, rank: 4) else { return nil }
        let scores = sm.x
        // The zeros: full_like(sm or scores, 0) of the softmax's dtype, or a literal 0.
        if case .fullLike(let z)? = op(w.x) {
            guard z.x == sm.out || z.x == scores, z.v == .literal(0), z.scalarType == nil || z.scalarType == graph.type(sm.out)?.dtype else { return nil }
            claim(w.x)
        } else if literalScalar(w.x) != 0 { return nil }
        // The row test: all(scores == -inf), spelled not(any(not(equal(scores, -inf)))).
        guard case .logicalNot(let outer)? = op(w.condition), case .any(let any)? = op(outer.x), any.keepdims, any.axes.count == 1,
              lastAxis(any.axes[0], rank: 4), case .logicalNot(let inner)? = op(any.x), case .equal(let eq)? = op(inner.x),
              (eq.a == scores && literalScalar(eq.b) == -.infinity) || (eq.b == scores && literalScalar(eq.a) == -.infinity) else { return nil }
        for v in [p, w.y, w.condition, outer.x, any.x, inner.x] { claim(v) }
        return (scores, true)
    }

    enum Mask { case none, additive(ValueID), keep(ValueID), drop(ValueID) }

    /// The scores as `add(s4, mask)`, `where(m, s4, -inf)`, `where(m, -inf, s4)` or s4 itself,
    /// where s4 is a reshape of a matmul.
    mutating func unmasked(_ scores: ValueID) -> (ValueID, Mask) {
        switch op(scores) {
        case .add(let a)?:
            for (s4, m) in [(a.a, a.b), (a.b, a.a)] where isScores(s4) { claim(scores); return (s4, .additive(m)) }
        case .where(let w)?:
            if isScores(w.x), literalScalar(w.y) == -.infinity { claim(scores); return (w.x, .keep(w.condition)) }
            if isScores(w.y), literalScalar(w.x) == -.infinity { claim(scores); return (w.y, .drop(w.condition)) }
        default: break
        }
        return (scores, .none)
    }

    /// A reshape of a matmul, possibly scaled by a literal.
    func isScores(_ v: ValueID) -> Bool {
        if case .multiply(let m)? = op(v) {
            if literalScalar(m.b) != nil { return isScores(m.a) }
            if literalScalar(m.a) != nil { return isScores(m.b) }
            return false
        }
        guard case .reshape(let r)? = op(v), case .matmul? = op(r.x) else { return false }
        return true
    }

    mutating func match() -> Found? {
        // o = reshape(matmul(p3, v3), [B, Hq, T, Dv])
        guard case .reshape(let out) = nodes[end].op, let ot = graph.type(out.out), ot.rank == 4, ot.dtype.isFloatingPoint,
              let b = ot.shape[0].fixedValue, let hq = ot.shape[1].fixedValue, let dv = ot.shape[3].fixedValue,
              out.shape.count == 4, let t = AttentionExtent(out.shape[2]), target(out.shape, is: [.fixed(b), .fixed(hq), t, .fixed(dv)]),
              case .matmul(let pv)? = op(out.x), holdsMatmul(out.x, [.fixed(b * hq), t, .fixed(dv)]) else { return nil }
        claim(out.x)
        guard case .reshape(let p3)? = op(pv.a), p3.shape.count == 3, let s = AttentionExtent(p3.shape[2]),
              let p = unbatched(pv.a, b, hq, t, s), let v4 = unbatched(pv.b, b, hq, s, .fixed(dv)),
              let (scoresValue, guarded) = unsoftmaxed(p) else { return nil }
        var scale = 1.0
        let (masked, mask) = unmasked(scoresValue)
        let s4 = unscaled(masked, &scale)
        // s4 = reshape(matmul(q3, k3), [B, Hq, T, S]); q3 = [B·Hq, T, D]
        guard case .reshape(let sr)? = op(s4), target(sr.shape, is: [.fixed(b), .fixed(hq), t, s]),
              case .matmul(let qk)? = op(sr.x), let d = graph.type(qk.a)?.shape.last?.fixedValue, d > 0,
              holdsMatmul(sr.x, [.fixed(b * hq), t, s]) else { return nil }
        claim(s4)
        claim(sr.x)
        guard let qs = unbatched(qk.a, b, hq, t, .fixed(d)), let ks = unbatched(qk.b, b, hq, .fixed(d), s) else { return nil }
        let q = unscaled(qs, &scale)
        let kt = unscaled(ks, &scale)
        guard case .transpose(let tr)? = op(kt), tr.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 1, 3, 2] else { return nil }
        claim(kt)
        let k4 = unscaled(tr.x, &scale)
        guard let (k, hkv) = unrepeated(k4, b, hq, s, d), let (v, vHeads) = unrepeated(v4, b, hq, s, dv), vHeads == hkv,
              holds(q, [.fixed(b), .fixed(hq), t, .fixed(d)]) else { return nil }
        // The operands sdpa reads: one float dtype; the mask an additive one of it or a bool one.
        guard let dtype = graph.type(q)?.dtype, [k, v].allSatisfy({ graph.type($0)?.dtype == dtype }), dtype == ot.dtype else { return nil }
        var maskValue: ValueID? = nil, dropMask: ValueID? = nil
        switch mask {
        case .none: break
        case .additive(let m): guard graph.type(m)?.dtype == dtype, fitsMask(m, s) else { return nil }; maskValue = m
        case .keep(let m): guard graph.type(m)?.dtype == .bool, fitsMask(m, s) else { return nil }; maskValue = m
        case .drop(let m): guard graph.type(m)?.dtype == .bool, fitsMask(m, s) else { return nil }; maskValue = m; dropMask = m
        }
        guard guarded || maskValue == nil else { return nil }
        // The operands outlive the removed nodes (add(s, s) would make s its own "mask").
        let operands = [q, k, v] + (maskValue.map { [$0] } ?? [])
        guard intermediatesStayInside(), operands.allSatisfy({ producer[$0].map { !claimed.contains($0) } ?? true }),
              operands.allSatisfy({ !isState($0) || untouched($0, after: firstReader(of: $0)) }) else { return nil }
        let op = SdpaOp(q: q, k: k, v: v, out: out.out, scale: scale, mask: maskValue, causal: false)
        return Found(op: op, absorbed: claimed, dropMask: dropMask)
    }

    /// A rank-3 matmul result of the given shape (its operands' reshape targets pin the extents).
    func holdsMatmul(_ v: ValueID, _ want: [AttentionExtent]) -> Bool {
        guard let t = graph.type(v), t.rank == 3 else { return false }
        return zip(t.shape, want).allSatisfy { dim, extent in
            if case .fixed(let n) = extent { return dim == .fixed(n) }
            return true
        }
    }

    /// The mask broadcasts to [B, Hq, T, S] (the add in the graph already required that) and
    /// covers all S keys itself: sdpa reads mask columns, it does not broadcast a width-1 mask.
    func fitsMask(_ m: ValueID, _ s: AttentionExtent) -> Bool {
        guard let t = graph.type(m), (1...4).contains(t.rank) else { return false }
        switch s {
        case .fixed(let n): return t.shape[t.rank - 1] == .fixed(n)
        case .symbol(let sym): return atLeast(m, t.rank - 1, sym)
        }
    }

    /// Every result of a claimed node is read only by claimed nodes or the final one, is not a
    /// graph output (outputs count as uses) and is not state.
    func intermediatesStayInside() -> Bool {
        var inside: [ValueID: Int] = [:]
        for j in claimed.union([end]) { for v in nodes[j].op.operands { inside[v, default: 0] += 1 } }
        return claimed.allSatisfy { j in
            nodes[j].op.results.allSatisfy { r in !isState(r) && uses[r] == inside[r] }
        }
    }

    /// The first pattern node that reads `v` (where the pattern sees the state's value); the first
    /// pattern node if none names it. Other pattern nodes may come before it: XNNPACK exports
    /// scale q, then write the v cache, then read it (llama_xnnpack_fp32).
    func firstReader(of v: ValueID) -> Int {
        claimed.filter { nodes[$0].op.operands.contains(v) }.min() ?? claimed.min() ?? end
    }

    /// No node after `first` and before the sdpa writes the state `v` or is control flow (whose
    /// bodies may write it unnamed): the sdpa, reading later, sees what the pattern read.
    func untouched(_ v: ValueID, after first: Int) -> Bool {
        guard first + 1 < end else { return true }
        return (first + 1..<end).allSatisfy { j in
            switch nodes[j].op {
            case .if, .scan: return false
            default: return !nodes[j].op.results.contains(v)
            }
        }
    }
}
