import MLXCIR

/// Merges a pure node into an earlier identical one in the same block (same op, same attributes,
/// same operands): later reads of its results read the earlier results instead. Nodes with effects
/// are never merged, and nothing is merged across blocks (a branch may not run).
public struct CommonSubexpressionElimination: GraphPass {
    public let name = "cse"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var replaced: [ValueID: ValueID] = [:]
        var merged = 0
        for b in graph.blocks.indices {
            var seen: [Op: [ValueID]] = [:]
            var kept: [Node] = []
            for var node in graph.blocks[b].nodes {
                if !replaced.isEmpty { node.op = node.op.mapValues { replaced[$0] ?? $0 } }
                let results = node.op.results
                // Reads of state are not merged: state changes in place between them.
                let readsState = node.op.operands.contains { v in
                    if case .state = graph.values[v.index].kind { return true } else { return false }
                }
                guard !OpEffects.hasSideEffects(node, in: graph), !readsState, !results.isEmpty else { kept.append(node); continue }
                // The key: the op with its results blanked out, so only what it computes is compared.
                var index = 0
                let key = node.op.mapValues { v in
                    guard results.contains(v) else { return v }
                    index += 1
                    return ValueID(-index)
                }
                if let earlier = seen[key], earlier.count == results.count,
                   zip(earlier, results).allSatisfy({ graph.values[$0.index].type == graph.values[$1.index].type || graph.values[$1.index].type == nil }) {
                    for (old, new) in zip(results, earlier) { replaced[old] = new }
                    merged += 1
                    continue
                }
                seen[key] = results
                kept.append(node)
            }
            graph.blocks[b].nodes = kept
        }
        if !replaced.isEmpty {
            for b in graph.blocks.indices {
                for n in graph.blocks[b].nodes.indices {
                    graph.blocks[b].nodes[n].op = graph.blocks[b].nodes[n].op.mapValues { replaced[$0] ?? $0 }
                }
            }
            graph.outputs = graph.outputs.map { replaced[$0] ?? $0 }
        }
        return merged
    }
}
