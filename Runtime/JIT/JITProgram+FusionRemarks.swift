import MLXCIR
import MLXCPasses

extension JITProgram {
    /// `mlxc compile --remarks`: every op of the final plan that the fusion passes left unfused
    /// though a fusion exists for its kind, with what that fusion needs (ops on the reference
    /// executor are in `remarks`, with the lowering's reason).
    public var fusionRemarks: [String] {
        var out: [String] = []
        for steps in plans.values {
            for step in steps {
                guard case .kernel(let launch) = step, let why = unfusedReason(launch.node.op) else { continue }
                out.append("\(launch.node.origin ?? "?"): \(launch.node.op.name) left unfused: \(why)")
            }
        }
        return out.sorted()
    }

    func unfusedReason(_ op: Op) -> String? {
        switch op {
        case .sdpa(let s) where !readsState(s.k) && !readsState(s.v):
            // Attention over computed keys and values (an encoder's, cross-attention over given K/V): no cache
            // write to fold in, so the attention kernel is the whole fusion.
            return nil
        case .sdpa(let s) where WholeCacheRewrite.onlyRewrittenWhole(s.k, in: graph) && WholeCacheRewrite.onlyRewrittenWhole(s.v, in: graph):
            // Over a cache rewritten whole at the same rows on every call (optimum's cross-attention K/V): the write is
            // left a step of its own on purpose, which cross-call reuse skips while its input is unchanged.
            return nil
        case .sdpa, .llamaCustomSdpa:
            return "runs as the attention kernel (online softmax, no score matrix); rope_attention would also take the rope of q and k "
                + "and both in-place cache writes (fuse-kv-attention: the writes alone, without RoPE), had they fed it"
        case .rope, .ropeTable:
            return "a RoPE not followed by its cache write and attention runs as its own kernel"
        case .dequantize(let d):
            // Dequantizing gathered rows (an embedding lookup) is the fused form; a whole constant weight is not.
            guard case .constant = graph[d.w].kind else { return nil }
            return "a constant weight is dequantized into memory: no quantized matmul or gather reads it as stored"
        case .softmax(let s):
            // Over [B, H, T, S] scores: decomposed attention that fuse-attention-pattern did not match (a router's is rank 2).
            guard graph[s.x].type?.rank == 4 else { return nil }
            return "attention over a score matrix in memory: fuse-attention-pattern matches q·kᵀ·scale (+ mask), softmax, ·v"
        default:
            return nil
        }
    }

    private func readsState(_ v: ValueID) -> Bool {
        guard graph.values.indices.contains(v.index), case .state = graph[v].kind else { return false }
        return true
    }
}
