import MLXCIR

/// Computes integer arithmetic on constant scalars at compile time (shape math such as
/// `add_int(64, 1)`): the node's result becomes a literal constant and the node goes away.
public struct FoldScalarConstants: GraphPass {
    public let name = "fold-scalar-constants"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var folded = 0
        func literal(_ x: IntOrValue) -> Int64? {
            switch x {
            case .literal(let n): return n
            case .value(let v):
                guard case .constant(.literal(let xs)) = graph.values[v.index].kind, xs.count == 1,
                      xs[0] == xs[0].rounded(), abs(xs[0]) < 9e15 else { return nil }
                return Int64(xs[0])
            }
        }
        for b in graph.blocks.indices {
            var nodes = graph.blocks[b].nodes
            nodes.removeAll { node in
                let value: Int64?
                let out: ValueID
                switch node.op {
                case .addInt(let o): out = o.out; value = literal(o.a).flatMap { a in literal(o.b).map { a &+ $0 } }
                case .subtractInt(let o): out = o.out; value = literal(o.a).flatMap { a in literal(o.b).map { a &- $0 } }
                case .multiplyInt(let o): out = o.out; value = literal(o.a).flatMap { a in literal(o.b).map { a &* $0 } }
                default: return false
                }
                guard let value else { return false }
                graph.values[out.index].kind = .constant(.literal([Double(value)]))
                graph.values[out.index].type = TensorType(.i64, [])
                folded += 1
                return true
            }
            graph.blocks[b].nodes = nodes
        }
        return folded
    }
}
