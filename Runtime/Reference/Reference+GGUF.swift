import MLXCIR

/// `gguf_dequantize`: GGUF K-quant rows decoded as llama.cpp's dequantize_row_q{4,5,6}_K do (f32 arithmetic), then
/// rounded once to the result's dtype. A block whose f16 scale is not finite is an error naming the row and block.
extension Environment {
    mutating func executeGGUF(_ op: Op) throws -> Bool {
        switch op {
        case .ggufDequantize(let o):
            set(o.out, try Self.ggufDequantize(try tensor(o.weight), type: o.ggmlType, dtype: o.dtype ?? .f32))
        case .ggufPackAffine(let o):
            let w = try tensor(o.weight)
            guard let blockBytes = GGUFBlocks.blockBytes(o.ggmlType), let layout = GGUFBlocks.affineLayout(o.ggmlType),
                  o.outs.count == 3 else {
                throw ReferenceError("gguf_pack_affine: ggml_type \"\(o.ggmlType)\" is not q4_k, q5_k or q6_k, or not 3 results")
            }
            guard w.dtype == .u8, w.rank == 2, w.shape[1] % blockBytes == 0 else {
                throw ReferenceError("gguf_pack_affine: weight \(w.dtype.name)\(w.shape) is not u8 rows of whole \(o.ggmlType) blocks (\(blockBytes) bytes)")
            }
            let rows = w.shape[0], k = w.shape[1] / blockBytes * GGUFBlocks.valuesPerBlock
            let wordCount = rows * k * layout.bits / 32, groups = rows * k / layout.groupSize
            var words = [UInt32](repeating: 0, count: wordCount)
            var scales = [Float](repeating: 0, count: groups), biases = [Float](repeating: 0, count: groups)
            let bytes = w.storage.map { UInt8(clamping: Int($0)) }
            try bytes.withUnsafeBufferPointer { raw in
                try words.withUnsafeMutableBufferPointer { wp in
                    try scales.withUnsafeMutableBufferPointer { sp in
                        try biases.withUnsafeMutableBufferPointer { bp in
                            try Self.packAffine(raw, rows: rows, rowBytes: w.shape[1], type: o.ggmlType, words: wp.baseAddress!,
                                                scales: sp.baseAddress!, biases: bp.baseAddress!)
                        }
                    }
                }
            }
            set(o.outs[0], HostTensor(dtype: .u32, shape: [rows, k * layout.bits / 32], storage: words.map(Double.init)))
            set(o.outs[1], HostTensor(dtype: .f32, shape: [rows, k / layout.groupSize], storage: scales.map(Double.init)))
            set(o.outs[2], HostTensor(dtype: .f32, shape: [rows, k / layout.groupSize], storage: biases.map(Double.init)))
        default:
            return false
        }
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
        var block = AffineBlock()
        for r in 0..<rows {
            for b in 0..<blocks {
                let at = (r * blocks + b) * blockBytes
                do {
                    try bytes.withUnsafeBufferPointer { all in
                        let q = UnsafeBufferPointer(rebasing: all[at..<(at + blockBytes)])
                        try decode(type, q, &block)
                        values(type, block, &y)
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

    /// One super-block as affine groups: codes u[256] (unsigned), and per group (32 values for q4_k/q5_k, 16 for
    /// q6_k) the f32 scale and bias with value = scale · u + bias — for q6_k, bias = −32 · scale and the value is
    /// scale · (u − 32). Every scale/bias is an exact f32 product (an f16 times a ≤ 8-bit integer).
    struct AffineBlock {
        var codes = [UInt8](repeating: 0, count: GGUFBlocks.valuesPerBlock)
        var scales = [Float](repeating: 0, count: 16), biases = [Float](repeating: 0, count: 16)
    }

    static func decode(_ type: String, _ q: UnsafeBufferPointer<UInt8>, _ a: inout AffineBlock) throws {
        switch type {
        case "q4_k", "q5_k":
            // d(0:2) dmin(2:4) scales(4:16), then q4_k: qs(16:144); q5_k: qh(16:48) qs(48:176).
            let d = try half(q, 0), dmin = try half(q, 2)
            let five = type == "q5_k", qs = five ? 48 : 16
            for j in 0..<8 {
                let (sc, m) = scaleMin(j, q, 4)
                a.scales[j] = d * sc
                a.biases[j] = -(dmin * m)
            }
            for j in 0..<4 {
                for l in 0..<32 {
                    let byte = q[qs + 32 * j + l], high: UInt8 = five ? q[16 + l] : 0
                    a.codes[64 * j + l] = (byte & 0xF) | (high >> (2 * j) & 1) << 4
                    a.codes[64 * j + 32 + l] = (byte >> 4) | (high >> (2 * j + 1) & 1) << 4
                }
            }
        default:
            // ql(0:128) qh(128:192) scales(192:208, int8) d(208:210).
            let d = try half(q, 208)
            for i in 0..<16 {
                a.scales[i] = d * Float(Int8(bitPattern: q[192 + i]))
                a.biases[i] = -32 * a.scales[i]
            }
            for n in 0..<2 {
                let ql = 64 * n, qh = 128 + 32 * n
                for l in 0..<32 {
                    a.codes[128 * n + l] = q[ql + l] & 0xF | (q[qh + l] & 3) << 4
                    a.codes[128 * n + l + 32] = q[ql + l + 32] & 0xF | (q[qh + l] >> 2 & 3) << 4
                    a.codes[128 * n + l + 64] = q[ql + l] >> 4 | (q[qh + l] >> 4 & 3) << 4
                    a.codes[128 * n + l + 96] = q[ql + l + 32] >> 4 | (q[qh + l] >> 6 & 3) << 4
                }
            }
        }
    }

    /// The 256 values of a block as llama.cpp's dequantize_row_q{4,5,6}_K compute them in f32.
    static func values(_ type: String, _ a: AffineBlock, _ y: inout [Float]) {
        let group = type == "q6_k" ? 16 : 32
        for i in 0..<GGUFBlocks.valuesPerBlock {
            let g = i / group, u = Float(a.codes[i])
            // d·sc·q − dmin·m (q4_k/q5_k); d·sc·(q − 32) (q6_k): one rounding after the exact products.
            y[i] = type == "q6_k" ? a.scales[g] * (u - 32) : a.scales[g] * u + a.biases[g]
        }
    }

    /// `gguf_pack_affine` on raw rows (u8, `rows` × `rowBytes`): the packed words, scales and biases, as the
    /// quantized matmul kernels read them (codes LSB first, 32/bits per u32 word).
    static func packAffine(_ bytes: UnsafeBufferPointer<UInt8>, rows: Int, rowBytes: Int, type: String,
                           words: UnsafeMutablePointer<UInt32>, scales: UnsafeMutablePointer<Float>,
                           biases: UnsafeMutablePointer<Float>) throws {
        guard let blockBytes = GGUFBlocks.blockBytes(type), let layout = GGUFBlocks.affineLayout(type) else {
            throw ReferenceError("gguf_pack_affine: ggml_type \"\(type)\" is not q4_k, q5_k or q6_k")
        }
        let blocks = rowBytes / blockBytes, k = blocks * GGUFBlocks.valuesPerBlock
        let perWord = 32 / layout.bits, groupsPerBlock = GGUFBlocks.valuesPerBlock / layout.groupSize
        var a = AffineBlock()
        for r in 0..<rows {
            for b in 0..<blocks {
                let at = r * rowBytes + b * blockBytes
                do {
                    try decode(type, UnsafeBufferPointer(rebasing: bytes[at..<(at + blockBytes)]), &a)
                } catch let e as ReferenceError {
                    throw ReferenceError("gguf_pack_affine: \(type) weight row \(r) block \(b): \(e.message)")
                }
                let wordBase = (r * k + b * GGUFBlocks.valuesPerBlock) / perWord
                for w in 0..<(GGUFBlocks.valuesPerBlock / perWord) {
                    var acc: UInt32 = 0
                    for j in 0..<perWord { acc |= UInt32(a.codes[w * perWord + j]) << UInt32(j * layout.bits) }
                    words[wordBase + w] = acc
                }
                let groupBase = (r * k + b * GGUFBlocks.valuesPerBlock) / layout.groupSize
                for g in 0..<groupsPerBlock {
                    scales[groupBase + g] = a.scales[g]
                    biases[groupBase + g] = a.biases[g]
                }
            }
        }
    }
}
