import MLXCIR

/// The load-time repack of plain exports' integer weights (`pack_affine_weight`, made by
/// fuse-dequant-matmul in the init block) done natively: codes read straight from the mapped file,
/// packed words, scales and biases written once into owned buffers. The reference executor would
/// decode every code into a Double first (8 bytes per weight, kept for the program's life); the
/// result is the same (`Environment.packAffineWeight` is the definition, JITDequantMatmulTests hold
/// the compiled linears to it).
extension JITProgram {
    /// Takes the init block's pack_affine_weight nodes out of `graph` (for the reference executor, which
    /// then does not run them); returns them in order. Their operands are constants, their results read
    /// only by compiled kernels, so nothing else in the init block depends on them.
    static func takePackNodes(_ graph: inout Graph) -> [PackAffineWeightOp] {
        guard let i = graph.initBlock else { return [] }
        var taken: [PackAffineWeightOp] = []
        let values = graph.values
        var nodes = graph.blocks[i].nodes
        nodes.removeAll { node in
            guard case .packAffineWeight(let o) = node.op, o.outs.count == 3,
                  ([o.q, o.scale] + (o.zeroPoint.map { [$0] } ?? [])).allSatisfy({ v in
                      if case .constant = values[v.index].kind { return true } else { return false } }) else { return false }
            taken.append(o)
            return true
        }
        graph.blocks[i].nodes = nodes
        return taken
    }

    func packAffineWeights(_ ops: [PackAffineWeightOp]) throws {
        for o in ops {
            guard let q = baseValues[o.q.index], let scale = baseValues[o.scale.index] else {
                throw ReferenceError("pack_affine_weight: codes \(o.q) or scales \(o.scale) are not loaded")
            }
            let zero = try o.zeroPoint.map { v -> NativeTensor in
                guard let t = baseValues[v.index] else { throw ReferenceError("pack_affine_weight: zero points \(v) are not loaded") }
                return t
            }
            guard q.shape.count == 2, [2, 4, 8].contains(o.bits), o.groupSize > 0 else {
                throw ReferenceError("pack_affine_weight: codes \(q.shape), \(o.bits) bits, group \(o.groupSize) are not supported")
            }
            let (n, k, bits, g) = (q.shape[0], q.shape[1], o.bits, o.groupSize)
            guard k % g == 0, (k * bits) % 32 == 0, scale.count == n * (k / g), zero.map({ $0.count == n * (k / g) }) ?? true else {
                throw ReferenceError("pack_affine_weight: scales \(scale.shape) / zero points do not fit codes \(q.shape) in groups of \(g)")
            }
            let perWord = 32 / bits, words = k / perWord, groups = n * (k / g), top = (1 << bits) - 1
            let w = allocateOwned(n * words * 4).bindMemory(to: UInt32.self, capacity: n * words)
            let s = allocateOwned(groups * 4).bindMemory(to: Float.self, capacity: groups)
            let b = allocateOwned(groups * 4).bindMemory(to: Float.self, capacity: groups)
            let code = try Self.integerReader(q, "codes")
            let zp = try zero.map { try Self.integerReader($0, "zero points") }
            let sc = try Self.floatReader(scale)
            for r in 0..<n {
                for word in 0..<words {
                    var acc: UInt32 = 0
                    for j in 0..<perWord {
                        let col = word * perWord + j
                        let u = code(r * k + col) - o.quantMin
                        guard u >= 0, u <= top else {
                            throw ReferenceError("pack_affine_weight: code \(u + o.quantMin) at [\(r), \(col)] is outside [\(o.quantMin), \(o.quantMin + top)]")
                        }
                        acc |= UInt32(u) << UInt32(j * bits)
                    }
                    w[r * words + word] = acc
                }
            }
            for i in 0..<groups {
                s[i] = sc(i)
                // Same rounding as the reference: the exact product s·(lo − z), rounded once to f32.
                b[i] = Float(Double(s[i]) * Double(o.quantMin - (zp?(i) ?? 0)))
            }
            baseValues[o.outs[0].index] = NativeTensor(dtype: .u32, shape: [n, words], data: UnsafeMutableRawPointer(w))
            baseValues[o.outs[1].index] = NativeTensor(dtype: .f32, shape: [n, k / g], data: UnsafeMutableRawPointer(s))
            baseValues[o.outs[2].index] = NativeTensor(dtype: .f32, shape: [n, k / g], data: UnsafeMutableRawPointer(b))
        }
    }

    static func integerReader(_ t: NativeTensor, _ what: String) throws -> (Int) -> Int {
        let p = UnsafeRawPointer(t.data)
        switch t.dtype {
        case .i8: return { Int(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8: return { Int(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case .i16: return { Int(p.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
        case .i32: return { Int(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case .i64: return { Int(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        default: throw ReferenceError("pack_affine_weight: \(what) of dtype \(t.dtype.name) are not integers")
        }
    }

    static func floatReader(_ t: NativeTensor) throws -> (Int) -> Float {
        let p = UnsafeRawPointer(t.data)
        switch t.dtype {
        case .f32: return { p.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .bf16: return { Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
        case .f16: return { DTypeCodec.halfToFloat(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        default: throw ReferenceError("pack_affine_weight: scales of dtype \(t.dtype.name) are not floats")
        }
    }
}
