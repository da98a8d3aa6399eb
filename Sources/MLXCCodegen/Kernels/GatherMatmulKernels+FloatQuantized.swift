import CLLVM
import LLVMKit

extension GatherMatmulKernels {
    /// MLX `gather_qmm` with block-scaled float experts (nvfp4 / mxfp4 / mxfp8, transpose = true):
    /// `out[t, n] = Σ_k x[t, k] · code · scale` with expert `w` [E, N, K·bits/32] words and u8
    /// scales [E, N, K/groupSize], read as `FloatQuantizedLinearKernels` reads them (codes decoded in
    /// registers, scales once per group, codes scaled once per chunk when several tokens share an
    /// expert); only the rows of each token's own expert are touched. Activations may be f32, bf16
    /// or f16 (widened into the f32 scratch; results rounded once on the store).
    ///
    /// buffers: [x, w, scales, lhs indices?, rhs indices?, out]; work items: output rows n.
    public static func floatQuantized(k: Int, n: Int, mode: FloatQuantization, x xType: ElementType, indices: Indices,
                                      lanes: Int) -> KernelDefinition {
        let tb = QuantizedLinearKernels.tokenBlock(k: k)
        let name = "gather_qmm_\(mode.rawValue)_g\(mode.groupSize)_\(xType.tag)_k\(k)_n\(n)_\(indices.tag)_tb\(tb)_"
            + FloatQuantizedRows.tag(k: k, mode: mode, lanes: lanes)
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), scales = e.buffer(2)
            let tokens = Tokens(e, indices: indices, firstIndexBuffer: 3)
            let out = e.buffer(3 + indices.count)
            let rows = FloatQuantizedRows(b, k: k, mode: mode, lanes: lanes)
            let l = Lanes(b, rows.cl), scalar = Lanes(b, 1)
            let xp = rows.scratch(tb * k)
            tokens.walk(tokenBlock: tb) { t0, nt, expert in
                for s in 0..<nt {
                    let rowStart = b.mul(tokens.token(b.add(t0, b.i64(s))).xRow, b.i64(k))
                    rows.permute(into: b.gep(b.f32, xp, b.i64(s * k))) { i in l.loadF32(xType, x, b.add(rowStart, i)) }
                }
                b.loop(e.begin, e.end, "n") { r in
                    let globalRow = b.add(b.mul(expert, b.i64(n)), r)
                    let totals = rows.dot(rowWords: b.gep(b.i32, w, b.mul(globalRow, b.i64(rows.rowWords))),
                                          rowScales: b.gep(b.i8, scales, b.mul(globalRow, b.i64(rows.groups))), x: xp, nt: nt)
                    for s in 0..<nt {
                        scalar.storeF32(totals[s], xType, out, b.add(b.mul(b.add(t0, b.i64(s)), b.i64(n)), r))
                    }
                }
            }
        }
    }
}
