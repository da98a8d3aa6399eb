import CLLVM
import LLVMKit

extension GatherMatmulKernels {
    /// Token runs the float kernel computes together (largest first): each weight vector loaded
    /// feeds one FMA per token of the run. The largest tier × `floatColumns().vectors`
    /// accumulators stay in registers beside the weight vectors and the broadcast x: 8 × 2 of
    /// AVX-512's 32 registers, 6 × 2 of AVX2's 16 (ARM64's 32 NEON registers hold 6 × 2 too).
    public static func floatTokenBlocks(lanes: Int) -> [Int] { lanes >= 16 ? [8, 4, 2, 1] : [6, 3, 1] }

    /// Vector width and vectors per work item of the float kernel: the widest power of two
    /// ≤ lanes dividing n, two of them per item while that still leaves ≥ 4 items (2 threads × 2)
    /// — two column vectors halve the x broadcasts per FMA.
    public static func floatColumns(n: Int, lanes: Int) -> (width: Int, vectors: Int) {
        let width = Support.width(dividing: n, lanes: lanes)
        return (width, n % (2 * width) == 0 && n / (2 * width) >= 4 ? 2 : 1)
    }

    /// Columns per work item of the float kernel.
    public static func columnWidth(n: Int, lanes: Int) -> Int {
        let c = floatColumns(n: n, lanes: lanes)
        return c.width * c.vectors
    }

    /// Largest f32 scratch (elements) for a run's widened x rows; longer rows are read in place.
    static let floatScratchLimit = 64 << 10

    /// MLX `gather_mm` with float experts `w` [E, K, N] (read as stored: rows of N along k):
    /// `out[t, n] = Σ_k x[t, k] · w[expert(t), k, n]`, vectorized over n, x broadcast per k.
    /// x and w may be f32, bf16 or f16 (widened to f32, exact); the result is rounded once to
    /// `out`'s dtype. Only each token's own expert is read.
    ///
    /// Register tiles: a run of tokens sharing an expert (tokens sorted by expert in prefill)
    /// × `floatColumns` vectors; bf16/f16 x rows of a run are widened once into an f32 scratch so
    /// the inner loop broadcasts straight from memory.
    ///
    /// `weightStrides` (elements between experts, between rows k; columns are contiguous) read a
    /// strided view of the weights in place, e.g. a stacked [K, E, N] weight as [E, K, N]
    /// (experts N apart, rows E·N apart); nil: contiguous [E, K, N].
    ///
    /// buffers: [x, w, lhs indices?, rhs indices?, out]; work items: blocks of `columnWidth` columns.
    public static func float(k: Int, n: Int, x xType: ElementType, w wType: ElementType, out outType: ElementType,
                             indices: Indices, lanes: Int, weightStrides: (expert: Int, row: Int)? = nil) -> KernelDefinition {
        let (width, vectors) = floatColumns(n: n, lanes: lanes)
        let tiers = floatTokenBlocks(lanes: lanes)
        let strides = weightStrides ?? (k * n, n)
        let strided = strides.expert != k * n || strides.row != n ? "_ws\(strides.expert)x\(strides.row)" : ""
        let widened = xType != .f32 && tiers[0] * k <= floatScratchLimit
        let name = "gather_mm_\(xType.tag)x_\(wType.tag)w_\(outType.tag)_k\(k)_n\(n)\(strided)_\(indices.tag)"
            + "_tb\(tiers[0])_v\(width)x\(vectors)\(widened ? "_xs" : "")"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1)
            let tokens = Tokens(e, indices: indices, firstIndexBuffer: 2)
            let out = e.buffer(2 + indices.count)
            let l = Lanes(b, width), one = Lanes(b, 1)
            let scratch: IRValue? = widened ? {
                let a = b.alloca(LLVMArrayType2(b.f32, UInt64(tiers[0] * k)))
                LLVMSetAlignment(a, 64)
                return a
            }() : nil
            tokens.walk(tokenBlocks: tiers) { t0, nt, expert in
                let xRows = (0..<nt).map { b.mul(tokens.token(b.add(t0, b.i64($0))).xRow, b.i64(k)) }
                // x[s][p] as a broadcast f32: from the scratch when the run was widened into it.
                let loadX: (Int, IRValue) -> IRValue
                if let scratch {
                    let vl = Lanes(b, Support.width(dividing: k, lanes: lanes))
                    for s in 0..<nt {
                        b.loop(b.i64(0), b.i64(k / vl.width), "widen") { c in
                            let i = b.mul(c, b.i64(vl.width))
                            vl.storeF32(vl.loadF32(xType, x, b.add(xRows[s], i)), .f32, scratch, b.add(b.i64(s * k), i))
                        }
                    }
                    loadX = { s, p in one.loadF32(.f32, scratch, b.add(b.i64(s * k), p)) }
                } else {
                    loadX = { s, p in one.loadF32(xType, x, b.add(xRows[s], p)) }
                }
                let expertBase = b.mul(expert, b.i64(strides.expert))
                b.loop(e.begin, e.end, "cols") { item in
                    let col = b.mul(item, b.i64(width * vectors))
                    let zero = [IRValue](repeating: l.zero(b.f32), count: nt * vectors)
                    let acc = b.loop(b.i64(0), b.i64(k), carrying: zero, "k") { p, acc in
                        let row = b.add(expertBase, b.add(b.mul(p, b.i64(strides.row)), col))
                        let wv = (0..<vectors).map { l.loadF32(wType, w, b.add(row, b.i64($0 * width))) }
                        var next = acc
                        for s in 0..<nt {
                            let xs = l.splat(loadX(s, p))
                            for v in 0..<vectors { next[s * vectors + v] = b.fma(xs, wv[v], acc[s * vectors + v]) }
                        }
                        return next
                    }
                    for s in 0..<nt {
                        let rowStart = b.add(b.mul(b.add(t0, b.i64(s)), b.i64(n)), col)
                        for v in 0..<vectors {
                            l.storeF32(acc[s * vectors + v], outType, out, b.add(rowStart, b.i64(v * width)))
                        }
                    }
                }
            }
        }
    }
}
