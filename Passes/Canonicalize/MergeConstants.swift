import MLXCIR

/// Reads of the same constant data become reads of one value: constants with the same source (the
/// same buffer, named data or literal) and the same type. Exporters give every layer its own value
/// for a shared buffer (the RoPE tables, the mask's key positions, eps), which hides from `cse`
/// that the layers compute the same mask; after this pass it is computed once.
public struct MergeConstants: GraphPass {
    public let name = "merge-constants"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var first: [ConstantKey: ValueID] = [:]
        var replaced: [ValueID: ValueID] = [:]
        for (i, info) in graph.values.enumerated() {
            guard case .constant(let source) = info.kind, let type = info.type else { continue }
            let v = ValueID(i)
            let key = ConstantKey(source: source, type: type)
            if let kept = first[key] { replaced[v] = kept } else { first[key] = v }
        }
        guard !replaced.isEmpty else { return 0 }
        for b in graph.blocks.indices {
            for n in graph.blocks[b].nodes.indices {
                graph.blocks[b].nodes[n].op = graph.blocks[b].nodes[n].op.mapValues { replaced[$0] ?? $0 }
            }
        }
        graph.outputs = graph.outputs.map { replaced[$0] ?? $0 }
        return replaced.count
    }

    struct ConstantKey: Hashable { var source: ConstantSource; var type: TensorType }
}
