import MLXCIR

/// etLLM's GatedDeltaNet step as functionalization writes it (after `fold-transposes`):
///
///     m = multiply(a: S, b: keep)                       (S a state, keep one float: 1 − (pos == 0), the reset)
///     y, r = gated_delta_rule(…, state: m, heads_first)
///     … readers of r …
///     S = copy_into(dst: S, src: r)                     (the buffer mutation)
///
/// becomes `y, S = gated_delta_rule(…, state: S, state_scale: keep, heads_first)`: the kernel scales the state as
/// it reads it and writes it back in place — no whole-state multiply, no whole-state copy. Sound under
/// `InPlaceStateWrites.copyBack`'s conditions (no other write of S in the block, no read of S or control flow
/// between the rule and the copy); m stays when something else reads it. Only the heads-first form (its kernel
/// reads the scale).
public struct InPlaceGatedDeltaState: GraphPass {
    public let name = "inplace-gated-delta-state"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var rewritten = 0
        for b in graph.blocks.indices where b != graph.initBlock {
            var i = 0
            while i < graph.blocks[b].nodes.count {
                if rewrite(&graph, block: b, at: i) { rewritten += 1 }
                i += 1
            }
        }
        return rewritten
    }

    func rewrite(_ graph: inout Graph, block b: Int, at i: Int) -> Bool {
        let nodes = graph.blocks[b].nodes
        guard case .gatedDeltaRule(var rule) = nodes[i].op, rule.headsFirst, rule.stateScale == nil, rule.outs.count == 2,
              let def = nodes[..<i].last(where: { $0.op.results.contains(rule.state) }),
              case .multiply(let m) = def.op else { return false }
        // The state and the one-element keep factor, either way round; the product of the state's type.
        func isState(_ v: ValueID) -> Bool { if case .state = graph[v].kind { return true } else { return false } }
        func isOne(_ v: ValueID) -> Bool {
            guard let t = graph[v].type else { return false }
            return t.shape.allSatisfy { $0 == .fixed(1) } && t.dtype == .f32
        }
        let (state, keep): (ValueID, ValueID)
        if isState(m.a) && isOne(m.b) { (state, keep) = (m.a, m.b) } else if isState(m.b) && isOne(m.a) { (state, keep) = (m.b, m.a) } else { return false }
        guard let st = graph[state].type, let mt = graph[m.out].type ?? graph[rule.outs[1]].type, mt == st else { return false }
        let r = rule.outs[1]
        guard InPlaceStateWrites.copyBack(of: r, into: state, in: nodes, after: i, from: i) != nil else { return false }
        // Nothing between the multiply and the rule may write the state (the rule now reads it there).
        guard let at = nodes.firstIndex(of: def), !nodes[at..<i].contains(where: { $0.op.results.contains(state) }) else { return false }
        rule.state = state
        rule.stateScale = keep
        rule.outs[1] = state
        var rewrittenNodes = nodes
        rewrittenNodes[i].op = .gatedDeltaRule(rule)
        InPlaceStateWrites.dropCopyBack(of: r, into: state, block: b, nodes: rewrittenNodes, &graph)
        // The multiply goes when nothing else reads it.
        let readers = graph.blocks.flatMap(\.nodes).filter { $0.op.operands.contains(m.out) }
        if readers.isEmpty && !graph.outputs.contains(m.out) {
            graph.blocks[b].nodes.removeAll { $0 == def }
        }
        return true
    }
}
