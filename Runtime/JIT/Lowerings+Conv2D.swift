import MLXCCodegen
import MLXCIR

/// `conv2d` (NHWC x, constant weight [O, kH, kW, C/groups]) as `Conv2DKernels.conv2d`. The weight is read where
/// it is stored: a constant, or a constant (or init-block result) seen through its only transpose — ATen's
/// [O, C/groups, kH, kW] reaches the op as transpose(w, [0, 2, 3, 1]) —, whose strides the kernel takes, so
/// the transpose itself is absorbed instead of running on the reference executor.
extension Lowerings {
    static let conv2dReason = "needs f32/bf16/f16 x [N, H, W, C] and a constant 4-d weight (or a transpose of one) of the same dtype whose O divides by groups"

    static func conv2d(_ o: Conv2DOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c), o.groups >= 1, o.strideH >= 1, o.strideW >= 1,
              o.dilationH >= 1, o.dilationW >= 1, o.paddingH >= 0, o.paddingW >= 0,
              let (weight, shape, strides, transposeNode) = stridedConstant(o.w, rank: 4, c),
              c.dtype(weight) == dtype else { return nil }
        let (outChannels, kernel, groupChannels) = (shape[0], [shape[1], shape[2]], shape[3])
        guard outChannels % o.groups == 0, kernel.allSatisfy({ $0 > 0 }), groupChannels > 0 else { return nil }
        let s = Conv2DShape(kernel: kernel, groupChannels: groupChannels, outChannels: outChannels, groups: o.groups,
                            stride: [o.strideH, o.strideW], padding: [o.paddingH, o.paddingW],
                            dilation: [o.dilationH, o.dilationW], weightStrides: strides)
        let definition = Conv2DKernels.conv2d(s, t, weight: t, lanes: c.lanes)
        return launch(definition, node, operands: [o.x, weight], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype], grain: 1, absorbs: transposeNode == nil ? [] : [o.w],
                      fallbackNodes: transposeNode.map { [$0, node] }) { inputs in
            let x = inputs[0].shape
            guard x.count == 4, x[3] == groupChannels * o.groups else { return nil }
            let spanH = x[1] + 2 * o.paddingH - o.dilationH * (kernel[0] - 1) - 1
            let spanW = x[2] + 2 * o.paddingW - o.dilationW * (kernel[1] - 1) - 1
            guard spanH >= 0, spanW >= 0 else { return nil }
            let (outH, outW) = (spanH / o.strideH + 1, spanW / o.strideW + 1)
            return CallLayout(shapes: [[x[0], outH, outW, outChannels]], dims: [x[1], x[2], outH, outW].map(Int64.init),
                              work: x[0] * outH)
        }
    }

    /// A depthwise conv1d (one input channel per group, one output per group: the conformer's convolution module) on
    /// the conv2d kernel's depthwise path, x [N, L, C] seen as [N, L, 1, C] and the kernel as [K, 1]: channel
    /// vectors, where conv1d's kernel would reduce one-lane vectors (it vectorises over a group's input channels).
    static func depthwiseConv1d(_ o: Conv1DOp, _ node: Node, _ c: LoweringContext, weight: ValueID, kernel: Int, strides: [Int],
                                transposeNode: Node?) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c) else { return nil }
        let s = Conv2DShape(kernel: [kernel, 1], groupChannels: 1, outChannels: o.groups, groups: o.groups, stride: [o.stride, 1],
                            padding: [o.padding, 0], dilation: [o.dilation, 1], weightStrides: [strides[0], strides[1], 0, strides[2]])
        let definition = Conv2DKernels.conv2d(s, t, weight: t, lanes: c.lanes)
        return launch(definition, node, operands: [o.x, weight], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype], grain: 1, absorbs: transposeNode == nil ? [] : [o.w],
                      fallbackNodes: transposeNode.map { [$0, node] }) { inputs in
            let x = inputs[0].shape
            guard x.count == 3, x[2] == o.groups else { return nil }
            let span = x[1] + 2 * o.padding - o.dilation * (kernel - 1) - 1
            guard span >= 0 else { return nil }
            let outLength = span / o.stride + 1
            return CallLayout(shapes: [[x[0], outLength, o.groups]], dims: [x[1], 1, outLength, 1].map(Int64.init), work: x[0] * outLength)
        }
    }

    /// A constant of `rank` dims as stored, or one seen through its only transpose: the value the kernel reads,
    /// the shape it sees, the element strides of that shape's dims, and the transpose node it absorbs.
    static func stridedConstant(_ v: ValueID, rank: Int, _ c: LoweringContext)
        -> (value: ValueID, shape: [Int], strides: [Int], transpose: Node?)? {
        if let w = c.constant(v) {
            guard w.shape.count == rank else { return nil }
            return (v, w.shape, StridedLayout.rowMajor(w.shape), nil)
        }
        guard let producer = c.definingNode(v), case .transpose(let tr) = producer.op, c.useCounts[v] == 1,
              !c.graph.outputs.contains(v), let w = c.constant(tr.x), w.shape.count == rank else { return nil }
        let perm = tr.perm.map { $0 < 0 ? $0 + rank : $0 }
        guard Set(perm) == Set(0..<rank), perm.count == rank else { return nil }
        let own = StridedLayout.rowMajor(w.shape)
        return (tr.x, perm.map { w.shape[$0] }, perm.map { own[$0] }, producer)
    }
}
