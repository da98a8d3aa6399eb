import MLXCIR

/// Removes nodes whose results nothing reads — neither a later node (in any block), nor a graph
/// output — unless the node has effects (state writes, control flow). Repeats until nothing changes,
/// since removing a node can make its operands' producers dead too.
public struct DeadCodeElimination: GraphPass {
    public let name = "dce"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var removed = 0
        while true {
            var used = Set(graph.outputs)
            for block in graph.blocks { for node in block.nodes { used.formUnion(node.op.operands) } }
            var changed = false
            for b in graph.blocks.indices {
                let snapshot = graph
                let before = graph.blocks[b].nodes.count
                let live = graph.blocks[b].nodes.filter { node in
                    OpEffects.hasSideEffects(node, in: snapshot) || node.op.results.contains(where: used.contains)
                }
                graph.blocks[b].nodes = live
                let gone = before - live.count
                if gone > 0 { removed += gone; changed = true }
            }
            if !changed { return removed }
        }
    }
}
