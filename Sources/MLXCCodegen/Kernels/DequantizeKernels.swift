import CLLVM
import LLVMKit

/// MLX affine dequantization to f32, `out[r, j] = s[r, g] · q[r, j] + b[r, g]` (g = j / groupSize),
/// with q packed LSB-first in uint32 words along the last axis (a little-endian bit stream: 3/5/6-bit
/// codes straddle words) — what a quantized embedding table's gathered rows go through. One fused
/// multiply-add per value (the reference's exact product plus the bias, rounded once). Work items
/// are rows of k values.
///
/// A group starts on a word boundary, so within a group every vector's bit offset is a
/// compile-time constant: a vector of codes is the few words it spans (one word broadcast when a
/// word holds more codes than the vector has lanes, e.g. 2-bit on 8 or 4 lanes), spread to the
/// lanes by a constant shuffle, shifted and masked; a code that straddles two words takes its
/// high bits from the next one. Vectors are `gcd(lanes, groupSize)` wide so none crosses a group.
/// buffers: [w u32, scales, biases, out (f32, bf16 or f16)].
public enum DequantizeKernels {
    /// Any MLX bit width whose groups start on a word boundary (every group size MLX uses), at any
    /// vector width.
    public static func supports(bits: Int, groupSize: Int, lanes: Int) -> Bool {
        [2, 3, 4, 5, 6, 8].contains(bits) && groupSize > 0 && groupSize * bits % 32 == 0 && lanes > 0
    }

    /// Lanes per vector: the widest power of two dividing both the register width and the group.
    static func vectorLanes(groupSize: Int, lanes: Int) -> Int {
        var width = 1
        while width * 2 <= lanes, lanes % (width * 2) == 0, groupSize % (width * 2) == 0 { width *= 2 }
        return width
    }

    /// `out`: the result's dtype (f32, or bf16 / f16 for a half-precision export's embedding rows:
    /// the f32 value rounded once more, as the reference rounds its Double result through f32).
    public static func affine(k: Int, bits: Int, groupSize: Int, params: QuantizedLinearKernels.ParamType, out outType: ElementType = .f32,
                              lanes: Int) -> KernelDefinition {
        precondition(supports(bits: bits, groupSize: groupSize, lanes: lanes) && k % groupSize == 0 && k * bits % 32 == 0)
        precondition([.f32, .bf16, .f16].contains(outType))
        return KernelDefinition(name: "dequantize_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_\(outType.tag)_k\(k)_v\(lanes)") { e in
            let b = e.b
            let w = e.buffer(0), scales = e.buffer(1), biases = e.buffer(2), out = e.buffer(3)
            let width = vectorLanes(groupSize: groupSize, lanes: lanes)
            let wordsPerRow = k * bits / 32, wordsPerGroup = groupSize * bits / 32
            let groups = k / groupSize
            let vec = b.vector(b.f32, width)
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
                    let s = b.splat(param(scales, pIndex), width), bias = b.splat(param(biases, pIndex), width)
                    let groupWord = b.add(b.mul(row, b.i64(wordsPerRow)), b.mul(g, b.i64(wordsPerGroup)))
                    for v in 0..<(groupSize / width) {
                        let codes = b.uitofp(codeVector(b, words: w, groupWord: groupWord, firstBit: v * width * bits,
                                                        width: width, bits: bits), vec)
                        let at = b.add(b.mul(row, b.i64(k)), b.add(b.mul(g, b.i64(groupSize)), b.i64(v * width)))
                        let l = Lanes(b, width)
                        l.storeF32(l.exactFMA(s, codes, bias), outType, out, at)
                    }
                }
            }
        }
    }

    /// `width` codes of `bits` bits (any width 1…8) as i32 lanes: bits [firstBit, firstBit + width·bits) of the bit
    /// stream starting at word `groupWord` of `words` (u32, LSB first). `firstBit` is a compile-time constant (a group
    /// starts on a word boundary), so the few words the codes span are loaded as one short vector, spread to the
    /// lanes by a constant shuffle, shifted and masked; a code that straddles two words takes its high bits from
    /// the next one.
    static func codeVector(_ b: Builder, words w: IRValue, groupWord: IRValue, firstBit first: Int, width: Int, bits: Int) -> IRValue {
        let firstWord = first / 32, lastWord = (first + width * bits - 1) / 32
        let count = lastWord - firstWord + 1
        let lane = (0..<width).map { first - 32 * firstWord + $0 * bits }   // bit offsets in `words`
        let words = b.load(b.vector(b.i32, count), b.gep(b.i32, w, b.add(groupWord, b.i64(firstWord))), align: 4)
        let low = b.lshr(b.shuffle(words, words, lane.map { $0 / 32 }), b.constVector(lane.map { b.i32($0 % 32) }))
        var packed = low
        if lane.contains(where: { $0 % 32 + bits > 32 }) {
            // The next word's low bits; a lane that does not straddle shifts them out (by 31 ≥ bits, never the
            // poison 32).
            let next = b.shuffle(words, words, lane.map { min($0 / 32 + 1, count - 1) })
            let shifts = lane.map { $0 % 32 + bits > 32 ? 32 - $0 % 32 : 31 }
            packed = b.or(low, b.shl(next, b.constVector(shifts.map { b.i32($0) })))
        }
        return b.and(packed, b.splat(b.i32((1 << bits) - 1), width))
    }
}
