import MLXCIR

extension Environment {
    /// Reference kernels: Quantized ops. Returns false for ops of other families.
    mutating func executeQuantized(_ op: Op) throws -> Bool {
        switch op {
        default: return false
        }
    }
}
