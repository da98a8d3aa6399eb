import MLXCCodegen
import MLXCIR

/// `dynamic_quant_linear` → `DynamicQuantLinearKernels.linear`: x's rows quantized once per call,
/// the constant codes read in place, integer dot products per group (the target's word dot product);
/// on x86 with 4-bit weights, `DynamicQuantGemmKernels` on the codes repacked at load instead.
extension Lowerings {
    static func dynamicQuantLinear(_ o: DynamicQuantLinearOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard c.dtype(o.x) ?? .f32 == .f32, let w = c.constant(o.w), w.shape.count == 2,
              w.dtype == (o.bits == 4 ? .u32 : .i8), let s = c.constant(o.scales), s.dtype == .f32 else { return nil }
        let n = w.shape[0], k = o.bits == 4 ? w.shape[1] * 8 : w.shape[1]
        guard DynamicQuantLinearKernels.supports(k: k, groupSize: o.groupSize, bits: o.bits),
              s.count == n * (k / o.groupSize) else { return nil }
        if let pack = c.dynamicQuantPacks[o.out], pack.layout.n == n, pack.layout.k == k {
            // The int8 GEMM microkernel on the weights repacked at load (JITProgram+PackDynamicQuant).
            let definition = DynamicQuantGemmKernels.linear(k: k, n: n, groupSize: o.groupSize, dot: pack.dot)
            return launch(definition, node, operands: [o.x, o.w], results: [o.out], resultDTypes: [.f32],
                          operandDTypes: [.f32, .u8], grain: pack.dot.tile.vectors, constantOperands: [nil, pack.blob]) { inputs in
                let x = inputs[0]
                guard x.shape.last == k else { return nil }
                return CallLayout(shapes: [Array(x.shape.dropLast()) + [n]], dims: [Int64(x.count / k)], work: pack.layout.blocks)
            }
        }
        let definition = DynamicQuantLinearKernels.linear(k: k, n: n, bits: o.bits, groupSize: o.groupSize, dot: c.wordDot)
        return launch(definition, node, operands: [o.x, o.w, o.scales], results: [o.out], resultDTypes: [.f32],
                      operandDTypes: [.f32, w.dtype, .f32],
                      grain: DynamicQuantLinearKernels.columnBlock(groupSize: o.groupSize, bits: o.bits, dot: c.wordDot)) { inputs in
            let x = inputs[0]
            guard x.shape.last == k else { return nil }
            return CallLayout(shapes: [Array(x.shape.dropLast()) + [n]], dims: [Int64(x.count / k)], work: n)
        }
    }
}
