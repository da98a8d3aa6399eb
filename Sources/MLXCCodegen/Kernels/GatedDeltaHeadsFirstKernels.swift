import CLLVM
import LLVMKit

/// The gated delta rule in etLLM's layout (`gated_delta_rule` with `heads_first`: llama::gated_delta_rule's
/// operands q, k [B, Hk, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T], and its state [B, Hv, Dk, Dv], read and
/// written where they are — no transposes around the op). The state is S transposed, so one value column i of S
/// (the row the native kernel keeps) is strided here; the kernel runs across the columns instead: a work item is a
/// block of `columns` vectors of Dv of one (batch, value head), and each step makes two passes down the Dk rows:
///   kv = Σ_j (s[j] · g) ⊙ k[j]                   (s[j] a vector of columns, k[j] broadcast)
///   δ = (v[t] − kv) · beta
///   s[j] = s[j] · g + k[j] · δ;  y[t] = Σ_j s[j] ⊙ q[j]   (the second pass writes s back)
/// — per column the native kernel's recurrence, each sum in j order, each elementwise result rounded to the dtype
/// as the op's eager definition does. The block ([Dk, columns · width] floats) stays in L1 between the passes.
/// The state is written every step, so it must hold the dtype's values exactly (the same dtype or f32).
/// With `scaled`, a one-element f32 multiplier of the state is read too (the model's reset folded in): step 0 reads
/// state · scale, rounded to the state's dtype, as the multiply it replaces.
/// buffers: [q, k, v, g, beta, state, (scale,) y, state out]; dims: [T, Hk, Hv, Dv]; work items: B·Hv·Dv / (columns·width).
public enum GatedDeltaHeadsFirstKernels {
    /// Vectors of Dv per work item (k and q broadcasts shared by them), and their width.
    public static func block(dv: Int, lanes: Int) -> (columns: Int, width: Int) {
        let width = Support.width(dividing: dv, lanes: lanes)
        let vectors = dv / width
        return (vectors % 2 == 0 ? 2 : 1, width)
    }

    public static func rule(dk: Int, dv: Int, x: ElementType, state: ElementType? = nil, scaled: Bool = false, lanes: Int) -> KernelDefinition {
        let state = state ?? x
        precondition(ElementType.activations.contains(x) && (state == x || state == .f32) && dk > 0 && dv > 0)
        let (columns, width) = block(dv: dv, lanes: lanes)
        let stateTag = state == x ? "" : "_s\(state.tag)"
        return KernelDefinition(name: "gated_delta_rule_hf_\(x.tag)\(stateTag)_dk\(dk)_c\(columns)\(scaled ? "_scaled" : "")_v\(width)") { e in
            let b = e.b
            let l = Lanes(b, width), one = Lanes(b, 1)
            // Each elementwise result rounded to the dtype (exact no-op in f32).
            func round(_ lanes: Lanes, _ v: IRValue) -> IRValue { x.isHalf ? lanes.widenF32(lanes.narrowF32(v, x), x) : v }
            let q = e.buffer(0), k = e.buffer(1), v = e.buffer(2), g = e.buffer(3), beta = e.buffer(4)
            let stateIn = e.buffer(5), y = e.buffer(scaled ? 7 : 6), stateOut = e.buffer(scaled ? 8 : 7)
            let scale = scaled ? l.splat(one.loadF32(.f32, e.buffer(6), b.i64(0))) : nil
            // The state as step 0 reads it: · scale, rounded to the state's dtype, at step 0 only.
            func stateRound(_ v: IRValue) -> IRValue { state.isHalf ? l.widenF32(l.narrowF32(v, state), state) : v }
            let tN = e.dim(0), hk = e.dim(1), hv = e.dim(2)
            let dkV = b.i64(dk), dvV = b.i64(dv)
            let span = columns * width
            let blocksPerHead = b.i64(dv / span)
            b.loop(e.begin, e.end, "item") { item in
                let head = b.sdiv(item, blocksPerHead)            // b · Hv + h
                let firstColumn = b.mul(b.srem(item, blocksPerHead), b.i64(span))
                let batch = b.sdiv(head, hv), h = b.srem(head, hv)
                let keyHead = b.add(b.mul(batch, hk), b.sdiv(h, b.sdiv(hv, hk)))   // b · Hk + kh
                let stateBase = b.add(b.mul(b.mul(head, dkV), dvV), firstColumn)
                b.loop(b.i64(0), tN, "t") { t in
                    // Step 0 reads the state given; later steps the state this call wrote.
                    let first = b.icmp(LLVMIntEQ, t, b.i64(0))
                    let source = b.select(first, stateIn, stateOut)
                    func read(_ index: IRValue) -> IRValue {
                        let s = l.loadF32(state, source, index)
                        guard let scale else { return s }
                        return b.select(first, stateRound(LLVMBuildFMul(b.ref, s, scale, "")!), s)
                    }
                    let gate = b.add(b.mul(head, tN), t)
                    let decay = l.splat(one.loadF32(x, g, gate)), rate = l.splat(one.loadF32(x, beta, gate))
                    let qkRow = b.mul(b.add(b.mul(keyHead, tN), t), dkV)
                    let vyRow = b.add(b.mul(b.add(b.mul(head, tN), t), dvV), firstColumn)
                    func cell(_ j: IRValue, _ c: Int) -> IRValue { b.add(b.add(stateBase, b.mul(j, dvV)), b.i64(c * width)) }
                    let kv = b.loop(b.i64(0), dkV, carrying: Array(repeating: l.f32(0), count: columns), "j") { j, acc in
                        let kj = l.splat(one.loadF32(x, k, b.add(qkRow, j)))
                        return (0..<columns).map { c in
                            let s = round(l, b.fmul(read(cell(j, c)), decay))
                            return b.fadd(acc[c], round(l, b.fmul(s, kj)))
                        }
                    }
                    let delta = (0..<columns).map { c in
                        let target = l.loadF32(x, v, b.add(vyRow, b.i64(c * width)))
                        return round(l, b.fmul(round(l, b.fsub(target, round(l, kv[c]))), rate))
                    }
                    let out = b.loop(b.i64(0), dkV, carrying: Array(repeating: l.f32(0), count: columns), "j") { j, acc in
                        let kj = l.splat(one.loadF32(x, k, b.add(qkRow, j))), qj = l.splat(one.loadF32(x, q, b.add(qkRow, j)))
                        return (0..<columns).map { c in
                            let decayed = round(l, b.fmul(read(cell(j, c)), decay))
                            let s = round(l, b.fadd(decayed, round(l, b.fmul(kj, delta[c]))))
                            l.storeF32(s, state, stateOut, cell(j, c))
                            return b.fadd(acc[c], round(l, b.fmul(s, qj)))
                        }
                    }
                    for c in 0..<columns { l.storeF32(out[c], x, y, b.add(vyRow, b.i64(c * width))) }
                }
            }
        }
    }
}
