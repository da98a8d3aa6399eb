import MLXCIR

/// Fuses float linears — `addmm(x, transpose(W, [1, 0]), bias?)` with W a constant [N, K] f32, bf16
/// or f16 weight — with what surrounds them into `fused_linear`, one kernel that reads each weight
/// row once per block of tokens:
///
/// 0. `matmul(x, transpose(W, [1, 0]))` (plain `aten::mm` of a permuted weight, as optimum's
///    portable exports write nn.Linear) is that linear without a bias: the addmm (same definition);
///
/// 1. a bias add after a linear without one, `add(x·Wᵀ, b)` with b a constant [N], becomes the
///    linear's bias (a broadcast add belongs in the linear, not in a residual);
/// 2. gated MLPs: `multiply(act(x·W_gᵀ), x·W_uᵀ)` with act = silu, silu spelled `g·sigmoid(g)` (plain
///    exports), or gelu (tanh or erf) → epilogue "swiglu" / "geglu_tanh" / "geglu";
/// 3. an activation of a linear left after 2 (fc1 and its gelu): `act(x·Wᵀ)` → epilogue "silu" / "gelu_tanh" / "gelu";
/// 4. a residual add of a linear's result (or of 2's, 3's), `add(r, x·Wᵀ)`, r of the sum's shape → `residual: r`;
/// 5. linears left that read the same x with the same weight dtype (q/k/v) → one op, one result each.
///
/// Intermediates must have no other reader (nor be graph outputs). A fused op takes the place of the
/// last node it absorbs (1–4) or of the first (5); x and the residual are never state, so moving
/// their reads cannot cross a write. Transposes of the weights nothing reads any more are removed.
/// `FusedOps.unfused` is the fused op's definition.
public struct FuseLinear: GraphPass {
    public let name = "fuse-linear"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices {
            fused += fuse(&graph, block: b, matmulLinear)
            fused += fuse(&graph, block: b, biasAdd)
            fused += fuse(&graph, block: b, gated)
            fused += fuse(&graph, block: b, activated)
            fused += fuse(&graph, block: b, residual)
            fused += groupSharedInputs(&graph, block: b)
        }
        if fused > 0 { removeDeadWeightTransposes(&graph) }
        return fused
    }

    // MARK: matching

    /// A linear this pass can take.
    struct Linear {
        var x: ValueID, w: ValueID, bias: ValueID?, out: ValueID, dtype: DType
        var n: Int, k: Int
    }

    /// What the matchers read: the block's nodes, who defines what, how often each value is read.
    struct Context {
        let graph: Graph
        let nodes: [Node]
        let producer: [ValueID: Int]
        let uses: [ValueID: Int]
        let transposes: [ValueID: TransposeOp]

        /// The node defining `v` in this block, if `v` has exactly `readers` readers.
        func sole(_ v: ValueID, readers: Int = 1) -> Int? { uses[v] == readers ? producer[v] : nil }

        func isState(_ v: ValueID) -> Bool {
            if case .state = graph[v].kind { return true }
            return false
        }

        func constant(_ v: ValueID) -> TensorType? {
            guard case .constant = graph[v].kind else { return nil }
            return graph[v].type
        }

        static let floats: Set<DType> = [.f32, .bf16, .f16]

        /// The linear node `i` is, if this pass can take it.
        func linear(_ i: Int) -> Linear? {
            guard case .addmm(let o) = nodes[i].op, o.alpha == 1, o.beta == 1, let t = transposes[o.mat2], t.perm == [1, 0],
                  let w = constant(t.x), w.rank == 2, Self.floats.contains(w.dtype), let n = w.shape[0].fixedValue,
                  let k = w.shape[1].fixedValue, !isState(o.mat1) else { return nil }
            if let xt = graph[o.mat1].type { guard Self.floats.contains(xt.dtype), xt.rank >= 1 else { return nil } }
            if let bias = o.bias {
                guard let bt = constant(bias), bt.rank == 1, bt.shape[0].fixedValue == n, Self.floats.contains(bt.dtype) else { return nil }
            }
            return Linear(x: o.mat1, w: t.x, bias: o.bias, out: o.out, dtype: w.dtype, n: n, k: k)
        }

        /// The linear defining `v`, if `v` has no other reader.
        func soleLinear(_ v: ValueID, readers: Int = 1) -> (node: Int, linear: Linear)? {
            guard let p = sole(v, readers: readers), let l = linear(p) else { return nil }
            return (p, l)
        }

        /// A sum whose operand `skip` does not have the sum's declared shape (a broadcast). Undeclared
        /// shapes pass: the kernel checks each call's shapes and leaves a mismatch to the reference.
        /// A scalar skip (Voxtral Realtime's `1.0 + linear(t_cond)`, its sum untyped in MLX's graph) always broadcasts.
        func broadcasts(_ skip: ValueID, to out: ValueID) -> Bool {
            if let s = graph[skip].type, s.rank == 0 { return true }
            guard let s = graph[skip].type, let o = graph[out].type else { return false }
            if s.rank != o.rank { return true }
            return zip(s.shape, o.shape).contains { a, b in
                if let x = a.fixedValue, let y = b.fixedValue { return x != y }
                return a != b && (a.fixedValue != nil || b.fixedValue != nil)
            }
        }
    }

    func context(_ graph: Graph, block b: Int) -> Context {
        var uses: [ValueID: Int] = [:], transposes: [ValueID: TransposeOp] = [:]
        for block in graph.blocks {
            for node in block.nodes {
                for v in node.op.operands { uses[v, default: 0] += 1 }
                if case .transpose(let t) = node.op { transposes[t.out] = t }
            }
        }
        for v in graph.outputs { uses[v, default: 0] += 1 }
        var producer: [ValueID: Int] = [:]
        for (i, node) in graph.blocks[b].nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        return Context(graph: graph, nodes: graph.blocks[b].nodes, producer: producer, uses: uses, transposes: transposes)
    }

    /// What a matcher found at node `i`: the replacement op and the other nodes it absorbs.
    struct Match { var op: Op; var absorbed: [Int] }

    /// Runs `matcher` over the block's nodes; each match replaces its node and deletes the absorbed ones.
    func fuse(_ graph: inout Graph, block b: Int, _ matcher: (Int, Context) -> Match?) -> Int {
        let c = context(graph, block: b)
        var nodes = c.nodes, dead = Set<Int>(), count = 0
        for i in nodes.indices where !dead.contains(i) {
            guard let m = matcher(i, c), m.absorbed.allSatisfy({ !dead.contains($0) && $0 != i }) else { continue }
            nodes[i].op = m.op
            dead.formUnion(m.absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    /// A one-weight fused op.
    func single(_ l: Linear, out: ValueID) -> FusedLinearOp {
        FusedLinearOp(x: l.x, w: [l.w], biases: l.bias.map { [$0] } ?? [], biasOf: l.bias == nil ? [] : [0], epilogue: "none", outs: [out])
    }

    // MARK: the five fusions

    /// `matmul(x, transpose(W, [1, 0]))`, W a constant [N, K] float: `addmm` without a bias (the
    /// reference computes addmm as that matmul), so the steps below and the linear kernels take it.
    func matmulLinear(_ i: Int, _ c: Context) -> Match? {
        guard case .matmul(let o) = c.nodes[i].op, let t = c.transposes[o.b], t.perm == [1, 0],
              let w = c.constant(t.x), w.rank == 2, Context.floats.contains(w.dtype) else { return nil }
        return Match(op: .addmm(AddmmOp(mat1: o.a, mat2: o.b, out: o.out, bias: nil, alpha: 1, beta: 1)), absorbed: [])
    }

    /// `add(x·Wᵀ, b)`, b a constant [N] of the linear's width: the addmm with that bias, at the add.
    func biasAdd(_ i: Int, _ c: Context) -> Match? {
        guard case .add(let a) = c.nodes[i].op, a.a != a.b else { return nil }
        for (product, bias) in [(a.a, a.b), (a.b, a.a)] {
            guard let bt = c.constant(bias), bt.rank == 1, Context.floats.contains(bt.dtype),
                  let (p, l) = c.soleLinear(product), l.bias == nil, bt.shape[0].fixedValue == l.n,
                  case .addmm(var o) = c.nodes[p].op else { continue }
            o.bias = bias
            o.out = a.out
            return Match(op: .addmm(o), absorbed: [p])
        }
        return nil
    }

    /// Node `s` as an activation: its input, how many readers that input has in the pattern, the
    /// activation's name ("silu", "gelu_tanh", "gelu") and the pattern's nodes.
    func activation(node s: Int, _ c: Context) -> (gate: ValueID, readers: Int, name: String, nodes: [Int])? {
        switch c.nodes[s].op {
        case .silu(let o): return (o.x, 1, "silu", [s])
        case .gelu(let o) where o.approximate == "tanh": return (o.x, 1, "gelu_tanh", [s])
        case .gelu(let o) where o.approximate == "none": return (o.x, 1, "gelu", [s])
        case .multiply(let m) where m.a != m.b:
            // silu spelled out: g · sigmoid(g), g read by both.
            for (g, sig) in [(m.a, m.b), (m.b, m.a)] {
                guard let q = c.sole(sig), case .sigmoid(let sg) = c.nodes[q].op, sg.x == g else { continue }
                return (g, 2, "silu", [s, q])
            }
            return nil
        default: return nil
        }
    }

    /// The activation of a gated MLP whose result is `v`: the gate's value, the epilogue, its nodes.
    func activation(_ v: ValueID, _ c: Context) -> (gate: ValueID, readers: Int, epilogue: String, nodes: [Int])? {
        guard let s = c.sole(v), let a = activation(node: s, c) else { return nil }
        let gated = ["silu": "swiglu", "gelu_tanh": "geglu_tanh", "gelu": "geglu"]
        return (a.gate, a.readers, gated[a.name]!, a.nodes)
    }

    /// `act(x·Wᵀ)` left after the gated MLPs (an MLP's fc1 and its gelu): one weight, the activation as epilogue.
    func activated(_ i: Int, _ c: Context) -> Match? {
        guard let a = activation(node: i, c), let (p, l) = c.soleLinear(a.gate, readers: a.readers) else { return nil }
        var op = single(l, out: c.nodes[i].op.results[0])
        op.epilogue = a.name
        return Match(op: .fusedLinear(op), absorbed: a.nodes.filter { $0 != i } + [p])
    }

    /// `multiply(act(x·W_gᵀ), x·W_uᵀ)`: gate and up of one x, one width and one weight dtype.
    func gated(_ i: Int, _ c: Context) -> Match? {
        guard case .multiply(let m) = c.nodes[i].op, m.a != m.b else { return nil }
        for (act, up) in [(m.a, m.b), (m.b, m.a)] {
            guard let a = activation(act, c), let (g, gate) = c.soleLinear(a.gate, readers: a.readers),
                  let (u, upLinear) = c.soleLinear(up), g != u, gate.x == upLinear.x, gate.n == upLinear.n,
                  gate.dtype == upLinear.dtype else { continue }
            var biases: [ValueID] = [], biasOf: [Int] = []
            for (j, l) in [gate, upLinear].enumerated() { if let b = l.bias { biases.append(b); biasOf.append(j) } }
            let op = FusedLinearOp(x: gate.x, w: [gate.w, upLinear.w], biases: biases, biasOf: biasOf, epilogue: a.epilogue, outs: [m.out])
            return Match(op: .fusedLinear(op), absorbed: a.nodes + [g, u])
        }
        return nil
    }

    /// `add(r, p)`, p a linear's (or a gated op's) sole result, r of the sum's shape and not state.
    func residual(_ i: Int, _ c: Context) -> Match? {
        guard case .add(let a) = c.nodes[i].op, a.a != a.b else { return nil }
        for (product, skip) in [(a.b, a.a), (a.a, a.b)] {
            guard !c.isState(skip), !c.broadcasts(skip, to: a.out), let p = c.sole(product) else { continue }
            var op: FusedLinearOp
            if let l = c.linear(p) {
                op = single(l, out: a.out)
            } else if case .fusedLinear(let f) = c.nodes[p].op, f.residual == nil, f.outs.count == 1 {
                op = f
                op.outs = [a.out]
            } else {
                continue
            }
            op.residual = skip
            return Match(op: .fusedLinear(op), absorbed: [p])
        }
        return nil
    }

    /// Linears left that read the same x with the same weight dtype and K: one op at the first.
    func groupSharedInputs(_ graph: inout Graph, block b: Int) -> Int {
        let c = context(graph, block: b)
        var nodes = c.nodes
        var families: [[(node: Int, linear: Linear)]] = []
        for i in nodes.indices {
            guard let l = c.linear(i) else { continue }
            if let f = families.firstIndex(where: { $0[0].linear.x == l.x && $0[0].linear.dtype == l.dtype && $0[0].linear.k == l.k }) {
                families[f].append((i, l))
            } else {
                families.append([(i, l)])
            }
        }
        var dead = Set<Int>(), count = 0
        for family in families where family.count > 1 {
            var biases: [ValueID] = [], biasOf: [Int] = []
            for (j, member) in family.enumerated() { if let bias = member.linear.bias { biases.append(bias); biasOf.append(j) } }
            let op = FusedLinearOp(x: family[0].linear.x, w: family.map(\.linear.w), biases: biases, biasOf: biasOf, epilogue: "none",
                                   outs: family.map(\.linear.out))
            nodes[family[0].node].op = .fusedLinear(op)
            dead.formUnion(family.dropFirst().map(\.node))
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    /// Transposes of constants whose readers were all absorbed (the fused op reads W as stored).
    func removeDeadWeightTransposes(_ graph: inout Graph) {
        let uses = graph.useCounts(outputWeight: 1)
        let values = graph
        for b in graph.blocks.indices {
            graph.blocks[b].nodes.removeAll { node in
                guard case .transpose(let t) = node.op, case .constant = values[t.x].kind else { return false }
                return uses[t.out, default: 0] == 0
            }
        }
    }
}
