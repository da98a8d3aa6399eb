import MLXCIR

extension Environment {
    /// Reference kernels: Shape ops. Returns false for ops of other families.
    mutating func executeShape(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
