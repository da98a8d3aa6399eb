import CLLVM
import LLVMKit

/// MLX affine dequantization to f32, `out[r, j] = s[r, g] · q[r, j] + b[r, g]` (g = j / groupSize),
/// with q packed LSB-first in uint32 words along the last axis — what a quantized embedding
/// table's gathered rows go through. One fused multiply-add per value (the reference's exact
/// product plus the bias, rounded once). Work items are rows of k values.
/// buffers: [w u32, scales, biases, out f32].
public enum DequantizeKernels {
    /// Codes must not straddle words and a vector must hold whole words.
    public static func supports(bits: Int, groupSize: Int, lanes: Int) -> Bool {
        [2, 4, 8].contains(bits) && groupSize % lanes == 0 && lanes % (32 / bits) == 0
    }

    public static func affine(k: Int, bits: Int, groupSize: Int, params: QuantizedLinearKernels.ParamType, lanes: Int) -> KernelDefinition {
        KernelDefinition(name: "dequantize_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_f32_k\(k)_v\(lanes)") { e in
            let b = e.b
            let w = e.buffer(0), scales = e.buffer(1), biases = e.buffer(2), out = e.buffer(3)
            let codesPerWord = 32 / bits
            let wordsPerVector = lanes / codesPerWord
            let wordsPerRow = k * bits / 32
            let groups = k / groupSize
            let vec = b.vector(b.f32, lanes)
            let spread = (0..<lanes).map { $0 / codesPerWord }
            let shifts = b.constVector((0..<lanes).map { b.i32(bits * ($0 % codesPerWord)) })
            let mask = b.splat(b.i32((1 << bits) - 1), lanes)
            func param(_ base: IRValue, _ index: IRValue) -> IRValue {
                switch params {
                case .f32: return b.load(b.f32, b.gep(b.f32, base, index))
                case .f16: return b.fpext(b.load(b.f16, b.gep(b.f16, base, index), align: 2), b.f32)
                case .bf16: return b.bitcast(b.shl(b.zext(b.load(b.i16, b.gep(b.i16, base, index), align: 2), b.i32), b.i32(16)), b.f32)
                }
            }
            b.loop(e.begin, e.end, "r") { row in
                b.loop(b.i64(0), b.i64(groups), "g") { g in
                    let pIndex = b.add(b.mul(row, b.i64(groups)), g)
                    let s = b.splat(param(scales, pIndex), lanes), bias = b.splat(param(biases, pIndex), lanes)
                    for v in 0..<(groupSize / lanes) {
                        let wordIndex = b.add(b.mul(row, b.i64(wordsPerRow)),
                                              b.add(b.mul(g, b.i64(groupSize * bits / 32)), b.i64(v * wordsPerVector)))
                        let words = b.load(b.vector(b.i32, wordsPerVector), b.gep(b.i32, w, wordIndex), align: 4)
                        let codes = b.uitofp(b.and(b.lshr(b.shuffle(words, words, spread), shifts), mask), vec)
                        let at = b.add(b.mul(row, b.i64(k)), b.add(b.mul(g, b.i64(groupSize)), b.i64(v * lanes)))
                        b.store(Lanes(b, lanes).exactFMA(s, codes, bias), b.gep(b.f32, out, at), align: 4)
                    }
                }
            }
        }
    }
}
