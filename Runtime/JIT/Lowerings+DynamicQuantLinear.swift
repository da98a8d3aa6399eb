import MLXCCodegen
import MLXCIR

/// `dynamic_quant_linear` → `DynamicQuantLinearKernels.linear`: x's rows quantized once per call,
/// the constant codes read in place, integer dot products per group (the target's word dot product).
extension Lowerings {
    static func dynamicQuantLinear(_ o: DynamicQuantLinearOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard c.dtype(o.x) ?? .f32 == .f32, let w = c.constant(o.w), w.shape.count == 2,
              w.dtype == (o.bits == 4 ? .u32 : .i8), let s = c.constant(o.scales), s.dtype == .f32 else { return nil }
        let n = w.shape[0], k = o.bits == 4 ? w.shape[1] * 8 : w.shape[1]
        guard DynamicQuantLinearKernels.supports(k: k, groupSize: o.groupSize, bits: o.bits),
              s.count == n * (k / o.groupSize) else { return nil }
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
