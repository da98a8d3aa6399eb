import MLXCCodegen
import MLXCIR

/// Quantized ops other than the matmul (and the fused linears, in Lowerings+QuantizedMatmul): affine `dequantize` to f32, bf16 or f16 (the rows a quantized
/// embedding lookup gathers).
extension Lowerings {
    static func quantized(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        if case .fusedQuantizedLinear(let o) = node.op { return fusedQuantizedLinear(o, node, c) }
        if case .quantizedEmbedding(let o) = node.op { return quantizedEmbedding(o, node, c) }
        guard case .dequantize(let o) = node.op else { return nil }
        if o.mode != "affine" { return floatDequantize(o, node, c) }
        guard o.mode == "affine", o.globalScale == nil, let biases = o.biases,
              DequantizeKernels.supports(bits: o.bits, groupSize: o.groupSize, lanes: c.lanes),
              c.dtype(o.w) ?? .u32 == .u32, let words = lastDim(o.w, c) else { return nil }
        let paramDType = c.dtype(o.scales) ?? .f32
        let outDType = o.dtype ?? paramDType
        guard c.dtype(biases) ?? paramDType == paramDType, let outType = ElementType(outDType),
              ElementType.activations.contains(outType) else { return nil }
        guard let params = quantizedParams(paramDType) else { return nil }
        guard words * 32 % o.bits == 0 else { return nil }
        let k = words * 32 / o.bits
        guard k % o.groupSize == 0 else { return nil }
        let groups = k / o.groupSize
        let definition = DequantizeKernels.affine(k: k, bits: o.bits, groupSize: o.groupSize, params: params, out: outType, lanes: c.lanes)
        return launch(definition, node, operands: [o.w, o.scales, biases], results: [o.out], resultDTypes: [outDType],
                      operandDTypes: [.u32, paramDType, paramDType], grain: max(1, 4096 / k)) { inputs in
            let w = inputs[0]
            guard w.shape.last == words else { return nil }
            let rows = w.count / words
            guard inputs[1].count == rows * groups, inputs[2].count == rows * groups else { return nil }
            return CallLayout(shapes: [Array(w.shape.dropLast()) + [k]], dims: [], work: rows)
        }
    }
}
