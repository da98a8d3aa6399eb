import CLLVM
import Foundation
import LLVMKit

/// MLX `fast.rope` on x [..., T, D] (f32, bf16 or f16: computed in f32, rounded once on the store), one row (one position of one head) per work item.
/// Row r is at position `offset + r mod T`; feature pair i (i < dims/2) turns by the angle
/// position · scale · inv_freq[i], with inv_freq[i] = base^(−2i/dims) (constants of the kernel) or
/// 1/freqs[i] (read from a tensor). Pairs are (2i, 2i+1) when `traditional`, else (i, i + dims/2);
/// features from `dims` on pass through. Angles are formed and reduced in f64, so positions in
/// the hundreds of thousands keep full f32 accuracy; cos/sin are computed per row, vectorized over i.
/// Rows are numbered (batch, head, t) with H heads and read at batch·sB + head·sH + t·sT, so x may
/// be a [B, T, H, D] tensor read as [B, H, T, D] (the transpose before RoPE folded in); the output
/// is contiguous. buffers: [x, offset, freqs?, out]; dims: [D, T, offset, H, sB, sH, sT].
public enum RopeKernels {
    public static func rope(dims: Int, traditional: Bool, base: Double, scale: Double, hasFreqs: Bool, lanes: Int,
                            _ element: ElementType = .f32, freqs freqsType: ElementType = .f32) -> KernelDefinition {
        let half = dims / 2
        var name = "rope_\(element.tag)_dims\(dims)\(traditional ? "_traditional" : "")"
        name += hasFreqs ? (freqsType == .f32 ? "_freqs" : "_freqs\(freqsType.tag)") : "_base\(Support.name(base))"
        if scale != 1 { name += "_scale\(Support.name(scale))" }
        name += "_v\(lanes)"
        // The reference's inverse frequencies, exp(−i · ln(base) / half).
        let invFreq = (0..<half).map { Foundation.exp(-Double($0) * Foundation.log(base) / Double(half)) }
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0)
            let freqs = hasFreqs ? e.buffer(2) : nil
            let out = e.buffer(hasFreqs ? 3 : 2)
            let d = e.dim(0), t = e.dim(1), offset = e.dim(2), heads = e.dim(3)
            let sB = e.dim(4), sH = e.dim(5), sT = e.dim(6)
            b.loop(e.begin, e.end, "row") { row in
                let rowBase = b.mul(row, d)
                let ti = b.srem(row, t), bh = b.sdiv(row, t)
                let inBase = b.add(b.add(b.mul(b.sdiv(bh, heads), sB), b.mul(b.srem(bh, heads), sH)), b.mul(ti, sT))
                let position = b.sitofp(b.add(offset, ti), b.f64)
                let scaled = b.fmul(position, LLVMConstReal(b.f64, scale))
                var i0 = 0
                while i0 < half {
                    let w = min(lanes, half - i0)
                    let l = Lanes(b, w)
                    let inv: IRValue
                    if let freqs {
                        let f = b.fpext(l.loadF32(freqsType, freqs, b.i64(i0)), l.type(b.f64))
                        inv = b.fdiv(l.f64(1), f)
                    } else {
                        inv = w == 1 ? LLVMConstReal(b.f64, invFreq[i0])
                                     : b.constVector((i0..<(i0 + w)).map { LLVMConstReal(b.f64, invFreq[$0]) })
                    }
                    let (s, c) = VectorMath.sincos(l, angle: b.fmul(l.splat(scaled), inv))
                    if traditional {
                        let pairs = Lanes(b, 2 * w)
                        let xv = pairs.loadF32(element, x, b.add(inBase, b.i64(2 * i0)))
                        let x1 = w == 1 ? b.extract(xv, 0) : b.shuffle(xv, xv, (0..<w).map { 2 * $0 })
                        let x2 = w == 1 ? b.extract(xv, 1) : b.shuffle(xv, xv, (0..<w).map { 2 * $0 + 1 })
                        let y1 = b.fsub(b.fmul(x1, c), b.fmul(x2, s)), y2 = b.fadd(b.fmul(x1, s), b.fmul(x2, c))
                        let y = w == 1 ? b.insert(b.insert(LLVMGetPoison(b.vector(b.f32, 2)), y1, 0), y2, 1)
                                       : b.shuffle(y1, y2, (0..<w).flatMap { [$0, w + $0] })
                        pairs.storeF32(y, element, out, b.add(rowBase, b.i64(2 * i0)))
                    } else {
                        let at1 = b.add(rowBase, b.i64(i0)), at2 = b.add(rowBase, b.i64(i0 + half))
                        let x1 = l.loadF32(element, x, b.add(inBase, b.i64(i0))), x2 = l.loadF32(element, x, b.add(inBase, b.i64(i0 + half)))
                        l.storeF32(b.fsub(b.fmul(x1, c), b.fmul(x2, s)), element, out, at1)
                        l.storeF32(b.fadd(b.fmul(x1, s), b.fmul(x2, c)), element, out, at2)
                    }
                    i0 += w
                }
                // Features past `dims` are copied unchanged.
                Support.vectorLoop(b, b.i64(dims), d, width: lanes, "p") { l, i in
                    l.store(l.load(element.storage(b), x, b.add(inBase, i)), element.storage(b), out, b.add(rowBase, i))
                }
            }
        }
    }
}
