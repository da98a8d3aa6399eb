import MLXCIR

/// The Metal kernels ExecuTorch's MLX delegate emits whose semantics mlxc knows, recognised by name plus the
/// fingerprint of their code (`MetalKernelOp.fingerprint`: whitespace-normalised source, template parameter
/// names and kinds, input/output names) and replaced by a native op with a reference and CPU kernels.
/// A known name with a fingerprint not listed here is an error (the delegate's code changed: its meaning
/// must be checked before mlxc runs it); an unknown name stays a `metal_kernel` op, which the reference
/// refuses naming it and its fingerprint.
enum KnownMetalKernels {
    /// name → the fingerprints of the versions whose semantics the native op implements.
    static let fingerprints: [String: Set<String>] = [
        // executorch 1.5.1 (tools/python/metal_kernel_fingerprint.py prints them): custom_kernel_ops/gated_delta_rule.py
        "gated_delta_step": ["c667d012b255ef57"],
        // custom_kernel_ops/tq_norm.py, tq_dequant.py, tq4_compress.py (TurboQuant KV-cache compression)
        "tq_norm": ["50a7647d2299c2f9"],
        "tq_dequant": ["0d629d318cb960f6"],
        "tq4_compress": ["27fe302778a91eeb"],
        // custom_kernel_ops/gguf/q{4,5,6}k (linear: with and without bias; seen in the gguf op tests' exports)
        "gguf_q4k_matvec": ["caf69ce1adfe0e93", "85d0d3918d243c33"], "gguf_q4k_matmul": ["2c28a5adb4699819"],
        "gguf_q4k_embedding": ["3df4eeb7addf6d3c"],
        "gguf_q5k_matvec": ["e48c022bd0dc65ea", "2e84824fee4201ca"], "gguf_q5k_matmul": ["c484b41aea221585"],
        "gguf_q5k_embedding": ["f81f7254941ced08"],
        // (gguf_q6k_matmul without a bias: 70cb9c4badf9205d, in the Gemma 4 GGUF zoo export with varied sub-scales.)
        "gguf_q6k_matvec": ["79c885438b4aabec", "c069678e3e1ea58a"], "gguf_q6k_matmul": ["3f575824bc54f811", "70cb9c4badf9205d"],
        "gguf_q6k_embedding": ["6645ce760c71b5fd"],
    ]

    /// The native ops for `k` (appended in order; they write k's outputs), or nil when the kernel's name is not a
    /// known one. `graph` receives the values the ops need in between (constants, intermediates).
    static func native(_ k: MetalKernelOp, graph: inout Graph, origin: String, fail: (String) -> Error) throws -> [Op]? {
        guard let known = fingerprints[k.name] else { return nil }
        guard known.contains(k.fingerprint) else {
            throw fail("\(origin): metal_kernel \"\(k.name)\" has source fingerprint \(k.fingerprint), not one of the versions mlxc knows (\(known.sorted().joined(separator: ", ")))")
        }
        let type = { [graph] (v: ValueID) in graph.type(v) }
        switch k.name {
        case "gated_delta_step": return [try gatedDeltaStep(k, type: type, origin: origin, fail: fail)]
        case "tq_norm", "tq_dequant", "tq4_compress":
            return try withoutActuallyEscaping(fail) { fail in
                var builder = TurboQuantOps(graph: graph, kernel: k, what: "\(origin): metal_kernel \"\(k.name)\"", fail: fail)
                let ops = try builder.build()
                graph = builder.graph
                return ops
            }
        case let name where name.hasPrefix("gguf_"):
            return try GGUFKernels.build(k, graph: &graph, what: "\(origin): metal_kernel \"\(k.name)\"", fail: fail)
        default: return nil
        }
    }

    /// inputs [q, k, v, g, beta, state_in, T], outputs [y, state_out], template <InT, Dk, Dv, Hk, Hv>.
    /// T (a 0-D int32 made from q's dim 1) is q's own; the template values must be the operands' when known.
    static func gatedDeltaStep(_ k: MetalKernelOp, type: (ValueID) -> TensorType?, origin: String,
                               fail: (String) -> Error) throws -> Op {
        let what = "\(origin): metal_kernel \"gated_delta_step\""
        guard k.inputs.count == 7, k.outputs.count == 2 else {
            throw fail("\(what) has \(k.inputs.count) inputs and \(k.outputs.count) outputs, 7 and 2 expected")
        }
        guard k.templateArgValues.count == 5 else {
            throw fail("\(what) has \(k.templateArgValues.count) template_arg_values, 5 expected (InT, Dk, Dv, Hk, Hv)")
        }
        let t = k.templateArgValues
        if let q = type(k.inputs[0]), let v = type(k.inputs[2]) {
            let declared: [(String, Int, Dim)] = [("Dk", t[1], q.shape[safe: 3] ?? .fixed(-1)), ("Dv", t[2], v.shape[safe: 3] ?? .fixed(-1)),
                                                  ("Hk", t[3], q.shape[safe: 2] ?? .fixed(-1)), ("Hv", t[4], v.shape[safe: 2] ?? .fixed(-1))]
            for (name, value, dim) in declared {
                if let n = dim.fixedValue, n != value {
                    throw fail("\(what): template_arg_values \(name) = \(value), but the operands have \(n)")
                }
            }
            if t[0] != Int(q.dtype.rawValue) {
                throw fail("\(what): template_arg_values InT = ScalarType \(t[0]), but q is \(q.dtype.name)")
            }
        }
        if let d = t[safe: 1], d % 32 != 0 {
            throw fail("\(what): Dk = \(d) is not a multiple of 32 (the kernel's simdgroup split)")
        }
        return .gatedDeltaRule(GatedDeltaRuleOp(q: k.inputs[0], k: k.inputs[1], v: k.inputs[2], g: k.inputs[3],
                                                beta: k.inputs[4], state: k.inputs[5], outs: k.outputs))
    }
}
