import CLLVM
import LLVMKit

/// `out[m, n] = Σ_k x[m, k] · W[n, k] (+ bias[n])` where W, x, bias and out may each be f32, bf16
/// or f16: the same register-blocked loop as `LinearKernels.f32`, with every load widened to f32
/// (W is read as stored, 2 bytes per weight for bf16/f16: decode is bound by the weight stream, so
/// the weights are never copied wider), f32 accumulation, and the sum (plus bias) rounded once to
/// the output dtype. bf16 weights with bf16 activations are widened without shuffles (see
/// `paired`), which keeps prefill's register blocks off the shuffle port. buffers: [x, W, bias?, out]; dims: [M].
extension LinearKernels {
    public static func typed(k: Int, n: Int, weight: ElementType, activation: ElementType, bias: ElementType?,
                             output: ElementType, lanes: Int) -> KernelDefinition {
        precondition([weight, activation, output].allSatisfy(ElementType.activations.contains))
        let name = "linear_\(weight.tag)w_\(activation.tag)_k\(k)_n\(n)\(bias.map { "_bias\($0.tag)" } ?? "")_to\(output.tag)_v\(lanes)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1)
            let biasBuffer = bias != nil ? e.buffer(2) : nil
            let out = e.buffer(bias != nil ? 3 : 2)
            let m = e.dim(0)
            let rows = 4, tokens = 4
            let wide = Lanes(b, lanes), one = Lanes(b, 1)
            let kMain = k / lanes * lanes
            // bf16 × bf16: 2·lanes weights per step, loaded as `lanes` i32 words and split into the
            // even elements (shl 16) and the odd ones (the high halves, masked): no shuffles, and the
            // activations split the same way, so each product still pairs x[k] with W[n, k].
            let paired = weight == .bf16 && activation == .bf16 && lanes > 1
            let kPaired = paired ? k / (2 * lanes) * (2 * lanes) : 0
            let words = b.vector(b.i32, lanes), floats = b.vector(b.f32, lanes)
            func halves(_ base: IRValue, _ index: IRValue) -> (even: IRValue, odd: IRValue) {
                let v = b.load(words, b.gep(b.i16, base, index), align: 2)
                return (b.bitcast(b.shl(v, wide.i32(16)), floats), b.bitcast(b.and(v, wide.i32(-65536)), floats))
            }

            /// Dot products of W rows n0..<n0+nr with tokens t0..<t0+nt, stored to out.
            func block(n0: IRValue, nr: Int, t0: IRValue, nt: Int) {
                let initial = [IRValue](repeating: wide.zero(b.f32), count: nr * nt)
                var accs = initial
                let wRows = (0..<nr).map { r in b.mul(b.add(n0, b.i64(r)), b.i64(k)) }
                let xRows = (0..<nt).map { t in b.mul(b.add(t0, b.i64(t)), b.i64(k)) }
                if kPaired > 0 {
                    accs = b.loop(b.i64(0), b.i64(kPaired), step: 2 * lanes, carrying: accs, "kp") { kk, acc in
                        let wv = wRows.map { halves(w, b.add($0, kk)) }
                        var next = acc
                        for t in 0..<nt {
                            let xv = halves(x, b.add(xRows[t], kk))
                            for r in 0..<nr {
                                next[t * nr + r] = b.fma(xv.odd, wv[r].odd, b.fma(xv.even, wv[r].even, acc[t * nr + r]))
                            }
                        }
                        return next
                    }
                }
                if kMain > kPaired {
                    accs = b.loop(b.i64(kPaired), b.i64(kMain), step: lanes, carrying: accs, "k") { kk, acc in
                        let wv = wRows.map { wide.loadF32(weight, w, b.add($0, kk)) }
                        var next = acc
                        for t in 0..<nt {
                            let xv = wide.loadF32(activation, x, b.add(xRows[t], kk))
                            for r in 0..<nr { next[t * nr + r] = b.fma(xv, wv[r], acc[t * nr + r]) }
                        }
                        return next
                    }
                }
                for t in 0..<nt {
                    for r in 0..<nr {
                        var sum = b.reduceAdd(accs[t * nr + r])
                        let nIndex = b.add(n0, b.i64(r))
                        for kk in kMain..<k {   // K tail (K not a multiple of the vector width)
                            let xs = one.loadF32(activation, x, b.add(xRows[t], b.i64(kk)))
                            let ws = one.loadF32(weight, w, b.add(wRows[r], b.i64(kk)))
                            sum = b.fma(xs, ws, sum)
                        }
                        if let bias, let biasBuffer { sum = b.fadd(sum, one.loadF32(bias, biasBuffer, nIndex)) }
                        one.storeF32(sum, output, out, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), nIndex))
                    }
                }
            }

            /// All tokens for W rows n0..<n0+nr: full token blocks, then the remaining tokens one by one.
            func rowsBlock(n0: IRValue, nr: Int) {
                let mMain = b.mul(b.sdiv(m, b.i64(tokens)), b.i64(tokens))
                b.loop(b.i64(0), mMain, step: tokens, "t") { t0 in block(n0: n0, nr: nr, t0: t0, nt: tokens) }
                b.loop(mMain, m, "tt") { t0 in block(n0: n0, nr: nr, t0: t0, nt: 1) }
            }

            // [begin, end) is a multiple of `rows` except at the very end of the matrix.
            let span = b.sub(e.end, e.begin)
            let endMain = b.add(e.begin, b.mul(b.sdiv(span, b.i64(rows)), b.i64(rows)))
            b.loop(e.begin, endMain, step: rows, "n") { n0 in rowsBlock(n0: n0, nr: rows) }
            b.loop(endMain, e.end, "nn") { n0 in rowsBlock(n0: n0, nr: 1) }
        }
    }
}
