import MLXCIR

/// For text generation only: the runtime reads the logits of the last position alone, so the
/// row-wise tail of the network (final norm, output projection, logit soft-capping) need not run
/// for the other T − 1 prompt positions. Inserts `slice(h, axis 1, -1:)` where that tail starts,
/// so the first output becomes [B, 1, vocab] — on a 128-token prompt the output projection is
/// about a fifth of all prefill work.
///
/// Walks back from output 0 through ops that compute each position's row from the same row alone
/// (norms, linears, elementwise ops with a scalar or per-feature constant); every value on the
/// way must have no other reader. Not part of the default pipeline: `mlxc run --prompt`,
/// `--interactive` and `mlxc bench` add it (`PassRegistry.generationPipeline`).
public struct LastPositionLogits: GraphPass {
    public let name = "last-position-logits"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        guard let output = graph.outputs.first else { return 0 }
        let uses = graph.useCounts(outputWeight: 1)
        var producer: [ValueID: Int] = [:]
        for (i, node) in graph.blocks[0].nodes.enumerated() { for r in node.op.results { producer[r] = i } }

        // The chain, from the output back: (node index, the operand that carries the rows).
        var chain: [(node: Int, rows: ValueID)] = []
        var v = output
        while let p = producer[v], let rows = rowOperand(graph.blocks[0].nodes[p].op, graph) {
            chain.append((p, rows))
            // The next value back is replaced by its last row only if nothing else reads it.
            guard uses[rows] == 1, !graph.outputs.contains(rows), producer[rows] != nil else { break }
            v = rows
        }
        guard let start = chain.last,
              let type = graph[start.rows].type ?? ShapeInference.infer(graph).types[start.rows.index], type.rank == 3 else { return 0 }
        // Only a [B, T, D] start whose T is the prompt's (dynamic, or more than one position).
        guard type.shape[1].fixedValue.map({ $0 > 1 }) ?? true else { return 0 }

        let last = graph.addValue(TensorType(type.dtype, [type.shape[0], .fixed(1), type.shape[2]]), .computed)
        let slice = Node(.slice(SliceOp(x: start.rows, out: last, axis: .literal(1), start: .literal(-1), stop: .literal(Int64.max))),
                         origin: "last-position-logits")
        graph.blocks[0].nodes[start.node].op = graph.blocks[0].nodes[start.node].op.mapValues { $0 == start.rows ? last : $0 }
        graph.blocks[0].nodes.insert(slice, at: start.node)
        // The chain's values now hold one position: forget their declared types (shape inference redoes them).
        for (node, _) in chain {
            let index = node >= start.node ? node + 1 : node
            for r in graph.blocks[0].nodes[index].op.results { graph[r].type = nil }
        }
        return 1
    }

    /// The operand whose rows a row-wise op maps one to one (nil for ops that mix positions).
    func rowOperand(_ op: Op, _ graph: Graph) -> ValueID? {
        /// A scalar or per-feature constant (broadcasts the same way over one row as over T).
        func constant(_ v: ValueID) -> Bool {
            guard case .constant = graph[v].kind, let rank = graph[v].type?.rank else { return false }
            return rank <= 1
        }
        switch op {
        case .rmsNorm(let o): return o.x
        case .layerNorm(let o): return o.x
        case .quantizedMatmul(let o) where o.transpose: return o.x
        case .fusedQuantizedLinear(let o) where o.outs.count == 1 && o.residual == nil: return o.x
        case .fusedLinear(let o) where o.outs.count == 1 && o.residual == nil: return o.x
        case .tanh(let o): return o.x
        case .multiply(let o) where constant(o.b): return o.a
        case .multiply(let o) where constant(o.a): return o.b
        case .divide(let o) where constant(o.b): return o.a
        case .addmm(let o) where graph[o.mat1].type?.rank == 3: return o.mat1
        default: return nil
        }
    }
}
