import Foundation
import MLXCIR

/// Reference kernels for quantized weights: MLX affine (2/3/4/5/6/8-bit, LSB-first in uint32 words),
/// NVFP4 and MXFP4 (FP4 E2M1 codes), MXFP8 (E4M3 codes), and ExecuTorch's quantized embeddings.
/// Every kernel dequantizes first and then computes — the definition the fast kernels are held to.
extension Environment {
    mutating func executeQuantized(_ op: Op) throws -> Bool {
        switch op {
        case .dequantize(let o):
            let scales = try tensor(o.scales)
            var w = try Self.dequantize(try tensor(o.w), scales: scales, biases: try optional(o.biases),
                                        groupSize: o.groupSize, bits: o.bits, mode: o.mode)
            if let g = try optional(o.globalScale) { w = try Broadcast.map(w, g, dtype: w.dtype, *) }
            w.dtype = o.dtype ?? scales.dtype
            set(o.out, w)
        case .quantizedMatmul(let o):
            let x = try tensor(o.x)
            let w = try Self.dequantize(try tensor(o.w), scales: try tensor(o.scales), biases: try optional(o.biases),
                                        groupSize: o.groupSize, bits: o.bits, mode: o.mode)
            set(o.out, try Self.matmul(x, o.transpose ? Self.swapLastTwo(w) : w, dtype: x.dtype))
        case .gatherQmm(let o):
            let x = try tensor(o.x)
            let w = try Self.dequantize(try tensor(o.w), scales: try tensor(o.scales), biases: try optional(o.biases),
                                        groupSize: o.groupSize, bits: o.bits, mode: o.mode)
            set(o.out, try Self.gatherMatmul(x, o.transpose ? Self.swapLastTwo(w) : w, lhs: try optional(o.lhsIndices),
                                             rhs: try optional(o.rhsIndices), dtype: x.dtype))
        case .quantizedEmbedding(let o):
            try set(o.out, quantizedEmbedding(o))
        default:
            return false
        }
        return true
    }

    /// Unpacks `w` (uint32 words along the last axis) to values, grouped along the last axis.
    static func dequantize(_ w: HostTensor, scales: HostTensor, biases: HostTensor?, groupSize: Int, bits: Int, mode: String) throws -> HostTensor {
        guard w.rank >= 1, let words = w.shape.last else { throw ReferenceError("dequantize: packed weight of shape \(w.shape)") }
        let codeBits: Int
        switch mode {
        case "affine":
            guard [2, 3, 4, 5, 6, 8].contains(bits) else { throw ReferenceError("dequantize: \(bits)-bit affine is not supported") }
            guard biases != nil else { throw ReferenceError("dequantize: affine mode needs biases") }
            codeBits = bits
        case "nvfp4", "mxfp4": codeBits = 4
        case "mxfp8": codeBits = 8
        default: throw ReferenceError("dequantize: unknown quantization mode \"\(mode)\"")
        }
        let k = words * 32 / codeBits
        guard groupSize > 0, k % groupSize == 0 else { throw ReferenceError("dequantize: \(k) columns do not split into groups of \(groupSize)") }
        let groups = k / groupSize
        let rows = w.count / words
        guard scales.count == rows * groups, biases.map({ $0.count == rows * groups }) ?? true else {
            throw ReferenceError("dequantize: scales \(scales.shape) do not match \(rows) rows × \(groups) groups of weight \(w.shape)")
        }
        var out = [Double](repeating: 0, count: rows * k)
        for r in 0..<rows {
            // Values straddle word boundaries for 3/5/6 bits: read them from a little-endian bit stream.
            for j in 0..<k {
                let bit = j * codeBits
                let word = bit / 32, shift = bit % 32
                var code = UInt64(UInt32(truncatingIfNeeded: Int64(clampingToInt: w.storage[r * words + word]))) >> UInt64(shift)
                if shift + codeBits > 32, word + 1 < words {
                    code |= UInt64(UInt32(truncatingIfNeeded: Int64(clampingToInt: w.storage[r * words + word + 1]))) << UInt64(32 - shift)
                }
                code &= (1 << UInt64(codeBits)) - 1
                let g = r * groups + j / groupSize
                let s = scales.storage[g]
                switch mode {
                case "affine": out[r * k + j] = s * Double(code) + biases!.storage[g]
                case "nvfp4": out[r * k + j] = fp4(UInt8(code)) * DTypeCodec.fp8e4m3ToDouble(UInt8(truncatingIfNeeded: Int64(clampingToInt: s)))
                case "mxfp4": out[r * k + j] = fp4(UInt8(code)) * e8m0(s)
                default: out[r * k + j] = DTypeCodec.fp8e4m3ToDouble(UInt8(code)) * e8m0(s)
                }
            }
        }
        let dtype: DType = scales.dtype.isFloatingPoint ? scales.dtype : .f32
        return HostTensor(dtype: dtype, shape: Array(w.shape.dropLast()) + [k], storage: out)
    }

    /// FP4 E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit.
    static func fp4(_ code: UInt8) -> Double {
        let magnitudes: [Double] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
        return (code & 8 != 0 ? -1 : 1) * magnitudes[Int(code & 7)]
    }

    /// E8M0 scale stored as a uint8 exponent (bias 127).
    static func e8m0(_ s: Double) -> Double {
        let e = Int(Int64(clampingToInt: s)) & 0xFF
        return e == 0xFF ? .nan : Double(sign: .plus, exponent: e - 127, significand: 1)
    }

    static func swapLastTwo(_ w: HostTensor) -> HostTensor {
        guard w.rank >= 2 else { return w }
        var perm = Array(0..<w.rank)
        perm.swapAt(w.rank - 1, w.rank - 2)
        return permute(w, perm)
    }

    /// NumPy-style matmul of x [..., M, K] (or [K]) with w [..., K, N], batch dims broadcast.
    static func matmul(_ x: HostTensor, _ w: HostTensor, dtype: DType) throws -> HostTensor {
        let a = x.rank == 1 ? x.reshaped([1, x.count]) : x
        let b = w.rank == 1 ? w.reshaped([w.count, 1]) : w
        let (m, k) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (k2, n) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        guard k == k2 else { throw ReferenceError("matmul: inner dimensions differ, \(x.shape) @ \(w.shape)") }
        let batch = try Broadcast.shape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)))
        let ae = try Broadcast.expand(a, to: batch + [m, k]), be = try Broadcast.expand(b, to: batch + [k, n])
        let count = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: count * m * n)
        for bi in 0..<count {
            for i in 0..<m {
                for p in 0..<k {
                    let av = ae.storage[(bi * m + i) * k + p]
                    if av == 0 { continue }
                    for j in 0..<n { out[(bi * m + i) * n + j] += av * be.storage[(bi * k + p) * n + j] }
                }
            }
        }
        var shape = batch + [m, n]
        if x.rank == 1 { shape.remove(at: shape.count - 2) }
        if w.rank == 1 { shape.removeLast() }
        return HostTensor(dtype: dtype, shape: shape, storage: out)
    }

    /// MLX `gather_mm`: batches of x [..., M, K] and w [..., K, N] picked by index arrays that broadcast
    /// together (absent indices mean "the batch index itself").
    static func gatherMatmul(_ x: HostTensor, _ w: HostTensor, lhs: HostTensor?, rhs: HostTensor?, dtype: DType) throws -> HostTensor {
        guard x.rank >= 2, w.rank >= 2 else { throw ReferenceError("gather matmul needs matrices, got \(x.shape) and \(w.shape)") }
        let (m, k) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let (k2, n) = (w.shape[w.rank - 2], w.shape[w.rank - 1])
        guard k == k2 else { throw ReferenceError("gather matmul: inner dimensions differ, \(x.shape) @ \(w.shape)") }
        let xBatch = x.count / (m * k), wBatch = w.count / (k * n)
        let xBatchShape = Array(x.shape.dropLast(2)), wBatchShape = Array(w.shape.dropLast(2))
        let li = lhs ?? HostTensor(dtype: .i64, shape: xBatchShape, storage: (0..<xBatch).map(Double.init))
        let ri = rhs ?? HostTensor(dtype: .i64, shape: wBatchShape, storage: (0..<wBatch).map(Double.init))
        let shape = try Broadcast.shape(li.shape, ri.shape)
        let l = try Broadcast.expand(li, to: shape), r = try Broadcast.expand(ri, to: shape)
        var out = [Double](repeating: 0, count: l.count * m * n)
        for e in 0..<l.count {
            let xi = Int(Int64(clampingToInt: l.storage[e])), wi = Int(Int64(clampingToInt: r.storage[e]))
            guard xi >= 0, xi < xBatch, wi >= 0, wi < wBatch else {
                throw ReferenceError("gather matmul: index \(xi) or \(wi) outside \(xBatch) / \(wBatch) batches")
            }
            for i in 0..<m {
                for p in 0..<k {
                    let av = x.storage[(xi * m + i) * k + p]
                    for j in 0..<n { out[(e * m + i) * n + j] += av * w.storage[(wi * k + p) * n + j] }
                }
            }
        }
        return HostTensor(dtype: dtype, shape: shape + [m, n], storage: out)
    }

    /// ExecuTorch's `quantized_decomposed::embedding_{byte,4bit,2bit}`: (q − zero_point) · scale per group.
    func quantizedEmbedding(_ o: QuantizedEmbeddingOp) throws -> HostTensor {
        let weight = try tensor(o.weight), scales = try tensor(o.scales), indices = try tensor(o.indices)
        let zeros = try optional(o.zeroPoints)
        guard weight.rank == 2 else { throw ReferenceError("quantized embedding weight must be 2-D, got \(weight.shape)") }
        let perByte = o.bits == 8 ? 1 : 8 / o.bits
        let rows = weight.shape[0], packed = weight.shape[1], dim = packed * perByte
        let groups = scales.rank == 2 ? scales.shape[1] : 1
        guard scales.shape.first == rows, groups > 0, dim % groups == 0 else {
            throw ReferenceError("quantized embedding scales \(scales.shape) do not fit weight \(weight.shape)")
        }
        let groupSize = dim / groups
        var out = [Double]()
        out.reserveCapacity(indices.count * dim)
        for index in indices.storage {
            let row = Int(Int64(clampingToInt: index))
            guard row >= 0, row < rows else { throw ReferenceError("quantized embedding index \(row) outside 0..<\(rows)") }
            for j in 0..<dim {
                let q: Double
                switch o.bits {
                case 8: q = weight.storage[row * packed + j]
                case 4:
                    let byte = Int(weight.storage[row * packed + j / 2])
                    q = Double((j % 2 == 0 ? byte >> 4 : byte) & 0xF) - 8   // even column in the high nibble
                case 2:
                    let byte = Int(weight.storage[row * packed + j / 4])
                    q = Double((byte >> (2 * (j % 4))) & 3) - 2
                default: throw ReferenceError("quantized embedding with \(o.bits) bits is not supported")
                }
                let g = row * groups + j / groupSize
                out.append((q - (zeros?.storage[g] ?? 0)) * scales.storage[g])
            }
        }
        let dtype = o.dtype ?? scales.dtype
        return HostTensor(dtype: dtype, shape: indices.shape + [dim], storage: out)
    }
}
