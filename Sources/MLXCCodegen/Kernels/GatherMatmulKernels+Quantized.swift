import CLLVM
import LLVMKit

extension GatherMatmulKernels {
    /// MLX `gather_qmm`, affine 2/4/8-bit, transpose = true: `out[t, n] = Σ_k x[t, k] · (s·q + b)`
    /// with expert `w` [E, N, K·bits/32] words, scales and biases [E, N, K/groupSize]. The weights
    /// are read as `QuantizedLinearKernels` reads them (bytes zero-extended into i32 lanes, codes
    /// shifted out, `Σ x` per group hoisted so the bias is one short dot product per row, codes
    /// scaled once per chunk when several tokens share them); only the rows of each token's own
    /// expert are touched and nothing dequantized is written. Activations may be f32, bf16 or f16
    /// (widened into the f32 scratch; results rounded once on the store).
    ///
    /// buffers: [x, w, scales, biases, lhs indices?, rhs indices?, out]; work items: output rows n.
    public static func quantized(k: Int, n: Int, bits: Int, groupSize: Int, params: QuantizedLinearKernels.ParamType,
                                 x xType: ElementType, indices: Indices, lanes: Int) -> KernelDefinition {
        let tb = QuantizedLinearKernels.tokenBlock(k: k)
        let name = "gather_qmm_affine_w\(bits)g\(groupSize)_\(params.rawValue)params_\(xType.tag)_k\(k)_n\(n)_\(indices.tag)_tb\(tb)_v\(lanes)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), scales = e.buffer(2), biases = e.buffer(3)
            let tokens = Tokens(e, indices: indices, firstIndexBuffer: 4)
            let out = e.buffer(4 + indices.count)
            let rows = AffineQuantizedRows(b, k: k, bits: bits, groupSize: groupSize, params: params, lanes: lanes)
            let (cl, groups) = (rows.cl, rows.groups)
            let l = Lanes(b, cl)
            // Per block slot: x in chunk order (xp[c·chunk + s·cl + j] = x[c·chunk + j·perByte + s]) and Σx per group.
            let xp = rows.scratch(tb * k), sumScratch = rows.scratch(tb * groups)

            /// Token `t`'s x row into slot `slot`: permuted per chunk, then Σx per group.
            func prepare(slot: Int, token t: IRValue) {
                let rowStart = b.mul(tokens.token(t).xRow, b.i64(k))
                let dst = b.gep(b.f32, xp, b.i64(slot * k))
                rows.permute(into: dst) { i in l.loadF32(xType, x, b.add(rowStart, i)) }
                // A group is whole chunks, so its sum over the permuted copy is the sum over x.
                let sums = b.gep(b.f32, sumScratch, b.i64(slot * groups))
                b.loop(b.i64(0), b.i64(groups), "sum") { g in
                    var s: IRValue? = nil
                    for v in 0..<(groupSize / cl) {
                        let xv = b.load(rows.vec, b.gep(b.f32, dst, b.add(b.mul(g, b.i64(groupSize)), b.i64(v * cl))))
                        s = s.map { b.fadd($0, xv) } ?? xv
                    }
                    b.store(b.reduceAdd(s!), b.gep(b.f32, sums, g))
                }
            }

            /// Row r of `expert` for the nt prepared slots: one f32 dot product per slot.
            func row(_ r: IRValue, expert: IRValue, nt: Int) -> [IRValue] {
                let globalRow = b.add(b.mul(expert, b.i64(n)), r)
                return rows.dot(rowCodes: b.gep(b.i8, w, b.mul(globalRow, b.i64(rows.rowBytes))), scales: scales, biases: biases,
                                paramIndex: b.mul(globalRow, b.i64(groups)), x: xp, sums: sumScratch, nt: nt)
            }

            let scalar = Lanes(b, 1)
            tokens.walk(tokenBlock: tb) { t0, nt, expert in
                for s in 0..<nt { prepare(slot: s, token: b.add(t0, b.i64(s))) }
                b.loop(e.begin, e.end, "n") { r in
                    let totals = row(r, expert: expert, nt: nt)
                    for s in 0..<nt {
                        scalar.storeF32(totals[s], xType, out, b.add(b.mul(b.add(t0, b.i64(s)), b.i64(n)), r))
                    }
                }
            }
        }
    }
}
