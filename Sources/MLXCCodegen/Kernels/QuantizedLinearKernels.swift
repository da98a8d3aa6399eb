import CLLVM
import LLVMKit

/// MLX affine quantized matmul, `out[m, n] = Σ_k x[m, k] · (s[n, g] · q[n, k] + b[n, g])`, with
/// q packed LSB-first along k (`w` is [N, K·bits/32] uint32 words, i.e. bytes in k order, each
/// byte holding 8/bits codes) and one scale and bias per group of `groupSize` k. Weights are
/// dequantized in registers and never written out.
///
/// The row arithmetic is `AffineQuantizedRows` (shared with the MoE gather kernel). The sum is
/// split per group: `Σ x·(s·q + b) = s·Σ q·x + b·Σ x`. `Σ x` per group does not depend
/// on the output row, so it is computed once per call (per token) into a scratch, and the bias
/// term becomes one short dot product per row. The inner loop is then only
/// load-bytes → shift/mask → convert → FMA:
/// - a chunk of `lanes` bytes is loaded and zero-extended to `lanes` i32 lanes (one `vpmovzxbd`);
///   lane j then holds the codes of elements j·c … j·c + c − 1 (c = 8/bits codes per byte), and
///   code s of every lane comes out with one shift and one mask;
/// - so the activations are read in the matching order: once per call, x is permuted per chunk
///   into `xp[s·lanes + j] = x[j·c + s]` (8-bit needs no permutation and reads x directly).
/// Tokens are processed in blocks of up to `tokenBlock`: each weight chunk is dequantized and
/// scaled once and used for every token of the block (prefill), with one accumulator per token.
///
/// Activations may be f32, bf16 or f16 (`activation`): half x is widened as it is read (Σx, the
/// permutation; 8-bit copies the block's rows into an f32 scratch), the dot products accumulate
/// in f32, and each result is rounded once to x's dtype, as the unfused ops round theirs (SwiGLU:
/// the gate and up products, silu(gate) and the product; a residual add after the product's rounding).
///
/// With f32 x, calls of `LinearPanels.minTokens` tokens or more (a prompt's, an encoder's) dequantize each
/// panel of columns once per call into f32 and run `LinearPanels`' GEMM on it instead (SwiGLU: each panel
/// pairs the same columns of the gate and the up weight).
///
/// buffers: [x, w u32, scales, biases, out (x's dtype)]; dims: [M]; work items: output columns n.
public enum QuantizedLinearKernels {
    public enum ParamType: String { case f32, bf16, f16 }

    /// Supported bit widths (MLX's 2, 3, 4, 5, 6 and 8); group sizes are whole multiples of the vector width (MLX
    /// uses 32, 64, 128) whose codes fill whole u32 words (so every group starts on a word boundary).
    public static func supports(bits: Int, groupSize: Int, lanes: Int) -> Bool {
        [2, 3, 4, 5, 6, 8].contains(bits) && groupSize % lanes == 0 && groupSize * bits % 32 == 0
            && (8 % bits != 0 || groupSize % (8 / bits) == 0)
    }

    /// Tokens per block: 4 shares each dequantized chunk enough that the FMAs dominate (8 gains
    /// ~10% more prefill speed but doubles LLVM's compile time), bounded so the permuted
    /// activations stay a small stack scratch (≤ 64 KiB).
    public static func tokenBlock(k: Int) -> Int { max(1, min(4, 16384 / k)) }

    /// Whether many-token calls take the packed-panel GEMM (`LinearPanels`): f32 activations.
    static func usesPanels(activation: ElementType, epilogue: Epilogue, lanes: Int) -> Bool {
        activation == .f32 && lanes > 1
    }

    /// The thread split's grain: whole panels when the kernel packs them (SwiGLU: a panel is one vector of
    /// columns of each weight), else `fallback`.
    public static func grain(activation: ElementType, epilogue: Epilogue, lanes: Int, fallback: Int) -> Int {
        usesPanels(activation: activation, epilogue: epilogue, lanes: lanes) ? (epilogue == .swiglu ? lanes : 2 * lanes) : fallback
    }

    /// What follows the dot products: plain results (one per weight), or SwiGLU of two weights.
    public enum Epilogue: String { case none, swiglu }

    /// One quantized linear (`qmm_affine_…`): buffers [x, w, scales, biases, out].
    public static func affine(k: Int, n: Int, bits: Int, groupSize: Int, params: ParamType, activation: ElementType = .f32,
                              lanes: Int) -> KernelDefinition {
        fused(k: k, ns: [n], bits: bits, groupSize: groupSize, params: params, activation: activation, epilogue: .none,
              residual: false, lanes: lanes)
    }

    /// Linears over one x in one kernel (the x preparation is shared):
    /// - `.none`: out_i = x·W_iᵀ for each weight i; work items are the rows of all weights, in order;
    /// - `.swiglu`: out = silu(x·W_0ᵀ)·(x·W_1ᵀ), both rows computed together; work items are rows;
    /// with `residual` (one result), out += residual (same shape as out).
    /// x, the residual and the outs are of dtype `activation`.
    /// buffers: [x, (w, scales, biases) per weight, residual?, outs…]; dims: [M].
    /// `int16Dot`: one-token rows take `AffineInt16Rows` (x rounded to int16 per group, integer dot products; its
    /// header states the numerics) on that x86 target — f32 x, 4-bit codes only; nil keeps the f32 path.
    public static func fused(k: Int, ns: [Int], bits: Int, groupSize: Int, params: ParamType, activation: ElementType = .f32,
                             epilogue: Epilogue, residual: Bool, lanes: Int,
                             int16Dot: DynamicQuantLinearKernels.WordDot? = nil) -> KernelDefinition {
        precondition([.f32, .bf16, .f16].contains(activation))
        let int16 = int16Dot.flatMap { activation == .f32 && AffineInt16Rows.supports(bits: bits, groupSize: groupSize, dot: $0) ? $0 : nil }
        let tb = tokenBlock(k: k)
        var name = "qmm_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_\(activation.tag)_k\(k)_n" + ns.map(String.init).joined(separator: "+")
        if epilogue != .none { name += "_\(epilogue.rawValue)" }
        if residual { name += "_residual" }
        name += "_tb\(tb)"
        if usesPanels(activation: activation, epilogue: epilogue, lanes: lanes) { name += "_" + LinearPanels.tag(lanes: lanes) }
        if let int16 { name += "_xi16\(int16 == .avx512vnni ? "vnni" : "")" }
        name += "_v\(lanes)"
        let weightCount = ns.count
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0)
            let weights = (0..<weightCount).map { (w: e.buffer(1 + 3 * $0), scales: e.buffer(2 + 3 * $0), biases: e.buffer(3 + 3 * $0)) }
            let residualBuffer = residual ? e.buffer(1 + 3 * weightCount) : nil
            let outBase = 1 + 3 * weightCount + (residual ? 1 : 0)
            let outs = (0..<(epilogue == .swiglu ? 1 : weightCount)).map { e.buffer(outBase + $0) }
            let m = e.dim(0)
            let rows = AffineQuantizedRows(b, k: k, bits: bits, groupSize: groupSize, params: params, lanes: lanes)
            let groups = rows.groups

            // Scratch in the entry block: permuted activations and per-group sums, `tb` tokens.
            // (8-bit with half x: the block's rows widened to f32, read in order.)
            let widened = !rows.permuted && activation != .f32
            let xpScratch = rows.permuted || widened ? rows.scratch(tb * k) : nil
            let sumScratch = rows.scratch(tb * groups)
            let wide = Lanes(b, lanes), chunk = Lanes(b, rows.cl), one = Lanes(b, 1)
            let panels = usesPanels(activation: activation, epilogue: epilogue, lanes: lanes) ? LinearPanels(b: b, k: k, lanes: lanes) : nil
            let panel = panels?.allocatePanel()
            let int16Rows = int16.map { AffineInt16Rows(b, k: k, groupSize: groupSize, params: params, dot: $0, rows: rows) }
            let xq = int16Rows != nil ? rows.scratch(k / 2) : nil, dx = int16Rows != nil ? rows.scratch(groups) : nil

            /// Per-call preparation for tokens t0 ..< t0 + nt: Σx per group, and the permuted (or widened) x.
            func prepare(t0: IRValue, nt: Int) {
                for t in 0..<nt {
                    let rowStart = b.mul(b.add(t0, b.i64(t)), b.i64(k))
                    let sums = b.gep(b.f32, sumScratch, b.i64(t * groups))
                    b.loop(b.i64(0), b.i64(groups), "sum") { g in
                        var s: IRValue? = nil
                        for v in 0..<(groupSize / lanes) {
                            let xv = wide.loadF32(activation, x, b.add(rowStart, b.add(b.mul(g, b.i64(groupSize)), b.i64(v * lanes))))
                            s = s.map { b.fadd($0, xv) } ?? xv
                        }
                        b.store(b.reduceAdd(s!), b.gep(b.f32, sums, g))
                    }
                    guard let xpScratch else { continue }
                    let dst = b.gep(b.f32, xpScratch, b.i64(t * k))
                    if widened {
                        b.loop(b.i64(0), b.i64(k / lanes), "widen") { i in
                            let at = b.mul(i, b.i64(lanes))
                            wide.store(wide.loadF32(activation, x, b.add(rowStart, at)), b.f32, dst, at)
                        }
                    } else {
                        rows.permute(into: dst) { i in chunk.loadF32(activation, x, b.add(rowStart, i)) }
                    }
                }
            }

            /// Row r of weight `wt` for tokens t0 ..< t0 + nt (their activations already prepared):
            /// one f32 dot product per token.
            func row(_ r: IRValue, _ wt: (w: IRValue, scales: IRValue, biases: IRValue), t0: IRValue, nt: Int) -> [IRValue] {
                if nt == 1, let int16Rows, let xq, let dx {
                    return [int16Rows.dot(rowCodes: b.gep(b.i8, wt.w, b.mul(r, b.i64(rows.rowBytes))), scales: wt.scales, biases: wt.biases,
                                          paramIndex: b.mul(r, b.i64(groups)), xq: xq, dx: dx, sums: sumScratch)]
                }
                return rows.dot(rowCodes: b.gep(b.i8, wt.w, b.mul(r, b.i64(rows.rowBytes))), scales: wt.scales, biases: wt.biases,
                         paramIndex: b.mul(r, b.i64(groups)), x: xpScratch ?? b.gep(b.f32, x, b.mul(t0, b.i64(k))),
                         sums: sumScratch, nt: nt)
            }

            /// `v` as an unfused op of x's dtype stores it.
            func round(_ v: IRValue) -> IRValue { activation == .f32 ? v : one.widenF32(one.narrowF32(v, activation), activation) }

            /// Stores token t's value of row r of an [M, n] result, plus the residual's.
            func store(_ value: IRValue, _ out: IRValue, row r: IRValue, n: Int, token: IRValue) {
                let at = b.add(b.mul(token, b.i64(n)), r)
                var v = value
                if let residualBuffer { v = b.fadd(round(v), one.loadF32(activation, residualBuffer, at)) }
                one.storeF32(v, activation, out, at)
            }

            func tokens(t0: IRValue, nt: Int) {
                prepare(t0: t0, nt: nt)
                if nt == 1, let int16Rows, let xq, let dx { int16Rows.prepare(x: b.gep(b.f32, x, b.mul(t0, b.i64(k))), xq: xq, dx: dx) }
                switch epilogue {
                case .swiglu:
                    b.loop(e.begin, e.end, "n") { r in
                        let gate = row(r, weights[0], t0: t0, nt: nt), up = row(r, weights[1], t0: t0, nt: nt)
                        for t in 0..<nt {
                            let g = round(gate[t])
                            store(b.fmul(round(VectorMath.silu(one, g)), round(up[t])), outs[0], row: r, n: ns[0], token: b.add(t0, b.i64(t)))
                        }
                    }
                case .none:
                    // Weight i owns work items [offset_i, offset_i + n_i): each weight's share of this range.
                    var offset = 0
                    for (i, n) in ns.enumerated() {
                        let lo = Support.smax(b, e.begin, b.i64(offset)), hi = Support.smin(b, e.end, b.i64(offset + n))
                        b.loop(lo, hi, "n\(i)") { item in
                            let r = b.sub(item, b.i64(offset))
                            let totals = row(r, weights[i], t0: t0, nt: nt)
                            for t in 0..<nt { store(totals[t], outs[i], row: r, n: n, token: b.add(t0, b.i64(t))) }
                        }
                        offset += n
                    }
                }
            }
            func rowTiles() {
                let mMain = b.mul(b.sdiv(m, b.i64(tb)), b.i64(tb))
                b.loop(b.i64(0), mMain, step: tb, "t") { t0 in tokens(t0: t0, nt: tb) }
                if tb > 1 { b.loop(mMain, m, "tt") { t0 in tokens(t0: t0, nt: 1) } }
            }
            guard let panels, let panel else { return rowTiles() }
            /// Rows [n0, n0 + count) of weight `wt` dequantized (s·q + b, the definition's dequantize) into panel
            /// columns [first, first + width), transposed; rows past `count` are 0. Per group, each row's codes
            /// `lanes` at a time as one vector (`DequantizeKernels.codeVector`: a group starts on a word
            /// boundary), scaled, then `lanes` rows transposed in registers so each k's column is one store.
            func packAffine(_ wt: (w: IRValue, scales: IRValue, biases: IRValue), n0: IRValue, count: IRValue, first: Int, width: Int) {
                let wordsPerRow = k * bits / 32, wordsPerGroup = groupSize * bits / 32
                let vec = b.vector(b.f32, lanes)
                let present = (0..<width).map { b.icmp(LLVMIntSLT, b.i64($0), count) }
                let rowIndex = (0..<width).map { b.add(n0, b.select(present[$0], b.i64($0), b.i64(0))) }
                b.loop(b.i64(0), b.i64(groups), "packg") { g in
                    // One block of `lanes` rows × `lanes` k at a time (a block's vectors and their transpose in registers).
                    for v in 0..<(groupSize / lanes) {
                        let kk = b.add(b.mul(g, b.i64(groupSize)), b.i64(v * lanes))
                        for block in 0..<(width / lanes) {
                            let vectors = ((block * lanes)..<((block + 1) * lanes)).map { c -> IRValue in
                                let r = rowIndex[c], at = b.add(b.mul(r, b.i64(groups)), g)
                                let scale = b.splat(rows.loadParams(wt.scales, at, 1), lanes)
                                let bias = b.splat(rows.loadParams(wt.biases, at, 1), lanes)
                                let groupWord = b.add(b.mul(r, b.i64(wordsPerRow)), b.mul(g, b.i64(wordsPerGroup)))
                                let codes = b.uitofp(DequantizeKernels.codeVector(b, words: wt.w, groupWord: groupWord, firstBit: v * lanes * bits,
                                                                                  width: lanes, bits: bits), vec)
                                return b.select(present[c], b.fadd(b.fmul(scale, codes), bias), wide.zero(b.f32))
                            }
                            for (j, column) in panels.transpose(vectors).enumerated() {
                                wide.store(column, b.f32, panel, b.add(b.mul(b.add(kk, b.i64(j)), b.i64(panels.columns)), b.i64(first + block * lanes)))
                            }
                        }
                    }
                }
            }
            // Many f32 tokens: each panel of columns dequantized once into f32, then the f32 GEMM of `LinearPanels`.
            _ = Support.ifElse(b, b.icmp(LLVMIntSGE, m, b.i64(LinearPanels.minTokens)), "panels", then: {
                if epilogue == .swiglu {
                    let n = ns[0]
                    panels.runPaired(x: x, m: m, lo: e.begin, hi: e.end, panel: panel, pack: { n0, count in
                        packAffine(weights[0], n0: n0, count: count, first: 0, width: lanes)
                        packAffine(weights[1], n0: n0, count: count, first: lanes, width: lanes)
                    }) { t, n0, l, gate, up in
                        let at = b.add(b.mul(t, b.i64(n)), n0)
                        var v = b.fmul(VectorMath.silu(l, gate), up)
                        if let residualBuffer { v = b.fadd(v, l.load(b.f32, residualBuffer, at)) }
                        l.store(v, b.f32, outs[0], at)
                    }
                    return []
                }
                var offset = 0
                for (i, n) in ns.enumerated() {
                    let lo = Support.smax(b, e.begin, b.i64(offset)), hi = Support.smin(b, e.end, b.i64(offset + n))
                    let localLo = b.sub(lo, b.i64(offset)), localHi = Support.smax(b, b.sub(hi, b.i64(offset)), localLo)
                    panels.run(x: x, m: m, lo: localLo, hi: localHi, panel: panel, pack: { n0, count in
                        packAffine(weights[i], n0: n0, count: count, first: 0, width: panels.columns)
                    }) { t, n0, c, l, sum in
                        let at = b.add(b.mul(t, b.i64(n)), b.add(n0, b.i64(c * lanes)))
                        var v = sum
                        if let residualBuffer { v = b.fadd(v, l.load(b.f32, residualBuffer, at)) }
                        l.store(v, b.f32, outs[i], at)
                    }
                    offset += n
                }
                return []
            }, otherwise: { rowTiles(); return [] })
        }
    }
}
