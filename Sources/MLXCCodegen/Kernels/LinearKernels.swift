import CLLVM
import LLVMKit

/// `out[m, n] = Σ_k x[m, k] · W[n, k] (+ bias[n])` with W stored [N, K] (nn.Linear layout), f32.
///
/// Work items are output columns n (rows of W), so threads split the weight matrix and each reads
/// its share once per call. K is fixed at compile time (weights are constants); M (tokens) is the
/// run-time `dims[0]`. Inner loop: `rows` rows of W × `tokens` tokens at a time, K in steps of
/// the vector width, with rows·tokens vector accumulators (register blocking).
/// buffers: [x, W, bias?, out]; dims: [M].
public enum LinearKernels {
    public static func f32(k: Int, n: Int, hasBias: Bool, lanes: Int) -> KernelDefinition {
        let name = "linear_f32_k\(k)_n\(n)\(hasBias ? "_bias" : "")_v\(lanes)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1)
            let bias = hasBias ? e.buffer(2) : nil
            let out = e.buffer(hasBias ? 3 : 2)
            let m = e.dim(0)
            let rows = 4, tokens = 4
            let vec = b.vector(b.f32, lanes)
            let kMain = k / lanes * lanes

            /// Dot products of W rows n0..<n0+nr with tokens t0..<t0+nt, stored to out.
            func block(n0: IRValue, nr: Int, t0: IRValue, nt: Int) {
                let zero = b.zero(vec)
                let initial = [IRValue](repeating: zero, count: nr * nt)
                var accs = initial
                if kMain > 0 {
                    accs = b.loop(b.i64(0), b.i64(kMain), step: lanes, carrying: initial, "k") { kk, acc in
                        let wv = (0..<nr).map { r in
                            b.load(vec, b.gep(b.f32, w, b.add(b.mul(b.add(n0, b.i64(r)), b.i64(k)), kk)), align: 4)
                        }
                        var next = acc
                        for t in 0..<nt {
                            let xv = b.load(vec, b.gep(b.f32, x, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(k)), kk)), align: 4)
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
                            let xs = b.load(b.f32, b.gep(b.f32, x, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(k)), b.i64(kk))))
                            let ws = b.load(b.f32, b.gep(b.f32, w, b.add(b.mul(nIndex, b.i64(k)), b.i64(kk))))
                            sum = b.fma(xs, ws, sum)
                        }
                        if let bias { sum = b.fadd(sum, b.load(b.f32, b.gep(b.f32, bias, nIndex))) }
                        b.store(sum, b.gep(b.f32, out, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), nIndex)))
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
