import MLXCCodegen
import MLXCIR

/// `quantized_embedding` (ExecuTorch's `quantized_decomposed::embedding_{byte,4bit,2bit}`, which
/// `--qembedding 8w|4w` exports leave outside every delegate): the tokens' rows gathered and
/// dequantized in one kernel, f32/bf16/f16 out.
extension Lowerings {
    static func quantizedEmbedding(_ o: QuantizedEmbeddingOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard QuantizedEmbeddingKernels.supports(bits: o.bits),
              let weightDType = c.dtype(o.weight), weightDType == .i8 || weightDType == .u8,
              let wt = c.type(o.weight), wt.rank == 2,
              let paramDType = c.dtype(o.scales), let params = ElementType(paramDType), ElementType.activations.contains(params),
              let indexDType = c.dtype(o.indices), indexDType == .i64 || indexDType == .i32, let index = ElementType(indexDType) else { return nil }
        let outDType = o.dtype ?? paramDType
        guard let outType = ElementType(outDType), ElementType.activations.contains(outType) else { return nil }
        var zeros: ElementType? = nil
        var zeroDType: DType? = nil
        if let z = o.zeroPoints {
            guard let d = c.dtype(z), let t = ElementType(d), t.isFloat ? ElementType.activations.contains(t) : [.i8, .u8, .i32, .i64].contains(t) else { return nil }
            (zeros, zeroDType) = (t, d)
        }
        let perByte = 8 / o.bits
        let definition = QuantizedEmbeddingKernels.rows(bits: o.bits, params: params, zeros: zeros, index: index, out: outType, lanes: c.lanes)
        let operands = [o.weight, o.scales] + (o.zeroPoints.map { [$0] } ?? []) + [o.indices]
        let operandDTypes: [DType?] = [weightDType, paramDType] + (zeroDType.map { [$0] } ?? []) + [indexDType]
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [outDType],
                      operandDTypes: operandDTypes, grain: 4, check: { inputs in
                          // The reference refuses negative rows (it names the index); so does the kernel.
                          let rows = inputs[0].shape[0], idx = inputs[inputs.count - 1]
                          return validIndices(idx, axisSize: rows) && nonNegative(idx)
                      }) { inputs in
            let w = inputs[0], scales = inputs[1], idx = inputs[inputs.count - 1]
            guard w.shape.count == 2 else { return nil }
            let rows = w.shape[0], packed = w.shape[1], dim = packed * perByte
            // scales [V], [V, 1] or [V, G]; zero points alike.
            let groups = scales.shape.count == 2 ? scales.shape[1] : 1
            guard scales.shape.first == rows, scales.count == rows * groups, groups > 0, dim % groups == 0 else { return nil }
            if o.zeroPoints != nil, inputs[2].count != scales.count { return nil }
            return CallLayout(shapes: [idx.shape + [dim]], dims: [Int64(dim), Int64(groups), Int64(packed)], work: idx.count)
        }
    }

    static func nonNegative(_ t: NativeTensor) -> Bool {
        switch t.dtype {
        case .i64: return UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Int64.self), count: t.count).allSatisfy { $0 >= 0 }
        case .i32: return UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Int32.self), count: t.count).allSatisfy { $0 >= 0 }
        default: return false
        }
    }
}
