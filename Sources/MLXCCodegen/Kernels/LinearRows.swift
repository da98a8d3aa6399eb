import CLLVM
import LLVMKit

/// The inner loops of the float linear kernels (`LinearKernels.f32`, `.typed`, `.fused`): dot products
/// of a few weight rows with a few token rows of x, register blocked — one f32 vector accumulator per
/// (token, row), K in steps of the vector width, every load widened to f32 (weights read as stored,
/// 2 bytes per bf16/f16 weight). bf16 weights with bf16 activations are widened without shuffles: 2·lanes
/// weights per step, loaded as `lanes` i32 words and split into the even elements (shl 16) and the odd
/// ones (the high halves, masked), the activations split the same way so each product still pairs
/// x[k] with W[n, k] — which keeps prefill's register blocks off the shuffle port.
struct LinearRows {
    let b: Builder
    let k: Int, weight: ElementType, activation: ElementType, lanes: Int

    /// Rows per block and tokens per block of the kernels' tiling (4 × 4: 16 accumulators, W and x
    /// vectors in the remaining registers; each weight vector is used by 4 tokens).
    static let rows = 4, tokens = 4

    /// sums[t][r] = Σ_k x[tokens[t] + k] · weights[r].base[weights[r].offset + k], in f32, K tail included.
    /// `tokens` and the offsets are element offsets of the rows' first elements.
    /// One token (decode) with 2-byte weights (bf16/f16): each weight row's bytes `prefetchRows` rows further on
    /// (the next block's row of the same matrix) are prefetched as this row streams. A decode step reads every
    /// weight once; with 4 KiB pages the hardware prefetchers stop at each page (a block of 4 bf16 rows of K = 512
    /// is one page), so without it every block starts with its loads waiting on memory. Measured (small model,
    /// 2 threads, busy machine, interleaved best-of-5): bf16 decode +6–33%; f32 weights 2–10% slower with it, so
    /// they do not prefetch.
    func dot(weights: [(base: IRValue, offset: IRValue)], x: IRValue, tokens: [IRValue], prefetchRows: Int = 0) -> [[IRValue]] {
        let wide = Lanes(b, lanes), one = Lanes(b, 1)
        let nr = weights.count, nt = tokens.count
        let ahead = nt == 1 && prefetchRows > 0 && weight.byteSize == 2 ? prefetchRows * k : 0
        /// Prefetches row r's element at kk, `ahead` elements on (once per 64-byte line: steps of 64 bytes or more).
        func prefetch(_ r: Int, _ kk: IRValue, bytesPerStep: Int) {
            guard ahead > 0 else { return }
            let elementBytes = weight.byteSize
            for line in stride(from: 0, to: bytesPerStep, by: 64) {
                let at = b.add(b.add(weights[r].offset, b.i64(ahead + line / elementBytes)), kk)
                _ = Support.intrinsic(b, "llvm.prefetch", overloads: [b.ptr],
                                      [b.gep(b.i8, weights[r].base, b.mul(at, b.i64(elementBytes))), b.i32(0), b.i32(3), b.i32(1)])
            }
        }
        let kMain = k / lanes * lanes
        let paired = weight == .bf16 && activation == .bf16 && lanes > 1
        let kPaired = paired ? k / (2 * lanes) * (2 * lanes) : 0
        let words = b.vector(b.i32, lanes), floats = b.vector(b.f32, lanes)
        func halves(_ base: IRValue, _ index: IRValue) -> (even: IRValue, odd: IRValue) {
            let v = b.load(words, b.gep(b.i16, base, index), align: 2)
            return (b.bitcast(b.shl(v, wide.i32(16)), floats), b.bitcast(b.and(v, wide.i32(-65536)), floats))
        }
        var accs = [IRValue](repeating: wide.zero(b.f32), count: nr * nt)
        if kPaired > 0 {
            accs = b.loop(b.i64(0), b.i64(kPaired), step: 2 * lanes, carrying: accs, "kp") { kk, acc in
                for r in 0..<nr { prefetch(r, kk, bytesPerStep: max(64, 2 * lanes * 2)) }
                let wv = weights.map { halves($0.base, b.add($0.offset, kk)) }
                var next = acc
                for t in 0..<nt {
                    let xv = halves(x, b.add(tokens[t], kk))
                    for r in 0..<nr { next[t * nr + r] = b.fma(xv.odd, wv[r].odd, b.fma(xv.even, wv[r].even, acc[t * nr + r])) }
                }
                return next
            }
        }
        if kMain > kPaired {
            accs = b.loop(b.i64(kPaired), b.i64(kMain), step: lanes, carrying: accs, "k") { kk, acc in
                for r in 0..<nr { prefetch(r, kk, bytesPerStep: max(64, lanes * weight.byteSize)) }
                let wv = weights.map { wide.loadF32(weight, $0.base, b.add($0.offset, kk)) }
                var next = acc
                for t in 0..<nt {
                    let xv = wide.loadF32(activation, x, b.add(tokens[t], kk))
                    for r in 0..<nr { next[t * nr + r] = b.fma(xv, wv[r], acc[t * nr + r]) }
                }
                return next
            }
        }
        return (0..<nt).map { t in
            (0..<nr).map { r in
                var sum = b.reduceAdd(accs[t * nr + r])
                for kk in kMain..<k {   // K tail (K not a multiple of the vector width)
                    let xs = one.loadF32(activation, x, b.add(tokens[t], b.i64(kk)))
                    let ws = one.loadF32(weight, weights[r].base, b.add(weights[r].offset, b.i64(kk)))
                    sum = b.fma(xs, ws, sum)
                }
                return sum
            }
        }
    }

    /// The kernels' tiling of output rows [lo, hi) × tokens [0, m): blocks of `rows` rows (then single
    /// rows at the end), each over all tokens in blocks of `tokens` (then one by one). `body(n0, nr, t0, nt)`.
    /// [lo, hi) is a multiple of `rows` long except at the very end of a matrix (the thread pool's grain).
    static func tiles(_ b: Builder, lo: IRValue, hi: IRValue, m: IRValue, rows: Int = rows, tokens: Int = tokens,
                      _ body: (_ n0: IRValue, _ nr: Int, _ t0: IRValue, _ nt: Int) -> Void) {
        func rowsBlock(_ n0: IRValue, _ nr: Int) {
            let mMain = b.mul(b.sdiv(m, b.i64(tokens)), b.i64(tokens))
            b.loop(b.i64(0), mMain, step: tokens, "t") { t0 in body(n0, nr, t0, tokens) }
            b.loop(mMain, m, "tt") { t0 in body(n0, nr, t0, 1) }
        }
        let span = b.sub(hi, lo)
        let endMain = b.add(lo, b.mul(b.sdiv(span, b.i64(rows)), b.i64(rows)))
        b.loop(lo, endMain, step: rows, "n") { n0 in rowsBlock(n0, rows) }
        b.loop(endMain, hi, "nn") { n0 in rowsBlock(n0, 1) }
    }
}
