import MLXCIR

/// `ScanNode`: a loop of a body chain over one axis of its `originals` (the runtime writes step t's slices into
/// `sliced`, the body updates `carry` in place and writes each step's `outputs`, stacked after the loop). mlxc has
/// no general loop yet; it recognises the one body the MLX delegate writes today — the gated delta rule's scan
/// form (custom_kernel_ops/gated_delta_rule.py `_emit_scan`, used when the op is called with
/// use_custom_kernel=False) — and imports it as the `gated_delta_rule` op, whose definition is that body's
/// (every elementwise op rounded to the dtype, each sum once). Any other body is refused naming the scan.
extension MLXInliner {
    static let scanTag: UInt8 = 125

    /// The scan `s` (its `sliced` values are placeholders: nothing writes them before the loop) as native ops.
    func importScan(_ s: ScanOp, origin: String) throws -> [Op] {
        guard s.originals.count == 5, s.sliced.count == 5, s.outputs.count == 1, s.carry.count == 1, s.scanAxis == 1 else {
            throw fail("\(origin): scan over \(s.originals.count) tensors with \(s.carry.count) carries and \(s.outputs.count) outputs along axis \(s.scanAxis) is not a loop mlxc knows")
        }
        // Decode the body into ops without keeping its slot writes: only its dataflow is read.
        let saved = (tensors, scalars)
        let body: [Op]
        do { body = try decodeBody(Int(s.bodyChainIdx)) } catch { (tensors, scalars) = saved; throw error }
        (tensors, scalars) = saved
        guard let roles = Self.gatedDeltaBody(body, carry: s.carry[0]) else {
            throw fail("\(origin): scan body (chain \(s.bodyChainIdx), \(body.count) ops) is not the gated delta rule's; general scans are not supported yet")
        }
        let slots = [roles.q, roles.k, roles.v, roles.g, roles.beta].compactMap { s.sliced.firstIndex(of: $0) }
        guard slots.count == 5 else { throw fail("\(origin): the scan body reads values that are not its slices") }
        let o = slots.map { s.originals[$0] }
        // After the loop the carry slot holds the final state, the output slot the stacked y.
        guard let carrySlot = tensors.first(where: { $0.value == s.carry[0] })?.key else {
            throw fail("\(origin): scan carry \(s.carry[0]) is not a tensor slot")
        }
        let state = try writeSlot(carrySlot, tensor: true)
        return [.gatedDeltaRule(GatedDeltaRuleOp(q: o[0], k: o[1], v: o[2], g: o[3], beta: o[4], state: s.carry[0],
                                                 outs: [s.outputs[0], state]))]
    }

    /// The body chain's ops, decoded as the main chain decodes (results become new values).
    func decodeBody(_ index: Int) throws -> [Op] {
        guard index >= 0, index < table.instructionChains.count else { throw fail("scan body chain \(index) is out of range") }
        var ops: [Op] = []
        for (i, instruction) in table.instructionChains[index].instructions.enumerated() {
            guard let node = instruction.table else { throw fail("chain \(index) instruction \(i) has no node") }
            pendingResults = []
            var op = try decodeMLXOp(tag: instruction.tag, table: node, resolver: self)
            var assigned: [ValueID: ValueID] = [:]
            for (placeholder, isTensor, idx) in pendingResults { assigned[placeholder] = try writeSlot(idx, tensor: isTensor) }
            op = op.mapValues { assigned[$0] ?? $0 }
            ops.append(op)
        }
        return ops
    }

    struct GatedDeltaRoles { var q, k, v, g, beta: ValueID }

    /// The 16 ops of `_emit_scan`'s body, by their dataflow: S·g (g expanded twice), kv = Σ S·k, δ = (v − kv)·β,
    /// S + k⊗δ, y = Σ S·q — with the carry S read and redefined in place.
    static func gatedDeltaBody(_ ops: [Op], carry: ValueID) -> GatedDeltaRoles? {
        guard ops.count == 16 else { return nil }
        func expand(_ i: Int, _ axis: Int) -> ExpandDimsOp? {
            if case .expandDims(let o) = ops[i], o.axis == axis { return o } else { return nil }
        }
        func mul(_ i: Int) -> MultiplyOp? { if case .multiply(let o) = ops[i] { return o } else { return nil } }
        func sum(_ i: Int) -> SumOp? {
            if case .sum(let o) = ops[i], o.axes == [-1], !o.keepdims { return o } else { return nil }
        }
        guard let e0 = expand(0, -1), let e1 = expand(1, -1), e1.x == e0.out,
              let m2 = mul(2), m2.a == carry, m2.b == e1.out,
              let e3 = expand(3, -2), let m4 = mul(4), m4.a == m2.out, m4.b == e3.out,
              let s5 = sum(5), s5.x == m4.out,
              case .subtract(let d6) = ops[6], d6.b == s5.out,
              let e7 = expand(7, -1), let m8 = mul(8), m8.a == d6.out, m8.b == e7.out,
              let e9 = expand(9, -2), e9.x == e3.x, let e10 = expand(10, -1), e10.x == m8.out,
              let m11 = mul(11), m11.a == e9.out, m11.b == e10.out,
              case .add(let a12) = ops[12], a12.a == m2.out, a12.b == m11.out,
              let e13 = expand(13, -2), let m14 = mul(14), m14.a == a12.out, m14.b == e13.out,
              let s15 = sum(15), s15.x == m14.out, a12.out != carry, s15.out != carry else { return nil }
        return GatedDeltaRoles(q: e13.x, k: e3.x, v: d6.a, g: e0.x, beta: e7.x)
    }
}
