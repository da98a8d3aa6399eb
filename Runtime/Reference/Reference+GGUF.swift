import MLXCIR

/// `gguf_dequantize`: GGUF K-quant rows decoded as llama.cpp's dequantize_row_q{4,5,6}_K do (f32 arithmetic), then
/// rounded once to the result's dtype. A block whose f16 scale is not finite is an error naming the row and block.
extension Environment {
    mutating func executeGGUF(_ op: Op) throws -> Bool {
        guard case .ggufDequantize(let o) = op else { return false }
        set(o.out, try Self.ggufDequantize(try tensor(o.weight), type: o.ggmlType, dtype: o.dtype ?? .f32))
        return true
    }

    static func ggufDequantize(_ w: HostTensor, type: String, dtype: DType) throws -> HostTensor {
        guard let blockBytes = GGUFBlocks.blockBytes(type) else { throw ReferenceError("gguf_dequantize: ggml_type \"\(type)\" is not q4_k, q5_k or q6_k") }
        guard w.dtype == .u8, w.rank == 2, w.shape[1] % blockBytes == 0 else {
            throw ReferenceError("gguf_dequantize: weight \(w.dtype.name)\(w.shape) is not u8 rows of whole \(type) blocks (\(blockBytes) bytes)")
        }
        let rows = w.shape[0], blocks = w.shape[1] / blockBytes, k = blocks * GGUFBlocks.valuesPerBlock
        let bytes = w.storage.map { UInt8(clamping: Int($0)) }
        var out = [Double](repeating: 0, count: rows * k)
        var y = [Float](repeating: 0, count: GGUFBlocks.valuesPerBlock)
        for r in 0..<rows {
            for b in 0..<blocks {
                let at = (r * blocks + b) * blockBytes
                do {
                    try bytes.withUnsafeBufferPointer { all in
                        let q = UnsafeBufferPointer(rebasing: all[at..<(at + blockBytes)])
                        switch type {
                        case "q4_k": try q4k(q, &y)
                        case "q5_k": try q5k(q, &y)
                        default: try q6k(q, &y)
                        }
                    }
                } catch let e as ReferenceError {
                    throw ReferenceError("gguf_dequantize: \(type) weight row \(r) block \(b): \(e.message)")
                }
                for (i, v) in y.enumerated() { out[r * k + b * GGUFBlocks.valuesPerBlock + i] = Double(v) }
            }
        }
        return HostTensor(dtype: dtype, shape: [rows, k], storage: out)
    }

    /// IEEE half at `q[i]` (little-endian).
    static func half(_ q: UnsafeBufferPointer<UInt8>, _ i: Int) throws -> Float {
        let bits = UInt16(q[i]) | UInt16(q[i + 1]) << 8
        let sign: Float = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int(bits >> 10 & 0x1F), mantissa = Float(bits & 0x3FF)
        guard exponent != 31 else { throw ReferenceError("its scale is not finite (f16 bits 0x\(String(bits, radix: 16)))") }
        return exponent == 0 ? sign * mantissa * 0x1p-24 : sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
    }

    /// Scale and min of sub-block j from the 12 packed bytes at `s` (get_scale_min_k4).
    static func scaleMin(_ j: Int, _ q: UnsafeBufferPointer<UInt8>, _ s: Int) -> (Float, Float) {
        if j < 4 { return (Float(q[s + j] & 63), Float(q[s + j + 4] & 63)) }
        return (Float((q[s + j + 4] & 0xF) | ((q[s + j - 4] >> 6) << 4)), Float((q[s + j + 4] >> 4) | ((q[s + j] >> 6) << 4)))
    }

    /// d(0:2) dmin(2:4) scales(4:16) qs(16:144).
    static func q4k(_ q: UnsafeBufferPointer<UInt8>, _ y: inout [Float]) throws {
        let d = try half(q, 0), dmin = try half(q, 2)
        for j in 0..<4 {
            let (sc1, m1) = scaleMin(2 * j, q, 4), (sc2, m2) = scaleMin(2 * j + 1, q, 4)
            let d1 = d * sc1, mn1 = dmin * m1, d2 = d * sc2, mn2 = dmin * m2
            for l in 0..<32 {
                let byte = q[16 + 32 * j + l]
                y[64 * j + l] = d1 * Float(byte & 0xF) - mn1
                y[64 * j + 32 + l] = d2 * Float(byte >> 4) - mn2
            }
        }
    }

    /// d(0:2) dmin(2:4) scales(4:16) qh(16:48) qs(48:176).
    static func q5k(_ q: UnsafeBufferPointer<UInt8>, _ y: inout [Float]) throws {
        let d = try half(q, 0), dmin = try half(q, 2)
        for j in 0..<4 {
            let (sc1, m1) = scaleMin(2 * j, q, 4), (sc2, m2) = scaleMin(2 * j + 1, q, 4)
            let d1 = d * sc1, mn1 = dmin * m1, d2 = d * sc2, mn2 = dmin * m2
            let u1: UInt8 = 1 << (2 * j), u2: UInt8 = 2 << (2 * j)
            for l in 0..<32 {
                let byte = q[48 + 32 * j + l], high = q[16 + l]
                y[64 * j + l] = d1 * Float((byte & 0xF) + (high & u1 != 0 ? 16 : 0)) - mn1
                y[64 * j + 32 + l] = d2 * Float((byte >> 4) + (high & u2 != 0 ? 16 : 0)) - mn2
            }
        }
    }

    /// ql(0:128) qh(128:192) scales(192:208, int8) d(208:210).
    static func q6k(_ q: UnsafeBufferPointer<UInt8>, _ y: inout [Float]) throws {
        let d = try half(q, 208)
        for n in 0..<2 {
            let ql = 64 * n, qh = 128 + 32 * n, sc = 192 + 8 * n
            func scale(_ i: Int) -> Float { Float(Int8(bitPattern: q[sc + i])) }
            for l in 0..<32 {
                let s = l / 16
                let q1 = Int(q[ql + l] & 0xF | ((q[qh + l] >> 0) & 3) << 4) - 32
                let q2 = Int(q[ql + l + 32] & 0xF | ((q[qh + l] >> 2) & 3) << 4) - 32
                let q3 = Int(q[ql + l] >> 4 | ((q[qh + l] >> 4) & 3) << 4) - 32
                let q4 = Int(q[ql + l + 32] >> 4 | ((q[qh + l] >> 6) & 3) << 4) - 32
                y[128 * n + l] = d * scale(s) * Float(q1)
                y[128 * n + l + 32] = d * scale(s + 2) * Float(q2)
                y[128 * n + l + 64] = d * scale(s + 4) * Float(q3)
                y[128 * n + l + 96] = d * scale(s + 6) * Float(q4)
            }
        }
    }
}
