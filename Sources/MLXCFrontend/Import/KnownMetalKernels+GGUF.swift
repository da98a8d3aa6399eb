import MLXCIR

/// The MLX delegate's GGUF K-quant Metal kernels (custom_kernel_ops/gguf: emitted for Q6_K blocks whose scales do not
/// merge into MLX groups, and for every K-quant under ET_MLX_EMIT_DIRECT_GGUF=1): `gguf_q{4,5,6}k_matvec` /
/// `_matmul` (x · dequantize_gguf(weight)ᵀ + bias) and `gguf_q{4,5,6}k_embedding` (rows of it). Imported as what the
/// kernels compute (f32 weights, accumulation and bias, one rounding to the output dtype; ExecuTorch's own oracle for
/// them). Linears: the raw GGUF rows repacked once at load into MLX's affine layout (`gguf_pack_affine` in the init
/// block: every K-quant sub-block an affine group with exact f32 scale and bias; q4_k as 4-bit codes, q5_k/q6_k as
/// bytes), then an f32 affine `quantized_matmul`, whose kernels decode the codes in registers (5–6.5 bits per weight
/// with the group parameters; never an f32 weight), plus the bias. Embeddings: the same repack, the selected rows of
/// it gathered and decoded by the affine `dequantize` kernel (never a dequantized table).
enum GGUFKernels {
    static func build(_ k: MetalKernelOp, graph: inout Graph, what: String, fail: (String) -> Error) throws -> [Op] {
        let parts = k.name.split(separator: "_")   // gguf, q4k, matvec
        guard parts.count == 3, let type = ["q4k": "q4_k", "q5k": "q5_k", "q6k": "q6_k"][String(parts[1])] else {
            throw fail("\(what) is not a GGUF K-quant kernel")
        }
        let t = Dictionary(zip(k.templateArgNames, k.templateArgValues), uniquingKeysWith: { a, _ in a })
        func dtype(_ name: String) throws -> DType {
            guard let code = t[name], let d = DType(rawValue: Int8(truncatingIfNeeded: code)), d == .f32 || d == .bf16 || d == .f16 else {
                throw fail("\(what): template \(name) = \(t[name].map(String.init) ?? "none") is not a float dtype")
            }
            return d
        }
        let input = Dictionary(zip(k.inputNames, k.inputs), uniquingKeysWith: { a, _ in a })
        guard k.outputs.count == 1, let weight = input["weight"] else { throw fail("\(what) has no weight input or not one output") }
        switch parts[2] {
        case "matvec", "matmul":
            guard let x = input["x"] else { throw fail("\(what) has no x input") }
            // Q6_K's kernels have no OutT: their result dtype is the output's.
            let xd = try dtype("InT"), od = t["OutT"] == nil ? (k.outputDtypes.first ?? xd) : try dtype("OutT")
            // As the kernels (and ExecuTorch's fp32 oracle for them) compute: f32 weights, x and bias, one rounding.
            let packed = packedAffine(weight, type: type, graph: &graph)
            var ops: [Op] = []
            func f32(_ v: ValueID, _ d: DType) -> ValueID {
                guard d != .f32 else { return v }
                let c = graph.addValue(nil, .computed)
                ops.append(.asType(AsTypeOp(x: v, out: c, scalarType: .f32)))
                return c
            }
            let xf = f32(x, xd)
            // A constant bias is widened at load too, so the linear kernel reads it as a constant.
            let bias = try input["bias"].map { b -> ValueID in
                guard case .constant = graph[b].kind, let d = graph.type(b)?.dtype else { return f32(b, graph.type(b)?.dtype ?? xd) }
                guard d != .f32 else { return b }
                guard d == .bf16 || d == .f16 else { throw fail("\(what): bias is \(d.name)") }
                let c = graph.addValue(nil, .computed)
                graph.append(.asType(AsTypeOp(x: b, out: c, scalarType: .f32)), origin: "GGUF linear bias \(b) widened at load",
                             block: initBlock(&graph))
                return c
            }
            let y = od == .f32 ? k.outputs[0] : graph.addValue(nil, .computed)
            let product = bias == nil ? y : graph.addValue(nil, .computed)
            ops.append(.quantizedMatmul(QuantizedMatmulOp(x: xf, w: packed.words, scales: packed.scales, out: product,
                                                          biases: packed.biases, groupSize: packed.groupSize, bits: packed.bits,
                                                          mode: "affine", transpose: true)))
            if let bias { ops.append(.add(AddOp(a: product, b: bias, out: y))) }
            if od != .f32 { ops.append(.asType(AsTypeOp(x: y, out: k.outputs[0], scalarType: od))) }
            return ops
        case "embedding":
            // The table stays quantized: the rows of its affine repack that the indices select (codes, scales,
            // biases), decoded by the affine dequantize kernel — scale · u + bias, exactly llama.cpp's value (the
            // product is exact in f32), rounded once to OutT.
            guard let indices = input["indices"] else { throw fail("\(what) has no indices input") }
            let packed = packedAffine(weight, type: type, graph: &graph)
            let rows = [packed.words, packed.scales, packed.biases].map { _ in graph.addValue(nil, .computed) }
            let takes = zip([packed.words, packed.scales, packed.biases], rows).map { table, out in
                Op.take(TakeOp(x: table, out: out, index: .value(indices), axis: 0))
            }
            return takes + [.dequantize(DequantizeOp(w: rows[0], scales: rows[1], out: k.outputs[0], biases: rows[2],
                                                     groupSize: packed.groupSize, bits: packed.bits, mode: "affine",
                                                     dtype: try dtype("OutT")))]
        default:
            throw fail("\(what) is not a GGUF linear or embedding kernel")
        }
    }

    /// The weight dequantized in the init block (made once per weight, type and dtype).
    static func initBlock(_ graph: inout Graph) -> Int {
        if graph.initBlock == nil {
            graph.blocks.append(Block(name: "init"))
            graph.initBlock = graph.blocks.count - 1
        }
        return graph.initBlock!
    }

    static func dequantized(_ weight: ValueID, type: String, dtype: DType, graph: inout Graph) -> ValueID {
        let initBlock = initBlock(&graph)
        for node in graph.blocks[initBlock].nodes {
            if case .ggufDequantize(let o) = node.op, o.weight == weight, o.ggmlType == type, o.dtype == dtype { return o.out }
        }
        let out = graph.addValue(nil, .computed)
        graph.append(.ggufDequantize(GgufDequantizeOp(weight: weight, ggmlType: type, dtype: dtype, out: out)),
                     origin: "GGUF \(type) weight \(weight) dequantized at load", block: initBlock)
        return out
    }

    /// The weight repacked into affine groups in the init block (made once per weight): words, scales, biases.
    static func packedAffine(_ weight: ValueID, type: String, graph: inout Graph)
        -> (words: ValueID, scales: ValueID, biases: ValueID, bits: Int, groupSize: Int) {
        let layout = GGUFBlocks.affineLayout(type)!
        let initBlock = initBlock(&graph)
        for node in graph.blocks[initBlock].nodes {
            if case .ggufPackAffine(let o) = node.op, o.weight == weight, o.ggmlType == type, o.outs.count == 3 {
                return (o.outs[0], o.outs[1], o.outs[2], layout.bits, layout.groupSize)
            }
        }
        let outs = (0..<3).map { _ in graph.addValue(nil, .computed) }
        graph.append(.ggufPackAffine(GgufPackAffineOp(weight: weight, ggmlType: type, outs: outs)),
                     origin: "GGUF \(type) weight \(weight) repacked into affine groups at load", block: initBlock)
        return (outs[0], outs[1], outs[2], layout.bits, layout.groupSize)
    }
}
