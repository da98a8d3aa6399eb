import CLLVM
import Foundation
import LLVMKit

/// `rope_attention` in one kernel: RoPE on the new q and k rows, the KV-cache writes, and attention
/// over the cache with an online softmax (the op's definition is `FusedOps.unfused`).
///
/// A work item is one (batch, kv head). It first rotates that head's T new k rows and stores them,
/// and copies its v rows, into the caches at `indices` (so the writes of a head happen before its
/// reads without any synchronisation between work items: no other item touches those rows). Then,
/// for tiles of up to `tileRows` query rows of its GQA group, it rotates each q row into a stack
/// scratch (rounded to the activation dtype as the separate rope would store it) and attends over
/// the cache: each block of one vector of keys is loaded once for the whole tile; its max rescales
/// each row's running sum and accumulator, so no T×S score matrix exists. A block the additive or
/// keep mask removes entirely for a row (the unwritten part of the cache) is skipped after one
/// vector compare; with `causal`, row i sees keys j ≤ S − T + i and the loop stops after the
/// tile's last visible key. A row that sees no key is 0, as in the reference.
///
/// RoPE: row t is at position `offset + t`; pair i turns by position · scale · inv_freq[i]
/// (base^(−2i/dims), or 1/freqs[i]), angles in f64 — or reads row `position` of cos/sin tables
/// (`RopeRotation`); pairs (2i, 2i+1) when traditional, else (i, i + dims/2); features past
/// `dims` pass through.
///
/// q, k, v and out are addressed by (batch, head, row) strides, so BSHD tensors are read (and the
/// output written) through the head transposes. The caches are contiguous [B, Hkv, S, D], written
/// in place (the runtime passes the cache's own buffer as the result). Everything is f32 or the
/// activation dtype `element` (bf16/f16 widened exactly, f32 arithmetic, one rounding per store).
///
/// buffers: [q, k, v, kCache, vCache, indices, offset, mask?, freqs?, cos?, sin?, stop?, out, kCacheOut, vCacheOut];
/// dims: [Hq, Hkv, T, S, offset, q strides (b, h, t), k strides, v strides, out strides, mask strides];
/// work items: batch × Hkv.
public enum RopeAttentionKernels {
    public static let dimCount = 20
    public static let tileRows = 8

    public typealias Rope = RopeRotation.Rope

    public static func ropeAttention(dk: Int, dv: Int, rope: Rope, mask: AttentionKernels.Mask, causal: Bool, scale: Double,
                                     index: ElementType, lanes: Int, _ element: ElementType = .f32,
                                     maskType: ElementType = .f32) -> KernelDefinition {
        var name = "rope_attention_\(element.tag)_dk\(dk)"
        if dv != dk { name += "_dv\(dv)" }
        name += "_\(rope.tag)"
        if mask != .none { name += "_\(mask.rawValue)mask" }
        if mask == .additive && maskType != .f32 { name += maskType.tag }
        if causal { name += "_causal" }
        name += "_scale\(Support.name(Float(scale)))_\(index.tag)index_tile\(tileRows)_v\(lanes)"
        let rt = tileRows, bk = lanes
        let kVectors = (dk + lanes - 1) / lanes
        let qStride = kVectors * lanes   // scratch row: whole vectors, padding zero
        return KernelDefinition(name: name, unrollsItself: true) { e in
            let b = e.b
            let accBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt * dv)))
            let qBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt * qStride)))
            let mBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt))), lBuffer = b.alloca(LLVMArrayType(b.f32, UInt32(rt)))
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2), indexBuffer = e.buffer(5)
            var next = 7
            let maskBuffer = mask == .none ? nil : e.buffer(next)
            if mask != .none { next += 1 }
            let freqs = rope.freqs == nil ? nil : e.buffer(next)
            if rope.freqs != nil { next += 1 }
            let tables = rope.table == nil ? nil : (cos: e.buffer(next), sin: e.buffer(next + 1))
            if rope.table != nil { next += 3 }   // cos, sin, and the stop row (read by the host only)
            let out = e.buffer(next), kOut = e.buffer(next + 1), vOut = e.buffer(next + 2)
            let hq = e.dim(0), hkv = e.dim(1), t = e.dim(2), s = e.dim(3), ropeOffset = e.dim(4)
            func strides(_ at: Int) -> [IRValue] { (0..<3).map { e.dim(at + $0) } }
            let qs = strides(5), ks = strides(8), vs = strides(11), os = strides(14), ms = strides(17)
            let group = b.sdiv(hq, hkv)
            let rowsPerHead = b.mul(group, t)
            let tiles = b.sdiv(b.add(rowsPerHead, b.i64(rt - 1)), b.i64(rt))
            let queryOffset = b.sub(s, t)
            let kLanes = (0..<kVectors).map { c in
                (c + 1) * lanes <= dk ? Lanes(b, lanes) : Lanes(b, lanes, mask: Support.tailMask(b, b.i64(dk - c * lanes), width: lanes))
            }
            let vChunks = AttentionKernels.chunks(dv, lanes: lanes)
            let one = Lanes(b, 1), block = Lanes(b, bk)
            let negInf = b.f32(-.infinity)
            func at(_ st: [IRValue], _ x: IRValue, _ y: IRValue, _ z: IRValue) -> IRValue {
                b.add(b.add(b.mul(x, st[0]), b.mul(y, st[1])), b.mul(z, st[2]))
            }
            func slot(_ buffer: IRValue, _ index: IRValue) -> IRValue { b.gep(b.f32, buffer, index) }
            let rotate = RopeRotation(b: b, rope: rope, d: dk, lanes: lanes, element: element, freqs: freqs, tables: tables)

            b.loop(e.begin, e.end, "item") { item in
                let kh = b.srem(item, hkv), bi = b.sdiv(item, hkv)
                let head = b.add(b.mul(bi, hkv), kh)
                let kBase = b.mul(b.mul(head, s), b.i64(dk)), vBase = b.mul(b.mul(head, s), b.i64(dv))
                // 1. This kv head's new rows into the caches (k rotated, v as stored).
                b.loop(b.i64(0), t, "write") { j in
                    let p = RowCopyKernels.rowPosition(b, .indices(index), indexBuffer, j, n: s, start: nil)
                    let position = b.add(ropeOffset, j)
                    let kRow = b.add(kBase, b.mul(p, b.i64(dk)))
                    rotate.emit(from: k, at(ks, bi, kh, j), position: position) { l, value, offset in
                        l.storeF32(value, element, kOut, b.add(kRow, offset))
                    }
                    let vRow = b.add(vBase, b.mul(p, b.i64(dv))), vFrom = at(vs, bi, kh, j)
                    Support.vectorLoop(b, b.i64(0), b.i64(dv), width: lanes, "vcopy") { l, c in
                        l.store(l.load(element.storage(b), v, b.add(vFrom, c)), element.storage(b), vOut, b.add(vRow, c))
                    }
                }
                // 2. Attention of the group's query rows over the cache, tile by tile.
                b.loop(b.i64(0), tiles, "tile") { tile in
                    let firstRow = b.mul(tile, b.i64(rt))
                    let rows = Support.smin(b, b.i64(rt), b.sub(rowsPerHead, firstRow))
                    func row(_ r: IRValue) -> (h: IRValue, i: IRValue) {
                        let rr = b.add(firstRow, r)
                        return (b.add(b.mul(kh, group), b.sdiv(rr, t)), b.srem(rr, t))
                    }
                    func keyEnd(_ i: IRValue) -> IRValue {
                        causal ? Support.smax(b, Support.smin(b, s, b.add(b.add(queryOffset, i), b.i64(1))), b.i64(0)) : s
                    }
                    // Reset each row's state, rotate its q into the scratch, find the tile's last key.
                    let tileEnd = b.loop(b.i64(0), rows, carrying: [b.i64(0)], "init") { r, acc in
                        b.store(negInf, slot(mBuffer, r))
                        b.store(b.f32(0), slot(lBuffer, r))
                        for c in vChunks {
                            Lanes(b, c.width).store(Lanes(b, c.width).zero(b.f32), b.f32, accBuffer, b.add(b.mul(r, b.i64(dv)), b.i64(c.offset)))
                        }
                        let (h, i) = row(r)
                        let qRow = b.mul(r, b.i64(qStride))
                        for c in 0..<kVectors { block.store(block.zero(b.f32), b.f32, qBuffer, b.add(qRow, b.i64(c * lanes))) }
                        rotate.emit(from: q, at(qs, bi, h, i), position: b.add(ropeOffset, i)) { l, value, offset in
                            // As the separate rope would store it (rounded to the activation dtype).
                            let stored = element == .f32 ? value : l.widenF32(l.narrowF32(value, element), element)
                            l.store(stored, b.f32, qBuffer, b.add(qRow, offset))
                        }
                        return [Support.smax(b, acc[0], keyEnd(i))]
                    }[0]
                    let fullEnd = b.mul(b.sdiv(tileEnd, b.i64(bk)), b.i64(bk))

                    func visit(_ j0: IRValue, partial: Bool) {
                        let lanesJ = (0..<bk).map { b.add(j0, b.i64($0)) }
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
                                let qRow = b.mul(r, b.i64(qStride))
                                let qv = (0..<kVectors).map { c in block.load(b.f32, qBuffer, b.add(qRow, b.i64(c * lanes))) }
                                var kRow = b.add(kBase, b.mul(keys[0], b.i64(dk)))
                                let partials = keys.enumerated().map { lane, j -> IRValue in
                                    if lane > 0 { kRow = partial ? b.add(kBase, b.mul(j, b.i64(dk))) : b.add(kRow, b.i64(dk)) }
                                    var acc: IRValue? = nil
                                    for (c, l) in kLanes.enumerated() {
                                        let kv = l.loadF32(element, kOut, b.add(kRow, b.i64(c * lanes)))
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
                                    var vRow = b.add(vBase, b.mul(keys[0], b.i64(dv)))
                                    for (lane, j) in keys.enumerated() {
                                        let pj = b.extract(p, lane)
                                        if lane > 0 { vRow = partial ? b.add(vBase, b.mul(j, b.i64(dv))) : b.add(vRow, b.i64(dv)) }
                                        for (ci, c) in vChunks.enumerated() {
                                            let cl = Lanes(b, c.width)
                                            acc[ci] = b.fma(cl.splat(pj), cl.loadF32(element, vOut, b.add(vRow, b.i64(c.offset))), acc[ci])
                                        }
                                    }
                                    for (ci, c) in vChunks.enumerated() { Lanes(b, c.width).store(acc[ci], b.f32, accBuffer, accAt[ci]) }
                                }
                            }
                            if let additive {
                                Support.ifThen(b, LLVMBuildNot(b.ref, Support.all(b, b.fcmp(LLVMRealOEQ, additive, block.splat(negInf))), "")!,
                                               "unmasked", update)
                            } else {
                                update()
                            }
                        }
                    }

                    b.loop(b.i64(0), fullEnd, step: bk, "kb") { j0 in visit(j0, partial: false) }
                    Support.ifThen(b, b.icmp(LLVMIntSLT, fullEnd, tileEnd), "tail") { visit(fullEnd, partial: true) }
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
}
