import MLXCIR

extension Environment {
    /// Reference kernels: Elementwise ops. Returns false for ops of other families.
    mutating func executeElementwise(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
