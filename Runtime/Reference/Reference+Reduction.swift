import MLXCIR

extension Environment {
    /// Reference kernels: Reduction ops. Returns false for ops of other families.
    mutating func executeReduction(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
