import MLXCIR

/// Canonicalizes RMSNorm as plain ExecuTorch exports spell it (portable ops, no fused norm):
///
///     sq = power(a: x, b: 2.0)            (or multiply(x, x), square(x))
///     ms = mean(x: sq, axes: [-1], keepdims: true)
///     se = add(a: ms, b: eps)             (either order; eps a literal scalar constant)
///     r  = rsqrt(x: se)
///     y  = multiply(a: x, b: r)           (either order)
///     z  = multiply(a: w, b: y)           (either order; optional, w of shape [D], x's dtype; x's last dim D,
///                                          or dynamic with the bound D)
///
/// into `z = rms_norm(x: x, weight: w, eps: eps)` (or `y = rms_norm(x: x, weight: none, …)`), which
/// has one row kernel instead of six passes over the activations. Sound only when nothing else sees
/// the intermediates, which the matcher checks: sq, ms, se, r (and y when the weight is folded) have
/// exactly one reader, are not graph outputs and are not state. The op takes the place of the last
/// node matched (x and w are defined before it). eps must be a literal: run after the loader has
/// inlined scalar constants (`InlineScalarConstants`), as the default pipeline is.
public struct FuseRMSNormPattern: GraphPass {
    public let name = "fuse-rms-norm-pattern"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        let uses = graph.useCounts()   // outputs are never intermediates
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b, uses) }
        return fused
    }

    func literalScalar(_ v: ValueID, _ graph: Graph) -> Double? {
        guard graph.values.indices.contains(v.index), case .constant(.literal(let xs)) = graph[v].kind, xs.count == 1 else { return nil }
        return xs[0]
    }

    func isPlainValue(_ v: ValueID, _ graph: Graph) -> Bool {
        guard graph.values.indices.contains(v.index) else { return false }
        if case .computed = graph[v].kind { return true }
        return false
    }

    func fuse(_ graph: inout Graph, block b: Int, _ uses: [ValueID: Int]) -> Int {
        var nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() { for r in node.op.results { producer[r] = i } }
        /// The node defining `v` if `v` is an intermediate only one node reads.
        func single(_ v: ValueID) -> (Int, Op)? {
            guard uses[v] == 1, isPlainValue(v, graph), let i = producer[v] else { return nil }
            return (i, nodes[i].op)
        }
        var dead = Set<Int>(), count = 0
        for i in nodes.indices where !dead.contains(i) {
            guard case .multiply(let y) = nodes[i].op, let m = match(y, single, graph) else { continue }
            var absorbed = m.absorbed
            guard absorbed.allSatisfy({ !dead.contains($0) }) else { continue }
            var at = i, op = RMSNormOp(x: m.x, weight: nil, out: y.out, eps: m.eps)
            if let (w, reader) = weight(y, m.x, nodes, uses, graph), !dead.contains(reader) {
                absorbed.append(i)
                at = reader
                guard case .multiply(let z) = nodes[reader].op else { continue }
                op = RMSNormOp(x: m.x, weight: w, out: z.out, eps: m.eps)
            }
            nodes[at].op = .rmsNorm(op)
            dead.formUnion(absorbed)
            count += 1
        }
        graph.blocks[b].nodes = nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return count
    }

    struct Match { var x: ValueID; var eps: Double; var absorbed: [Int] }

    /// y = x · rsqrt(mean(x², -1) + eps), with every intermediate read once.
    func match(_ y: MultiplyOp, _ single: (ValueID) -> (Int, Op)?, _ graph: Graph) -> Match? {
        for (x, r) in [(y.a, y.b), (y.b, y.a)] {
            guard let (ri, rop) = single(r), case .rsqrt(let rs) = rop,
                  let (si, sop) = single(rs.x), case .add(let add) = sop else { continue }
            for (ms, epsValue) in [(add.a, add.b), (add.b, add.a)] {
                guard let eps = literalScalar(epsValue, graph), let (mi, mop) = single(ms), case .mean(let mean) = mop, mean.keepdims,
                      let (qi, qop) = single(mean.x), squares(qop, x, graph), lastAxis(mean.axes, x, graph) else { continue }
                return Match(x: x, eps: eps, absorbed: [qi, mi, si, ri])
            }
        }
        return nil
    }

    /// `op` computes x² elementwise.
    func squares(_ op: Op, _ x: ValueID, _ graph: Graph) -> Bool {
        switch op {
        case .power(let p): return p.a == x && literalScalar(p.b, graph) == 2
        case .multiply(let m): return m.a == x && m.b == x
        case .square(let s): return s.x == x
        default: return false
        }
    }

    /// `axes` is x's last axis alone.
    func lastAxis(_ axes: [Int], _ x: ValueID, _ graph: Graph) -> Bool {
        guard axes.count == 1 else { return false }
        if axes[0] == -1 { return true }
        guard let rank = graph[x].type?.rank else { return false }
        return axes[0] == rank - 1
    }

    /// The weight multiply reading y, if y has no other reader and w is [D] of x's dtype.
    func weight(_ y: MultiplyOp, _ x: ValueID, _ nodes: [Node], _ uses: [ValueID: Int], _ graph: Graph) -> (ValueID, Int)? {
        guard uses[y.out] == 1, isPlainValue(y.out, graph),
              let reader = nodes.firstIndex(where: { $0.op.operands.contains(y.out) }),
              case .multiply(let z) = nodes[reader].op, z.a != z.b else { return nil }
        let w = z.a == y.out ? z.b : z.a
        guard let wt = graph[w].type, let xt = graph[x].type, wt.dtype == xt.dtype, wt.rank == 1,
              let d = wt.shape[0].fixedValue, let last = xt.shape.last else { return nil }
        // x's features either fixed at D, or dynamic up to D: a portable program's dynamic-bound input (Voxtral
        // Realtime's input embeddings, [1, ?T, ?D] as ExecuTorch declares them) — the kernel, its feature size now
        // the weight's, checks each call's last dim and leaves any other size to the reference.
        switch last {
        case .fixed(let n) where n == d: return (w, reader)
        case .dynamic(_, let hi?) where hi == d: return (w, reader)
        default: return nil
        }
    }
}
