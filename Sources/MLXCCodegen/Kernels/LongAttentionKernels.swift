import CLLVM
import LLVMKit

/// Unmasked, non-causal f32 attention over long sequences (an audio encoder's 1500×1500 self-attention):
/// the same buffers, dims and layouts as `AttentionKernels.sdpa`, computed as two small GEMMs per block of
/// keys with the query rows across the vector lanes, so nothing needs a horizontal sum.
///
/// A work item is a tile of `lanes` query rows of one kv head (as `sdpa`'s tiles, wider). Its queries are
/// transposed once into a [dk][lanes] scratch; keys are visited in chunks of `chunk`:
/// - scores: for a group of keys, Σ_d qᵀ[d] · k[j, d] (broadcast) — one vector of `lanes` rows' scores per
///   key, written to a [chunk][lanes] slab (`chunk` × `lanes` floats, in L1/L2, never the whole S);
/// - softmax: the chunk's row maxima are a vector max over its keys; the rows' running max, sum and the
///   output rescale per chunk (online softmax), each key's probabilities one vector `exp`;
/// - values: blocks of rows × dv accumulators, per key the value row's vectors times each row's
///   probability (broadcast from the slab), added into the tile's [lanes][dv] output scratch.
/// Per (row, key) that is dk/lanes + dv/lanes FMAs and 1/lanes of an exp; each K/V row is read from
/// cache once per tile, and consecutive work items are tiles of the same head (K/V stay in L2).
/// A row that sees no key (S = 0) is 0, as in the reference.
public enum LongAttentionKernels {
    /// Keys per chunk (the slab is chunk × lanes floats: 32 KB at 16 lanes).
    public static let chunk = 512

    /// Query rows per tile: one vector of rows.
    public static func tileRows(lanes: Int) -> Int { lanes }

    /// Work items of a call: tiles of query rows per (batch, kv head).
    public static func workItems(batch: Int, hq: Int, hkv: Int, t: Int, lanes: Int) -> Int {
        guard hkv > 0 else { return 0 }
        let rows = tileRows(lanes: lanes)
        return batch * hkv * ((hq / hkv * t + rows - 1) / rows)
    }

    /// Whether a call of these sizes is better served by this kernel than by `sdpa`'s row tiles.
    public static func suits(queryRows: Int, keys: Int, lanes: Int) -> Bool {
        lanes > 1 && queryRows >= 4 * lanes && keys >= 4 * lanes
    }

    public static func sdpa(dk: Int, dv: Int, scale: Double, lanes: Int) -> KernelDefinition {
        precondition(lanes > 1)
        let name = "sdpa_long_f32_dk\(dk)" + (dv != dk ? "_dv\(dv)" : "") + "_scale\(Support.name(Float(scale)))_c\(chunk)_v\(lanes)"
        let rt = tileRows(lanes: lanes)
        // Keys per score group and rows per value block: accumulators within the register file.
        let budget = lanes >= 16 ? 16 : 8
        let keyGroup = budget
        let vChunks = AttentionKernels.chunks(dv, lanes: lanes)
        let rowBlock = max(1, budget / vChunks.count)
        return KernelDefinition(name: name, unrollsItself: true) { e in
            let b = e.b
            let wide = Lanes(b, lanes)
            let qT = b.alloca(LLVMArrayType(b.f32, UInt32(dk * rt)))
            let slab = b.alloca(LLVMArrayType(b.f32, UInt32(chunk * rt)))
            let outTile = b.alloca(LLVMArrayType(b.f32, UInt32(rt * dv)))
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2), out = e.buffer(3)
            let hq = e.dim(0), hkv = e.dim(1), t = e.dim(2), s = e.dim(3)
            func strides(_ at: Int) -> [IRValue] { (0..<3).map { e.dim(at + $0) } }
            let qs = strides(5), ks = strides(8), vs = strides(11), os = strides(14)
            let group = b.sdiv(hq, hkv)
            let rowsPerHead = b.mul(group, t)
            let tiles = b.sdiv(b.add(rowsPerHead, b.i64(rt - 1)), b.i64(rt))
            func at(_ st: [IRValue], _ x: IRValue, _ y: IRValue, _ z: IRValue) -> IRValue {
                b.add(b.add(b.mul(x, st[0]), b.mul(y, st[1])), b.mul(z, st[2]))
            }
            func slot(_ buffer: IRValue, _ index: IRValue) -> IRValue { b.gep(b.f32, buffer, index) }
            let negInf = b.f32(-.infinity)

            b.loop(e.begin, e.end, "tile") { item in
                let tile = b.srem(item, tiles), bk2 = b.sdiv(item, tiles)
                let kh = b.srem(bk2, hkv), bi = b.sdiv(bk2, hkv)
                let firstRow = b.mul(tile, b.i64(rt))
                let rows = Support.smin(b, b.i64(rt), b.sub(rowsPerHead, firstRow))
                let kBase = at(ks, bi, kh, b.i64(0)), vBase = at(vs, bi, kh, b.i64(0))
                /// Row r of the tile (r < rows): its head h and position i.
                func row(_ r: IRValue) -> (h: IRValue, i: IRValue) {
                    let rr = b.add(firstRow, r)
                    return (b.add(b.mul(kh, group), b.sdiv(rr, t)), b.srem(rr, t))
                }
                // qᵀ: rows past the tile's end are 0 (their scores are 0, their outputs not written).
                b.loop(b.i64(0), b.i64(rt), "qt") { r in
                    let present = b.icmp(LLVMIntSLT, r, rows)
                    let (h, i) = row(b.select(present, r, b.i64(0)))
                    let qBase = at(qs, bi, h, i)
                    b.loop(b.i64(0), b.i64(dk), "qd") { d in
                        let x = b.load(b.f32, slot(q, b.add(qBase, d)))
                        b.store(b.select(present, x, b.f32(0)), slot(qT, b.add(b.mul(d, b.i64(rt)), r)))
                    }
                    for c in vChunks {
                        Lanes(b, c.width).store(Lanes(b, c.width).zero(b.f32), b.f32, outTile, b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)))
                    }
                }
                let chunks = b.sdiv(b.add(s, b.i64(chunk - 1)), b.i64(chunk))
                let state = b.loop(b.i64(0), chunks, carrying: [wide.splat(negInf), wide.zero(b.f32)], "chunk") { ci, ml in
                    let j0 = b.mul(ci, b.i64(chunk))
                    let n = Support.smin(b, b.i64(chunk), b.sub(s, j0))
                    /// Scores of keys [jj, jj + count) of the chunk into the slab; returns their max per row.
                    func scores(_ jj: IRValue, _ count: Int, _ runningMax: IRValue) -> IRValue {
                        let kRows = (0..<count).map { g in b.add(kBase, b.mul(b.add(j0, b.add(jj, b.i64(g))), ks[2])) }
                        let sums = b.loop(b.i64(0), b.i64(dk), carrying: [IRValue](repeating: wide.zero(b.f32), count: count), "qk") { d, acc in
                            let qv = wide.load(b.f32, qT, b.mul(d, b.i64(rt)))
                            return (0..<count).map { g in b.fma(qv, wide.splat(b.load(b.f32, slot(k, b.add(kRows[g], d)))), acc[g]) }
                        }
                        var mx = runningMax
                        for g in 0..<count {
                            let sc = b.fmul(sums[g], wide.f32(Float(scale)))
                            wide.store(sc, b.f32, slab, b.mul(b.add(jj, b.i64(g)), b.i64(rt)))
                            mx = wide.fmax(mx, sc)
                        }
                        return mx
                    }
                    let groups = b.mul(b.sdiv(n, b.i64(keyGroup)), b.i64(keyGroup))
                    var chunkMax = b.loop(b.i64(0), groups, step: keyGroup, carrying: [wide.splat(negInf)], "kg") { jj, mx in
                        [scores(jj, keyGroup, mx[0])]
                    }[0]
                    chunkMax = b.loop(groups, n, carrying: [chunkMax], "k1") { jj, mx in [scores(jj, 1, mx[0])] }[0]
                    let mNew = wide.fmax(ml[0], chunkMax)
                    let correction = VectorMath.exp(wide, b.fsub(ml[0], mNew))
                    // Probabilities in place, and their sums per row.
                    let chunkSum = b.loop(b.i64(0), n, carrying: [wide.zero(b.f32)], "p") { jj, acc in
                        let p = VectorMath.exp(wide, b.fsub(wide.load(b.f32, slab, b.mul(jj, b.i64(rt))), mNew))
                        wide.store(p, b.f32, slab, b.mul(jj, b.i64(rt)))
                        return [b.fadd(acc[0], p)]
                    }[0]
                    let l = b.fadd(b.fmul(ml[1], correction), chunkSum)
                    // Output rows in blocks: rescaled, then Σ_j p[j, r] · v[j].
                    for r0 in stride(from: 0, to: rt, by: rowBlock) {
                        let rb = min(rowBlock, rt - r0)
                        let accAt = (0..<rb).map { r in vChunks.map { c in b.i64((r0 + r) * dv + c.offset) } }
                        var initial: [IRValue] = []
                        for r in 0..<rb {
                            for (ci, c) in vChunks.enumerated() {
                                let cl = Lanes(b, c.width)
                                initial.append(b.fmul(cl.load(b.f32, outTile, accAt[r][ci]), cl.splat(b.extract(correction, r0 + r))))
                            }
                        }
                        let acc = b.loop(b.i64(0), n, carrying: initial, "pv") { jj, acc in
                            let vRow = b.add(vBase, b.mul(b.add(j0, jj), vs[2]))
                            let vv = vChunks.map { c in Lanes(b, c.width).load(b.f32, v, b.add(vRow, b.i64(c.offset))) }
                            var next = acc
                            for r in 0..<rb {
                                let p = b.load(b.f32, slot(slab, b.add(b.mul(jj, b.i64(rt)), b.i64(r0 + r))))
                                for (ci, c) in vChunks.enumerated() {
                                    let x = r * vChunks.count + ci
                                    next[x] = b.fma(Lanes(b, c.width).splat(p), vv[ci], acc[x])
                                }
                            }
                            return next
                        }
                        for r in 0..<rb {
                            for (ci, c) in vChunks.enumerated() {
                                Lanes(b, c.width).store(acc[r * vChunks.count + ci], b.f32, outTile, accAt[r][ci])
                            }
                        }
                    }
                    return [mNew, l]
                }
                // Each row: its output over its sum (0 where no key was seen).
                let l = state[1]
                b.loop(b.i64(0), rows, "out") { r in
                    let (h, i) = row(r)
                    let lr = LLVMBuildExtractElement(b.ref, l, r, "")!
                    let seen = b.fcmp(LLVMRealOGT, lr, b.f32(0))
                    let oBase = at(os, bi, h, i)
                    for c in vChunks {
                        let cl = Lanes(b, c.width)
                        let acc = cl.load(b.f32, outTile, b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)))
                        cl.store(b.select(seen, b.fdiv(acc, cl.splat(lr)), cl.zero(b.f32)), b.f32, out, b.add(oBase, b.i64(c.offset)))
                    }
                }
            }
        }
    }
}
