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
        case .randomBits(let o):
            set(o.out, try randomBits(o))
        default:
            return false
        }
        return true
    }
}

extension Environment {
    /// Uniform random bits: a counter-based generator keyed by the seed (or by a per-process
    /// sequence when there is none). Deterministic for a seed, but not MLX's exact threefry stream,
    /// so sampled tokens can differ from MLX's for the same seed.
    func randomBits(_ o: RandomBitsOp) throws -> HostTensor {
        let shape = try o.shape.map { try int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ReferenceError("random_bits shape \(shape)") }
        let dtype: DType
        switch o.width {
        case 1: dtype = .u8
        case 2: dtype = .u16
        case 4: dtype = .u32
        default: throw ReferenceError("random_bits width \(o.width) is not 1, 2 or 4 bytes")
        }
        var key: UInt64
        if let seed = o.seed { key = UInt64(bitPattern: Int64(clampingToInt: try tensor(seed).item())) } else {
            RandomSequence.counter &+= 1
            key = RandomSequence.counter
        }
        let count = shape.reduce(1, *)
        var out = [Double](repeating: 0, count: count)
        for i in 0..<count {
            var z = key &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            out[i] = Double(z & ((1 << UInt64(8 * o.width)) - 1))
        }
        return HostTensor(dtype: dtype, shape: shape, storage: out)
    }
}

/// The implicit key sequence for unseeded random ops.
enum RandomSequence {
    nonisolated(unsafe) static var counter: UInt64 = 0x6D6C_7863
}
