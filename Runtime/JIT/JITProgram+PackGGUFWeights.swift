import MLXCIR

/// The load-time repack of GGUF K-quant weights (`gguf_pack_affine`, made by the importer from the MLX delegate's
/// gguf_* linear kernels) done natively, like `packAffineWeights`: the raw blocks read straight from the mapped file,
/// the packed codes, scales and biases written once into owned buffers (5–6.5 bits per weight with the f32 group
/// parameters, instead of 32 for a dequantized f32 weight), then read by the quantized matmul kernels, which decode
/// codes in registers. `Environment.packAffine` is the one definition (the reference executor runs it too).
extension JITProgram {
    /// Takes the init block's gguf_pack_affine nodes of constant weights out of `graph` (the reference executor then
    /// does not run them); returns them in order.
    static func takeGGUFPackNodes(_ graph: inout Graph) -> [GgufPackAffineOp] {
        guard let i = graph.initBlock else { return [] }
        var taken: [GgufPackAffineOp] = []
        let values = graph.values
        graph.blocks[i].nodes.removeAll { node in
            guard case .ggufPackAffine(let o) = node.op, o.outs.count == 3,
                  case .constant = values[o.weight.index].kind else { return false }
            taken.append(o)
            return true
        }
        return taken
    }

    func packGGUFWeights(_ ops: [GgufPackAffineOp]) throws {
        for o in ops {
            guard let w = baseValues[o.weight.index] else { throw ReferenceError("gguf_pack_affine: weight \(o.weight) is not loaded") }
            guard let blockBytes = GGUFBlocks.blockBytes(o.ggmlType), let layout = GGUFBlocks.affineLayout(o.ggmlType) else {
                throw ReferenceError("gguf_pack_affine: ggml_type \"\(o.ggmlType)\" is not q4_k, q5_k or q6_k")
            }
            guard w.dtype == .u8, w.shape.count == 2, w.shape[1] % blockBytes == 0 else {
                throw ReferenceError("gguf_pack_affine: weight \(w.dtype.name)\(w.shape) is not u8 rows of whole \(o.ggmlType) blocks (\(blockBytes) bytes)")
            }
            let (rows, rowBytes) = (w.shape[0], w.shape[1])
            let k = rowBytes / blockBytes * GGUFBlocks.valuesPerBlock
            let wordCount = rows * k * layout.bits / 32, groups = rows * k / layout.groupSize
            let words = allocateOwned(wordCount * 4).bindMemory(to: UInt32.self, capacity: wordCount)
            let scales = allocateOwned(groups * 4).bindMemory(to: Float.self, capacity: groups)
            let biases = allocateOwned(groups * 4).bindMemory(to: Float.self, capacity: groups)
            let raw = UnsafeBufferPointer(start: UnsafeRawPointer(w.data).assumingMemoryBound(to: UInt8.self), count: rows * rowBytes)
            try Environment.packAffine(raw, rows: rows, rowBytes: rowBytes, type: o.ggmlType, words: words, scales: scales, biases: biases)
            baseValues[o.outs[0].index] = NativeTensor(dtype: .u32, shape: [rows, k * layout.bits / 32], data: UnsafeMutableRawPointer(words))
            baseValues[o.outs[1].index] = NativeTensor(dtype: .f32, shape: [rows, k / layout.groupSize], data: UnsafeMutableRawPointer(scales))
            baseValues[o.outs[2].index] = NativeTensor(dtype: .f32, shape: [rows, k / layout.groupSize], data: UnsafeMutableRawPointer(biases))
        }
    }
}
