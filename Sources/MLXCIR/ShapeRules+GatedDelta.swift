/// `gated_delta_rule`: q, k [B, T, Hk, Dk], v [B, T, Hv, Dv], g, beta [B, T, Hv], state [B, Hv, Dv, Dk] with
/// Hv a multiple of Hk → y [B, T, Hv, Dv] in q's dtype, and the state (redefined in place). `heads_first` (etLLM's
/// layout): q, k [B, Hk, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T], state [B, Hv, Dk, Dv] → y [B, Hv, T, Dv].
extension ShapeRules {
    static func gatedDeltaRule(_ o: GatedDeltaRuleOp, _ e: Env) throws -> [TensorType?] {
        let op = "gated_delta_rule"
        guard o.outs.count == 2 else { throw fail(op, "has \(o.outs.count) results, 2 expected (y, state)") }
        let q = try e.t(o.q), k = try e.t(o.k), v = try e.t(o.v), g = try e.t(o.g), beta = try e.t(o.beta)
        let state = try e.t(o.state)
        for (name, t, rank) in [("q", q, 4), ("k", k, 4), ("v", v, 4), ("g", g, 3), ("beta", beta, 3), ("state", state, 4)]
        where t.rank != rank {
            throw fail(op, "\(name) \(text(t.shape)) must have rank \(rank)")
        }
        guard meetShapes(q.shape, k.shape) != nil else { throw fail(op, "q \(text(q.shape)) and k \(text(k.shape)) differ") }
        let hf = o.headsFirst
        let (b, tLen, hk, dk) = (q.shape[0], q.shape[hf ? 2 : 1], q.shape[hf ? 1 : 2], q.shape[3])
        let (hv, dv) = (v.shape[hf ? 1 : 2], v.shape[3])
        guard meet(v.shape[0], b) != nil, meet(v.shape[hf ? 2 : 1], tLen) != nil else {
            throw fail(op, "v \(text(v.shape)) does not share [B, T] with q \(text(q.shape))")
        }
        let gateShape = hf ? [b, hv, tLen] : [b, tLen, hv], gateText = hf ? "[B, Hv, T]" : "[B, T, Hv]"
        for (name, t) in [("g", g), ("beta", beta)] where meetShapes(t.shape, gateShape) == nil {
            throw fail(op, "\(name) \(text(t.shape)) must be \(gateText) = \(text(gateShape))")
        }
        let stateShape = hf ? [b, hv, dk, dv] : [b, hv, dv, dk]
        guard meetShapes(state.shape, stateShape) != nil else {
            throw fail(op, "state \(text(state.shape)) must be \(hf ? "[B, Hv, Dk, Dv]" : "[B, Hv, Dv, Dk]") = \(text(stateShape))")
        }
        if let scale = o.stateScale {
            let t = try e.t(scale)
            guard t.shape.allSatisfy({ $0 == .fixed(1) }), t.dtype.isFloatingPoint else {
                throw fail(op, "state_scale \(text(t.shape)) must be one float")
            }
        }
        if let h = hk.fixedValue, let w = hv.fixedValue, h == 0 || w % h != 0 {
            throw fail(op, "the \(w) value heads are not a multiple of the \(h) key heads")
        }
        return [TensorType(q.dtype, hf ? [b, hv, tLen, dv] : [b, tLen, hv, dv]), state]
    }
}
