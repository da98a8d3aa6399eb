import CLLVM
import LLVMKit

/// Scaled dot-product attention, f32, one query row per work item, with an online softmax: keys
/// are visited in blocks of one vector of scores; each block's max rescales the running sum and the
/// output accumulator (held in registers), so no T×S score matrix is ever stored.
///
/// Query row i of head h reads kv head h / (Hq/Hkv) (GQA). With `causal`, it sees keys
/// j ≤ queryOffset + i (lower-right alignment when queryOffset = S − T), and the key loop stops
/// there. A mask (additive f32, or a bool keep-mask) broadcasts over [B, Hq, T, ≥S] by strides;
/// blocks whose mask is entirely −inf (the unwritten part of a KV cache) are skipped without
/// computing their scores. A row that sees no key at all is 0, as in the reference.
///
/// Every tensor is addressed through (batch, head, row) strides, so the same kernel serves BHSD
/// (`sdpa`) and BSHD (`llama::custom_sdpa`) layouts.
/// buffers: [q, k, v, mask?, (skip unread scalars), out];
/// dims: [Hq, Hkv, T, S, queryOffset, q strides (b, h, t), k strides (b, h, s), v strides (b, h, s),
///        out strides (b, h, t), mask strides (b, h, t)].
public enum AttentionKernels {
    public enum Mask: String, Sendable {
        case none, additive, keep
    }

    public static let dimCount = 20

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

    public static func sdpa(dk: Int, dv: Int, mask: Mask, causal: Bool, scale: Double, lanes: Int, skip: Int = 0) -> KernelDefinition {
        var name = "sdpa_f32_dk\(dk)"
        if dv != dk { name += "_dv\(dv)" }
        if mask != .none { name += "_\(mask.rawValue)mask" }
        if causal { name += "_causal" }
        name += "_scale\(Float(scale).bitPattern)_v\(lanes)"
        if skip > 0 { name += "_skip\(skip)" }
        let bk = lanes   // keys per block
        return KernelDefinition(name: name) { e in
            let b = e.b
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2)
            let maskBuffer = mask == .none ? nil : e.buffer(3)
            let out = e.buffer((mask == .none ? 3 : 4) + skip)
            let hq = e.dim(0), hkv = e.dim(1), t = e.dim(2), s = e.dim(3), queryOffset = e.dim(4)
            func strides(_ at: Int) -> [IRValue] { (0..<3).map { e.dim(at + $0) } }
            let qs = strides(5), ks = strides(8), vs = strides(11), os = strides(14), ms = strides(17)
            let group = b.sdiv(hq, hkv)
            let kChunks = chunks(dk, lanes: lanes), vChunks = chunks(dv, lanes: lanes)
            let one = Lanes(b, 1), block = Lanes(b, bk)
            let negInf = b.f32(-.infinity)

            b.loop(e.begin, e.end, "row") { row in
                let i = b.srem(row, t)
                let bh = b.sdiv(row, t)
                let h = b.srem(bh, hq), bi = b.sdiv(bh, hq)
                let kh = b.sdiv(h, group)
                func at(_ st: [IRValue], _ x: IRValue, _ y: IRValue, _ z: IRValue) -> IRValue {
                    b.add(b.add(b.mul(x, st[0]), b.mul(y, st[1])), b.mul(z, st[2]))
                }
                let qBase = at(qs, bi, h, i)
                let kBase = at(ks, bi, kh, b.i64(0)), vBase = at(vs, bi, kh, b.i64(0))
                let mBase = maskBuffer == nil ? nil : at(ms, bi, h, i)
                let qv = kChunks.map { c in Lanes(b, c.width).load(b.f32, q, b.add(qBase, b.i64(c.offset))) }
                var keyEnd = s
                if causal { keyEnd = Support.smax(b, Support.smin(b, s, b.add(b.add(queryOffset, i), b.i64(1))), b.i64(0)) }
                let fullEnd = b.mul(b.sdiv(keyEnd, b.i64(bk)), b.i64(bk))

                /// One block of keys from j0: returns the updated (m, l, acc…).
                func visit(_ j0: IRValue, partial: Bool, _ carry: [IRValue]) -> [IRValue] {
                    let lanesJ = (0..<bk).map { b.add(j0, b.i64($0)) }
                    // Partial block: lanes past keyEnd read the last valid key and are masked out.
                    let keys = partial ? lanesJ.map { Support.smin(b, $0, b.sub(keyEnd, b.i64(1))) } : lanesJ
                    var additive: IRValue? = nil
                    if let maskBuffer, let mBase {
                        let element = mask == .additive ? b.f32 : b.i8
                        let raw: IRValue
                        if partial {
                            var vec = LLVMGetPoison(b.vector(element, bk))!
                            for (lane, j) in keys.enumerated() {
                                vec = b.insert(vec, b.load(element, b.gep(element, maskBuffer, b.add(mBase, j)), align: mask == .additive ? 4 : 1), lane)
                            }
                            raw = vec
                        } else {
                            raw = block.load(element, maskBuffer, b.add(mBase, j0))
                        }
                        additive = mask == .additive ? raw
                            : b.select(b.icmp(LLVMIntNE, raw, block.zero(b.i8)), block.f32(0), block.splat(negInf))
                    }
                    func compute() -> [IRValue] {
                        var scores = LLVMGetPoison(b.vector(b.f32, bk))!
                        for (lane, j) in keys.enumerated() {
                            let kRow = b.add(kBase, b.mul(j, ks[2]))
                            var acc: IRValue? = nil
                            for (ci, c) in kChunks.enumerated() {
                                let kv = Lanes(b, c.width).load(b.f32, k, b.add(kRow, b.i64(c.offset)))
                                let prod = b.fmul(qv[ci], kv)
                                let sum = c.width == 1 ? prod : b.reduceAdd(prod)
                                acc = acc.map { b.fadd($0, sum) } ?? sum
                            }
                            scores = b.insert(scores, acc!, lane)
                        }
                        scores = b.fmul(scores, block.f32(Float(scale)))
                        if let additive { scores = b.fadd(scores, additive) }
                        if partial {
                            let valid = b.icmp(LLVMIntSLT, b.constVector((0..<bk).map { b.i64($0) }),
                                               b.splat(b.sub(keyEnd, j0), bk))
                            scores = b.select(valid, scores, block.splat(negInf))
                        }
                        let blockMax = b.reduceMax(scores)
                        return Support.ifElse(b, b.fcmp(LLVMRealOEQ, blockMax, negInf), "empty", then: { carry }, otherwise: {
                            let m = carry[0], l = carry[1]
                            let mNew = one.fmax(m, blockMax)
                            let correction = VectorMath.exp(one, b.fsub(m, mNew))
                            let p = VectorMath.exp(block, b.fsub(scores, block.splat(mNew)))
                            let lNew = b.fadd(b.fmul(l, correction), b.reduceAdd(p))
                            var acc = vChunks.enumerated().map { ci, c in b.fmul(carry[2 + ci], Lanes(b, c.width).splat(correction)) }
                            for (lane, j) in keys.enumerated() {
                                let pj = b.extract(p, lane)
                                let vRow = b.add(vBase, b.mul(j, vs[2]))
                                for (ci, c) in vChunks.enumerated() {
                                    let cl = Lanes(b, c.width)
                                    acc[ci] = b.fma(cl.splat(pj), cl.load(b.f32, v, b.add(vRow, b.i64(c.offset))), acc[ci])
                                }
                            }
                            return [mNew, lNew] + acc
                        })
                    }
                    guard let additive else { return compute() }
                    // A block the mask removes entirely costs one vector compare.
                    return Support.ifElse(b, b.fcmp(LLVMRealOEQ, b.reduceMax(additive), negInf), "masked",
                                          then: { carry }, otherwise: compute)
                }

                let initial = [negInf, b.f32(0)] + vChunks.map { Lanes(b, $0.width).zero(b.f32) }
                var state = b.loop(b.i64(0), fullEnd, step: bk, carrying: initial, "kb") { j0, carry in
                    visit(j0, partial: false, carry)
                }
                state = Support.ifElse(b, b.icmp(LLVMIntSLT, fullEnd, keyEnd), "tail", then: {
                    visit(fullEnd, partial: true, state)
                }, otherwise: { state })
                let l = state[1]
                let seen = b.fcmp(LLVMRealOGT, l, b.f32(0))
                let oBase = at(os, bi, h, i)
                for (ci, c) in vChunks.enumerated() {
                    let cl = Lanes(b, c.width)
                    let y = b.select(seen, b.fdiv(state[2 + ci], cl.splat(l)), cl.zero(b.f32))
                    cl.store(y, b.f32, out, b.add(oBase, b.i64(c.offset)))
                }
            }
        }
    }
}
