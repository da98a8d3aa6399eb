/// `gguf_dequantize`: u8 [N, row bytes] → [N, 256 · row bytes / block bytes] of `dtype` (f32 when absent).
extension ShapeRules {
    static func ggufDequantize(_ o: GgufDequantizeOp, _ e: Env) throws -> TensorType {
        let op = "gguf_dequantize"
        guard let bytes = GGUFBlocks.blockBytes(o.ggmlType) else { throw fail(op, "ggml_type \"\(o.ggmlType)\" is not q4_k, q5_k or q6_k") }
        let w = try e.t(o.weight)
        guard w.dtype == .u8, w.rank == 2 else { throw fail(op, "weight \(w.dtype.name)\(text(w.shape)) is not u8 [N, row bytes]") }
        guard let row = w.shape[1].fixedValue else { return TensorType(o.dtype ?? .f32, [w.shape[0], .dynamic(min: 0, max: nil)]) }
        guard row % bytes == 0 else { throw fail(op, "weight rows of \(row) bytes are not whole \(o.ggmlType) blocks of \(bytes)") }
        return TensorType(o.dtype ?? .f32, [w.shape[0], .fixed(row / bytes * GGUFBlocks.valuesPerBlock)])
    }

    /// u8 [N, row bytes] → [w u32 [N, K·bits/32], scales f32 [N, K/group], biases f32 [N, K/group]].
    static func ggufPackAffine(_ o: GgufPackAffineOp, _ e: Env) throws -> [TensorType?] {
        let op = "gguf_pack_affine"
        guard let bytes = GGUFBlocks.blockBytes(o.ggmlType), let layout = GGUFBlocks.affineLayout(o.ggmlType) else {
            throw fail(op, "ggml_type \"\(o.ggmlType)\" is not q4_k, q5_k or q6_k")
        }
        guard o.outs.count == 3 else { throw fail(op, "has \(o.outs.count) results, 3 expected (w, scales, biases)") }
        let w = try e.t(o.weight)
        guard w.dtype == .u8, w.rank == 2 else { throw fail(op, "weight \(w.dtype.name)\(text(w.shape)) is not u8 [N, row bytes]") }
        guard let row = w.shape[1].fixedValue else {
            let unknown = Dim.dynamic(min: 0, max: nil)
            return [TensorType(.u32, [w.shape[0], unknown]), TensorType(.f32, [w.shape[0], unknown]), TensorType(.f32, [w.shape[0], unknown])]
        }
        guard row % bytes == 0 else { throw fail(op, "weight rows of \(row) bytes are not whole \(o.ggmlType) blocks of \(bytes)") }
        let k = row / bytes * GGUFBlocks.valuesPerBlock
        return [TensorType(.u32, [w.shape[0], .fixed(k * layout.bits / 32)]),
                TensorType(.f32, [w.shape[0], .fixed(k / layout.groupSize)]),
                TensorType(.f32, [w.shape[0], .fixed(k / layout.groupSize)])]
    }
}
