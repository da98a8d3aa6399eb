import MLXCIR

extension Environment {
    /// Control flow and ops that do nothing or cannot run here.
    mutating func executeControlFlow(_ op: Op) throws -> Bool {
        switch op {
        case .noop:
            break
        case .if(let o):
            let taken = try int(o.cond) != 0 ? o.thenChainIdx : o.elseChainIdx
            guard executor.graph.blocks.indices.contains(taken) else { throw ReferenceError("if: block \(taken) does not exist") }
            let saved = location
            try run(block: taken)
            location = saved
        case .scan:
            throw ReferenceError("scan is not supported by the reference executor yet")
        case .delegateCall(let o):
            throw ReferenceError("delegate_call to \(o.backendId) (delegate \(o.delegateIndex)) is opaque: mlxc cannot run that backend's payload")
        case .randomBits:
            throw ReferenceError("random_bits is not supported by the reference executor yet")
        default:
            return false
        }
        return true
    }
}
