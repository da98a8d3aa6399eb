import CLLVM
import LLVMKit

extension GatherMatmulKernels {
    /// Tokens sharing an expert computed together by the float kernel: each weight vector loaded
    /// feeds this many FMAs (4 accumulators stay in registers next to the weight vector).
    public static let floatTokenBlock = 4

    /// MLX `gather_mm` with float experts `w` [E, K, N] (read as stored: rows of N along k):
    /// `out[t, n] = Σ_k x[t, k] · w[expert(t), k, n]`, vectorized over n, x broadcast per k.
    /// x and w may be f32, bf16 or f16 (widened to f32, exact); the result is rounded once to
    /// `out`'s dtype. Only each token's own expert is read.
    ///
    /// `weightStrides` (elements between experts, between rows k; columns are contiguous) read a
    /// strided view of the weights in place, e.g. a stacked [K, E, N] weight as [E, K, N]
    /// (experts N apart, rows E·N apart); nil: contiguous [E, K, N].
    ///
    /// buffers: [x, w, lhs indices?, rhs indices?, out]; work items: blocks of `width` columns.
    public static func float(k: Int, n: Int, x xType: ElementType, w wType: ElementType, out outType: ElementType,
                             indices: Indices, lanes: Int, weightStrides: (expert: Int, row: Int)? = nil) -> KernelDefinition {
        let width = columnWidth(n: n, lanes: lanes)
        let tb = floatTokenBlock
        let strides = weightStrides ?? (k * n, n)
        let strided = strides.expert != k * n || strides.row != n ? "_ws\(strides.expert)x\(strides.row)" : ""
        let name = "gather_mm_\(xType.tag)x_\(wType.tag)w_\(outType.tag)_k\(k)_n\(n)\(strided)_\(indices.tag)_tb\(tb)_v\(width)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1)
            let tokens = Tokens(e, indices: indices, firstIndexBuffer: 2)
            let out = e.buffer(2 + indices.count)
            let l = Lanes(b, width), one = Lanes(b, 1)
            tokens.walk(tokenBlock: tb) { t0, nt, expert in
                let xRows = (0..<nt).map { b.mul(tokens.token(b.add(t0, b.i64($0))).xRow, b.i64(k)) }
                let expertBase = b.mul(expert, b.i64(strides.expert))
                b.loop(e.begin, e.end, "cols") { item in
                    let col = b.mul(item, b.i64(width))
                    let acc = b.loop(b.i64(0), b.i64(k), carrying: [IRValue](repeating: l.zero(b.f32), count: nt), "k") { p, acc in
                        let wv = l.loadF32(wType, w, b.add(expertBase, b.add(b.mul(p, b.i64(strides.row)), col)))
                        return (0..<nt).map { s in
                            let xs = one.loadF32(xType, x, b.add(xRows[s], p))
                            return b.fma(l.splat(xs), wv, acc[s])
                        }
                    }
                    for s in 0..<nt {
                        l.storeF32(acc[s], outType, out, b.add(b.mul(b.add(t0, b.i64(s)), b.i64(n)), col))
                    }
                }
            }
        }
    }

    /// Columns per work item of the float kernel: the widest power of two ≤ lanes dividing n.
    public static func columnWidth(n: Int, lanes: Int) -> Int { Support.width(dividing: n, lanes: lanes) }
}
