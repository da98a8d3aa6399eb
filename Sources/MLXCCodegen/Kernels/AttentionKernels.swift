import CLLVM
import LLVMKit

/// Scaled dot-product attention with an online softmax, q/k/v/out in f32, bf16 or f16 (`t`: read
/// widened to f32, scores, softmax state and accumulators in f32, the output rounded once), an
/// additive mask in f32, bf16 or f16 (`maskType`): keys are visited in blocks of one
/// vector of scores; each block's max rescales the running sum and the output accumulator, so no
/// T×S score matrix is ever stored.
///
/// A work item is a tile of up to `tileRows` query rows that read the same kv head (the heads of
/// one GQA group × positions): each block of keys and values is loaded from memory once for the
/// whole tile and reused from L1 by every row, whose running max, sum and accumulator live in a
/// small stack scratch. So decode reads the KV cache once per kv head, not once per query head,
/// and prefill reads it once per tile of positions.
///
/// Query row i of head h reads kv head h / (Hq/Hkv). With `causal`, it sees keys
/// j ≤ queryOffset + i (lower-right alignment when queryOffset = S − T); the tile's key loop stops
/// after the last key any of its rows sees. A mask (additive f32, or a bool keep-mask) broadcasts
/// over [B, Hq, T, ≥S] by strides; a row skips blocks its mask removes entirely (the unwritten part
/// of a KV cache) without computing their scores. A row that sees no key at all is 0, as in the
/// reference.
///
/// Every tensor is addressed through (batch, head, row) strides, so the same kernel serves BHSD
/// (`sdpa`) and BSHD (`llama::custom_sdpa`) layouts, and reads or writes through head swaps.
/// buffers: [q, k, v, mask?, (skip unread scalars), out];
/// dims: [Hq, Hkv, T, S, queryOffset, q strides (b, h, t), k strides (b, h, s), v strides (b, h, s),
///        out strides (b, h, t), mask strides (b, h, t)]; work items: `workItems(…)`.
public enum AttentionKernels {
    public enum Mask: String, Sendable {
        case none, additive, keep
    }

    public static let dimCount = 20
    public static let tileRows = 8

    /// Work items of a call: tiles of query rows per (batch, kv head).
    public static func workItems(batch: Int, hq: Int, hkv: Int, t: Int) -> Int {
        guard hkv > 0 else { return 0 }
        return batch * hkv * ((hq / hkv * t + tileRows - 1) / tileRows)
    }

    /// Static chunks of a head: full vectors, then one shorter vector for the remainder.
    static func chunks(_ d: Int, lanes: Int) -> [(offset: Int, width: Int)] {
        var result: [(Int, Int)] = []
        var at = 0
        while at < d {
            let w = min(lanes, d - at)
            result.append((at, w))
            at += w
        }
        return result
    }

    public static func sdpa(dk: Int, dv: Int, mask: Mask, causal: Bool, scale: Double, lanes: Int, skip: Int = 0,
                            _ element: ElementType = .f32, maskType: ElementType = .f32) -> KernelDefinition {
        var name = "sdpa_\(element.tag)_dk\(dk)"
        if dv != dk { name += "_dv\(dv)" }
        if mask != .none { name += "_\(mask.rawValue)mask" }
        if mask == .additive && maskType != .f32 { name += maskType.tag }
        if causal { name += "_causal" }
        name += "_scale\(Support.name(Float(scale)))_tile\(tileRows)_v\(lanes)"
        if skip > 0 { name += "_skip\(skip)" }
        let bk = lanes   // keys per block
        let rt = tileRows
        return KernelDefinition(name: name, unrollsItself: true) { e in
            let b = e.b
            // Per-row state of a tile (allocated in the entry block: once per call of the kernel).
            let accBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt * dv)))
            let mBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt))), lBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt)))
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2)
            let maskBuffer = mask == .none ? nil : e.buffer(3)
            let out = e.buffer((mask == .none ? 3 : 4) + skip)
            let hq = e.dim(0), hkv = e.dim(1), t = e.dim(2), s = e.dim(3), queryOffset = e.dim(4)
            func strides(_ at: Int) -> [IRValue] { (0..<3).map { e.dim(at + $0) } }
            let qs = strides(5), ks = strides(8), vs = strides(11), os = strides(14), ms = strides(17)
            let group = b.sdiv(hq, hkv)
            let rowsPerHead = b.mul(group, t)
            let tiles = b.sdiv(b.add(rowsPerHead, b.i64(rt - 1)), b.i64(rt))
            // Keys are read as whole vectors, the last one masked when dk is not a multiple of the
            // width (q's masked lanes are 0, so they add nothing to the dot products).
            let kVectors = (dk + lanes - 1) / lanes
            let kLanes = (0..<kVectors).map { v in
                (v + 1) * lanes <= dk ? Lanes(b, lanes) : Lanes(b, lanes, mask: Support.tailMask(b, b.i64(dk - v * lanes), width: lanes))
            }
            let vChunks = chunks(dv, lanes: lanes)
            let one = Lanes(b, 1), block = Lanes(b, bk)
            let negInf = b.f32(-.infinity)
            func at(_ st: [IRValue], _ x: IRValue, _ y: IRValue, _ z: IRValue) -> IRValue {
                b.add(b.add(b.mul(x, st[0]), b.mul(y, st[1])), b.mul(z, st[2]))
            }
            func slot(_ buffer: IRValue, _ index: IRValue) -> IRValue { b.gep(b.f32, buffer, index) }

            b.loop(e.begin, e.end, "tile") { item in
                let tile = b.srem(item, tiles), bk2 = b.sdiv(item, tiles)
                let kh = b.srem(bk2, hkv), bi = b.sdiv(bk2, hkv)
                let firstRow = b.mul(tile, b.i64(rt))
                let rows = Support.smin(b, b.i64(rt), b.sub(rowsPerHead, firstRow))
                let kBase = at(ks, bi, kh, b.i64(0)), vBase = at(vs, bi, kh, b.i64(0))
                /// Row r of the tile: its head h and position i.
                func row(_ r: IRValue) -> (h: IRValue, i: IRValue) {
                    let rr = b.add(firstRow, r)
                    return (b.add(b.mul(kh, group), b.sdiv(rr, t)), b.srem(rr, t))
                }
                /// The keys row r sees: [0, keyEnd).
                func keyEnd(_ i: IRValue) -> IRValue {
                    causal ? Support.smax(b, Support.smin(b, s, b.add(b.add(queryOffset, i), b.i64(1))), b.i64(0)) : s
                }
                // Reset the rows' state and find the last key any of them sees.
                let tileEnd = b.loop(b.i64(0), rows, carrying: [b.i64(0)], "init") { r, acc in
                    b.store(negInf, slot(mBuffer, r))
                    b.store(b.f32(0), slot(lBuffer, r))
                    for c in vChunks {
                        Lanes(b, c.width).store(Lanes(b, c.width).zero(b.f32), b.f32, accBuffer, b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)))
                    }
                    return [Support.smax(b, acc[0], keyEnd(row(r).i))]
                }[0]
                let fullEnd = b.mul(b.sdiv(tileEnd, b.i64(bk)), b.i64(bk))

                /// One block of keys from j0 for every row of the tile.
                func visit(_ j0: IRValue, partial: Bool) {
                    let lanesJ = (0..<bk).map { b.add(j0, b.i64($0)) }
                    // Partial block: lanes past the tile's last key read that key and are masked out.
                    let keys = partial ? lanesJ.map { Support.smin(b, $0, b.sub(tileEnd, b.i64(1))) } : lanesJ
                    let laneKeys = b.add(b.splat(j0, bk), block.iota())
                    b.loop(b.i64(0), rows, "r") { r in
                        let (h, i) = row(r)
                        var additive: IRValue? = nil
                        if let maskBuffer {
                            let mBase = at(ms, bi, h, i)
                            let maskElement = mask == .additive ? maskType.storage(b) : b.i8
                            let raw: IRValue
                            if partial {
                                var vec = LLVMGetPoison(b.vector(maskElement, bk))!
                                for (lane, j) in keys.enumerated() {
                                    vec = b.insert(vec, b.load(maskElement, b.gep(maskElement, maskBuffer, b.add(mBase, j)),
                                                               align: mask == .additive ? maskType.byteSize : 1), lane)
                                }
                                raw = vec
                            } else {
                                raw = block.load(maskElement, maskBuffer, b.add(mBase, j0))
                            }
                            additive = mask == .additive ? block.widenF32(raw, maskType)
                                : b.select(b.icmp(LLVMIntNE, raw, block.zero(b.i8)), block.f32(0), block.splat(negInf))
                        }
                        func update() {
                            let qBase = at(qs, bi, h, i)
                            let qv = kLanes.enumerated().map { c, l in l.loadF32(element, q, b.add(qBase, b.i64(c * lanes))) }
                            // Per key, q·k in one vector of partial sums; the block's sums then in one tree.
                            var kRow = b.add(kBase, b.mul(keys[0], ks[2]))
                            let partials = keys.enumerated().map { lane, j -> IRValue in
                                if lane > 0 { kRow = partial ? b.add(kBase, b.mul(j, ks[2])) : b.add(kRow, ks[2]) }
                                var acc: IRValue? = nil
                                for (c, l) in kLanes.enumerated() {
                                    let kv = l.loadF32(element, k, b.add(kRow, b.i64(c * lanes)))
                                    acc = acc.map { b.fma(qv[c], kv, $0) } ?? b.fmul(qv[c], kv)
                                }
                                return acc!
                            }
                            var scores = b.fmul(Support.sumEach(b, partials, width: bk), block.f32(Float(scale)))
                            if let additive { scores = b.fadd(scores, additive) }
                            if causal || partial {
                                scores = b.select(b.icmp(LLVMIntSLT, laneKeys, b.splat(keyEnd(i), bk)), scores, block.splat(negInf))
                            }
                            let blockMax = Support.reduceMax(b, scores)
                            Support.ifThen(b, b.fcmp(LLVMRealUNE, blockMax, negInf), "seen") {
                                let m = b.load(b.f32, slot(mBuffer, r)), l = b.load(b.f32, slot(lBuffer, r))
                                let mNew = one.fmax(m, blockMax)
                                let correction = VectorMath.exp(one, b.fsub(m, mNew))
                                let p = VectorMath.exp(block, b.fsub(scores, block.splat(mNew)))
                                b.store(mNew, slot(mBuffer, r))
                                b.store(b.fadd(b.fmul(l, correction), b.reduceAdd(p)), slot(lBuffer, r))
                                let accAt = vChunks.map { c in b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)) }
                                var acc = vChunks.enumerated().map { ci, c in
                                    b.fmul(Lanes(b, c.width).load(b.f32, accBuffer, accAt[ci]), Lanes(b, c.width).splat(correction))
                                }
                                var vRow = b.add(vBase, b.mul(keys[0], vs[2]))
                                for (lane, j) in keys.enumerated() {
                                    let pj = b.extract(p, lane)
                                    if lane > 0 { vRow = partial ? b.add(vBase, b.mul(j, vs[2])) : b.add(vRow, vs[2]) }
                                    for (ci, c) in vChunks.enumerated() {
                                        let cl = Lanes(b, c.width)
                                        acc[ci] = b.fma(cl.splat(pj), cl.loadF32(element, v, b.add(vRow, b.i64(c.offset))), acc[ci])
                                    }
                                }
                                for (ci, c) in vChunks.enumerated() { Lanes(b, c.width).store(acc[ci], b.f32, accBuffer, accAt[ci]) }
                            }
                        }
                        if let additive {
                            // A block the mask removes entirely costs one vector compare.
                            Support.ifThen(b, LLVMBuildNot(b.ref, Support.all(b, b.fcmp(LLVMRealOEQ, additive, block.splat(negInf))), "")!,
                                           "unmasked", update)
                        } else {
                            update()
                        }
                    }
                }

                b.loop(b.i64(0), fullEnd, step: bk, "kb") { j0 in visit(j0, partial: false) }
                Support.ifThen(b, b.icmp(LLVMIntSLT, fullEnd, tileEnd), "tail") { visit(fullEnd, partial: true) }
                // Write each row: the accumulator over the sum (0 where no key was seen).
                b.loop(b.i64(0), rows, "out") { r in
                    let (h, i) = row(r)
                    let l = b.load(b.f32, slot(lBuffer, r))
                    let seen = b.fcmp(LLVMRealOGT, l, b.f32(0))
                    let oBase = at(os, bi, h, i)
                    for c in vChunks {
                        let cl = Lanes(b, c.width)
                        let acc = cl.load(b.f32, accBuffer, b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)))
                        cl.storeF32(b.select(seen, b.fdiv(acc, cl.splat(l)), cl.zero(b.f32)), element, out, b.add(oBase, b.i64(c.offset)))
                    }
                }
            }
        }
    }
}
