import MLXCIR

/// Reference kernels of plain-export weight dequantization: torchao's `dequantize_affine` (block-wise
/// scales and zero points over integer codes as stored) and the load-time repack of such a weight into
/// MLX's affine layout (`pack_affine_weight`, made by fuse-dequant-matmul).
extension Environment {
    mutating func executeDequantizeAffine(_ op: Op) throws -> Bool {
        switch op {
        case .dequantizeAffine(let o):
            set(o.out, try Self.dequantizeAffine(try tensor(o.x), blockSize: o.blockSize, scale: try tensor(o.scale),
                                                 zeroPoint: try optional(o.zeroPoint), dtype: o.dtype ?? .f32))
        case .packAffineWeight(let o):
            let packed = try Self.packAffineWeight(try tensor(o.q), scale: try tensor(o.scale), zeroPoint: try optional(o.zeroPoint),
                                                   quantMin: o.quantMin, bits: o.bits, groupSize: o.groupSize)
            guard o.outs.count == 3 else { throw ReferenceError("pack_affine_weight has \(o.outs.count) results, 3 needed") }
            for (v, t) in zip(o.outs, [packed.w, packed.scales, packed.biases]) { set(v, t) }
        default:
            return false
        }
        return true
    }

    /// torchao `_dequantize_affine_no_dtype_check`: `(x.to(dtype) − zero_point.to(dtype)) · scale`, the
    /// product in the promotion of `dtype` and scale's dtype, then cast to `dtype`.
    static func dequantizeAffine(_ x: HostTensor, blockSize: [Int], scale: HostTensor, zeroPoint: HostTensor?,
                                 dtype: DType) throws -> HostTensor {
        guard blockSize.count == x.rank, blockSize.allSatisfy({ $0 > 0 }) else {
            throw ReferenceError("dequantize_affine: block_size \(blockSize) does not fit x \(x.shape)")
        }
        guard zip(x.shape, blockSize).allSatisfy({ $0 % $1 == 0 }) else {
            throw ReferenceError("dequantize_affine: x \(x.shape) does not split into blocks \(blockSize)")
        }
        let grid = zip(x.shape, blockSize).map { $0 / $1 }
        let blocks = grid.reduce(1, *)
        guard scale.count == blocks, zeroPoint.map({ $0.count == blocks }) ?? true else {
            throw ReferenceError("dequantize_affine: scale \(scale.shape) / zero_point \(zeroPoint?.shape ?? []) need \(blocks) elements (blocks \(blockSize) of \(x.shape))")
        }
        let product = Broadcast.promote(dtype, scale.dtype)
        let strides = x.strides, gridStrides = HostTensor.strides(grid)
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            var b = 0, rest = i
            for d in 0..<x.rank {
                let idx = rest / strides[d]
                rest %= strides[d]
                b += (idx / blockSize[d]) * gridStrides[d]
            }
            let q = DTypeCodec.round(x.storage[i], to: dtype)
            let z = zeroPoint.map { DTypeCodec.round($0.storage[b], to: dtype) } ?? 0
            let diff = DTypeCodec.round(q - z, to: dtype)
            out[i] = DTypeCodec.round(diff * scale.storage[b], to: product)
        }
        return HostTensor(dtype: dtype, shape: x.shape, storage: out)
    }

    /// q [N, K] with one scale/zero point per `groupSize` columns → MLX affine: u = q − quant_min packed
    /// LSB-first (32/bits codes per uint32 word), scales as f32, biases = scale · (quant_min − zero_point) in f32,
    /// so that scale · u + bias = (q − zero_point) · scale.
    static func packAffineWeight(_ q: HostTensor, scale: HostTensor, zeroPoint: HostTensor?, quantMin: Int, bits: Int,
                                 groupSize: Int) throws -> (w: HostTensor, scales: HostTensor, biases: HostTensor) {
        guard q.rank == 2, [2, 4, 8].contains(bits), groupSize > 0 else {
            throw ReferenceError("pack_affine_weight: codes \(q.shape), \(bits) bits, group \(groupSize) are not supported")
        }
        let (n, k) = (q.shape[0], q.shape[1])
        guard k % groupSize == 0, (k * bits) % 32 == 0 else {
            throw ReferenceError("pack_affine_weight: \(k) columns do not split into groups of \(groupSize) and whole words")
        }
        let groups = k / groupSize
        guard scale.count == n * groups, zeroPoint.map({ $0.count == n * groups }) ?? true else {
            throw ReferenceError("pack_affine_weight: scale \(scale.shape) does not hold one element per group of \(q.shape)")
        }
        let perWord = 32 / bits, words = k / perWord, top = (1 << bits) - 1
        var w = [Double](repeating: 0, count: n * words)
        for r in 0..<n {
            for word in 0..<words {
                var acc: UInt32 = 0
                for j in 0..<perWord {
                    let col = word * perWord + j
                    let code = Int(Int64(clampingToInt: q.storage[r * k + col])) - quantMin
                    guard code >= 0, code <= top else {
                        throw ReferenceError("pack_affine_weight: code \(code + quantMin) at [\(r), \(col)] is outside [\(quantMin), \(quantMin + top)]")
                    }
                    acc |= UInt32(code) << UInt32(j * bits)
                }
                w[r * words + word] = Double(acc)
            }
        }
        let scales = scale.storage.map { DTypeCodec.round($0, to: .f32) }
        let biases = scales.indices.map { g in DTypeCodec.round(scales[g] * Double(quantMin - Int(Int64(clampingToInt: zeroPoint?.storage[g] ?? 0))), to: .f32) }
        return (HostTensor(dtype: .u32, shape: [n, words], storage: w),
                HostTensor(dtype: .f32, shape: [n, groups], storage: scales),
                HostTensor(dtype: .f32, shape: [n, groups], storage: biases))
    }
}
