import MLXCIR

/// `llama::gated_delta_rule` (ExecuTorch's CPU custom op for GatedDeltaNet, written by etLLM's Qwen 3.5 export) onto
/// mlxc's native `gated_delta_rule`. The op is heads-first and functional: q, k [B, H, T, Dk], v [B, H, T, Dv], the
/// already exponentiated decay [B, H, T], beta [B, H, T], initial_state [B, H, Dk, Dv] → (y [B, H, T, Dv], final
/// state), the model copying the final state back into its buffer. The native op takes this layout as is
/// (`heads_first`: no transposes around it; the per-step recurrence is the same: S·decay, kv = Σ S⊙k,
/// δ = (v − kv)·beta, S += k⊗δ, y = Σ S⊙q; extension/llm/custom_ops' reference).
/// `channelwise_gated_delta_rule` (the deprecated alias) is the same op; a per-channel decay [B, H, T, Dk], or more
/// query heads than state heads (the op's own GQA: query head h reads state h / (Hq / H)), is refused by name — the
/// model repeats q and k to the value heads before the call, so its exports never have either.
extension PlanImporter {
    static var gatedDeltaTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        for name in ["gated_delta_rule", "channelwise_gated_delta_rule"] {
            t["llama::\(name).out"] = { imp, a in try imp.llamaGatedDeltaRule(a, name: name) }
        }
        return t
    }

    func llamaGatedDeltaRule(_ a: [Int], name: String) throws {
        // (query, key, value, decay, beta, initial_state, *, out, final_state_out)
        try arity(a, 8, name)
        let q = try read(a[0]), k = try read(a[1]), v = try read(a[2]), decay = try read(a[3]), beta = try read(a[4])
        let state = try read(a[5])
        let out = try write(a[6]), finalState = try write(a[7])
        for (field, x, rank) in [("query", q, 4), ("key", k, 4), ("value", v, 4), ("beta", beta, 3), ("initial_state", state, 4)] {
            guard let r = graph.type(x)?.rank else { throw fail("llama::\(name): \(field) has no known rank") }
            guard r == rank else { throw fail("llama::\(name): \(field) has rank \(r), \(rank) expected") }
        }
        guard let decayRank = graph.type(decay)?.rank else { throw fail("llama::\(name): decay has no known rank") }
        guard decayRank == 3 else {
            throw fail("llama::\(name): a per-channel decay (rank \(decayRank), [B, H, T, Dk]) is not supported; mlxc's gated_delta_rule takes one decay per head and token [B, H, T]")
        }
        if let hq = graph.type(q)?.shape[1].fixedValue, let hs = graph.type(k)?.shape[1].fixedValue, hq != hs {
            throw fail("llama::\(name): \(hq) query heads read \(hs) state heads; only equal head counts are supported")
        }
        // The native op in etLLM's layout (heads first, the state [B, H, Dk, Dv]): read and written as they are.
        emit(.gatedDeltaRule(GatedDeltaRuleOp(q: q, k: k, v: v, g: decay, beta: beta, state: state,
                                              outs: [out, finalState], headsFirst: true)))
    }
}
