/// `gated_delta_rule`: q, k [B, T, Hk, Dk], v [B, T, Hv, Dv], g, beta [B, T, Hv], state [B, Hv, Dv, Dk] with
/// Hv a multiple of Hk → y [B, T, Hv, Dv] in q's dtype, and the state (redefined in place).
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
        let (b, tLen, hk, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hv, dv) = (v.shape[2], v.shape[3])
        guard meet(v.shape[0], b) != nil, meet(v.shape[1], tLen) != nil else {
            throw fail(op, "v \(text(v.shape)) does not share [B, T] with q \(text(q.shape))")
        }
        for (name, t) in [("g", g), ("beta", beta)] where meetShapes(t.shape, [b, tLen, hv]) == nil {
            throw fail(op, "\(name) \(text(t.shape)) must be [B, T, Hv] = \(text([b, tLen, hv]))")
        }
        guard meetShapes(state.shape, [b, hv, dv, dk]) != nil else {
            throw fail(op, "state \(text(state.shape)) must be [B, Hv, Dv, Dk] = \(text([b, hv, dv, dk]))")
        }
        if let h = hk.fixedValue, let w = hv.fixedValue, h == 0 || w % h != 0 {
            throw fail(op, "the \(w) value heads are not a multiple of the \(h) key heads")
        }
        return [TensorType(q.dtype, [b, tLen, hv, dv]), state]
    }
}
