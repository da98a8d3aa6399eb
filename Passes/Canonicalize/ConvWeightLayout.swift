import MLXCIR

/// Convolution weights repacked once at load into the layout the compiled conv2d kernel reads fastest: output
/// channels innermost. The kernel puts its vector lanes on output channels (Conv2DKernels); ATen's
/// [O, C/groups, kH, kW] (seen through the importer's transpose) and XNNPACK's [O, kH, kW, C/groups] have them
/// outermost, which the kernel can only gather. So for every `conv2d` — and every depthwise `conv1d`, which
/// lowers to the same kernel — whose weight is a constant, or a constant through a transpose only the conv
/// reads, the init block computes P = the weight as [kH, kW, C/groups, O] (one transpose of the constant, run
/// once at load), and the conv reads transpose(P) back in its own [O, kH, kW, C/groups] order: a transpose the
/// conv's lowering absorbs by reading P through strides. The values the conv computes are unchanged (transposes
/// are exact). Weights already O-innermost (XNNPACK's depthwise filters) are left alone.
public struct ConvWeightLayout: GraphPass {
    public let name = "conv-weight-layout"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        let uses = graph.useCounts()
        var repacked: [String: ValueID] = [:]   // (constant, perm) → its init-block copy, shared between convs
        var count = 0
        func isConstant(_ v: ValueID) -> Bool {
            if case .constant = graph[v].kind { return true }
            return false
        }
        for b in graph.blocks.indices where b != graph.initBlock {
            var producer: [ValueID: Int] = [:]
            for (i, node) in graph.blocks[b].nodes.enumerated() { for r in node.op.results { producer[r] = i } }
            var dropped = Set<Int>()
            var inserted: [Int: Node] = [:]   // before node i
            for (i, node) in graph.blocks[b].nodes.enumerated() {
                let w: ValueID, rank: Int, depthwiseGroups: Int?
                switch node.op {
                case .conv2D(let o): (w, rank, depthwiseGroups) = (o.w, 4, nil)
                case .conv1D(let o): (w, rank, depthwiseGroups) = (o.w, 3, o.groups)
                default: continue
                }
                // The stored constant and how the conv's weight permutes it.
                var source = w, perm = Array(0..<rank), through: Int? = nil
                if !isConstant(w) {
                    guard let p = producer[w], case .transpose(let t) = graph.blocks[b].nodes[p].op, isConstant(t.x),
                          uses[w] == 1, !graph.outputs.contains(w) else { continue }
                    perm = t.perm.map { $0 < 0 ? $0 + rank : $0 }
                    (source, through) = (t.x, p)
                }
                guard let stored = graph[source].type, let storedShape = stored.staticShape, storedShape.count == rank,
                      Set(perm) == Set(0..<rank), perm.count == rank, perm[0] != rank - 1 else { continue }
                // conv1d only when depthwise ([O, K, 1], O = groups): the others keep conv1d's kernel, which wants C innermost.
                if let groups = depthwiseGroups {
                    let shape = perm.map { storedShape[$0] }
                    guard shape[2] == 1, shape[0] == groups else { continue }
                }
                // P's dims are the conv weight's dims 1, 2, …, 0 (O last); the conv reads P through the inverse.
                let order = Array(1..<rank) + [0]
                let toInit = order.map { perm[$0] }
                let back = [rank - 1] + Array(0..<(rank - 1))
                let key = "\(source.index):\(toInit)"
                let packed: ValueID
                if let p = repacked[key] {
                    packed = p
                } else {
                    packed = graph.addValue(TensorType(stored.dtype, fixed: toInit.map { storedShape[$0] }), .computed,
                                            name: graph[source].name.map { $0 + ".o_last" })
                    let initBlock = graph.initBlock ?? {
                        graph.blocks.append(Block(name: "init"))
                        graph.initBlock = graph.blocks.count - 1
                        return graph.blocks.count - 1
                    }()
                    graph.blocks[initBlock].nodes.append(Node(.transpose(TransposeOp(x: source, out: packed, perm: toInit)), origin: node.origin))
                    repacked[key] = packed
                }
                let oriented = graph.addValue(TensorType(stored.dtype, fixed: perm.map { storedShape[$0] }), .computed)
                inserted[i] = Node(.transpose(TransposeOp(x: packed, out: oriented, perm: back)), origin: node.origin)
                switch node.op {
                case .conv2D(var o): o.w = oriented; graph.blocks[b].nodes[i] = Node(.conv2D(o), origin: node.origin)
                case .conv1D(var o): o.w = oriented; graph.blocks[b].nodes[i] = Node(.conv1D(o), origin: node.origin)
                default: break
                }
                if let p = through { dropped.insert(p) }
                count += 1
            }
            guard count > 0 else { continue }
            var nodes: [Node] = []
            for (i, node) in graph.blocks[b].nodes.enumerated() where !dropped.contains(i) {
                if let t = inserted[i] { nodes.append(t) }
                nodes.append(node)
            }
            graph.blocks[b].nodes = nodes
        }
        return count
    }
}
