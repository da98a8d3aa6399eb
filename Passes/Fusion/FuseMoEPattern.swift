import MLXCIR

/// Rewrites a plain export's dense MoE layer (every expert on every token, then a one-hot routing
/// matrix keeps k of them) into expert gathers that read only the selected experts' weights.
///
/// The dense form, as `torch.export` spells `models.MoE` (names are the roles, not value numbers):
///
///     x0   : [T, D]                                  (the tokens; also the router's input)
///     s    = unary…(addmm|matmul(x0, Wr))            (router scores [T, E]: softmax, neg, …)
///     idx  = slice(argsort(s, axis: -1), axis: -1, start: 0, stop: k)        [T, k], in 0..<E
///     g    = views(matmul(views(x0), Wg))            [T, E, H]; Wg [1…, D, E·H] constant
///     u    = views(matmul(views(x0), Wu))            [T, E, H]
///     h    = silu(g) · u                             (silu(g) or g · sigmoid(g))
///     y    = views(matmul(views(h) [E, T, H], Wd))   [T, E, D]; Wd [E, H, D] constant
///     oh   = as_type(equal(expand_dims(as_type?(idx), 2), arange) ) [T, k, E]; arange = 0..E-1 literal
///     r    = sum(oh · expand_dims(w, 2), axes: [1])   [T, E]  (w [T, k]: any weights, e.g. renormalised top-k)
///     out  = sum(y · expand_dims(r, 2), axes: [1])    [T, D]
///
/// becomes (tokens sorted by expert, so runs of tokens sharing an expert share its weight reads,
/// as the MLX backend's SwitchGLU feeds `gather_mm`):
///
///     flat = reshape(idx, [-1]); order = argsort(flat); inv = argsort(order)
///     e    = take(flat, order); tok = floor_divide(order, k)
///     g'   = gather_mm(expand_dims(x0, 1), transpose(Wg as [D, E, H], [1, 0, 2]), lhs: tok, rhs: e)   [T·k, 1, H]
///     u'   = likewise with Wu;  h' = silu(g') · u'
///     y'   = gather_mm(h', Wd, rhs: e)                                                               [T·k, 1, D]
///     out  = sum(reshape(take(y', inv), [-1, k, D]) · expand_dims(w, 2), axes: [1])
///
/// The stacked weight is re-viewed per expert without a copy: a new constant over the same bytes
/// with shape [D, E, H], and a transpose the gather kernel reads through (strided experts).
///
/// Why it is sound: r[t, e] = Σ_j [idx[t, j] = e] · w[t, j], so
/// out[t] = Σ_e y[t, e] · r[t, e] = Σ_j w[t, j] · y[t, idx[t, j]] — every expert that no j selects
/// is multiplied by exactly 0 and drops out of the sum, and an expert selected twice is counted
/// twice in both forms. That needs every idx in 0..<E (else the one-hot row is all zero but the
/// gather would read out of range): idx is a slice of an argsort along an axis of size E, so it
/// is. (It also drops the dense form's 0 · NaN when an unselected expert overflows, as MLX does.)
/// Entry (t, j) of the flattened indices reads row t = entry / k of x0, so idx must have x0's
/// rows: the router scores are shape-preserving ops of a linear of x0 itself. w may broadcast
/// (a [1, k] or [T, 1] w) and does so identically in both forms. Both forms compute each selected
/// expert's output the same way; only the order of the final k-term sum differs from the E-term
/// one (f32 rounding). The expert weights must have x0's dtype (the gathers read them as stored).
///
/// What the matcher checks (anything else leaves the graph alone): the ops and axes above;
/// every view (reshape, transpose, expand_dims, squeeze) tracked as a relabelling of its base's
/// axes, so the gate/up columns split as (expert, hidden) in that order, the down input is
/// [expert, token, hidden] and the expert outputs [token, expert, D]; the arange is the literal
/// 0..E-1 (the loader inlines small integer vectors) and compares along the one-hot's last axis;
/// the expert weights are constants of the stated shapes; and every intermediate is read only
/// by the pattern (not by other nodes, not a graph output, not state). The new nodes take the
/// place of the final sum; everything they read is defined before the dense nodes were.
public struct FuseMoEPattern: GraphPass {
    public let name = "fuse-moe-pattern"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var rewritten = 0
        for b in graph.blocks.indices where b != graph.initBlock {
            var tried = Set<ValueID>()
            while true {
                let matcher = MoEMatcher(graph, block: b)
                var found: MoEMatch?
                for i in matcher.nodes.indices {
                    guard case .sum(let s) = matcher.nodes[i].op, !tried.contains(s.out) else { continue }
                    tried.insert(s.out)
                    if let m = matcher.match(anchor: i) { found = m; break }
                }
                guard let m = found else { break }
                MoERewrite.apply(m, &graph, block: b)
                rewritten += 1
            }
        }
        return rewritten
    }
}

/// What a match found: the values the gather form reads and the dense nodes it replaces.
struct MoEMatch {
    var anchor: Int
    var absorbed: Set<Int>
    var x0: ValueID, idx: ValueID, w: ValueID
    var gate: ValueID, up: ValueID, down: ValueID
    var experts: Int, topK: Int, hidden: Int, dim: Int
    var out: ValueID
}

/// One axis of a view's base that a dim of the view stands for (unit dims stand for none).
struct ViewAxis: Equatable {
    var label: String
    var size: Dim
}

/// Matching over one block, on the graph as it stands.
struct MoEMatcher {
    let graph: Graph
    let nodes: [Node]
    var producer: [ValueID: Int] = [:]
    /// Reads of each value by any node of any block, plus one per appearance among the outputs.
    var uses: [ValueID: Int] = [:]
    let types: [TensorType?]

    init(_ graph: Graph, block b: Int) {
        self.graph = graph
        nodes = graph.blocks[b].nodes
        types = ShapeInference.infer(graph).types
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        for block in graph.blocks { for node in block.nodes { for v in node.op.operands { uses[v, default: 0] += 1 } } }
        for v in graph.outputs { uses[v, default: 0] += 1 }
    }

    func type(_ v: ValueID) -> TensorType? {
        guard graph.values.indices.contains(v.index) else { return nil }
        return (v.index < types.count ? types[v.index] : nil) ?? graph[v].type
    }

    func shape(_ v: ValueID) -> [Dim]? { type(v)?.shape }

    func op(_ v: ValueID) -> (Int, Op)? {
        guard let i = producer[v] else { return nil }
        return (i, nodes[i].op)
    }

    func isConstant(_ v: ValueID) -> Bool {
        guard graph.values.indices.contains(v.index), case .constant = graph[v].kind else { return false }
        return true
    }

    static func isUnit(_ d: Dim) -> Bool { d == .fixed(1) }

    /// `axis` of a rank-`rank` value as 0..<rank (negative counts from the end).
    static func axis(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return a >= 0 && a < rank ? a : nil
    }

    // MARK: views

    /// Walks back from `v` through view ops to the first value that is not a view: that base and
    /// the view nodes, base first. Stops early at `stop`.
    func viewChain(_ v: ValueID, stop: ValueID? = nil) -> (base: ValueID, chain: [Int]) {
        var chain: [Int] = [], at = v
        while at != stop, let (i, op) = self.op(at) {
            let x: ValueID
            switch op {
            case .reshape(let o): x = o.x
            case .transpose(let o): x = o.x
            case .expandDims(let o): x = o.x
            case .squeeze(let o): x = o.x
            case .idCopy(let o): x = o.x
            case .contiguous(let o): x = o.x
            default: return (at, chain.reversed())
            }
            chain.append(i)
            at = x
        }
        return (at, chain.reversed())
    }

    /// The axes of `v` when its base has `layout`, pushed through the view nodes of `chain`;
    /// nil where a view does something this tracking does not follow (a merge of axes, a dynamic
    /// dim that cannot be told apart from another, a squeeze of unknown dims).
    func layout(through chain: [Int], from layout: [ViewAxis?]) -> [ViewAxis?]? {
        var l = layout
        for i in chain {
            switch nodes[i].op {
            case .expandDims(let o):
                guard let a = Self.axis(o.axis, rank: l.count + 1) else { return nil }
                l.insert(nil, at: a)
            case .squeeze(let o):
                guard !o.dims.isEmpty else { return nil }
                let dims = o.dims.compactMap { Self.axis($0, rank: l.count) }
                guard dims.count == o.dims.count, dims.allSatisfy({ l[$0] == nil }) else { return nil }
                l = l.enumerated().filter { !dims.contains($0.offset) }.map(\.element)
            case .transpose(let o):
                let perm = o.perm.compactMap { Self.axis($0, rank: l.count) }
                guard perm.count == l.count, Set(perm).count == l.count else { return nil }
                l = perm.map { l[$0] }
            case .idCopy, .contiguous:
                break
            case .reshape(let o):
                guard let target = shape(o.out), let r = reshaped(l, to: target) else { return nil }
                l = r
            default:
                return nil
            }
        }
        return l
    }

    /// A reshape that only inserts or removes unit dims and splits fixed axes into fixed pieces
    /// (row-major, so piece 0 is the slowest): the new dims' axes, else nil.
    func reshaped(_ layout: [ViewAxis?], to target: [Dim]) -> [ViewAxis?]? {
        let atoms = layout.compactMap { $0 }
        let dims = target.filter { !Self.isUnit($0) }
        let dynamicIn = atoms.filter { $0.size.fixedValue == nil }.count
        let dynamicOut = dims.filter { $0.fixedValue == nil }.count
        // A dynamic dim is the same size as the dynamic axis it lines up with only if it is the
        // one dynamic dim on each side (the fixed sizes then account for the same element count).
        guard dynamicIn == dynamicOut, dynamicIn <= 1 else { return nil }
        var out: [ViewAxis] = [], j = 0
        for atom in atoms {
            guard j < dims.count else { return nil }
            switch (atom.size, dims[j]) {
            case (.dynamic, .dynamic):
                out.append(atom)
                j += 1
            case (.fixed(let n), .fixed(let m)) where n == m:
                out.append(atom)
                j += 1
            case (.fixed(let n), .fixed(let m)) where m < n && n % m == 0:
                var pieces: [Int] = [], product = 1
                while product < n, j < dims.count, let p = dims[j].fixedValue, n % (product * p) == 0 {
                    pieces.append(p)
                    product *= p
                    j += 1
                }
                guard product == n else { return nil }
                for (k, p) in pieces.enumerated() { out.append(ViewAxis(label: "\(atom.label).\(k)", size: .fixed(p))) }
            default:
                return nil
            }
        }
        guard j == dims.count else { return nil }
        var result: [ViewAxis?] = [], next = 0
        for d in target {
            if Self.isUnit(d) { result.append(nil) } else { result.append(out[next]); next += 1 }
        }
        return result
    }

    /// `v`'s dims as axes named `labels` (unit dims: none); nil if the counts differ.
    func baseLayout(_ v: ValueID, _ labels: [String]) -> [ViewAxis?]? {
        guard let s = shape(v) else { return nil }
        var result: [ViewAxis?] = [], next = 0
        for d in s {
            if Self.isUnit(d) { result.append(nil); continue }
            guard next < labels.count else { return nil }
            result.append(ViewAxis(label: labels[next], size: d))
            next += 1
        }
        return next == labels.count ? result : nil
    }

    static func labels(_ l: [ViewAxis?]) -> [String?] { l.map { $0?.label } }

    // MARK: the pattern

    /// One expert projection of x0: `views(matmul(views(x0), W))` with W a constant [1…, D, N];
    /// the result's axes (token, column) and the nodes.
    struct Projection { var weight: ValueID; var n: Int; var layout: [ViewAxis?]; var nodes: [Int] }

    func projection(_ v: ValueID, x0: ValueID, t: ViewAxis, d: ViewAxis, column: String) -> Projection? {
        let (mm, post) = viewChain(v)
        guard let (mi, mop) = op(mm), case .matmul(let m) = mop else { return nil }
        let (xb, pre) = viewChain(m.a, stop: x0)
        guard xb == x0, let a = layout(through: pre, from: [t, d]), a.last == .some(d),
              a.compactMap({ $0 }).count == 2, isConstant(m.b), type(m.b)?.dtype == type(x0)?.dtype,
              let ws = type(m.b)?.staticShape, ws.count >= 2,
              ws.dropLast(2).allSatisfy({ $0 == 1 }), ws[ws.count - 2] == d.size.fixedValue, let n = ws.last, n > 1,
              let outShape = shape(m.out), outShape.count == max(a.count, ws.count) else { return nil }
        let produced = [ViewAxis?](repeating: nil, count: outShape.count - a.count) + a.dropLast() + [ViewAxis(label: column, size: .fixed(n))]
        guard baseMatches(produced, outShape), let l = layout(through: post, from: produced) else { return nil }
        return Projection(weight: m.b, n: n, layout: l, nodes: pre + [mi] + post)
    }

    /// The tracked axes agree with the value's type (units where the type has fixed 1s).
    func baseMatches(_ l: [ViewAxis?], _ s: [Dim]) -> Bool {
        guard l.count == s.count else { return false }
        for (a, d) in zip(l, s) {
            if let a { if Self.isUnit(d) || (a.size.fixedValue != nil && a.size != d) { return false } } else if !Self.isUnit(d) { return false }
        }
        return true
    }

    /// silu(g) spelled as `silu(g)` or `g · sigmoid(g)`: g and the nodes.
    func silu(_ v: ValueID) -> (ValueID, [Int])? {
        guard let (i, o) = op(v) else { return nil }
        if case .silu(let s) = o { return (s.x, [i]) }
        guard case .multiply(let m) = o else { return nil }
        for (g, sg) in [(m.a, m.b), (m.b, m.a)] {
            if let (si, so) = op(sg), case .sigmoid(let s) = so, s.x == g { return (g, [si, i]) }
        }
        return nil
    }

    /// `v` = expand_dims(x, axis: rank(x)) — a new trailing unit axis; x and the node.
    func trailingUnit(_ v: ValueID) -> (ValueID, Int)? {
        guard let (i, o) = op(v), case .expandDims(let e) = o, let r = shape(e.x)?.count, Self.axis(e.axis, rank: r + 1) == r else { return nil }
        return (e.x, i)
    }

    func isIntegerType(_ d: DType?) -> Bool { d.map { [.i8, .i16, .i32, .i64, .u8, .u16, .u32, .u64].contains($0) } ?? false }

    /// A literal 0, 1, …, E-1 of shape [E] and integer dtype: E.
    func arange(_ v: ValueID) -> Int? {
        guard graph.values.indices.contains(v.index), case .constant(.literal(let xs)) = graph[v].kind,
              let t = graph[v].type, isIntegerType(t.dtype), t.staticShape == [xs.count], xs.count > 1,
              xs.enumerated().allSatisfy({ Double($0.offset) == $0.element }) else { return nil }
        return xs.count
    }

    /// idx = slice(argsort(s, axis: -1), axis: -1, start: 0, stop: k, step: 1), s [T, E] with rows
    /// those of x0: k. The nodes stay (the router keeps using them).
    func topKIndices(_ v: ValueID, experts: Int) -> (k: Int, x0: ValueID)? {
        guard let (_, so) = op(v), case .slice(let sl) = so, sl.step == 1, case .literal(0) = sl.start,
              case .literal(let stop) = sl.stop, case .literal(let sa) = sl.axis,
              let (_, ao) = op(sl.x), case .argsort(let arg) = ao, let ss = shape(arg.x), ss.count == 2,
              ss[1] == .fixed(experts), Self.axis(Int(sa), rank: 2) == 1, Self.axis(arg.axis, rank: 2) == 1,
              stop >= 1, stop <= experts, isIntegerType(type(v)?.dtype), let x0 = routerInput(arg.x) else { return nil }
        return (Int(stop), x0)
    }

    /// The x0 whose rows the router scores `s` keep: shape-preserving ops back to a linear of x0.
    func routerInput(_ s: ValueID) -> ValueID? {
        var at = s
        while let (_, o) = op(at) {
            switch o {
            case .neg(let u): at = u.x
            case .softmax(let u): at = u.x
            case .sigmoid(let u): at = u.x
            case .asType(let u): at = u.x
            case .addmm(let a):
                guard shape(a.mat1)?.count == 2, shape(a.mat2)?.count == 2, a.bias.map({ (shape($0)?.count ?? 2) <= 1 }) ?? true else { return nil }
                return a.mat1
            case .matmul(let m):
                guard shape(m.a)?.count == 2, shape(m.b)?.count == 2 else { return nil }
                return m.a
            default: return nil
            }
        }
        return nil
    }

    func match(anchor: Int) -> MoEMatch? {
        guard case .sum(let s) = nodes[anchor].op, !s.keepdims, s.axes.count == 1, let ps = shape(s.x), ps.count == 3,
              Self.axis(s.axes[0], rank: 3) == 1, let (pi, po) = op(s.x), case .multiply(let p) = po else { return nil }
        for (y, r3) in [(p.a, p.b), (p.b, p.a)] {
            if let m = match(anchor: anchor, sum: s, pNode: pi, y: y, r3: r3) { return m }
        }
        return nil
    }

    func match(anchor: Int, sum s: SumOp, pNode: Int, y: ValueID, r3: ValueID) -> MoEMatch? {
        // Routing weights: r3 = expand_dims(sum(oh · expand_dims(w, 2), axes: [1]), 2).
        guard let (r, r3i) = trailingUnit(r3), let rs = shape(r), rs.count == 2, let experts = rs[1].fixedValue,
              let (ri, ro) = op(r), case .sum(let rsum) = ro, !rsum.keepdims, rsum.axes.count == 1,
              let qs = shape(rsum.x), qs.count == 3, Self.axis(rsum.axes[0], rank: 3) == 1, qs[2] == .fixed(experts),
              let (qi, qo) = op(rsum.x), case .multiply(let q) = qo,
              let dtype = type(y)?.dtype, dtype.isFloatingPoint else { return nil }
        for (oh, w3) in [(q.a, q.b), (q.b, q.a)] {
            guard let (ohi, oho) = op(oh), case .asType(let cast) = oho, cast.scalarType == dtype,
                  let (w, w3i) = trailingUnit(w3), shape(w)?.count == 2, type(w)?.dtype == dtype,
                  let (eqi, eqo) = op(cast.x), case .equal(let eq) = eqo else { continue }
            for (i3, ar) in [(eq.a, eq.b), (eq.b, eq.a)] {
                guard arange(ar) == experts, let (idx, i3i) = trailingUnit(i3), isIntegerType(type(idx)?.dtype),
                      let ixs = shape(idx), ixs.count == 2, qs[1] == ixs[1], let eqs = shape(eq.out), eqs.count == 3,
                      eqs[2] == .fixed(experts) else { continue }
                // idx itself, or an integer cast of the top-k slice.
                var topK = topKIndices(idx, experts: experts)
                if topK == nil, let (_, co) = op(idx), case .asType(let c) = co, isIntegerType(type(c.x)?.dtype) {
                    topK = topKIndices(c.x, experts: experts)
                }
                guard let (k, x0) = topK, ixs[1] == .fixed(k) else { continue }
                let routing = [r3i, ri, qi, ohi, w3i, eqi, i3i]
                if let m = expertSide(anchor: anchor, sum: s, pNode: pNode, y: y, x0: x0, experts: experts, k: k,
                                   idx: idx, w: w, routing: routing) { return m }
            }
        }
        return nil
    }

    /// The expert side: y = views(matmul(views(silu(g) · u), Wd)) with g, u projections of x0.
    func expertSide(anchor: Int, sum s: SumOp, pNode: Int, y: ValueID, x0: ValueID, experts: Int, k: Int,
                 idx: ValueID, w: ValueID, routing: [Int]) -> MoEMatch? {
        guard let xs = shape(x0), xs.count == 2, !Self.isUnit(xs[0]), let dim = xs[1].fixedValue, dim > 1,
              type(x0)?.dtype == type(y)?.dtype else { return nil }
        let t = ViewAxis(label: "T", size: xs[0]), d = ViewAxis(label: "D", size: xs[1])
        let (dn, yPost) = viewChain(y)
        guard let (dni, dno) = op(dn), case .matmul(let down) = dno, isConstant(down.b), type(down.b)?.dtype == type(x0)?.dtype,
              let wd = type(down.b)?.staticShape, wd.count == 3, wd[0] == experts, wd[2] == dim else { return nil }
        let hidden = wd[1]
        let (h, hPost) = viewChain(down.a)
        guard let (hi, ho) = op(h), case .multiply(let hm) = ho else { return nil }
        for (gated, upValue) in [(hm.a, hm.b), (hm.b, hm.a)] {
            guard let (g, siluNodes) = silu(gated),
                  let gate = projection(g, x0: x0, t: t, d: d, column: "gate"),
                  let up = projection(upValue, x0: x0, t: t, d: d, column: "up"),
                  gate.n == experts * hidden, up.n == experts * hidden,
                  Self.labels(gate.layout) == ["T", "gate.0", "gate.1"], Self.labels(up.layout) == ["T", "up.0", "up.1"],
                  gate.layout[1]?.size == .fixed(experts), up.layout[1]?.size == .fixed(experts) else { continue }
            // h [T, E, H] → the down input [E, T, H] (batch = expert, rows = tokens).
            let e = ViewAxis(label: "E", size: .fixed(experts)), hAxis = ViewAxis(label: "H", size: .fixed(hidden))
            guard let xd = layout(through: hPost, from: [t, e, hAxis]), xd == [e, t, hAxis],
                  let ds = shape(down.out), ds.count == 3 else { continue }
            let dAxis = ViewAxis(label: "Dout", size: .fixed(dim))
            let produced: [ViewAxis?] = [e, t, dAxis]
            guard baseMatches(produced, ds), let yl = layout(through: yPost, from: produced), yl == [t, e, dAxis] else { continue }
            var absorbed = Set(routing)
            absorbed.formUnion(gate.nodes + up.nodes + siluNodes + [hi] + hPost + [dni] + yPost + [pNode, anchor])
            guard closed(absorbed, except: anchor) else { continue }
            return MoEMatch(anchor: anchor, absorbed: absorbed, x0: x0, idx: idx, w: w, gate: gate.weight, up: up.weight,
                            down: down.b, experts: experts, topK: k, hidden: hidden, dim: dim, out: s.out)
        }
        return nil
    }

    /// Nothing outside `set` reads a value the set computes (other than the anchor's result), and
    /// none of them is state or a graph output.
    func closed(_ set: Set<Int>, except anchor: Int) -> Bool {
        var inner: [ValueID: Int] = [:]
        for i in set { for v in nodes[i].op.operands { inner[v, default: 0] += 1 } }
        for i in set where i != anchor {
            for r in nodes[i].op.results {
                if case .state = graph[r].kind { return false }
                if uses[r, default: 0] != inner[r, default: 0] { return false }
            }
        }
        return !graph.outputs.contains { v in set.contains { $0 != anchor && nodes[$0].op.results.contains(v) } }
    }
}

/// Replaces a match's dense nodes with the gather form, at the anchor's place.
enum MoERewrite {
    static func apply(_ m: MoEMatch, _ graph: inout Graph, block b: Int) {
        let types = ShapeInference.infer(graph).types
        func type(_ v: ValueID) -> TensorType { (v.index < types.count ? types[v.index] : nil) ?? graph[v].type! }
        let xt = type(m.x0), idxType = type(m.idx), outType = type(m.out)
        let dtype = xt.dtype, tDim = xt.shape[0], k = m.topK
        let entries: Dim
        switch tDim {
        case .fixed(let n): entries = .fixed(n * k)
        case .dynamic(let lo, let hi): entries = .dynamic(min: lo * k, max: hi.map { $0 * k })
        }
        var new: [Op] = []
        func value(_ t: TensorType) -> ValueID { graph.addValue(t, .computed) }
        let flat = value(TensorType(idxType.dtype, [entries]))
        new.append(.reshape(ReshapeOp(x: m.idx, out: flat, shape: [.literal(-1)])))
        let order = value(TensorType(.i32, [entries])), inverse = value(TensorType(.i32, [entries]))
        new.append(.argsort(ArgsortOp(x: flat, out: order, axis: 0)))
        new.append(.argsort(ArgsortOp(x: order, out: inverse, axis: 0)))
        let expert = value(TensorType(idxType.dtype, [entries]))
        new.append(.take(TakeOp(x: flat, out: expert, index: .value(order), axis: 0)))
        let kValue = graph.addValue(TensorType(.i32, []), .constant(.literal([Double(k)])))
        let token = value(TensorType(.i32, [entries]))
        new.append(.floorDivide(FloorDivideOp(a: order, b: kValue, out: token)))
        let x3 = value(TensorType(dtype, [tDim, .fixed(1), .fixed(m.dim)]))
        new.append(.expandDims(ExpandDimsOp(x: m.x0, out: x3, axis: 1)))
        /// The stacked [1…, D, E·H] weight as [E, D, H]: the same bytes as [D, E, H], transposed.
        func perExpert(_ w: ValueID) -> ValueID {
            guard case .constant(let source) = graph[w].kind else { preconditionFailure("matched a non-constant expert weight") }
            let stacked = graph.addValue(TensorType(dtype, fixed: [m.dim, m.experts, m.hidden]), .constant(source), name: graph[w].name)
            let viewed = value(TensorType(dtype, fixed: [m.experts, m.dim, m.hidden]))
            new.append(.transpose(TransposeOp(x: stacked, out: viewed, perm: [1, 0, 2])))
            return viewed
        }
        let hType = TensorType(dtype, [entries, .fixed(1), .fixed(m.hidden)])
        let gate = value(hType), up = value(hType), gated = value(hType), h = value(hType)
        let wg = perExpert(m.gate)
        new.append(.gatherMm(GatherMmOp(a: x3, b: wg, out: gate, lhsIndices: token, rhsIndices: expert, sortedIndices: true)))
        let wu = perExpert(m.up)
        new.append(.gatherMm(GatherMmOp(a: x3, b: wu, out: up, lhsIndices: token, rhsIndices: expert, sortedIndices: true)))
        new.append(.silu(SiluOp(x: gate, out: gated)))
        new.append(.multiply(MultiplyOp(a: gated, b: up, out: h)))
        let yType = TensorType(dtype, [entries, .fixed(1), .fixed(m.dim)])
        let y = value(yType), unsorted = value(yType)
        new.append(.gatherMm(GatherMmOp(a: h, b: m.down, out: y, rhsIndices: expert, sortedIndices: true)))
        new.append(.take(TakeOp(x: y, out: unsorted, index: .value(inverse), axis: 0)))
        let perToken = value(TensorType(dtype, [tDim, .fixed(k), .fixed(m.dim)]))
        new.append(.reshape(ReshapeOp(x: unsorted, out: perToken, shape: [.literal(-1), .literal(Int64(k)), .literal(Int64(m.dim))])))
        let wt = type(m.w)
        let w3 = value(TensorType(wt.dtype, wt.shape + [.fixed(1)]))
        new.append(.expandDims(ExpandDimsOp(x: m.w, out: w3, axis: 2)))
        let weighted = value(TensorType(dtype, [outType.shape[0], .fixed(k), .fixed(m.dim)]))
        new.append(.multiply(MultiplyOp(a: perToken, b: w3, out: weighted)))
        new.append(.sum(SumOp(x: weighted, out: m.out, axes: [1], keepdims: false)))

        let old = graph.blocks[b].nodes
        let origin = old[m.anchor].origin
        var nodes: [Node] = []
        for (i, node) in old.enumerated() {
            if i == m.anchor { nodes += new.map { Node($0, origin: origin) } }
            if !m.absorbed.contains(i) { nodes.append(node) }
        }
        graph.blocks[b].nodes = nodes
    }
}
