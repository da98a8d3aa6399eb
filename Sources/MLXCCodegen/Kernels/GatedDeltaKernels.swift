import CLLVM
import LLVMKit

/// The gated delta rule (`gated_delta_rule`: GatedDeltaNet's recurrence, the MLX delegate's Metal kernel
/// "gated_delta_step"). Each row i of a value head's [Dv, Dk] state evolves on its own over the call's T steps:
///   s = s · g[t];  kv = Σ s ⊙ k[t];  δ = (v[t, i] − kv) · beta[t];  s = s + k[t] · δ;  y[t, i] = Σ s ⊙ q[t]
/// so a work item is a block of `rows` state rows of one (batch, value head), kept in registers for the whole call
/// (read once, written once, in place) and sharing each step's k and q loads. Value head h reads key head
/// h / (Hv / Hk). f32/bf16/f16: q, k, v, g and beta of one dtype (the computation's: f32 arithmetic with every
/// elementwise result rounded to it and sums rounded once, as the op's eager definition — the reference — does;
/// y in it too); the state may be stored in another (a bf16 state under f32 projections), read exactly and
/// rounded to its dtype once, when the call writes it back.
/// buffers: [q, k, v, g, beta, state, y, state out (= state)]; dims: [T, Hk, Hv, Dv]; work items: B·Hv·Dv / rows.
public enum GatedDeltaKernels {
    /// Rows per work item: 4 when Dv allows (k and q loads shared by four rows).
    public static func rows(dv: Int) -> Int { dv % 4 == 0 ? 4 : dv % 2 == 0 ? 2 : 1 }

    public static func rule(dk: Int, rows: Int, x: ElementType, state: ElementType? = nil, lanes: Int) -> KernelDefinition {
        let state = state ?? x
        precondition(ElementType.activations.contains(x) && ElementType.activations.contains(state) && dk > 0 && rows > 0)
        let width = Support.width(dividing: dk, lanes: lanes)
        let chunks = dk / width
        let stateTag = state == x ? "" : "_s\(state.tag)"
        return KernelDefinition(name: "gated_delta_rule_\(x.tag)\(stateTag)_dk\(dk)_r\(rows)_v\(width)") { e in
            let b = e.b
            let l = Lanes(b, width), one = Lanes(b, 1)
            // Each elementwise result rounded to the dtype (exact no-op in f32).
            func round(_ lanes: Lanes, _ v: IRValue) -> IRValue { x.isHalf ? lanes.widenF32(lanes.narrowF32(v, x), x) : v }
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2), g = e.buffer(3), beta = e.buffer(4)
            let stateIn = e.buffer(5), y = e.buffer(6), stateOut = e.buffer(7)
            let tN = e.dim(0), hk = e.dim(1), hv = e.dim(2), dv = e.dim(3)
            let dkV = b.i64(dk)
            let blocksPerHead = b.sdiv(dv, b.i64(rows))
            b.loop(e.begin, e.end, "item") { item in
                let head = b.sdiv(item, blocksPerHead)           // b · Hv + h
                let firstRow = b.mul(b.srem(item, blocksPerHead), b.i64(rows))
                let batch = b.sdiv(head, hv), h = b.srem(head, hv)
                let kh = b.sdiv(h, b.sdiv(hv, hk))
                // The state rows, as f32 vectors: rows × chunks values carried through the steps.
                var initial: [IRValue] = []
                for r in 0..<rows {
                    let base = b.mul(b.add(b.mul(head, dv), b.add(firstRow, b.i64(r))), dkV)
                    for c in 0..<chunks { initial.append(l.loadF32(state, stateIn, b.add(base, b.i64(c * width)))) }
                }
                let final = b.loop(b.i64(0), tN, carrying: initial, "t") { t, s in
                    let bt = b.add(b.mul(batch, tN), t)                  // b · T + t
                    let gate = b.add(b.mul(bt, hv), h)
                    let decay = l.splat(one.loadF32(x, g, gate)), rate = one.loadF32(x, beta, gate)
                    let qk = b.mul(b.add(b.mul(bt, hk), kh), dkV)
                    let kc = (0..<chunks).map { l.loadF32(x, k, b.add(qk, b.i64($0 * width))) }
                    let qc = (0..<chunks).map { l.loadF32(x, q, b.add(qk, b.i64($0 * width))) }
                    let vRow = b.add(b.mul(b.add(b.mul(bt, hv), h), dv), firstRow)
                    var next: [IRValue] = []
                    for r in 0..<rows {
                        var decayed: [IRValue] = []
                        var kv = l.f32(0)
                        for c in 0..<chunks {
                            let sc = round(l, b.fmul(s[r * chunks + c], decay))
                            decayed.append(sc)
                            kv = b.fadd(kv, round(l, b.fmul(sc, kc[c])))
                        }
                        let kvSum = round(one, width == 1 ? kv : b.reduceAdd(kv))
                        let target = one.loadF32(x, v, b.add(vRow, b.i64(r)))
                        let delta = l.splat(round(one, b.fmul(round(one, b.fsub(target, kvSum)), rate)))
                        var out = l.f32(0)
                        for c in 0..<chunks {
                            let sc = round(l, b.fadd(decayed[c], round(l, b.fmul(kc[c], delta))))
                            next.append(sc)
                            out = b.fadd(out, round(l, b.fmul(sc, qc[c])))
                        }
                        one.storeF32(width == 1 ? out : b.reduceAdd(out), x, y, b.add(vRow, b.i64(r)))
                    }
                    return next
                }
                for r in 0..<rows {
                    let base = b.mul(b.add(b.mul(head, dv), b.add(firstRow, b.i64(r))), dkV)
                    for c in 0..<chunks { l.storeF32(final[r * chunks + c], state, stateOut, b.add(base, b.i64(c * width))) }
                }
            }
        }
    }
}
