import CLLVM
import LLVMKit

extension DequantizeKernels {
    /// MLX `dequantize` of block-scaled float codes (nvfp4 / mxfp4 / mxfp8) to f32, bf16 or f16:
    /// `out[r, j] = code(w[r, j]) · scale[r, j / groupSize] (· global)` — what an nvfp4 embedding
    /// table's gathered rows go through (the MLX delegate passes nvfp4's per-tensor scale as the
    /// global scale). A vector holds `width` consecutive values: its words spread across the lanes
    /// and shifted per lane (`vpsrlvd`), the codes decoded as the matmul decodes them
    /// (`FloatQuantizedRows.value`), times the group's scale (exact: a few significant bits each),
    /// then times the global scale (one f32 rounding, as the reference's double product of two f32
    /// values rounds), rounded once to the result dtype. Work items are rows of k values.
    /// buffers: [w u32, scales u8, global scale?, out].
    public static func float(k: Int, mode: FloatQuantization, globalScale: ElementType?, out outType: ElementType,
                             lanes: Int) -> KernelDefinition {
        let width = Support.width(dividing: k, lanes: lanes)
        let permute16 = mode.codeBits == 4 && width == 16 && lanes == 16
        let name = "dequantize_\(mode.rawValue)_g\(mode.groupSize)" + (globalScale.map { "_gscale\($0.tag)" } ?? "")
            + "_\(outType.tag)_k\(k)_v\(width)\(permute16 ? "_vpermps" : "")"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let w = e.buffer(0), scales = e.buffer(1), out = e.buffer(globalScale == nil ? 2 : 3)
            let rows = FloatQuantizedRows(b, k: k, mode: mode, lanes: lanes)
            let l = Lanes(b, width)
            let global = globalScale.map { l.splat(Lanes(b, 1).loadF32($0, e.buffer(2), b.i64(0))) }
            let perWord = 32 / mode.codeBits, groups = k / mode.groupSize
            let wordsPerVector = max(1, width / perWord)
            let spread = (0..<width).map { $0 / perWord }
            let shifts = b.constVector((0..<width).map { b.i32(mode.codeBits * ($0 % perWord)) })
            b.loop(e.begin, e.end, "r") { row in
                b.loop(b.i64(0), b.i64(k / width), "v") { v in
                    let element = b.mul(v, b.i64(width))
                    let wordIndex = b.add(b.mul(row, b.i64(k / perWord)), b.sdiv(element, b.i64(perWord)))
                    let words: IRValue
                    if wordsPerVector == 1 && width < perWord {
                        // Fewer values than a word holds (tiny k): the word itself, shifted within it.
                        let word = b.load(b.i32, b.gep(b.i32, w, wordIndex))
                        let within = b.trunc(b.mul(b.srem(element, b.i64(perWord)), b.i64(mode.codeBits)), b.i32)
                        words = b.lshr(b.splat(word, width), b.splat(within, width))
                    } else {
                        let loaded = b.load(b.vector(b.i32, wordsPerVector), b.gep(b.i32, w, wordIndex))
                        words = b.shuffle(loaded, loaded, spread)
                    }
                    let raw = b.lshr(words, shifts)
                    var value = FloatQuantizedRows.value(b, mode, code: raw, width: width, masked: false, permute16: permute16)
                    let group = b.add(b.mul(row, b.i64(groups)), b.sdiv(element, b.i64(mode.groupSize)))
                    // Without fast-math flags: the two products must not be reassociated.
                    value = b.fmul(value, l.splat(rows.loadScales(scales, group, 1)))
                    LLVMSetFastMathFlags(value, 0)
                    if let global {
                        value = b.fmul(value, global)
                        LLVMSetFastMathFlags(value, 0)
                    }
                    l.storeF32(value, outType, out, b.add(b.mul(row, b.i64(k)), element))
                }
            }
        }
    }
}
