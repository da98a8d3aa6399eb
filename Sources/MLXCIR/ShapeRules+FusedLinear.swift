/// `fused_linear`'s result types: those its definition (`FusedOps.unfused`) gives, each intermediate
/// typed by its own op's rule, so the fused op and the ops it replaced always agree.
extension ShapeRules {
    static func fusedLinear(_ o: FusedLinearOp, _ e: Env) throws -> [TensorType?] {
        guard let ops = FusedOps.unfused(.fusedLinear(o), temp: { ValueID(-1 - $0) }) else {
            throw fail("fused_linear", "needs one result per linear (\"none\"), two linears and one result (swiglu, geglu_tanh, geglu), one linear "
                       + "(silu, gelu_tanh, gelu), a residual only with one result, each bias_of a distinct linear; epilogue \"\(o.epilogue)\"")
        }
        var temps: [ValueID: TensorType] = [:]
        let inner = Env(typeOf: { v in v.index < 0 ? temps[v] : e.typeOf(v) }, exact: e.exact, bounded: e.bounded, difference: e.difference)
        var results: [ValueID: TensorType] = [:]
        for op in ops {
            for (r, t) in zip(op.results, try rule(op, inner)) {
                guard let t else { throw Unknown() }
                if r.index < 0 { temps[r] = t } else { results[r] = t }
            }
        }
        return o.outs.map { results[$0] }
    }
}
