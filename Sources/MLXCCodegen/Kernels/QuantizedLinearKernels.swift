import CLLVM
import LLVMKit

/// MLX affine quantized matmul, `out[m, n] = Σ_k x[m, k] · (s[n, g] · q[n, k] + b[n, g])`, with
/// q packed LSB-first along k (`w` is [N, K·bits/32] uint32 words, i.e. bytes in k order, each
/// byte holding 8/bits codes) and one scale and bias per group of `groupSize` k. Weights are
/// dequantized in registers and never written out.
///
/// The sum is split per group: `Σ x·(s·q + b) = s·Σ q·x + b·Σ x`. `Σ x` per group does not depend
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
/// buffers: [x f32, w u32, scales, biases, out f32]; dims: [M]; work items: output columns n.
public enum QuantizedLinearKernels {
    public enum ParamType: String { case f32, bf16, f16 }

    /// Supported bit widths; group sizes are whole multiples of the vector width (MLX uses 32, 64, 128).
    public static func supports(bits: Int, groupSize: Int, lanes: Int) -> Bool {
        [2, 4, 8].contains(bits) && groupSize % lanes == 0 && groupSize % (8 / bits) == 0
    }

    /// Tokens per block: 4 shares each dequantized chunk enough that the FMAs dominate (8 gains
    /// ~10% more prefill speed but doubles LLVM's compile time), bounded so the permuted
    /// activations stay a small stack scratch (≤ 64 KiB).
    public static func tokenBlock(k: Int) -> Int { max(1, min(4, 16384 / k)) }

    /// What follows the dot products: plain results (one per weight), or SwiGLU of two weights.
    public enum Epilogue: String { case none, swiglu }

    /// One quantized linear (`qmm_affine_…`): buffers [x, w, scales, biases, out].
    public static func affine(k: Int, n: Int, bits: Int, groupSize: Int, params: ParamType, lanes: Int) -> KernelDefinition {
        fused(k: k, ns: [n], bits: bits, groupSize: groupSize, params: params, epilogue: .none, residual: false, lanes: lanes)
    }

    /// Linears over one x in one kernel (the x preparation is shared):
    /// - `.none`: out_i = x·W_iᵀ for each weight i; work items are the rows of all weights, in order;
    /// - `.swiglu`: out = silu(x·W_0ᵀ)·(x·W_1ᵀ), both rows computed together; work items are rows;
    /// with `residual` (one result), out += residual (same shape as out).
    /// buffers: [x, (w, scales, biases) per weight, residual?, outs…]; dims: [M].
    public static func fused(k: Int, ns: [Int], bits: Int, groupSize: Int, params: ParamType, epilogue: Epilogue, residual: Bool,
                             lanes: Int) -> KernelDefinition {
        let tb = tokenBlock(k: k)
        var name = "qmm_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_f32_k\(k)_n" + ns.map(String.init).joined(separator: "+")
        if epilogue != .none { name += "_\(epilogue.rawValue)" }
        if residual { name += "_residual" }
        name += "_tb\(tb)_v\(lanes)"
        let weightCount = ns.count
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0)
            let weights = (0..<weightCount).map { (w: e.buffer(1 + 3 * $0), scales: e.buffer(2 + 3 * $0), biases: e.buffer(3 + 3 * $0)) }
            let residualBuffer = residual ? e.buffer(1 + 3 * weightCount) : nil
            let outBase = 1 + 3 * weightCount + (residual ? 1 : 0)
            let outs = (0..<(epilogue == .swiglu ? 1 : weightCount)).map { e.buffer(outBase + $0) }
            let m = e.dim(0)
            let perByte = 8 / bits                          // codes per byte
            let cl = min(lanes, groupSize / perByte)        // lanes of a chunk (bytes loaded at once)
            let chunk = cl * perByte                        // elements of a chunk
            let chunksPerGroup = groupSize / chunk
            let groups = k / groupSize
            let rowBytes = k / perByte
            let vec = b.vector(b.f32, cl)
            let codeMask = b.splat(b.i32((1 << bits) - 1), cl)
            let permuted = perByte > 1
            // Groups per iteration of the row loop (their scales and biases load as one short vector).
            let groupUnroll = 4
            let biasType = b.vector(b.f32, groupUnroll)

            // Scratch in the entry block: permuted activations and per-group sums, `tb` tokens.
            func scratch(_ count: Int) -> IRValue {
                let a = b.alloca(LLVMArrayType2(b.f32, UInt64(count)))
                LLVMSetAlignment(a, 64)
                return a
            }
            let xpScratch = permuted ? scratch(tb * k) : nil
            let sumScratch = scratch(tb * groups)

            /// Loads `width` params (scale or bias) as f32 from `base[index…]`.
            func loadParams(_ base: IRValue, _ index: IRValue, _ width: Int) -> IRValue {
                let t = width == 1 ? b.f32 : b.vector(b.f32, width)
                func widen(_ element: IRType) -> IRType { width == 1 ? element : b.vector(element, width) }
                switch params {
                case .f32: return b.load(t, b.gep(b.f32, base, index))
                case .f16: return b.fpext(b.load(widen(b.f16), b.gep(b.f16, base, index), align: 2), t)
                case .bf16:
                    let raw = b.zext(b.load(widen(b.i16), b.gep(b.i16, base, index), align: 2), widen(b.i32))
                    return b.bitcast(b.shl(raw, width == 1 ? b.i32(16) : b.splat(b.i32(16), width)), t)
                }
            }

            /// Per-call preparation for tokens t0 ..< t0 + nt: Σx per group, and the permuted x.
            func prepare(t0: IRValue, nt: Int) {
                for t in 0..<nt {
                    let xRow = b.gep(b.f32, x, b.mul(b.add(t0, b.i64(t)), b.i64(k)))
                    let sums = b.gep(b.f32, sumScratch, b.i64(t * groups))
                    b.loop(b.i64(0), b.i64(groups), "sum") { g in
                        var s: IRValue? = nil
                        for v in 0..<(groupSize / lanes) {
                            let xv = b.load(b.vector(b.f32, lanes), b.gep(b.f32, xRow, b.add(b.mul(g, b.i64(groupSize)), b.i64(v * lanes))))
                            s = s.map { b.fadd($0, xv) } ?? xv
                        }
                        b.store(b.reduceAdd(s!), b.gep(b.f32, sums, g))
                    }
                    guard let xpScratch else { continue }
                    let xp = b.gep(b.f32, xpScratch, b.i64(t * k))
                    b.loop(b.i64(0), b.i64(k / chunk), "perm") { c in
                        let base = b.mul(c, b.i64(chunk))
                        let parts = (0..<perByte).map { p in b.load(vec, b.gep(b.f32, xRow, b.add(base, b.i64(p * cl)))) }
                        // Concatenate the chunk into one vector, then pick every perByte-th element.
                        var whole = parts
                        while whole.count > 1 {
                            let width = Int(LLVMGetVectorSize(LLVMTypeOf(whole[0])))
                            whole = stride(from: 0, to: whole.count, by: 2).map { b.shuffle(whole[$0], whole[$0 + 1], Array(0..<(2 * width))) }
                        }
                        for s in 0..<perByte {
                            let picked = b.shuffle(whole[0], whole[0], (0..<cl).map { $0 * perByte + s })
                            b.store(picked, b.gep(b.f32, xp, b.add(base, b.i64(s * cl))))
                        }
                    }
                }
            }

            /// Row r of weight `wt` for tokens t0 ..< t0 + nt (their activations already prepared):
            /// one f32 dot product per token.
            func row(_ r: IRValue, _ wt: (w: IRValue, scales: IRValue, biases: IRValue), t0: IRValue, nt: Int) -> [IRValue] {
                let (w, scales, biases) = wt
                let xBase: IRValue = xpScratch ?? b.gep(b.f32, x, b.mul(t0, b.i64(k)))
                let rowCodes = b.gep(b.i8, w, b.mul(r, b.i64(rowBytes)))
                let rowParams = b.mul(r, b.i64(groups))

                /// `width` consecutive groups from group g0: Σ s·(q·x) into acc, Σ b·(Σx) into biasAcc.
                /// One token: codes times x summed per group, then scaled once per group. Several
                /// tokens: the codes are scaled once and shared by every token's FMA.
                func groupBlock(_ g0: IRValue, width: Int, acc: [IRValue], biasAcc: [IRValue]) -> ([IRValue], [IRValue]) {
                    let sv = loadParams(scales, b.add(rowParams, g0), width)
                    let bv = loadParams(biases, b.add(rowParams, g0), width)
                    var acc = acc, biasAcc = biasAcc
                    for gi in 0..<width {
                        let g = b.add(g0, b.i64(gi))
                        let scale = width == 1 ? b.splat(sv, cl) : b.shuffle(sv, sv, [Int](repeating: gi, count: cl))
                        var groupAcc: IRValue? = nil
                        for ci in 0..<chunksPerGroup {
                            let element = b.add(b.mul(g, b.i64(groupSize)), b.i64(ci * chunk))
                            let bytes = b.load(b.vector(b.i8, cl), b.gep(b.i8, rowCodes, b.sdiv(element, b.i64(perByte))), align: 1)
                            let wide = b.zext(bytes, b.vector(b.i32, cl))
                            for s in 0..<perByte {
                                var q = s == 0 ? wide : b.lshr(wide, b.splat(b.i32(s * bits), cl))
                                if s < perByte - 1 { q = b.and(q, codeMask) }   // the top code has no bits above it
                                var qf = b.uitofp(q, vec)
                                if nt > 1 { qf = b.fmul(qf, scale) }
                                for t in 0..<nt {
                                    let xv = b.load(vec, b.gep(b.f32, xBase, b.add(b.i64(t * k), b.add(element, b.i64(s * cl)))))
                                    if nt > 1 {
                                        acc[t] = b.fma(qf, xv, acc[t])
                                    } else {
                                        groupAcc = groupAcc.map { b.fma(qf, xv, $0) } ?? b.fmul(qf, xv)
                                    }
                                }
                            }
                        }
                        if let groupAcc { acc[0] = b.fma(groupAcc, scale, acc[0]) }
                    }
                    for t in 0..<nt {
                        let sumsAt = b.gep(b.f32, sumScratch, b.add(b.i64(t * groups), g0))
                        let sums = b.load(width == 1 ? b.f32 : b.vector(b.f32, width), sumsAt)
                        if width == groupUnroll {
                            biasAcc[t] = b.fma(bv, sums, biasAcc[t])
                        } else {
                            let dot = width == 1 ? b.fmul(bv, sums) : b.reduceAdd(b.fmul(bv, sums))
                            biasAcc[t] = b.fadd(biasAcc[t], b.insert(b.zero(biasType), dot, 0))
                        }
                    }
                    return (acc, biasAcc)
                }

                let zero = b.zero(vec)
                let fullBlocks = groups / groupUnroll
                var state = b.loop(b.i64(0), b.i64(fullBlocks), carrying: [IRValue](repeating: zero, count: nt) + [IRValue](repeating: b.zero(biasType), count: nt), "gb") { blk, carried in
                    let (a, bias) = groupBlock(b.mul(blk, b.i64(groupUnroll)), width: groupUnroll, acc: Array(carried[0..<nt]), biasAcc: Array(carried[nt...]))
                    return a + bias
                }
                // The remaining groups, in power-of-two pieces.
                var g0 = fullBlocks * groupUnroll, left = groups - g0
                var piece = groupUnroll / 2
                while left > 0 {
                    if piece <= left {
                        let (a, bias) = groupBlock(b.i64(g0), width: piece, acc: Array(state[0..<nt]), biasAcc: Array(state[nt...]))
                        state = a + bias
                        g0 += piece
                        left -= piece
                    } else {
                        piece /= 2
                    }
                }
                return (0..<nt).map { t in b.fadd(b.reduceAdd(state[t]), b.reduceAdd(state[nt + t])) }
            }

            /// Stores token t's value of row r of an [M, n] result, plus the residual's.
            func store(_ value: IRValue, _ out: IRValue, row r: IRValue, n: Int, token: IRValue) {
                let at = b.add(b.mul(token, b.i64(n)), r)
                var v = value
                if let residualBuffer { v = b.fadd(v, b.load(b.f32, b.gep(b.f32, residualBuffer, at))) }
                b.store(v, b.gep(b.f32, out, at))
            }

            func tokens(t0: IRValue, nt: Int) {
                prepare(t0: t0, nt: nt)
                switch epilogue {
                case .swiglu:
                    b.loop(e.begin, e.end, "n") { r in
                        let gate = row(r, weights[0], t0: t0, nt: nt), up = row(r, weights[1], t0: t0, nt: nt)
                        for t in 0..<nt {
                            let g = gate[t]
                            store(b.fmul(VectorMath.silu(Lanes(b, 1), g), up[t]), outs[0], row: r, n: ns[0], token: b.add(t0, b.i64(t)))
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
            let mMain = b.mul(b.sdiv(m, b.i64(tb)), b.i64(tb))
            b.loop(b.i64(0), mMain, step: tb, "t") { t0 in tokens(t0: t0, nt: tb) }
            if tb > 1 { b.loop(mMain, m, "tt") { t0 in tokens(t0: t0, nt: 1) } }
        }
    }
}
