import MLXCCodegen
import MLXCIR

/// `quantized_matmul` with MLX's block-scaled float modes (nvfp4, mxfp4, mxfp8; transpose = true)
/// → `FloatQuantizedLinearKernels`: the packed codes are read once and decoded in registers.
/// The ExecuTorch MLX delegate emits nvfp4's per-tensor scale as a separate `multiply` after the
/// matmul, which the elementwise kernels run.
extension Lowerings {
    /// The compile-time checks of a float-quantized weight: u32 words [.., N, K·bits/32], u8 scales
    /// with one byte per group, every scale byte one the kernel decodes exactly. Returns (n, k).
    static func floatQuantizedWeight(w: ValueID, scales: ValueID, mode: FloatQuantization, groupSize: Int,
                                     _ c: LoweringContext) -> (n: Int, k: Int, batch: [Int])? {
        guard groupSize == mode.groupSize, let wt = c.constant(w), wt.dtype == .u32, wt.shape.count >= 2,
              let s = c.constant(scales), s.dtype == .u8 else { return nil }
        let n = wt.shape[wt.shape.count - 2], k = wt.shape.last! * 32 / mode.codeBits
        let batch = Array(wt.shape.dropLast(2))
        guard FloatQuantizedLinearKernels.supports(k: k, mode: mode), n > 0,
              s.count == batch.reduce(1, *) * n * (k / groupSize) else { return nil }
        let bytes = s.data.assumingMemoryBound(to: UInt8.self)
        for i in 0..<s.count where !mode.decodesExactly(scale: bytes[i]) { return nil }
        return (n, k, batch)
    }

    static func floatQuantizedLinear(_ o: QuantizedMatmulOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let xd = c.dtype(o.x) ?? .f32
        guard let mode = FloatQuantization(rawValue: o.mode), o.transpose, o.biases == nil,
              let xt = ElementType(xd), ElementType.activations.contains(xt),
              let q = floatQuantizedWeight(w: o.w, scales: o.scales, mode: mode, groupSize: o.groupSize, c), q.batch.isEmpty
        else { return nil }
        let (n, k) = (q.n, q.k)
        let definition = FloatQuantizedLinearKernels.linear(k: k, n: n, mode: mode, x: xt, lanes: c.lanes)
        return launch(definition, node, operands: [o.x, o.w, o.scales], results: [o.out], resultDTypes: [xd],
                      operandDTypes: [xd, .u32, .u8], grain: 1) { inputs in
            let x = inputs[0]
            guard x.shape.last == k else { return nil }
            return CallLayout(shapes: [Array(x.shape.dropLast()) + [n]], dims: [Int64(x.count / k)], work: n)
        }
    }
}
