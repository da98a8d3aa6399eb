import MLXCIR

/// Weight dequantization in plain (non-delegated) quantized exports: torchao's `dequantize_affine`
/// (what torch.export writes for torchao's IntxWeightOnlyConfig weights, int8 and int4 codes one per
/// byte) and ExecuTorch's `quantized_decomposed::dequantize_per_channel`, both as `dequantize_affine`.
/// The fuse-dequant-matmul pass turns a dequantized weight that feeds a linear into a quantized matmul.
extension PlanImporter {
    static var quantizedTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["torchao::dequantize_affine.out"] = { imp, a in
            // (input, block_size, scale, zero_point?, input_dtype, quant_min?, quant_max?, output_dtype, out)
            try imp.arity(a, 9, "dequantize_affine")
            let x = try imp.read(a[0])
            let blockSize = try imp.literalInts(a[1])
            let (qmin, qmax) = try imp.codeRange(a[5], a[6], input: try imp.optionalDType(a[4]), "dequantize_affine")
            imp.emit(.dequantizeAffine(DequantizeAffineOp(
                x: x, blockSize: blockSize, scale: try imp.read(a[2]), zeroPoint: try imp.optionalTensor(a[3]),
                quantMin: qmin, quantMax: qmax, dtype: try imp.optionalDType(a[7]) ?? .f32, out: try imp.write(a.last!))))
        }
        t["quantized_decomposed::dequantize_per_channel.out"] = { imp, a in
            // (input, scales, zero_points?, axis, quant_min, quant_max, dtype, *, out_dtype?, out):
            // one scale per index along `axis`, i.e. blocks of 1 there and the whole extent elsewhere.
            try imp.arity(a, 9, "dequantize_per_channel")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x), let shape = type.staticShape else {
                throw imp.fail("dequantize_per_channel of a tensor without a static shape")
            }
            let axis = imp.axis(try imp.literalInt(a[3]), of: x)
            guard shape.indices.contains(axis) else { throw imp.fail("dequantize_per_channel axis \(axis) of shape \(shape)") }
            let blockSize = shape.indices.map { $0 == axis ? 1 : shape[$0] }
            imp.emit(.dequantizeAffine(DequantizeAffineOp(
                x: x, blockSize: blockSize, scale: try imp.read(a[1]), zeroPoint: try imp.optionalTensor(a[2]),
                quantMin: try imp.literalInt(a[4]), quantMax: try imp.literalInt(a[5]),
                dtype: try imp.optionalDType(a[7]) ?? .f32, out: try imp.write(a.last!))))
        }
        return t
    }

    /// The codes' range: the given quant_min/quant_max, else the full range of the input dtype (torchao's default).
    func codeRange(_ lo: Int, _ hi: Int, input: DType?, _ op: String) throws -> (Int, Int) {
        let given = (try optionalInt(lo), try optionalInt(hi))
        var range: (Int, Int)
        switch input {
        case .i8?: range = (-128, 127)
        case .u8?: range = (0, 255)
        case .i16?: range = (-32768, 32767)
        case .i32?: range = (Int(Int32.min), Int(Int32.max))
        default: range = (0, 0)
        }
        if let g = given.0 { guard case .literal(let n) = g else { throw fail("\(op): quant_min is computed at run time") }; range.0 = Int(n) }
        if let g = given.1 { guard case .literal(let n) = g else { throw fail("\(op): quant_max is computed at run time") }; range.1 = Int(n) }
        return range
    }
}
