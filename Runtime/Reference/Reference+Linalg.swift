import MLXCIR

extension Environment {
    /// Reference kernels: Linalg ops. Returns false for ops of other families.
    mutating func executeLinalg(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
