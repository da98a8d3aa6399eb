import MLXCIR

extension Environment {
    /// Reference kernels: LLM ops. Returns false for ops of other families.
    mutating func executeLLM(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
