import MLXCIR

extension Environment {
    /// Reference kernels: Indexing ops. Returns false for ops of other families.
    mutating func executeIndexing(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
