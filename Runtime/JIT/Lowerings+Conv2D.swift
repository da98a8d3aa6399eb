import MLXCCodegen
import MLXCIR

/// `conv2d` (NHWC x, constant weight [O, kH, kW, C/groups]) as `Conv2DKernels.conv2d`. The weight is read where
/// it is stored: a constant, or a constant (or init-block result) seen through its only transpose — ATen's
/// [O, C/groups, kH, kW] reaches the op as transpose(w, [0, 2, 3, 1]) —, whose strides the kernel takes, so
/// the transpose itself is absorbed instead of running on the reference executor. A bias add that is the conv's
/// only reader (`add(conv, b)`, b a constant [O] of the same dtype: what both importers emit) is absorbed too: the
/// kernel's sums start from the bias and it writes the add's result; so is the transpose back to NCHW that reads the
/// result (the ATen importer's), which the kernel then writes channels-first; and a clip with constant bounds that
/// reads the conv's (or its bias add's) result alone — XNNPACK's fused ReLU6 — applied on the store.
extension Lowerings {
    static let conv2dReason = "needs f32/bf16/f16 x [N, H, W, C] and a constant 4-d weight (or a transpose of one) of the same dtype whose O divides by groups"

    static func conv2d(_ o: Conv2DOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c), o.groups >= 1, o.strideH >= 1, o.strideW >= 1,
              o.dilationH >= 1, o.dilationW >= 1, o.paddingH >= 0, o.paddingW >= 0,
              let (weight, shape, strides, transposeNode) = stridedConstant(o.w, rank: 4, c),
              c.dtype(weight) == dtype else { return nil }
        let (outChannels, kernel, groupChannels) = (shape[0], [shape[1], shape[2]], shape[3])
        guard outChannels % o.groups == 0, kernel.allSatisfy({ $0 > 0 }), groupChannels > 0 else { return nil }
        let bias = convBias(of: o.out, channels: outChannels, dtype: dtype, c)
        let clamp = dtype == .f32 ? convClamp(of: bias?.out ?? o.out, c) : nil
        let back = channelsFirstReader(of: clamp?.out ?? bias?.out ?? o.out, c)
        let front = channelsFirstSource(of: o.x, c)
        var s = Conv2DShape(kernel: kernel, groupChannels: groupChannels, outChannels: outChannels, groups: o.groups,
                            stride: [o.strideH, o.strideW], padding: [o.paddingH, o.paddingW],
                            dilation: [o.dilationH, o.dilationW], weightStrides: strides, bias: bias != nil)
        s.channelsFirstOutput = back != nil
        s.channelsFirstInput = front != nil
        s.clamp = clamp.map { [$0.lo, $0.hi] }
        let definition = Conv2DKernels.conv2d(s, t, weight: t, lanes: c.lanes)
        var (absorbs, fallbackNodes) = convAbsorbs(o.w, transposeNode, node, bias, back, clamp: clamp)
        if let front {
            absorbs.insert(o.x)
            fallbackNodes = [front.node] + (fallbackNodes ?? [node])
        }
        return launch(definition, node, operands: [front?.source ?? o.x, weight] + (bias.map { [$0.value] } ?? []),
                      results: [back?.out ?? clamp?.out ?? bias?.out ?? o.out],
                      resultDTypes: [dtype], operandDTypes: [dtype, dtype] + (bias == nil ? [] : [dtype]), grain: 1,
                      absorbs: absorbs, fallbackNodes: fallbackNodes) { inputs in
            let given = inputs[0].shape
            guard given.count == 4 else { return nil }
            let x = front == nil ? given : [given[0], given[2], given[3], given[1]]   // as NHWC
            guard x[3] == groupChannels * o.groups else { return nil }
            let spanH = x[1] + 2 * o.paddingH - o.dilationH * (kernel[0] - 1) - 1
            let spanW = x[2] + 2 * o.paddingW - o.dilationW * (kernel[1] - 1) - 1
            guard spanH >= 0, spanW >= 0 else { return nil }
            let (outH, outW) = (spanH / o.strideH + 1, spanW / o.strideW + 1)
            let shape = back == nil ? [x[0], outH, outW, outChannels] : [x[0], outChannels, outH, outW]
            return CallLayout(shapes: [shape], dims: [x[1], x[2], outH, outW].map(Int64.init),
                              work: x[0] * outH)
        }
    }

    /// A depthwise conv1d (one input channel per group, one output per group: the conformer's convolution module) on
    /// the conv2d kernel's depthwise path, x [N, L, C] seen as [N, L, 1, C] and the kernel as [K, 1]: channel
    /// vectors, where conv1d's kernel would reduce one-lane vectors (it vectorises over a group's input channels).
    static func depthwiseConv1d(_ o: Conv1DOp, _ node: Node, _ c: LoweringContext, weight: ValueID, kernel: Int, strides: [Int],
                                transposeNode: Node?) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c) else { return nil }
        let bias = convBias(of: o.out, channels: o.groups, dtype: dtype, c)
        let s = Conv2DShape(kernel: [kernel, 1], groupChannels: 1, outChannels: o.groups, groups: o.groups, stride: [o.stride, 1],
                            padding: [o.padding, 0], dilation: [o.dilation, 1], weightStrides: [strides[0], strides[1], 0, strides[2]],
                            bias: bias != nil)
        let definition = Conv2DKernels.conv2d(s, t, weight: t, lanes: c.lanes)
        let (absorbs, fallbackNodes) = convAbsorbs(o.w, transposeNode, node, bias, nil)
        return launch(definition, node, operands: [o.x, weight] + (bias.map { [$0.value] } ?? []), results: [bias?.out ?? o.out],
                      resultDTypes: [dtype], operandDTypes: [dtype, dtype] + (bias == nil ? [] : [dtype]), grain: 1,
                      absorbs: absorbs, fallbackNodes: fallbackNodes) { inputs in
            let x = inputs[0].shape
            guard x.count == 3, x[2] == o.groups else { return nil }
            let span = x[1] + 2 * o.padding - o.dilation * (kernel - 1) - 1
            guard span >= 0 else { return nil }
            let outLength = span / o.stride + 1
            return CallLayout(shapes: [[x[0], outLength, o.groups]], dims: [x[1], 1, outLength, 1].map(Int64.init), work: x[0] * outLength)
        }
    }

    /// `add(conv, b)` (either order) as the only reader of the conv's result `v`, b a constant of `channels` elements in
    /// the conv's dtype that broadcasts over the last axis ([O], [1, …, 1, O]): the bias, the sum and the add.
    static func convBias(of v: ValueID, channels: Int, dtype: DType, _ c: LoweringContext) -> (value: ValueID, out: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v),
              let block = c.graph.blocks.first(where: { $0.nodes.contains { $0.op.results.contains(v) } }),
              let reader = block.nodes.first(where: { $0.op.operands.contains(v) }),
              case .add(let add) = reader.op, add.a != add.b, c.dtype(add.out) == dtype else { return nil }
        let bias = add.a == v ? add.b : add.a
        guard let t = c.constant(bias), t.dtype == dtype, t.count == channels, t.shape.last == channels,
              t.shape.count <= (c.type(v)?.rank ?? 0) else { return nil }
        return (bias, add.out, reader)
    }

    /// `clip(v, lo, hi)` as the only reader of the conv's (or its bias add's) result `v`, bounds scalar constants: the
    /// activation XNNPACK fuses into its convolutions (ReLU6: output_min_max 0, 6), which the kernel applies on the store.
    static func convClamp(of v: ValueID, _ c: LoweringContext) -> (lo: Float, hi: Float, out: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v),
              let block = c.graph.blocks.first(where: { $0.nodes.contains { $0.op.results.contains(v) } }),
              let reader = block.nodes.first(where: { $0.op.operands.contains(v) }),
              case .clip(let clip) = reader.op, clip.x == v, c.dtype(clip.out) == c.dtype(v) else { return nil }
        func bound(_ b: ValueID?, _ none: Float) -> Float? {
            guard let b else { return none }
            guard let t = c.constant(b), t.count == 1, t.dtype == c.dtype(v), let x = try? t.host().storage.first else { return nil }
            return Float(x)
        }
        guard let lo = bound(clip.aMin, -.infinity), let hi = bound(clip.aMax, .infinity) else { return nil }
        return (lo, hi, clip.out, reader)
    }

    /// `transpose(v, [0, 3, 1, 2])` as the only reader of `v` in its block: NHWC back to ATen's NCHW, which the conv
    /// kernel writes directly (the importer's transpose after every convolution).
    static func channelsFirstReader(of v: ValueID, _ c: LoweringContext) -> (out: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v),
              let block = c.graph.blocks.first(where: { $0.nodes.contains { $0.op.results.contains(v) } }),
              let reader = block.nodes.first(where: { $0.op.operands.contains(v) }),
              case .transpose(let t) = reader.op, t.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 3, 1, 2] else { return nil }
        return (t.out, reader)
    }

    /// `v = transpose(x, [0, 2, 3, 1])` read by nothing but the conv: ATen's NCHW x moved to NHWC, which the conv kernel
    /// reads through instead (a float activation, not a constant).
    static func channelsFirstSource(of v: ValueID, _ c: LoweringContext) -> (source: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v), let node = c.definingNode(v),
              case .transpose(let t) = node.op, t.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 2, 3, 1],
              c.constant(t.x) == nil, c.dtype(t.x) == c.dtype(v) else { return nil }
        return (t.x, node)
    }

    /// What a conv kernel absorbs (its weight's transpose, its bias add, the transpose back to NCHW) and the nodes a
    /// fallback then runs, in order.
    static func convAbsorbs(_ w: ValueID, _ transposeNode: Node?, _ node: Node, _ bias: (value: ValueID, out: ValueID, node: Node)?,
                            _ back: (out: ValueID, node: Node)?,
                            clamp: (lo: Float, hi: Float, out: ValueID, node: Node)? = nil) -> (Set<ValueID>, [Node]?) {
        var absorbs: Set<ValueID> = []
        if transposeNode != nil { absorbs.insert(w) }
        if let bias { absorbs.insert(bias.out) }
        if let clamp { absorbs.insert(clamp.out) }
        if let back { absorbs.insert(back.out) }
        guard !absorbs.isEmpty else { return ([], nil) }
        return (absorbs, (transposeNode.map { [$0] } ?? []) + [node] + (bias.map { [$0.node] } ?? [])
                    + (clamp.map { [$0.node] } ?? []) + (back.map { [$0.node] } ?? []))
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
