import MLXCIR

/// The ops the fusion passes make run as their unfused form (`FusedOps.unfused`): the reference
/// is the definition the fused kernels are held to.
extension Environment {
    mutating func executeFused(_ op: Op) throws -> Bool {
        // Intermediates get ids no graph value has (negative), private to this call.
        guard let ops = FusedOps.unfused(op, temp: { ValueID(-1 - $0) }) else { return false }
        for inner in ops { try execute(inner) }
        for (v, _) in values where v.index < 0 { values[v] = nil }
        return true
    }
}
