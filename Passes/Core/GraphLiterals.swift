import MLXCIR

extension Graph {
    /// An int operand's value when it is known at compile time: a literal, or a one-element literal
    /// constant holding a whole number (nil otherwise). Patterns read axes, bounds and steps through it.
    public func literalInt(_ x: IntOrValue) -> Int64? {
        switch x {
        case .literal(let n): return n
        case .value(let v):
            guard case .constant(.literal(let xs)) = self[v].kind, xs.count == 1 else { return nil }
            return Int64(exactly: xs[0])
        }
    }
}
