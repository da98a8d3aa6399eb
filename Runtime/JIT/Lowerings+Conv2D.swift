import MLXCCodegen
import MLXCIR
import MLXCPasses

/// `conv2d` (NHWC x, constant weight [O, kH, kW, C/groups]) as `Conv2DKernels.conv2d`. The weight is read where
/// it is stored: a constant, or a constant (or init-block result) seen through its only transpose — ATen's
/// [O, C/groups, kH, kW] reaches the op as transpose(w, [0, 2, 3, 1]) —, whose strides the kernel takes, so
/// the transpose itself is absorbed instead of running on the reference executor. A bias add that is the conv's
/// only reader (`add(conv, b)`, b a constant [O] of the same dtype: what both importers emit) is absorbed too: the
/// kernel's sums start from the bias and it writes the add's result; so is the transpose back to NCHW that reads the
/// result (the ATen importer's), which the kernel then writes channels-first; and a clip with constant bounds that
/// reads the conv's (or its bias add's) result alone — XNNPACK's fused ReLU6 — applied on the store; a residual add
/// (`add(conv, r)`, r computed, before that clip) added on the store; and a zero pad
/// of x's H and W that only the conv reads (TF "same" padding, asymmetric before stride-2 convs), which the kernel
/// applies as its padding.
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
        let residual = convResidual(of: bias?.out ?? o.out, conv: node, c)
        let clamp = dtype == .f32 ? convClamp(of: residual?.out ?? bias?.out ?? o.out, c) : nil
        // (A residual is NHWC like the sums: the kernel then writes NHWC too.)
        let back = residual != nil ? nil : channelsFirstReader(of: clamp?.out ?? bias?.out ?? o.out, c)
        let front = channelsFirstSource(of: o.x, c)
        let pad = convInputPad(of: front?.source ?? o.x, channelsFirst: front != nil, c)
        // Padding per side: the op's own (symmetric) plus an absorbed pad's; only the leading sides reach the kernel
        // (taps outside the image read 0 whichever side), the trailing ones size the output.
        let (top, left) = (o.paddingH + (pad?.widths.top ?? 0), o.paddingW + (pad?.widths.left ?? 0))
        let (bottom, right) = (o.paddingH + (pad?.widths.bottom ?? 0), o.paddingW + (pad?.widths.right ?? 0))
        var s = Conv2DShape(kernel: kernel, groupChannels: groupChannels, outChannels: outChannels, groups: o.groups,
                            stride: [o.strideH, o.strideW], padding: [top, left],
                            dilation: [o.dilationH, o.dilationW], weightStrides: strides, bias: bias != nil)
        s.channelsFirstOutput = back != nil
        s.channelsFirstInput = front != nil
        s.clamp = clamp.map { [$0.lo, $0.hi] }
        s.residual = residual != nil
        let definition = Conv2DKernels.conv2d(s, t, weight: t, lanes: c.lanes)
        var (absorbs, fallbackNodes) = convAbsorbs(o.w, transposeNode, node, bias, back, clamp: clamp, residual: residual)
        let leading: [(out: ValueID, node: Node)] = [pad.map { ($0.out, $0.node) }, front.map { (o.x, $0.node) }].compactMap { $0 }
        if !leading.isEmpty {
            absorbs.formUnion(leading.map(\.out))
            fallbackNodes = leading.map(\.node) + (fallbackNodes ?? [node])
        }
        let extra = [bias?.value, residual?.value].compactMap { $0 }
        return launch(definition, node, operands: [pad?.source ?? front?.source ?? o.x, weight] + extra,
                      results: [back?.out ?? clamp?.out ?? residual?.out ?? bias?.out ?? o.out],
                      resultDTypes: [dtype], operandDTypes: [dtype, dtype] + extra.map { _ in dtype },
                      grain: Conv2DKernels.workGrain(s, lanes: c.lanes),
                      absorbs: absorbs, fallbackNodes: fallbackNodes) { inputs in
            let given = inputs[0].shape
            guard given.count == 4 else { return nil }
            let x = front == nil ? given : [given[0], given[2], given[3], given[1]]   // as NHWC
            guard x[3] == groupChannels * o.groups else { return nil }
            let spanH = x[1] + top + bottom - o.dilationH * (kernel[0] - 1) - 1
            let spanW = x[2] + left + right - o.dilationW * (kernel[1] - 1) - 1
            guard spanH >= 0, spanW >= 0 else { return nil }
            let (outH, outW) = (spanH / o.strideH + 1, spanW / o.strideW + 1)
            let shape = back == nil ? [x[0], outH, outW, outChannels] : [x[0], outChannels, outH, outW]
            guard residual == nil || inputs[2 + (bias == nil ? 0 : 1)].shape == shape else { return nil }
            let split = Conv2DKernels.split(s, batch: x[0], outHeight: outH, outWidth: outW, lanes: c.lanes)
            return CallLayout(shapes: [shape], dims: ([x[1], x[2], outH, outW] + split.dims).map(Int64.init), work: split.work)
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
                      resultDTypes: [dtype], operandDTypes: [dtype, dtype] + (bias == nil ? [] : [dtype]),
                      grain: Conv2DKernels.workGrain(s, lanes: c.lanes),
                      absorbs: absorbs, fallbackNodes: fallbackNodes) { inputs in
            let x = inputs[0].shape
            guard x.count == 3, x[2] == o.groups else { return nil }
            let span = x[1] + 2 * o.padding - o.dilation * (kernel - 1) - 1
            guard span >= 0 else { return nil }
            let outLength = span / o.stride + 1
            let split = Conv2DKernels.split(s, batch: x[0], outHeight: outLength, outWidth: 1, lanes: c.lanes)
            return CallLayout(shapes: [[x[0], outLength, o.groups]], dims: ([x[1], 1, outLength, 1] + split.dims).map(Int64.init),
                              work: split.work)
        }
    }

    /// The zero pad of x's spatial axes that the conv alone reads (`ConvInputPad`: e.g. TF's asymmetric "same" padding
    /// before a stride-2 conv), `v` being the conv's x or, channels-first, the source of its transpose to NHWC: the
    /// kernel reads the pad's input and pads itself.
    static func convInputPad(of v: ValueID, channelsFirst: Bool, _ c: LoweringContext)
        -> (source: ValueID, widths: ConvInputPad, out: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v), let node = c.definingNode(v), case .pad(let p) = node.op,
              let widths = ConvInputPad(p, channelsFirst: channelsFirst), c.dtype(p.x) == c.dtype(v) else { return nil }
        return (p.x, widths, v, node)
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

    /// `add(v, r)` (either order) as the only reader of the conv's (or its bias add's) result `v`, r a computed tensor
    /// (not a constant; its shape, out's, is checked per call) of the same dtype, computed before the conv (the kernel
    /// runs where the conv is; ResNet's shortcut conv that runs after the main path's last conv takes the add instead):
    /// the residual connection, which the kernel adds before its clamp and store.
    static func convResidual(of v: ValueID, conv: Node, _ c: LoweringContext) -> (value: ValueID, out: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v),
              let block = c.graph.blocks.first(where: { $0.nodes.contains { $0.op.results.contains(v) } }),
              let reader = block.nodes.first(where: { $0.op.operands.contains(v) }),
              case .add(let add) = reader.op, add.a != add.b, c.dtype(add.out) == c.dtype(v) else { return nil }
        let other = add.a == v ? add.b : add.a
        guard c.constant(other) == nil, c.dtype(other) == c.dtype(v), c.type(other)?.rank == 4,
              let at = block.nodes.firstIndex(where: { $0.op.results.contains(conv.op.results[0]) }),
              !block.nodes[at...].contains(where: { $0.op.results.contains(other) }) else { return nil }
        return (other, add.out, reader)
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
                            clamp: (lo: Float, hi: Float, out: ValueID, node: Node)? = nil,
                            residual: (value: ValueID, out: ValueID, node: Node)? = nil) -> (Set<ValueID>, [Node]?) {
        var absorbs: Set<ValueID> = []
        if transposeNode != nil { absorbs.insert(w) }
        let after: [(out: ValueID, node: Node)] = [bias.map { ($0.out, $0.node) }, residual.map { ($0.out, $0.node) },
                                                   clamp.map { ($0.out, $0.node) }, back].compactMap { $0 }
        absorbs.formUnion(after.map(\.out))
        guard !absorbs.isEmpty else { return ([], nil) }
        return (absorbs, (transposeNode.map { [$0] } ?? []) + [node] + after.map(\.node))
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
