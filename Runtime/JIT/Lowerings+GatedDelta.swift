import MLXCCodegen
import MLXCIR

/// `gated_delta_rule` (GatedDeltaNet's recurrence, imported from the MLX delegate's Metal kernel
/// "gated_delta_step"): one kernel over blocks of state rows, the state updated in place when it is a state
/// value the op redefines (or a temporary nothing else reads), else written to a new buffer.
extension Lowerings {
    static func gatedDeltaRule(_ o: GatedDeltaRuleOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        if o.headsFirst { return gatedDeltaRuleHeadsFirst(o, node, c) }
        guard o.stateScale == nil else { return nil }   // only the heads-first kernel reads a folded reset
        // Sizes from q and v, or from the state [B, Hv, Dv, Dk] (a program buffer, typed even where the delegate's
        // temporaries are not); operand dtypes are checked again on every call.
        let st = c.type(o.state)
        guard o.outs.count == 2, let xd = c.dtype(o.q) ?? st?.dtype, let x = ElementType(xd), ElementType.activations.contains(x),
              [o.k, o.v, o.g, o.beta].allSatisfy({ (c.dtype($0) ?? xd) == xd }),
              let sd = Optional(c.dtype(o.state) ?? xd), let s = ElementType(sd), ElementType.activations.contains(s),
              let dk = c.type(o.q)?.shape.last?.fixedValue ?? st?.shape.last?.fixedValue, dk > 0,
              let dv = c.type(o.v)?.shape.last?.fixedValue ?? (st?.rank == 4 ? st?.shape[2].fixedValue : nil), dv > 0 else { return nil }
        let rows = GatedDeltaKernels.rows(dv: dv)
        let definition = GatedDeltaKernels.rule(dk: dk, rows: rows, x: x, state: s, lanes: c.lanes)
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

    /// etLLM's layout: operands heads first, the state [B, Hv, Dk, Dv] read and written where it is.
    static func gatedDeltaRuleHeadsFirst(_ o: GatedDeltaRuleOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let st = c.type(o.state)
        guard o.outs.count == 2, let xd = c.dtype(o.q) ?? st?.dtype, let x = ElementType(xd), ElementType.activations.contains(x),
              [o.k, o.v, o.g, o.beta].allSatisfy({ (c.dtype($0) ?? xd) == xd }),
              let sd = Optional(c.dtype(o.state) ?? xd), let s = ElementType(sd), s == x || s == .f32,
              let dk = c.type(o.q)?.shape.last?.fixedValue ?? (st?.rank == 4 ? st?.shape[2].fixedValue : nil), dk > 0,
              let dv = c.type(o.v)?.shape.last?.fixedValue ?? st?.shape.last?.fixedValue, dv > 0 else { return nil }
        if let scale = o.stateScale, c.dtype(scale) != .f32 { return nil }
        let definition = GatedDeltaHeadsFirstKernels.rule(dk: dk, dv: dv, x: x, state: s, scaled: o.stateScale != nil, lanes: c.lanes)
        let block = GatedDeltaHeadsFirstKernels.block(dv: dv, lanes: c.lanes)
        let inPlace = writableInPlace(o.state, out: o.outs[1], c)
        let operands = [o.q, o.k, o.v, o.g, o.beta, o.state] + (o.stateScale.map { [$0] } ?? [])
        return launch(definition, node, operands: operands, results: o.outs,
                      resultDTypes: [xd, sd], operandDTypes: [xd, xd, xd, xd, xd, sd] + (o.stateScale == nil ? [] : [.f32]), grain: 1,
                      inPlace: inPlace ? [1: 5] : [:]) { inputs in
            if o.stateScale != nil, inputs[6].count != 1 { return nil }
            let q = inputs[0], k = inputs[1], v = inputs[2], g = inputs[3], beta = inputs[4], state = inputs[5]
            // Anything else (the reference names the mismatch).
            guard q.shape.count == 4, k.shape == q.shape, q.shape[3] == dk, v.shape.count == 4, v.shape[3] == dv else { return nil }
            let (bN, hk, tN) = (q.shape[0], q.shape[1], q.shape[2]), hv = v.shape[1]
            guard v.shape[0] == bN, v.shape[2] == tN, g.shape == [bN, hv, tN], beta.shape == [bN, hv, tN],
                  state.shape == [bN, hv, dk, dv], hk > 0, hv % hk == 0 else { return nil }
            return CallLayout(shapes: [[bN, hv, tN, dv], state.shape], dims: [Int64(tN), Int64(hk), Int64(hv), Int64(dv)],
                              work: bN * hv * dv / (block.columns * block.width))
        }
    }
}
