import Foundation
import MLXCCodegen
import MLXCIR

/// `quantized_matmul` (MLX affine, transpose = true) and `fused_quantized_linear` → the quantized
/// linear kernels: packed weights are read once and dequantized in registers. Activations (and the
/// residual, and the results) are f32, bf16 or f16, all of one dtype.
extension Lowerings {
    /// A compile-time quantized weight: [N, K·bits/32] words with its scales and biases.
    struct QuantizedWeight {
        let n: Int, k: Int, paramDType: DType, params: QuantizedLinearKernels.ParamType
    }

    /// The scale/bias element type a quantized kernel reads (f32, bf16 or f16), nil for others.
    static func quantizedParams(_ dtype: DType) -> QuantizedLinearKernels.ParamType? {
        switch dtype {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        default: return nil
        }
    }

    static func quantizedWeight(w: ValueID, scales: ValueID, biases: ValueID?, bits: Int, groupSize: Int,
                                _ c: LoweringContext) -> QuantizedWeight? {
        guard QuantizedLinearKernels.supports(bits: bits, groupSize: groupSize, lanes: c.lanes),
              let wt = c.constant(w), wt.dtype == .u32, wt.shape.count == 2,
              let biases, let s = c.constant(scales), let bb = c.constant(biases), s.dtype == bb.dtype else { return nil }
        guard let params = quantizedParams(s.dtype) else { return nil }
        let n = wt.shape[0], k = wt.shape[1] * 32 / bits
        guard k % groupSize == 0, s.count == n * (k / groupSize), bb.count == s.count else { return nil }
        return QuantizedWeight(n: n, k: k, paramDType: s.dtype, params: params)
    }

    /// x's dtype if a quantized linear kernel takes it (f32 when unknown, checked per call).
    static func quantizedActivation(_ x: ValueID, _ c: LoweringContext) -> (DType, ElementType)? {
        let d = c.dtype(x) ?? .f32
        guard let t = ElementType(d), ElementType.activations.contains(t) else { return nil }
        return (d, t)
    }

    /// One-token 4-bit linears on x rounded to int16 per group (`AffineInt16Rows`; opt-in: `MLXC_QMM_INT16=1`).
    static var int16Decode: Bool { ProcessInfo.processInfo.environment["MLXC_QMM_INT16"] == "1" }

    static func quantizedLinear(_ o: QuantizedMatmulOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.mode == "affine", o.transpose, let (xd, xt) = quantizedActivation(o.x, c), let biases = o.biases,
              let q = quantizedWeight(w: o.w, scales: o.scales, biases: biases, bits: o.bits, groupSize: o.groupSize, c) else { return nil }
        let (n, k) = (q.n, q.k)
        let definition = QuantizedLinearKernels.fused(k: k, ns: [n], bits: o.bits, groupSize: o.groupSize, params: q.params,
                                                      activation: xt, epilogue: .none, residual: false, lanes: c.lanes,
                                                      int16Dot: int16Decode ? c.wordDot : nil)
        return LoweredKernel(definition: definition) { function in
            KernelLaunch(name: definition.name, function: function, operands: [o.x, o.w, o.scales, biases], results: [o.out],
                         resultDTypes: [xd],
                         resultShapes: { inputs in
                             guard inputs[0].shape.last == k else { throw ReferenceError("quantized_matmul: x \(inputs[0].shape) does not end in K = \(k)") }
                             return [Array(inputs[0].shape.dropLast()) + [n]]
                         },
                         dims: { inputs in [Int64(inputs[0].count / k)] },
                         work: { _ in n }, grain: QuantizedLinearKernels.grain(activation: xt, epilogue: .none, lanes: c.lanes, fallback: 1),
                         operandDTypes: [xd, .u32, q.paramDType, q.paramDType], node: node)
        }
    }

    /// One kernel for the fused linears: x prepared once, the epilogue (SwiGLU, residual) applied
    /// as each row's dot products come out. A residual whose shape is not the result's (a
    /// broadcast) runs on the reference.
    static func fusedQuantizedLinear(_ o: FusedQuantizedLinearOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (xd, xt) = quantizedActivation(o.x, c), o.residual.map({ c.dtype($0) ?? xd == xd }) ?? true,
              let epilogue = QuantizedLinearKernels.Epilogue(rawValue: o.epilogue) else { return nil }
        var weights: [QuantizedWeight] = []
        for i in o.w.indices {
            guard let q = quantizedWeight(w: o.w[i], scales: o.scales[i], biases: o.biases[i], bits: o.bits, groupSize: o.groupSize, c)
            else { return nil }
            weights.append(q)
        }
        guard let first = weights.first, weights.allSatisfy({ $0.k == first.k && $0.paramDType == first.paramDType }) else { return nil }
        let k = first.k, ns = weights.map(\.n)
        if epilogue == .swiglu { guard ns.count == 2, ns[0] == ns[1] else { return nil } }
        let definition = QuantizedLinearKernels.fused(k: k, ns: ns, bits: o.bits, groupSize: o.groupSize, params: first.params,
                                                      activation: xt, epilogue: epilogue, residual: o.residual != nil, lanes: c.lanes,
                                                      int16Dot: int16Decode ? c.wordDot : nil)
        var operands = [o.x]
        var dtypes: [DType?] = [xd]
        for i in o.w.indices {
            operands += [o.w[i], o.scales[i], o.biases[i]]
            dtypes += [.u32, first.paramDType, first.paramDType]
        }
        if let r = o.residual { operands.append(r); dtypes.append(xd) }
        let resultNs = epilogue == .swiglu ? [ns[0]] : ns
        let work = epilogue == .swiglu ? ns[0] : ns.reduce(0, +)
        return launch(definition, node, operands: operands, results: o.outs, resultDTypes: resultNs.map { _ in xd },
                      operandDTypes: dtypes, grain: QuantizedLinearKernels.grain(activation: xt, epilogue: epilogue, lanes: c.lanes, fallback: 1)) { inputs in
            let x = inputs[0]
            guard x.shape.last == k else { return nil }
            let shapes = resultNs.map { Array(x.shape.dropLast()) + [$0] }
            if o.residual != nil { guard inputs[operands.count - 1].shape == shapes[0] else { return nil } }
            return CallLayout(shapes: shapes, dims: [Int64(x.count / k)], work: work)
        }
    }
}
