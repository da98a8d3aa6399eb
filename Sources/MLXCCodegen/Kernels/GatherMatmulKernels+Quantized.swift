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
            let perByte = 8 / bits
            let cl = min(lanes, groupSize / perByte)        // bytes loaded at once = lanes of a chunk
            let chunk = cl * perByte                        // elements of a chunk
            let chunksPerGroup = groupSize / chunk
            let groups = k / groupSize
            let rowBytes = k / perByte
            let vec = b.vector(b.f32, cl)
            let l = Lanes(b, cl)
            let codeMask = b.splat(b.i32((1 << bits) - 1), cl)
            let groupUnroll = 4
            let biasType = b.vector(b.f32, groupUnroll)

            func scratch(_ count: Int) -> IRValue {
                let a = b.alloca(LLVMArrayType2(b.f32, UInt64(count)))
                LLVMSetAlignment(a, 64)
                return a
            }
            // Per block slot: x in chunk order (xp[c·chunk + s·cl + j] = x[c·chunk + j·perByte + s]) and Σx per group.
            let xp = scratch(tb * k), sumScratch = scratch(tb * groups)

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

            /// Token `t`'s x row into slot `slot`: permuted per chunk, then Σx per group.
            func prepare(slot: Int, token t: IRValue) {
                let rowStart = b.mul(tokens.token(t).xRow, b.i64(k))
                let dst = b.gep(b.f32, xp, b.i64(slot * k))
                b.loop(b.i64(0), b.i64(k / chunk), "perm") { c in
                    let base = b.mul(c, b.i64(chunk))
                    var whole = (0..<perByte).map { p in l.loadF32(xType, x, b.add(rowStart, b.add(base, b.i64(p * cl)))) }
                    while whole.count > 1 {
                        let width = Int(LLVMGetVectorSize(LLVMTypeOf(whole[0])))
                        whole = stride(from: 0, to: whole.count, by: 2).map { b.shuffle(whole[$0], whole[$0 + 1], Array(0..<(2 * width))) }
                    }
                    for s in 0..<perByte {
                        let picked = perByte == 1 ? whole[0] : b.shuffle(whole[0], whole[0], (0..<cl).map { $0 * perByte + s })
                        b.store(picked, b.gep(b.f32, dst, b.add(base, b.i64(s * cl))))
                    }
                }
                // A group is whole chunks, so its sum over the permuted copy is the sum over x.
                let sums = b.gep(b.f32, sumScratch, b.i64(slot * groups))
                b.loop(b.i64(0), b.i64(groups), "sum") { g in
                    var s: IRValue? = nil
                    for v in 0..<(groupSize / cl) {
                        let xv = b.load(vec, b.gep(b.f32, dst, b.add(b.mul(g, b.i64(groupSize)), b.i64(v * cl))))
                        s = s.map { b.fadd($0, xv) } ?? xv
                    }
                    b.store(b.reduceAdd(s!), b.gep(b.f32, sums, g))
                }
            }

            /// Row r of `expert` for the nt prepared slots: one f32 dot product per slot.
            func row(_ r: IRValue, expert: IRValue, nt: Int) -> [IRValue] {
                let globalRow = b.add(b.mul(expert, b.i64(n)), r)
                let rowCodes = b.gep(b.i8, w, b.mul(globalRow, b.i64(rowBytes)))
                let rowParams = b.mul(globalRow, b.i64(groups))

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
                                if s < perByte - 1 { q = b.and(q, codeMask) }
                                var qf = b.uitofp(q, vec)
                                if nt > 1 { qf = b.fmul(qf, scale) }
                                for t in 0..<nt {
                                    let xv = b.load(vec, b.gep(b.f32, xp, b.add(b.i64(t * k), b.add(element, b.i64(s * cl)))))
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
                        let sums = b.load(width == 1 ? b.f32 : b.vector(b.f32, width), b.gep(b.f32, sumScratch, b.add(b.i64(t * groups), g0)))
                        if width == groupUnroll {
                            biasAcc[t] = b.fma(bv, sums, biasAcc[t])
                        } else {
                            let dot = width == 1 ? b.fmul(bv, sums) : b.reduceAdd(b.fmul(bv, sums))
                            biasAcc[t] = b.fadd(biasAcc[t], b.insert(b.zero(biasType), dot, 0))
                        }
                    }
                    return (acc, biasAcc)
                }

                let initial = [IRValue](repeating: b.zero(vec), count: nt) + [IRValue](repeating: b.zero(biasType), count: nt)
                let fullBlocks = groups / groupUnroll
                var state = b.loop(b.i64(0), b.i64(fullBlocks), carrying: initial, "gb") { blk, carried in
                    let (a, bias) = groupBlock(b.mul(blk, b.i64(groupUnroll)), width: groupUnroll,
                                               acc: Array(carried[0..<nt]), biasAcc: Array(carried[nt...]))
                    return a + bias
                }
                var g0 = fullBlocks * groupUnroll, left = groups - g0, piece = groupUnroll / 2
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
