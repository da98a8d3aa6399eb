import MLXCIR

/// Canonicalizes RoPE as Hugging Face models write it — cos/sin computed in the graph from the
/// positions, the rotation spelled with `rotate_half` — into one `rope_table` op that reads the
/// graph's own cos/sin as its tables:
///
///     C = expand_dims(cos_tab, 1)          S = expand_dims(sin_tab, 1)       ([.., T, 2h], 1 elsewhere)
///     r = concatenate([neg(x[..., h:2h]), x[..., :h]], -1)   (the halves as slices or a split)
///     y = add(multiply(x, C), multiply(r, S))                 (operands in either order)
///     partial rotary: x = z[..., :2h], y' = concatenate([y, z[..., 2h:]], -1)  → the rope reads z
///
/// becomes `rope_table(x, cos: c, sin: s, start: 0, stop: T)` with c = reshape(C[..., :h], [-1, h])
/// (s alike): rows [0, T) are the call's rows, so the rotation never needs the positions. It is
/// the same arithmetic on the same numbers (cos/sin stay the graph's ops — positions × inv_freq,
/// cast, cos, × attention_scaling, any scaling variant — and the rope reads them), provided both
/// halves of each table row are equal: the matcher proves it by walking back from C through ops
/// that act on each element alone (cos, sin, casts, a product with a scalar, expand_dims) to a
/// `concatenate([f, f], -1)` of one value twice, as HF's `torch.cat((freqs, freqs), dim=-1)`.
/// It also checks x's last dim is 2h, the slices' axes and bounds, that C and S have x's dtype and
/// row count (equal sizes, or both run-time), and that every intermediate of x is read only inside
/// the pattern (C and S may be shared by q, k and every layer; their table views are made once).
/// Then `fuse-rope-attention` takes the two rope_tables with the cache writes and the sdpa.
/// etLLM's HF variant multiplies x [B, T, H, D] by tables [T, 1, D] (precomputed, their halves
/// spelled equal by DuplicatedHalfTables): the rope then reads x with its rows moved to axis −2 and
/// a transpose puts them back; its one-tensor concatenate (partial rotary, nothing passed) is the rope.
public struct FuseRotateHalfRope: GraphPass {
    public let name = "fuse-rotate-half-rope"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b) }
        return fused
    }

    /// One matched rotation: the rope's input, the broadcast cos/sin it multiplies by, the half
    /// width, the nodes it replaces (the root stays, rewritten).
    struct Match { var x: ValueID; var cos: ValueID; var sin: ValueID; var half: Int; var absorbed: [Int]; var xReads: Int; var rowsAxis: Int }

    func fuse(_ graph: inout Graph, block b: Int) -> Int {
        let uses = graph.useCounts()
        let nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        // MLX temporaries carry no declared type: read the inferred one.
        let inferred = ShapeInference.infer(graph).types
        let reader = Reader(graph: graph, nodes: nodes, producer: producer, uses: uses, inferred: inferred)

        var matches: [Int: (Match, ValueID)] = [:], dead = Set<Int>()
        // Partial-rotary roots (the concatenate after the add) first, so their add is not taken alone.
        let roots = nodes.indices.filter { if case .concatenate = nodes[$0].op { return true } else { return false } }
            + nodes.indices.filter { if case .add = nodes[$0].op { return true } else { return false } }
        for i in roots where !dead.contains(i) {
            guard let (m, out) = reader.match(root: i), m.absorbed.allSatisfy({ !dead.contains($0) && $0 != i }) else { continue }
            matches[i] = (m, out)
            dead.formUnion(m.absorbed)
        }
        guard !matches.isEmpty else { return 0 }
        // Table views ([T, h] rows of C and S, T as a scalar, the start row 0): made once per C/S,
        // just before the first rope that reads them.
        var views: [ValueID: (table: ValueID, rows: ValueID)] = [:]
        var zero: ValueID? = nil
        var out: [Node] = []
        for (i, node) in nodes.enumerated() where !dead.contains(i) {
            guard let (m, result) = matches[i] else { out.append(node); continue }
            func view(_ broadcast: ValueID) -> (table: ValueID, rows: ValueID) {
                if let v = views[broadcast] { return v }
                let t = (graph[broadcast].type ?? inferred[broadcast.index])!, rowDim = t.shape[Reader.rowsAxis(of: t)]
                var halfShape = t.shape
                halfShape[t.rank - 1] = .fixed(m.half)
                let sliced = graph.addValue(TensorType(t.dtype, halfShape), .computed)
                let table = graph.addValue(TensorType(t.dtype, [rowDim, .fixed(m.half)]), .computed)
                let rows = graph.addValue(TensorType(.i64, []), .computed)
                out.append(Node(.slice(SliceOp(x: broadcast, out: sliced, axis: .literal(-1), start: .literal(0), stop: .literal(Int64(m.half)))),
                                origin: node.origin))
                out.append(Node(.reshape(ReshapeOp(x: sliced, out: table, shape: [.literal(-1), .literal(Int64(m.half))])), origin: node.origin))
                out.append(Node(.symSize(SymSizeOp(a: table, dim: 0, out: rows)), origin: node.origin))
                views[broadcast] = (table, rows)
                return (table, rows)
            }
            let c = view(m.cos), s = view(m.sin)
            let start = zero ?? graph.addValue(TensorType(.i64, []), .constant(.literal([0])))
            zero = start
            // Rows along another axis of x than −2 (x [B, T, H, D], tables [T, 1, D]): rotate x with its rows moved there.
            let xt = reader.type(m.x)!
            guard m.rowsAxis != xt.rank - 2 else {
                out.append(Node(.ropeTable(RopeTableOp(x: m.x, cos: c.table, sin: s.table, start: start, stop: c.rows, traditional: false, out: result)),
                                origin: node.origin))
                continue
            }
            let perm = FuseRopePattern.rowsToSecondLast(m.rowsAxis, rank: xt.rank)
            let swapped = TensorType(xt.dtype, perm.map { xt.shape[$0] })
            let xs = graph.addValue(swapped, .computed), ys = graph.addValue(swapped, .computed)
            out.append(Node(.transpose(TransposeOp(x: m.x, out: xs, perm: perm)), origin: node.origin))
            out.append(Node(.ropeTable(RopeTableOp(x: xs, cos: c.table, sin: s.table, start: start, stop: c.rows, traditional: false, out: ys)),
                            origin: node.origin))
            out.append(Node(.transpose(TransposeOp(x: ys, out: result, perm: FuseRopePattern.inverse(perm))), origin: node.origin))
        }
        graph.blocks[b].nodes = out
        return matches.count
    }

    struct Reader {
        let graph: Graph, nodes: [Node], producer: [ValueID: Int], uses: [ValueID: Int], inferred: [TensorType?]

        func type(_ v: ValueID) -> TensorType? { graph[v].type ?? inferred[v.index] }

        func def(_ v: ValueID) -> (Int, Op)? { producer[v].map { ($0, nodes[$0].op) } }

        /// An intermediate read exactly `n` times (all inside the pattern).
        func private_(_ v: ValueID, _ n: Int = 1) -> (Int, Op)? {
            guard uses[v] == n, case .computed = graph[v].kind, !graph.outputs.contains(v) else { return nil }
            return def(v)
        }

        func literal(_ x: IntOrValue) -> Int64? { graph.literalInt(x) }

        func isLast(_ axis: Int64?, rank: Int) -> Bool { axis.map { $0 == -1 || $0 == Int64(rank - 1) } ?? false }

        /// A slice of `x`'s last axis, step 1: (x, start, stop) with stop clamped to the axis size.
        func lastAxisSlice(_ v: ValueID) -> (Int, ValueID, Int, Int)? {
            guard let (i, op) = def(v), case .slice(let s) = op, s.step == 1, let t = type(s.x),
                  let d = t.shape.last?.fixedValue, isLast(literal(s.axis), rank: t.rank),
                  let a = literal(s.start), let e = literal(s.stop), a >= 0, a <= Int64(d) else { return nil }
            return (i, s.x, Int(a), Int(min(e, Int64(d))))
        }

        /// The rotation rooted at node `i`: the whole-width form (an add), or partial rotary (a
        /// concatenate of a rotated prefix and the pass-through rest). → the match and the value it defines.
        func match(root i: Int) -> (Match, ValueID)? {
            switch nodes[i].op {
            case .add(let a):
                return rotation(a).map { ($0, a.out) }
            case .concatenate(let cat) where cat.tensors.count == 1:
                // Partial rotary with nothing passed through (torch.cat([rotated, x[..., D:]]) drops the empty part).
                guard let ct = type(cat.out), isLast(Int64(cat.axis), rank: ct.rank),
                      let (ai, aop) = private_(cat.tensors[0]), case .add(let a) = aop, var m = rotation(a) else { return nil }
                m.absorbed.append(ai)
                return (m, cat.out)
            case .concatenate(let cat):
                guard cat.tensors.count == 2, let ct = type(cat.out), isLast(Int64(cat.axis), rank: ct.rank),
                      let (ai, aop) = private_(cat.tensors[0]), case .add(let a) = aop, var m = rotation(a),
                      let (ri, z, r0, r1) = lastAxisSlice(m.x), r0 == 0, let (pi, z2, p0, p1) = lastAxisSlice(cat.tensors[1]),
                      z == z2, let d = type(z)?.shape.last?.fixedValue, r1 == 2 * m.half, p0 == r1, p1 == d,
                      uses[cat.tensors[1]] == 1, type(z)?.dtype == ct.dtype else { return nil }
                // The rotated prefix's slice goes with the pattern only if nothing else reads it.
                m.absorbed += [ai, pi] + (uses[m.x] == m.xReads ? [ri] : [])
                (m.x, m.xReads) = (z, 0)
                return (m, cat.out)
            default:
                return nil
            }
        }

        /// y = x·C + rotate_half(x)·S, the sum and products in either order.
        func rotation(_ add: AddOp) -> Match? {
            for (pv, qv) in [(add.a, add.b), (add.b, add.a)] {
                guard let (pi, pop) = private_(pv), case .multiply(let p) = pop,
                      let (qi, qop) = private_(qv), case .multiply(let q) = qop else { continue }
                for (rv, s) in [(q.a, q.b), (q.b, q.a)] {
                    guard let (half, x, rotNodes, reads) = rotateHalf(rv) else { continue }
                    let c: ValueID
                    if p.a == x { c = p.b } else if p.b == x { c = p.a } else { continue }
                    guard let xt = type(x), let d = xt.shape.last?.fixedValue, d == 2 * half, xt.rank >= 2,
                          [.f32, .bf16, .f16].contains(xt.dtype), type(add.out)?.dtype == xt.dtype,
                          let rows = rowTable(c, like: xt, width: d), rowTable(s, like: xt, width: d) == rows,
                          type(c)?.shape == type(s)?.shape, c != s,
                          duplicatedHalves(c, width: d), duplicatedHalves(s, width: d) else { continue }
                    return Match(x: x, cos: c, sin: s, half: half, absorbed: [pi, qi] + rotNodes, xReads: reads + 1, rowsAxis: rows)
                }
            }
            return nil
        }

        /// rotate_half(x) = concatenate([neg(x2), x1], -1), x1 = x[..., :h], x2 = x[..., h:] (slices
        /// or the two results of a split). → (h, x, its nodes, how often they read x).
        func rotateHalf(_ v: ValueID) -> (Int, ValueID, [Int], Int)? {
            guard let (ci, cop) = private_(v), case .concatenate(let cat) = cop, cat.tensors.count == 2,
                  let ct = type(cat.out), isLast(Int64(cat.axis), rank: ct.rank),
                  let (ni, nop) = private_(cat.tensors[0]), case .neg(let n) = nop else { return nil }
            let x1 = cat.tensors[1], x2 = n.x
            if let (i1, x, a1, e1) = lastAxisSlice(x1), let (i2, xx, a2, e2) = lastAxisSlice(x2), x == xx,
               let d = type(x)?.shape.last?.fixedValue, a1 == 0, e1 == d / 2, a2 == d / 2, e2 == d, d % 2 == 0,
               private_(x1) != nil, private_(x2) != nil {
                return (d / 2, x, [ci, ni, i1, i2], 2)
            }
            // One split into two halves: x1 and x2 are its results, each read once.
            if let (si, sop) = def(x1), case .split(let sp) = sop, sp.outs.count == 2, sp.outs == [x1, x2],
               let t = type(sp.x), let d = t.shape.last?.fixedValue, d % 2 == 0, isLast(Int64(sp.axis), rank: t.rank),
               sp.sizes.allSatisfy({ literal($0) == Int64(d / 2) }), private_(x1) != nil, private_(x2) != nil {
                return (d / 2, sp.x, [ci, ni, si], 1)
            }
            return nil
        }

        /// `c` multiplies x row by row: [.., T, width] with x's dtype, every other dim 1 (T may also
        /// stand further left, as [T, 1, width] against x [B, T, H, width]), and T x's row count there
        /// (the same size, or both known only at run time — the kernel and the reference check the
        /// count on every call). → the axis of x the rows run along.
        func rowTable(_ c: ValueID, like x: TensorType, width: Int) -> Int? {
            guard let t = type(c), t.dtype == x.dtype, t.rank >= 2, t.rank <= x.rank, t.shape.last == .fixed(width),
                  t.shape.dropLast().filter({ $0 != .fixed(1) }).count <= 1 else { return nil }
            let axis = Self.rowsAxis(of: t), xAxis = x.rank - t.rank + axis
            let rows = t.shape[axis], xRows = x.shape[xAxis]
            if let a = rows.fixedValue, let b = xRows.fixedValue { return a == b ? xAxis : nil }
            return rows.fixedValue == nil && xRows.fixedValue == nil ? xAxis : nil
        }

        /// The one dim of a row table other than the last that is not 1, else rank − 2.
        static func rowsAxis(of t: TensorType) -> Int {
            t.shape.indices.dropLast().first { t.shape[$0] != .fixed(1) } ?? t.rank - 2
        }

        /// Both halves of every row of `v` (last dim `width`) are equal: `v` is reached from a
        /// concatenation of one value with itself along the last axis through ops that act on each
        /// element alone and keep the last axis.
        func duplicatedHalves(_ v: ValueID, width: Int) -> Bool {
            var v = v
            for _ in 0..<16 {
                guard let (_, op) = def(v), type(v)?.shape.last == .fixed(width) else { return false }
                switch op {
                case .concatenate(let cat):
                    guard cat.tensors.count == 2, cat.tensors[0] == cat.tensors[1], let t = type(cat.out) else { return false }
                    return isLast(Int64(cat.axis), rank: t.rank)
                case .cos(let o): v = o.x
                case .sin(let o): v = o.x
                case .asType(let o): v = o.x
                case .contiguous(let o): v = o.x
                case .idCopy(let o): v = o.x
                case .expandDims(let o):
                    guard let r = type(o.x)?.rank, o.axis != -1, o.axis != r, o.axis >= -r else { return false }
                    v = o.x
                case .multiply(let o):
                    // × a scalar (attention_scaling): the same factor on every element.
                    if scalar(o.b) { v = o.a } else if scalar(o.a) { v = o.b } else { return false }
                default:
                    return false
                }
            }
            return false
        }

        func scalar(_ v: ValueID) -> Bool { type(v).map { $0.shape.allSatisfy { $0 == .fixed(1) } } ?? false }
    }
}
