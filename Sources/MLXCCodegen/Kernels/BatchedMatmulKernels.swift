import CLLVM
import LLVMKit

/// `out[β, i, :] = Σ_k a[β, i, k] · b[β, k, :]`: NumPy/ATen `matmul` of contiguous a [..., M, K]
/// and b [..., K, N] whose batch dims broadcast. Plain attention exports compute q·kᵀ and p·v this
/// way (both operands are activations, so nothing can be packed at compile time).
///
/// Rows of b are contiguous, so the kernel vectorizes over N: a block of `rows` rows of a times
/// `columns` vectors of b keeps rows × columns accumulators; each step over k loads the b vectors
/// once and splats one element of a per row (no horizontal sums). N's tail is one masked vector.
/// f32, bf16 and f16 operands are read as f32 and the result rounded once on the store.
///
/// The runtime collapses the broadcast batch to two dims [B0, B1] with a matrix stride per operand
/// (0 where it broadcasts). Work items are (batch, block of `rows` rows of a): a decode step (M = 1)
/// still splits across heads.
/// With `addmm` (`addmm(bias, a, b, beta, alpha)` in any form no linear kernel takes: b an
/// activation such as HF RoPE's inv_freq ⊗ positions, b a constant [K, N] read as stored, alpha or
/// beta ≠ 1), each result is alpha·(a·b) + beta·bias before its one rounding, the bias [N] or [M, N]
/// (row stride dims[9]: 0 or N) broadcast over the batch, as the reference computes it in Double.
/// buffers: [a, b, bias?, out]; dims: [M, K, N, B1, sA0, sA1, sB0, sB1, rowBlocks, sBiasRow?].
public enum BatchedMatmulKernels {
    public static let rows = 4
    static let columns = 2

    /// addmm's scalars and bias: out = alpha·(a·b) + beta·bias.
    public struct Addmm: Equatable, Sendable {
        public var alpha: Float, beta: Float, hasBias: Bool
        public init(alpha: Float, beta: Float, hasBias: Bool) { (self.alpha, self.beta, self.hasBias) = (alpha, beta, hasBias) }
        var tag: String {
            (hasBias ? "_bias" : "") + (alpha != 1 ? "_alpha\(alpha)" : "") + (hasBias && beta != 1 ? "_beta\(beta)" : "")
        }
    }

    public static func matmul(_ t: ElementType, addmm: Addmm? = nil, lanes: Int) -> KernelDefinition {
        KernelDefinition(name: "batched_matmul_\(t.tag)\(addmm?.tag ?? "")_r\(rows)c\(columns)_v\(lanes)") { e in
            let b = e.b
            let hasBias = addmm?.hasBias ?? false
            let a = e.buffer(0), bm = e.buffer(1), bias = hasBias ? e.buffer(2) : nil, out = e.buffer(hasBias ? 3 : 2)
            let m = e.dim(0), k = e.dim(1), n = e.dim(2), b1 = e.dim(3)
            let sA0 = e.dim(4), sA1 = e.dim(5), sB0 = e.dim(6), sB1 = e.dim(7), blocks = e.dim(8)
            let sBiasRow = hasBias ? e.dim(9) : nil
            let scalar = Lanes(b, 1)

            /// out rows i0..<i0+nr, columns j0..<j0+nc·width (the lanes of `l`), over all of K.
            func tile(_ l: Lanes, nr: Int, nc: Int, aBase: IRValue, bBase: IRValue, outBase: IRValue, i0: IRValue, j0: IRValue) {
                let initial = [IRValue](repeating: l.zero(b.f32), count: nr * nc)
                let acc = b.loop(b.i64(0), k, carrying: initial, "k") { kk, acc in
                    let bRow = b.add(bBase, b.mul(kk, n))
                    let bv = (0..<nc).map { c in l.loadF32(t, bm, b.add(bRow, b.add(j0, b.i64(c * l.width)))) }
                    var next = acc
                    for r in 0..<nr {
                        let av = scalar.loadF32(t, a, b.add(aBase, b.add(b.mul(b.add(i0, b.i64(r)), k), kk)))
                        let splat = l.splat(av)
                        for c in 0..<nc { next[r * nc + c] = b.fma(splat, bv[c], acc[r * nc + c]) }
                    }
                    return next
                }
                for r in 0..<nr {
                    let i = b.add(i0, b.i64(r))
                    let row = b.add(outBase, b.mul(i, n))
                    for c in 0..<nc {
                        let column = b.add(j0, b.i64(c * l.width))
                        var v = acc[r * nc + c]
                        if let addmm {
                            if addmm.alpha != 1 { v = b.fmul(v, l.f32(addmm.alpha)) }
                            if let bias, let sBiasRow {
                                let bv = l.loadF32(t, bias, b.add(b.mul(i, sBiasRow), column))
                                v = addmm.beta == 1 ? b.fadd(v, bv) : b.fma(bv, l.f32(addmm.beta), v)
                            }
                        }
                        l.storeF32(v, t, out, b.add(row, column))
                    }
                }
            }

            /// All of N for rows i0..<i0+nr: blocks of `columns` vectors, single vectors, a masked tail.
            func rowBlock(nr: Int, aBase: IRValue, bBase: IRValue, outBase: IRValue, i0: IRValue) {
                let full = Lanes(b, lanes)
                let wide = columns * lanes
                let mainEnd = b.mul(b.sdiv(n, b.i64(wide)), b.i64(wide))
                b.loop(b.i64(0), mainEnd, step: wide, "j") { j0 in
                    tile(full, nr: nr, nc: columns, aBase: aBase, bBase: bBase, outBase: outBase, i0: i0, j0: j0)
                }
                let vecEnd = b.mul(b.sdiv(n, b.i64(lanes)), b.i64(lanes))
                b.loop(mainEnd, vecEnd, step: lanes, "jv") { j0 in
                    tile(full, nr: nr, nc: 1, aBase: aBase, bBase: bBase, outBase: outBase, i0: i0, j0: j0)
                }
                let remaining = b.sub(n, vecEnd)
                Support.ifThen(b, b.icmp(LLVMIntSGT, remaining, b.i64(0)), "jt") {
                    let masked = Lanes(b, lanes, mask: Support.tailMask(b, remaining, width: lanes))
                    tile(masked, nr: nr, nc: 1, aBase: aBase, bBase: bBase, outBase: outBase, i0: i0, j0: vecEnd)
                }
            }

            b.loop(e.begin, e.end, "w") { w in
                let batch = b.sdiv(w, blocks), block = b.srem(w, blocks)
                let p0 = b.sdiv(batch, b1), p1 = b.srem(batch, b1)
                let aBase = b.add(b.mul(p0, sA0), b.mul(p1, sA1))
                let bBase = b.add(b.mul(p0, sB0), b.mul(p1, sB1))
                let outBase = b.mul(batch, b.mul(m, n))
                let i0 = b.mul(block, b.i64(rows))
                let count = b.sub(m, i0)
                _ = Support.ifElse(b, b.icmp(LLVMIntSGE, count, b.i64(rows)), "rows", then: {
                    rowBlock(nr: rows, aBase: aBase, bBase: bBase, outBase: outBase, i0: i0)
                    return []
                }, otherwise: {
                    b.loop(i0, m, "i") { i in rowBlock(nr: 1, aBase: aBase, bBase: bBase, outBase: outBase, i0: i) }
                    return []
                })
            }
        }
    }
}
