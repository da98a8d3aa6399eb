import MLXCIR

/// Canonicalizes RoPE as plain ExecuTorch exports spell it — precomputed cos/sin tables sliced at
/// the current positions, the rotation written out in portable ops — into one `rope_table` op:
///
///     c  = slice(x: COS, axis: 0, start: p, stop: q)      s = slice(x: SIN, axis: 0, start: p, stop: q)
///     x1 = slice(x, axis: -1, start: 0, step: 2)          x2 = slice(x, axis: -1, start: 1, step: 2)
///                                  (split-half form: x1 = x[..., :h], x2 = x[..., h:], step 1)
///     a  = subtract(multiply(x1, c), multiply(x2, s))      b = add(multiply(x1, s), multiply(x2, c))
///     traditional: y = concatenate([expand_dims(a, -1), expand_dims(b, -1)], axis: -1)  (then a reshape;
///                  the unit axis also appended by a reshape, as XNNPACK delegates write it)
///     split-half:  y = concatenate([a, b], axis: -1)
///
/// becomes `rope_table(x, cos: COS, sin: SIN, start: p, stop: q, traditional:)`: one row kernel (or a
/// part of `rope_attention`) instead of a dozen passes over q and k. Multiplies and the final add
/// may come in either operand order. It is the same computation (the tables are read, not
/// recomputed), so it is exact up to rounding; the matcher checks that x's last dim is 2h for
/// tables of h columns, the slices' axes, starts, stops and steps, that both tables are sliced
/// alike, and that every intermediate of x is read only inside the pattern (the table slices may
/// be shared, e.g. by q and k). Interleaved results are kept in [..., T, h, 2] form for the
/// readers of the concatenation: its one reshape reads the rope's result directly, or a reshape
/// restores that shape. etLLM's spelling — x reshaped to pairs, tables viewed [1, T, 1, h], a stack —
/// is the same rotation (FuseRopePattern+Pairs.swift).
public struct FuseRopePattern: GraphPass {
    public let name = "fuse-rope-pattern"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b) }
        return fused
    }

    struct Halves { var x: ValueID; var traditional: Bool; var nodes: [Int] }
    struct Tables { var cos: ValueID; var sin: ValueID; var start: ValueID; var stop: ValueID }

    func fuse(_ graph: inout Graph, block b: Int) -> Int {
        let uses = graph.useCounts()
        var nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        func def(_ v: ValueID) -> (Int, Op)? { producer[v].map { ($0, nodes[$0].op) } }
        func computed(_ v: ValueID) -> Bool {
            if case .computed = graph[v].kind { return true }
            return false
        }
        /// An intermediate read `n` times, all inside the pattern.
        func private_(_ v: ValueID, _ n: Int) -> (Int, Op)? {
            guard uses[v] == n, computed(v) else { return nil }
            return def(v)
        }
        func literal(_ x: IntOrValue) -> Int64? { graph.literalInt(x) }
        func lastAxis(_ axis: IntOrValue, rank: Int) -> Bool { literal(axis).map { $0 == -1 || $0 == Int64(rank - 1) } ?? false }

        /// a or b: the two products of the halves with the tables, added or subtracted.
        func products(_ l: ValueID, _ r: ValueID) -> (first: (ValueID, ValueID), second: (ValueID, ValueID), nodes: [Int])? {
            guard let (li, lop) = private_(l, 1), case .multiply(let lm) = lop,
                  let (ri, rop) = private_(r, 1), case .multiply(let rm) = rop else { return nil }
            return ((lm.a, lm.b), (rm.a, rm.b), [li, ri])
        }
        /// (half, table) from a product's operands, trying both orders.
        func split(_ p: (ValueID, ValueID), half: ValueID) -> ValueID? {
            if p.0 == half { return p.1 }
            if p.1 == half { return p.0 }
            return nil
        }
        /// A table slice: rows [start, stop) of a rank-2 table, step 1; returns (table, start, stop).
        func tableSlice(_ v: ValueID) -> (ValueID, ValueID, ValueID)? {
            guard let (_, op) = def(v), case .slice(let s) = op, s.step == 1, literal(s.axis) == 0,
                  case .value(let start) = s.start, case .value(let stop) = s.stop,
                  let t = graph[s.x].type, t.rank == 2 else { return nil }
            if case .state = graph[s.x].kind { return nil }
            return (s.x, start, stop)
        }

        // Types where the graph states none (values made by delegate translators), computed on demand.
        var inferredTypes: [TensorType?]? = nil
        func inferred(_ v: ValueID) -> TensorType? {
            if let t = graph[v].type { return t }
            if inferredTypes == nil { inferredTypes = ShapeInference.infer(graph).types }
            return v.index < inferredTypes!.count ? inferredTypes![v.index] : nil
        }
        var dead = Set<Int>(), count = 0
        var replacements: [Int: [Node]] = [:]
        for i in nodes.indices where !dead.contains(i) {
            // The root: a concatenate of the two rotated halves, or their stack (interleaved).
            let cat: ConcatenateOp
            var stacked = false
            switch nodes[i].op {
            case .concatenate(let c): cat = c
            case .stack(let st):
                guard let ra = graph[st.tensors.first ?? st.out].type?.rank, st.axis == -1 || st.axis == ra else { continue }
                cat = ConcatenateOp(tensors: st.tensors, out: st.out, axis: ra)
                stacked = true
            default: continue
            }
            guard cat.tensors.count == 2, let catType = graph[cat.out].type else { continue }
            // The two rotated halves a and b (unwrapping the interleave's expand_dims).
            var aV = cat.tensors[0], bV = cat.tensors[1], traditional = stacked, absorbed: [Int] = []
            if stacked {
                // stack([a, b], -1): the halves are its operands.
            } else if let ea = trailingUnit(def(aV)?.1, graph, inferred), let eb = trailingUnit(def(bV)?.1, graph, inferred) {
                guard let ai = private_(aV, 1)?.0, let bi = private_(bV, 1)?.0,
                      lastAxis(.literal(Int64(cat.axis)), rank: catType.rank) else { continue }
                (aV, bV, traditional) = (ea, eb, true)
                absorbed += [ai, bi]
            } else {
                guard lastAxis(.literal(Int64(cat.axis)), rank: catType.rank) else { continue }
            }
            guard let (si, sop) = private_(aV, 1), case .subtract(let sub) = sop,
                  let (ai, aop) = private_(bV, 1), case .add(let add) = aop,
                  let minus = products(sub.a, sub.b), let plus = products(add.a, add.b) else { continue }
            absorbed += [si, ai] + minus.nodes + plus.nodes
            // a = x1·c − x2·s and b = x1·s + x2·c (b's products in either order).
            guard let halves = halves(minus.first, minus.second, def: def, private_: private_, literal: literal, graph) else { continue }
            let (x1, x2) = halves.pair
            guard let c = split(minus.first, half: x1), let s = split(minus.second, half: x2) else { continue }
            let plusOK = [(plus.first, plus.second), (plus.second, plus.first)].contains { p, q in
                split(p, half: x1) == s && split(q, half: x2) == c
            }
            guard plusOK, let cv = tableView(c, def: def, tableSlice: tableSlice, graph),
                  let sv = tableView(s, def: def, tableSlice: tableSlice, graph), cv.rowsAxis == sv.rowsAxis,
                  graph[c].type?.rank == graph[s].type?.rank else { continue }
            let (cosT, cStart, cStop, sinT, sStart, sStop) = (cv.table, cv.start, cv.stop, sv.table, sv.start, sv.stop)
            guard cStart == sStart, cStop == sStop, cosT != sinT, halves.traditional == traditional,
                  let xt = halves.view?.type ?? graph[halves.x].type, let d = xt.shape.last?.fixedValue,
                  let ct = graph[cosT].type, ct.shape == graph[sinT].type?.shape, let h = ct.shape[1].fixedValue,
                  2 * h == d, halves.width == h, [xt.dtype, ct.dtype].allSatisfy({ [.f32, .bf16, .f16].contains($0) }),
                  catType.dtype == xt.dtype else { continue }
            absorbed += halves.nodes
            guard absorbed.allSatisfy({ !dead.contains($0) }) else { continue }
            // Table rows along another axis than rank − 2 (x [B, T, H, D]): rotate x with its rows moved there.
            var perm: [Int]? = nil
            if let axis = cv.rowsAxis {
                guard graph[c].type?.rank == xt.rank, axis < xt.rank - 1 else { continue }
                if axis != xt.rank - 2 { perm = Self.rowsToSecondLast(axis, rank: xt.rank) }
            }
            // The table's rows meet x's rows axis: the same size, or both known only at run time.
            let rowsAxis = cv.rowsAxis ?? xt.rank - 2
            guard let viewRows = graph[c].type?.shape[cv.rowsAxis ?? 0],
                  viewRows.fixedValue == xt.shape[rowsAxis].fixedValue else { continue }
            let origin = nodes[i].origin
            func rotation(_ out: ValueID) -> [Node] {
                func rope(_ x: ValueID, _ y: ValueID) -> Node {
                    Node(.ropeTable(RopeTableOp(x: x, cos: cosT, sin: sinT, start: cStart, stop: cStop, traditional: traditional, out: y)),
                         origin: origin)
                }
                var x = halves.x, pre: [Node] = []
                if let view = halves.view {
                    x = graph.addValue(view.type, .computed)
                    pre.append(Node(.reshape(ReshapeOp(x: view.source, out: x, shape: view.shape)), origin: origin))
                }
                guard let perm else { return pre + [rope(x, out)] }
                let swapped = TensorType(xt.dtype, perm.map { xt.shape[$0] })
                let xs = graph.addValue(swapped, .computed), ys = graph.addValue(swapped, .computed)
                return pre + [Node(.transpose(TransposeOp(x: x, out: xs, perm: perm)), origin: origin), rope(xs, ys),
                              Node(.transpose(TransposeOp(x: ys, out: out, perm: Self.inverse(perm))), origin: origin)]
            }
            if !traditional {
                replacements[i] = rotation(cat.out)
            } else if uses[cat.out] == 1, computed(cat.out), let r = nodes.indices.first(where: { nodes[$0].op.operands.contains(cat.out) }),
                      case .reshape(var reshape) = nodes[r].op {
                // The interleave's reshape back to [..., D] reads the rope's result instead — or,
                // when it restores x's very shape, is the rope's result.
                if let rt = graph[reshape.out].type, rt.dtype == xt.dtype, sameShape(rt.shape, xt.shape) {
                    replacements[i] = rotation(reshape.out)
                    absorbed.append(r)
                } else {
                    let rotated = graph.addValue(xt, .computed)
                    replacements[i] = rotation(rotated)
                    reshape.x = rotated
                    nodes[r].op = .reshape(reshape)
                }
            } else {
                continue
            }
            dead.formUnion(absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().flatMap { i, node -> [Node] in
            dead.contains(i) ? [] : replacements[i] ?? [node]
        }
        return count
    }

    /// The source of `op` if it appends a unit axis: `expand_dims(x, -1)`, or (XNNPACK's StaticReshape,
    /// the bench's XNNPACK export) a reshape to x's shape + [1] — each target entry x's fixed dim, or
    /// −1 for x's one run-time dim.
    func trailingUnit(_ op: Op?, _ graph: Graph, _ type: (ValueID) -> TensorType?) -> ValueID? {
        switch op {
        case .expandDims(let e)?:
            guard let r = type(e.x)?.rank, e.axis == -1 || e.axis == r else { return nil }
            return e.x
        case .reshape(let rs)?:
            guard let xt = type(rs.x), rs.shape.count == xt.rank + 1, rs.shape.last == .literal(1),
                  xt.shape.filter({ $0.fixedValue == nil }).count <= 1 else { return nil }
            for (entry, dim) in zip(rs.shape, xt.shape) {
                switch (entry, dim.fixedValue) {
                case (.literal(let n), let f?) where n == Int64(f): continue
                case (.literal(-1), nil): continue
                default: return nil
                }
            }
            return rs.x
        default:
            return nil
        }
    }

    /// Two shapes of the same element count that must be equal: the same fixed dims, and at most
    /// one run-time dim, in the same place.
    func sameShape(_ a: [Dim], _ b: [Dim]) -> Bool {
        guard a.count == b.count else { return false }
        var dynamic = 0
        for (x, y) in zip(a, b) {
            if let m = x.fixedValue, let n = y.fixedValue { if m != n { return false } } else if x.fixedValue == nil && y.fixedValue == nil {
                dynamic += 1
            } else { return false }
        }
        return dynamic <= 1
    }

    struct HalfSlices { var x: ValueID; var pair: (ValueID, ValueID); var traditional: Bool; var width: Int; var nodes: [Int]; var view: View? = nil }

    /// The two halves x1, x2 of one x among the products' operands: even/odd lanes (step 2) or the
    /// first and second half of the last axis (step 1). Each half is read by exactly two products.
    func halves(_ p: (ValueID, ValueID), _ q: (ValueID, ValueID), def: (ValueID) -> (Int, Op)?,
                private_: (ValueID, Int) -> (Int, Op)?, literal: (IntOrValue) -> Int64?, _ graph: Graph) -> HalfSlices? {
        for x1 in [p.0, p.1] {
            for x2 in [q.0, q.1] {
                if let pairs = pairHalves(x1, x2, private_: private_, literal: literal, graph) { return pairs }
                guard let (i1, o1) = private_(x1, 2), case .slice(let s1) = o1,
                      let (i2, o2) = private_(x2, 2), case .slice(let s2) = o2, s1.x == s2.x,
                      let xt = graph[s1.x].type, let d = xt.shape.last?.fixedValue, d % 2 == 0,
                      let a1 = literal(s1.axis), a1 == -1 || a1 == Int64(xt.rank - 1),
                      let a2 = literal(s2.axis), a2 == -1 || a2 == Int64(xt.rank - 1),
                      let b1 = literal(s1.start), let e1 = literal(s1.stop), let b2 = literal(s2.start), let e2 = literal(s2.stop)
                else { continue }
                let h = Int64(d / 2)
                if s1.step == 2, s2.step == 2, b1 == 0, b2 == 1, e1 >= Int64(d), e2 >= Int64(d) {
                    return HalfSlices(x: s1.x, pair: (x1, x2), traditional: true, width: d / 2, nodes: [i1, i2])
                }
                if s1.step == 1, s2.step == 1, b1 == 0, e1 == h, b2 == h, e2 >= Int64(d) {
                    return HalfSlices(x: s1.x, pair: (x1, x2), traditional: false, width: d / 2, nodes: [i1, i2])
                }
            }
        }
        return nil
    }
}
