import MLXCIR

/// The gated delta rule (GatedDeltaNet's recurrence; `mlx::gated_delta_rule`, the MLX delegate's Metal kernel
/// "gated_delta_step"), as ExecuTorch's eager definition of the op computes it (backends/mlx/custom_kernel_ops/
/// gated_delta_rule.py, the semantics the delegate's kernels stand for): per batch b and value head h (key head
/// h / (Hv / Hk)), for each step t, every elementwise op rounded to the dtype and each sum accumulated unrounded
/// then rounded (PyTorch's reductions) — in q's dtype; a state of another dtype is read exactly and rounded to
/// its own dtype when written back:
///   S = S · g;  kv = Σ S ⊙ k;  δ = (v − kv) · beta;  S = S + k ⊗ δ;  y = Σ S ⊙ q
/// (The Metal kernel keeps S in f32 over a call instead; in bf16 the two differ by bf16 roundings, which a tiny
/// random GatedDeltaNet amplifies past eager's greedy tokens, so eager's rounding is the reference.)
extension Environment {
    mutating func executeGatedDelta(_ op: Op) throws -> Bool {
        guard case .gatedDeltaRule(let o) = op else { return false }
        let q = try tensor(o.q), k = try tensor(o.k), v = try tensor(o.v)
        let g = try tensor(o.g), beta = try tensor(o.beta)
        var state = try tensor(o.state)
        if let scale = try optional(o.stateScale) {
            // The folded reset: state · scale, rounded to the state's dtype (as the multiply it replaces).
            guard scale.count == 1 else { throw ReferenceError("gated_delta_rule: state_scale \(scale.shape) is not one value") }
            state.storage = state.storage.map { DTypeCodec.round($0 * scale.storage[0], to: state.dtype) }
        }
        guard o.headsFirst else {
            let (y, s) = try Self.gatedDeltaRule(q: q, k: k, v: v, g: g, beta: beta, state: state)
            set(o.outs[0], y)
            set(o.outs[1], s)
            return true
        }
        let (y, s) = try Self.gatedDeltaRuleHeadsFirst(q: q, k: k, v: v, g: g, beta: beta, state: state)
        set(o.outs[0], y)
        set(o.outs[1], s)
        return true
    }

    /// etLLM's layout (`heads_first`): q, k [B, Hk, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T], state
    /// [B, Hv, Dk, Dv] → y [B, Hv, T, Dv]: the same recurrence on the operands read in the native layout.
    static func gatedDeltaRuleHeadsFirst(q: HostTensor, k: HostTensor, v: HostTensor, g: HostTensor, beta: HostTensor,
                                         state: HostTensor) throws -> (y: HostTensor, state: HostTensor) {
        guard q.rank == 4, k.rank == 4, v.rank == 4, g.rank == 3, beta.rank == 3, state.rank == 4 else {
            throw ReferenceError("gated_delta_rule (heads first): q \(q.shape), k \(k.shape), v \(v.shape), g \(g.shape), beta \(beta.shape), state \(state.shape) are not [B, Hk, T, Dk], [B, Hk, T, Dk], [B, Hv, T, Dv], [B, Hv, T], [B, Hv, T], [B, Hv, Dk, Dv]")
        }
        let (hv, dk, dv) = (v.shape[1], q.shape[3], v.shape[3])
        guard state.shape == [v.shape[0], hv, dk, dv] else {
            throw ReferenceError("gated_delta_rule: state \(state.shape) must be [B, Hv, Dk, Dv] = \([v.shape[0], hv, dk, dv])")
        }
        let timeFirst = [0, 2, 1, 3], swap = [0, 1, 3, 2]
        let (y, s) = try gatedDeltaRule(q: permute(q, timeFirst), k: permute(k, timeFirst), v: permute(v, timeFirst),
                                        g: permute(g, [0, 2, 1]), beta: permute(beta, [0, 2, 1]), state: permute(state, swap))
        return (permute(y, timeFirst), permute(s, swap))
    }

    static func gatedDeltaRule(q: HostTensor, k: HostTensor, v: HostTensor, g: HostTensor, beta: HostTensor,
                               state: HostTensor) throws -> (y: HostTensor, state: HostTensor) {
        guard q.rank == 4, k.shape == q.shape, v.rank == 4, state.rank == 4 else {
            throw ReferenceError("gated_delta_rule: q \(q.shape), k \(k.shape), v \(v.shape), state \(state.shape) are not [B, T, Hk, Dk], [B, T, Hv, Dv], [B, Hv, Dv, Dk]")
        }
        let (bN, tN, hk, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hv, dv) = (v.shape[2], v.shape[3])
        guard v.shape[0] == bN, v.shape[1] == tN else {
            throw ReferenceError("gated_delta_rule: v \(v.shape) does not share [B, T] with q \(q.shape)")
        }
        guard g.shape == [bN, tN, hv], beta.shape == [bN, tN, hv] else {
            throw ReferenceError("gated_delta_rule: g \(g.shape) and beta \(beta.shape) must be [B, T, Hv] = \([bN, tN, hv])")
        }
        guard state.shape == [bN, hv, dv, dk] else {
            throw ReferenceError("gated_delta_rule: state \(state.shape) must be [B, Hv, Dv, Dk] = \([bN, hv, dv, dk])")
        }
        guard hk > 0, hv % hk == 0 else {
            throw ReferenceError("gated_delta_rule: the \(hv) value heads are not a multiple of the \(hk) key heads")
        }
        var y = HostTensor(dtype: q.dtype, shape: [bN, tN, hv, dv])
        var s = state
        let group = hv / hk
        let dtype = q.dtype
        func r(_ x: Double) -> Double { DTypeCodec.round(x, to: dtype) }
        for b in 0..<bN {
            for h in 0..<hv {
                let kh = h / group
                for i in 0..<dv {
                    let row = ((b * hv + h) * dv + i) * dk
                    var srow = Array(s.storage[row..<(row + dk)])
                    for t in 0..<tN {
                        let qk = ((b * tN + t) * hk + kh) * dk
                        let gb = (b * tN + t) * hv + h
                        let decay = g.storage[gb]
                        var kv = 0.0
                        for j in 0..<dk {
                            srow[j] = r(srow[j] * decay)
                            kv += r(srow[j] * k.storage[qk + j])
                        }
                        let delta = r(r(v.storage[((b * tN + t) * hv + h) * dv + i] - r(kv)) * beta.storage[gb])
                        var out = 0.0
                        for j in 0..<dk {
                            srow[j] = r(srow[j] + r(k.storage[qk + j] * delta))
                            out += r(srow[j] * q.storage[qk + j])
                        }
                        y.storage[((b * tN + t) * hv + h) * dv + i] = out
                    }
                    // The state keeps its own dtype (eager's `state.copy_(s)`): rounded once, at the end.
                    s.storage.replaceSubrange(row..<(row + dk), with: srow.map { DTypeCodec.round($0, to: s.dtype) })
                }
            }
        }
        return (y, s)
    }
}
