import MLXCIR

/// A constant table read at one position given as a one-element index tensor —
/// `take(x: TABLE, index: pos, axis: 0)` with `pos: i64[1]`, as ExecuTorch's static-shape LLM exports
/// read their RoPE tables (`freqs_cos[input_pos]`) — becomes the row slice the dynamic exports write:
///
///     p = item_int(take(pos, 0));  q = add_int(p, 1);  slice(x: TABLE, axis: 0, start: p, stop: q)
///
/// so one RoPE pattern (and the position it shares with the KV-cache writes, once `cse` merges the
/// reads of `pos`) covers both spellings. Only constant tables of rank ≥ 2 with a known one-element
/// index are rewritten; the result keeps its value and type. A position outside the table is out of
/// range either way: the generation runner refuses positions beyond the program's context.
public struct RowTakeAsSlice: GraphPass {
    public let name = "row-take-as-slice"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var count = 0
        for b in graph.blocks.indices {
            var rewritten: [Node] = []
            for node in graph.blocks[b].nodes {
                guard case .take(let t) = node.op, t.axis == 0, case .value(let index) = t.index,
                      case .constant = graph[t.x].kind, let tableType = graph[t.x].type, tableType.rank >= 2,
                      let indexType = graph[index].type, [.i64, .i32].contains(indexType.dtype),
                      indexType.rank == 1, indexType.shape[0].fixedValue == 1 else {
                    rewritten.append(node)
                    continue
                }
                let element = graph.addValue(TensorType(indexType.dtype, []), .computed)
                let start = graph.addValue(TensorType(.i64, []), .computed)
                let stop = graph.addValue(TensorType(.i64, []), .computed)
                rewritten += [
                    Node(.take(TakeOp(x: index, out: element, index: .literal(0), axis: 0)), origin: node.origin),
                    Node(.itemInt(ItemIntOp(x: element, out: start)), origin: node.origin),
                    Node(.addInt(AddIntOp(a: .value(start), b: .literal(1), out: stop)), origin: node.origin),
                    Node(.slice(SliceOp(x: t.x, out: t.out, axis: .literal(0), start: .value(start), stop: .value(stop))),
                         origin: node.origin),
                ]
                count += 1
            }
            graph.blocks[b].nodes = rewritten
        }
        return count
    }
}
