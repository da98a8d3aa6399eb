import MLXCCodegen
import MLXCIR

/// `quantized_matmul` (MLX affine, transpose = true) → the quantized linear kernels: packed
/// weights are read once and dequantized in registers.
extension Lowerings {
    static func quantizedLinear(_ o: QuantizedMatmulOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.mode == "affine", o.transpose, c.dtype(o.x) ?? .f32 == .f32,
              QuantizedLinearKernels.supports(bits: o.bits, groupSize: o.groupSize, lanes: c.lanes),
              let w = c.constant(o.w), w.dtype == .u32, w.shape.count == 2,
              let biases = o.biases, let s = c.constant(o.scales), let bb = c.constant(biases), s.dtype == bb.dtype else { return nil }
        let params: QuantizedLinearKernels.ParamType
        switch s.dtype {
        case .f32: params = .f32
        case .bf16: params = .bf16
        case .f16: params = .f16
        default: return nil
        }
        let n = w.shape[0], k = w.shape[1] * 32 / o.bits
        guard k % o.groupSize == 0, s.count == n * (k / o.groupSize), bb.count == s.count else { return nil }
        let definition = QuantizedLinearKernels.affine(k: k, n: n, bits: o.bits, groupSize: o.groupSize, params: params, lanes: c.lanes)
        return LoweredKernel(definition: definition) { function in
            KernelLaunch(name: definition.name, function: function, operands: [o.x, o.w, o.scales, biases], results: [o.out],
                         resultDTypes: [.f32],
                         resultShapes: { inputs in
                             guard inputs[0].shape.last == k else { throw ReferenceError("quantized_matmul: x \(inputs[0].shape) does not end in K = \(k)") }
                             return [Array(inputs[0].shape.dropLast()) + [n]]
                         },
                         dims: { inputs in [Int64(inputs[0].count / k)] },
                         work: { _ in n }, grain: 1, operandDTypes: [.f32, .u32, s.dtype, s.dtype], node: node)
        }
    }
}
