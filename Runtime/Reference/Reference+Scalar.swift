import MLXCIR

extension Environment {
    /// Reference kernels: Scalar ops. Returns false for ops of other families.
    mutating func executeScalar(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
