import MLXCCodegen
import MLXCIR

/// `gated_delta_rule` (GatedDeltaNet's recurrence, imported from the MLX delegate's Metal kernel
/// "gated_delta_step"): one kernel over blocks of state rows, the state updated in place when it is a state
/// value the op redefines (or a temporary nothing else reads), else written to a new buffer.
extension Lowerings {
    static func gatedDeltaRule(_ o: GatedDeltaRuleOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.outs.count == 2, let xd = c.dtype(o.q), let x = ElementType(xd), ElementType.activations.contains(x),
              [o.k, o.v, o.g, o.beta].allSatisfy({ c.dtype($0) == xd }),
              let sd = c.dtype(o.state), sd == xd,
              let qt = c.type(o.q), qt.rank == 4, let dk = qt.shape[3].fixedValue, dk > 0,
              let vt = c.type(o.v), vt.rank == 4, let dv = vt.shape[3].fixedValue, dv > 0 else { return nil }
        let rows = GatedDeltaKernels.rows(dv: dv)
        let definition = GatedDeltaKernels.rule(dk: dk, rows: rows, x: x, lanes: c.lanes)
        let inPlace = writableInPlace(o.state, out: o.outs[1], c)
        return launch(definition, node, operands: [o.q, o.k, o.v, o.g, o.beta, o.state], results: o.outs,
                      resultDTypes: [xd, sd], operandDTypes: [xd, xd, xd, xd, xd, sd], grain: 1,
                      inPlace: inPlace ? [1: 5] : [:]) { inputs in
            let q = inputs[0], k = inputs[1], v = inputs[2], g = inputs[3], beta = inputs[4], state = inputs[5]
            // Anything else (the reference names the mismatch).
            guard q.shape.count == 4, k.shape == q.shape, q.shape[3] == dk, v.shape.count == 4, v.shape[3] == dv else { return nil }
            let (bN, tN, hk) = (q.shape[0], q.shape[1], q.shape[2]), hv = v.shape[2]
            guard v.shape[0] == bN, v.shape[1] == tN, g.shape == [bN, tN, hv], beta.shape == [bN, tN, hv],
                  state.shape == [bN, hv, dv, dk], hk > 0, hv % hk == 0 else { return nil }
            return CallLayout(shapes: [[bN, tN, hv, dv], state.shape], dims: [Int64(tN), Int64(hk), Int64(hv), Int64(dv)],
                              work: bN * hv * dv / rows)
        }
    }
}
