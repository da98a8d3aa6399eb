import MLXCIR

/// Fuses MLX affine quantized linears (`quantized_matmul`, transpose = true, compile-time weights)
/// with what surrounds them into `fused_quantized_linear` — one kernel that prepares x once and
/// dequantizes the weights in registers:
///
/// 1. SwiGLU: `multiply(silu(x·W_gᵀ), x·W_uᵀ)` → epilogue "swiglu" (gate and up rows in one pass); silu
///    also spelled `g · sigmoid(g)` (XNNPACK delegates' Sigmoid + Multiply, 8da4w exports);
/// 2. a residual add of a linear's result, `add(r, x·Wᵀ)` (also after 1) → `residual: r`;
/// 3. linears left that read the same x (q/k/v projections) → one op with one result each.
///
/// Intermediates must have no other reader (nor be graph outputs). A fused op takes the place of
/// the last node it absorbs (1, 2) or of the first (3); x and the residual are never state, so
/// moving their reads cannot cross a write.
public struct FuseQuantizedLinear: GraphPass {
    public let name = "fuse-quantized-linear"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var fused = 0
        for b in graph.blocks.indices {
            fused += fuse(&graph, block: b, swiglu)
            // Inferred types where the file states none (MLX temporaries), for the residual's shape check.
            let types = ShapeInference.infer(graph).types
            fused += fuse(&graph, block: b) { i, nodes, producer, uses, graph, compileTime in
                residual(i, nodes, producer, uses, graph, compileTime, types)
            }
            fused += groupSharedInputs(&graph, block: b)
        }
        return fused
    }

    // MARK: matching

    /// A linear this pass can take: its weights, scales, biases known at compile time.
    struct Linear {
        var x: ValueID, w: ValueID, scales: ValueID, biases: ValueID, groupSize: Int, bits: Int
        func sameFamily(_ o: Linear) -> Bool { x == o.x && groupSize == o.groupSize && bits == o.bits }
    }

    func linear(_ op: Op, _ graph: Graph, _ compileTime: Set<ValueID>) -> Linear? {
        guard case .quantizedMatmul(let o) = op, o.mode == "affine", o.transpose, let biases = o.biases,
              [o.w, o.scales, biases].allSatisfy(compileTime.contains), !isState(o.x, graph) else { return nil }
        return Linear(x: o.x, w: o.w, scales: o.scales, biases: biases, groupSize: o.groupSize, bits: o.bits)
    }

    func isState(_ v: ValueID, _ graph: Graph) -> Bool {
        if case .state = graph[v].kind { return true }
        return false
    }

    /// Constants, and values the init block computes (MLX folds scale·zero-point into biases there).
    func compileTimeValues(_ graph: Graph) -> Set<ValueID> {
        var known = Set(graph.values.indices.filter { if case .constant = graph.values[$0].kind { return true } else { return false } }.map(ValueID.init))
        if let i = graph.initBlock { for node in graph.blocks[i].nodes { known.formUnion(node.op.results) } }
        return known
    }

    func useCounts(_ graph: Graph) -> [ValueID: Int] { graph.useCounts(outputWeight: 1) }

    /// What a matcher found at node `at`: the replacement op and the other nodes it absorbs.
    struct Match { var op: Op; var absorbed: [Int] }
    typealias Matcher = (_ node: Int, _ nodes: [Node], _ producer: [ValueID: Int], _ uses: [ValueID: Int], _ graph: Graph,
                         _ compileTime: Set<ValueID>) -> Match?

    /// Runs `matcher` over the block's nodes; each match replaces its node and deletes the absorbed ones.
    func fuse(_ graph: inout Graph, block b: Int, _ matcher: Matcher) -> Int {
        let compileTime = compileTimeValues(graph), uses = useCounts(graph)
        var nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        var dead = Set<Int>(), count = 0
        for i in nodes.indices where !dead.contains(i) {
            guard let m = matcher(i, nodes, producer, uses, graph, compileTime), m.absorbed.allSatisfy({ !dead.contains($0) }) else { continue }
            nodes[i].op = m.op
            dead.formUnion(m.absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    /// The node defining `v` in this block, if `v` has exactly one reader.
    func soleProducer(_ v: ValueID, _ producer: [ValueID: Int], _ uses: [ValueID: Int]) -> Int? {
        uses[v] == 1 ? producer[v] : nil
    }

    // MARK: the three fusions

    func swiglu(_ i: Int, _ nodes: [Node], _ producer: [ValueID: Int], _ uses: [ValueID: Int], _ graph: Graph,
                _ compileTime: Set<ValueID>) -> Match? {
        guard case .multiply(let m) = nodes[i].op else { return nil }
        for (gated, up) in [(m.a, m.b), (m.b, m.a)] {
            guard let (product, silu) = siluOf(gated, nodes, producer, uses), let g = producer[product],
                  let u = soleProducer(up, producer, uses), g != u,
                  let gate = linear(nodes[g].op, graph, compileTime), let upLinear = linear(nodes[u].op, graph, compileTime),
                  gate.sameFamily(upLinear) else { continue }
            let op = FusedQuantizedLinearOp(x: gate.x, w: [gate.w, upLinear.w], scales: [gate.scales, upLinear.scales],
                                            biases: [gate.biases, upLinear.biases], groupSize: gate.groupSize, bits: gate.bits,
                                            epilogue: "swiglu", outs: [m.out])
            return Match(op: .fusedQuantizedLinear(op), absorbed: silu + [g, u])
        }
        return nil
    }

    /// `v` as silu(p) with p read by nothing else: `silu(p)`, or spelled out as `p · sigmoid(p)` (either
    /// side; XNNPACK's delegates write SiLU as Sigmoid then Multiply), p read only by those two and the
    /// sigmoid only by the product. → p and the silu's nodes.
    func siluOf(_ v: ValueID, _ nodes: [Node], _ producer: [ValueID: Int], _ uses: [ValueID: Int]) -> (ValueID, [Int])? {
        guard let s = soleProducer(v, producer, uses) else { return nil }
        switch nodes[s].op {
        case .silu(let o):
            return uses[o.x] == 1 ? (o.x, [s]) : nil
        case .multiply(let o):
            for (p, sig) in [(o.a, o.b), (o.b, o.a)] where p != sig {
                guard let q = soleProducer(sig, producer, uses), case .sigmoid(let sg) = nodes[q].op, sg.x == p, uses[p] == 2 else { continue }
                return (p, [s, q])
            }
            return nil
        default:
            return nil
        }
    }

    func residual(_ i: Int, _ nodes: [Node], _ producer: [ValueID: Int], _ uses: [ValueID: Int], _ graph: Graph,
                  _ compileTime: Set<ValueID>, _ types: [TensorType?] = []) -> Match? {
        guard case .add(let a) = nodes[i].op, a.a != a.b else { return nil }
        for (product, skip) in [(a.b, a.a), (a.a, a.b)] {
            guard !isState(skip, graph), !broadcasts(skip, to: a.out, graph, types), let p = soleProducer(product, producer, uses) else { continue }
            var op: FusedQuantizedLinearOp
            if let l = linear(nodes[p].op, graph, compileTime) {
                op = FusedQuantizedLinearOp(x: l.x, w: [l.w], scales: [l.scales], biases: [l.biases], groupSize: l.groupSize,
                                            bits: l.bits, epilogue: "none", outs: [a.out])
            } else if case .fusedQuantizedLinear(let f) = nodes[p].op, f.residual == nil, f.outs.count == 1 {
                op = f
                op.outs = [a.out]
            } else {
                continue
            }
            // The skip value must already exist where the linear was: it does (the add reads it), and
            // the fused op sits at the add.
            op.residual = skip
            return Match(op: .fusedQuantizedLinear(op), absorbed: [p])
        }
        return nil
    }

    /// A skip value whose declared shape is not the sum's (a bias [N] added to [M, N]): the kernel takes
    /// only same-shape residuals and would leave every call to the reference.
    func broadcasts(_ skip: ValueID, to out: ValueID, _ graph: Graph, _ types: [TensorType?]) -> Bool {
        func type(_ v: ValueID) -> TensorType? { graph[v].type ?? (v.index < types.count ? types[v.index] : nil) }
        guard let s = type(skip), let o = type(out) else { return false }
        if s.rank != o.rank { return true }
        return zip(s.shape, o.shape).contains { a, b in
            if let x = a.fixedValue, let y = b.fixedValue { return x != y }
            return false
        }
    }

    /// Linears that read the same x (and quantization), none absorbed above: one op at the first.
    func groupSharedInputs(_ graph: inout Graph, block b: Int) -> Int {
        let compileTime = compileTimeValues(graph)
        var nodes = graph.blocks[b].nodes
        var families: [[Int]] = []
        for (i, node) in nodes.enumerated() {
            guard let l = linear(node.op, graph, compileTime) else { continue }
            if let f = families.firstIndex(where: { linear(nodes[$0[0]].op, graph, compileTime)!.sameFamily(l) }) {
                families[f].append(i)
            } else {
                families.append([i])
            }
        }
        var dead = Set<Int>(), count = 0
        for family in families where family.count > 1 {
            let parts = family.map { i -> (Linear, ValueID) in
                guard case .quantizedMatmul(let o) = nodes[i].op else { fatalError("family of non-linears") }
                return (linear(nodes[i].op, graph, compileTime)!, o.out)
            }
            let first = parts[0].0
            let op = FusedQuantizedLinearOp(x: first.x, w: parts.map(\.0.w), scales: parts.map(\.0.scales), biases: parts.map(\.0.biases),
                                            groupSize: first.groupSize, bits: first.bits, epilogue: "none", outs: parts.map(\.1))
            nodes[family[0]].op = .fusedQuantizedLinear(op)
            dead.formUnion(family.dropFirst())
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }
}
