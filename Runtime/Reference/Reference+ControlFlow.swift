import MLXCIR

extension Environment {
    /// Reference kernels: ControlFlow ops. Returns false for ops of other families.
    mutating func executeControlFlow(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
