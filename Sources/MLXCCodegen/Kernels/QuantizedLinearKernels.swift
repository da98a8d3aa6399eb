import CLLVM
import LLVMKit

/// MLX affine quantized matmul, `out[m, n] = Σ_k x[m, k] · (s[n, g] · q[n, k] + b[n, g])`, with
/// q packed LSB-first in uint32 words along k (`w` is [N, K·bits/32]) and one scale and bias per
/// group of `groupSize` k. Weights are dequantized in registers and never written out:
/// per group, `Σ x·(s·q + b) = s·Σ x·q + b·Σ x`, accumulated in vectors, reduced once per output.
/// buffers: [x f32, w u32, scales, biases, out f32]; dims: [M]; work items: output columns n.
public enum QuantizedLinearKernels {
    public enum ParamType: String { case f32, bf16, f16 }

    /// Supported when codes do not straddle words and a vector holds whole words.
    public static func supports(bits: Int, groupSize: Int, lanes: Int) -> Bool {
        [2, 4, 8].contains(bits) && groupSize % lanes == 0 && lanes % (32 / bits) == 0
    }

    public static func affine(k: Int, n: Int, bits: Int, groupSize: Int, params: ParamType, lanes: Int) -> KernelDefinition {
        let name = "qmm_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_f32_k\(k)_n\(n)_v\(lanes)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), scales = e.buffer(2), biases = e.buffer(3), out = e.buffer(4)
            let m = e.dim(0)
            let vec = b.vector(b.f32, lanes)
            let codesPerWord = 32 / bits
            let wordsPerVector = lanes / codesPerWord
            let wordsPerRow = k * bits / 32
            let groups = k / groupSize
            let vectorsPerGroup = groupSize / lanes
            let wordVec = b.vector(b.i32, wordsPerVector)
            // Lane j takes word j / codesPerWord, shifted right by bits · (j % codesPerWord).
            let spread = (0..<lanes).map { $0 / codesPerWord }
            let shifts = b.constVector((0..<lanes).map { b.i32(bits * ($0 % codesPerWord)) })
            let mask = b.splat(b.i32((1 << bits) - 1), lanes)
            let tokensPerBlock = 4

            func param(_ base: IRValue, _ index: IRValue) -> IRValue {
                switch params {
                case .f32: return b.load(b.f32, b.gep(b.f32, base, index))
                case .f16: return b.fpext(b.load(b.f16, b.gep(b.f16, base, index), align: 2), b.f32)
                case .bf16:
                    let raw = b.zext(b.load(b.i16, b.gep(b.i16, base, index), align: 2), b.i32)
                    return b.bitcast(b.shl(raw, b.i32(16)), b.f32)
                }
            }

            func block(row: IRValue, t0: IRValue, nt: Int) {
                let zero = b.zero(vec)
                let initial = [IRValue](repeating: zero, count: 2 * nt)   // (scale part, bias part) per token
                let acc = b.loop(b.i64(0), b.i64(groups), carrying: initial, "g") { g, acc in
                    let pIndex = b.add(b.mul(row, b.i64(groups)), g)
                    let s = b.splat(param(scales, pIndex), lanes), bb = b.splat(param(biases, pIndex), lanes)
                    // Dequantize this group's codes once, for all tokens of the block.
                    var codes: [IRValue] = []
                    for v in 0..<vectorsPerGroup {
                        let wordIndex = b.add(b.mul(row, b.i64(wordsPerRow)),
                                              b.add(b.mul(g, b.i64(groupSize * bits / 32)), b.i64(v * wordsPerVector)))
                        let words = b.load(wordVec, b.gep(b.i32, w, wordIndex), align: 4)
                        let lanesOfWords = b.shuffle(words, words, spread)
                        codes.append(b.uitofp(b.and(b.lshr(lanesOfWords, shifts), mask), vec))
                    }
                    var next = acc
                    for t in 0..<nt {
                        let xRow = b.mul(b.add(t0, b.i64(t)), b.i64(k))
                        var qx: IRValue? = nil, xs: IRValue? = nil
                        for v in 0..<vectorsPerGroup {
                            let xv = b.load(vec, b.gep(b.f32, x, b.add(xRow, b.add(b.mul(g, b.i64(groupSize)), b.i64(v * lanes)))))
                            qx = qx.map { b.fma(codes[v], xv, $0) } ?? b.fmul(codes[v], xv)
                            xs = xs.map { b.fadd($0, xv) } ?? xv
                        }
                        next[2 * t] = b.fma(qx!, s, acc[2 * t])
                        next[2 * t + 1] = b.fma(xs!, bb, acc[2 * t + 1])
                    }
                    return next
                }
                for t in 0..<nt {
                    let sum = b.reduceAdd(b.fadd(acc[2 * t], acc[2 * t + 1]))
                    b.store(sum, b.gep(b.f32, out, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), row)))
                }
            }

            b.loop(e.begin, e.end, "n") { row in
                let mMain = b.mul(b.sdiv(m, b.i64(tokensPerBlock)), b.i64(tokensPerBlock))
                b.loop(b.i64(0), mMain, step: tokensPerBlock, "t") { t0 in block(row: row, t0: t0, nt: tokensPerBlock) }
                b.loop(mMain, m, "tt") { t0 in block(row: row, t0: t0, nt: 1) }
            }
        }
    }
}
