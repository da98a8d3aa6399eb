import MLXCIR

/// XNN convolutions: `XNNConv2d` (NHWC input [N, H, W, C], constant float filter [O, kH, kW, C/groups] — MLX's
/// conv layout —, optional bias [O], fused output_min_max) and `XNNDepthwiseConv2d`, which ExecuTorch writes for every
/// convolution with one input channel per group (depthwise, a depth multiplier, and a stem over a one-channel image):
/// its filter is [1, kH, kW, O] (ATen's [O, 1, kH, kW] with O and C swapped, then NHWC), read as the IR's
/// [O, kH, kW, 1] through a transpose, which the conv2d kernel absorbs (output channels are then contiguous).
///
/// PyTorch's Conv1d reaches XNNPACK as a Conv2d with one trivial axis (Whisper's two stem convolutions: ExecuTorch
/// 1.5.1 writes input [N, L, 1, C] and filter [O, K, 1, C]; a [1, K] kernel over rows is taken too): that is imported
/// as the IR's `conv1d` on [rows, L, C] with the filter read as [O, K, C/groups] (the same bytes), so it gets the
/// compiled conv1d kernel; a true 2-D convolution, and every depthwise one, becomes `conv2d`. Asymmetric padding
/// (which neither op spells) becomes a zero `pad` before a conv2d. A zero `XNNStaticConstantPad` before a conv
/// (TF "same" padding) stays a pad: the conv2d kernel absorbs it (`ConvInputPad`).
extension XNNInliner {
    func translateConv(_ node: XNNNode) throws -> Bool {
        guard node.name == "XNNConv2d" || node.name == "XNNDepthwiseConv2d", case .conv(let p) = node.params else { return false }
        let depthwise = node.name == "XNNDepthwiseConv2d"
        guard let xv = graph.value(node.inputs[0]), let wv = graph.value(node.inputs[1]), xv.dims.count == 4 else {
            throw fail("input1_id/filter_id: a 4-d NHWC input and a filter are expected")
        }
        guard p.adjustment == [0, 0] else { throw fail("conv adjustment \(p.adjustment) (a transposed convolution's) is not supported") }
        let (top, right, bottom, left) = (p.padding[0], p.padding[1], p.padding[2], p.padding[3])
        guard p.padding.allSatisfy({ $0 >= 0 }) else { throw fail("negative padding \(p.padding)") }
        let symmetric = top == bottom && left == right
        guard [.fp32, .fp16, .bf16].contains(wv.datatype), wv.constantBufferIndex > 0, wv.dims.count == 4 else {
            throw fail("filter_id: a constant float filter [O, kH, kW, C/groups] is expected, got \(wv.datatype.name) \(wv.dims)")
        }
        let out = p.groups * p.groupOutputChannels, groupIn = p.groupInputChannels
        let filterDims = depthwise ? [1, p.kernel[0], p.kernel[1], out] : [out, p.kernel[0], p.kernel[1], groupIn]
        guard !depthwise || groupIn == 1 else { throw fail("XNNDepthwiseConv2d with \(groupIn) input channels per group (1 expected)") }
        guard wv.dims == filterDims, xv.dims[3] == p.groups * groupIn else {
            throw fail("filter \(wv.dims) does not match the conv parameters (groups \(p.groups), \(groupIn) → \(p.groupOutputChannels) channels, kernel \(p.kernel)) and input \(xv.dims)")
        }
        guard let dtype = Self.floatDType(wv.datatype) else { throw fail("filter_id: \(wv.datatype.name) filter") }
        var x = try operand(node.inputs[0], "input1_id")
        let bias = node.inputs[2] == xnnInvalidValueID ? nil : try operand(node.inputs[2], "bias_id")
        func v(_ shape: [Int]? = nil) -> ValueID {
            importer.graph.addValue(shape.map { TensorType(dtype, $0.map { .fixed($0) }) }, .computed)
        }
        let (n, h, width) = (xv.dims[0], xv.dims[1], xv.dims[2])
        // A 1-D convolution: along W of every row (kernel [1, K]), or along H of a one-column image (kernel [K, 1],
        // W = 1: how ExecuTorch 1.5.1's partitioner writes Conv1d). Either way conv1d over [rows, length, C].
        // (A depthwise filter's bytes are not conv1d's [O, K, C/groups]: it stays a conv2d, whose kernel vectorises it.)
        // (A 1x1 convolution over a true image — MobileNet's and ResNet's pointwise convs — stays a conv2d: its kernel
        // is the GEMM and absorbs the bias add and a fused clamp after it.)
        let pointwiseImage = p.kernel == [1, 1] && h > 1 && width > 1
        let alongW = !depthwise && !pointwiseImage && symmetric && p.kernel[0] == 1 && top == 0 && p.subsampling[0] == 1
        let alongH = !depthwise && !alongW && symmetric && p.kernel[1] == 1 && left == 0 && p.subsampling[1] == 1 && width == 1
        let conv: ValueID
        if alongW || alongH {
            let a = alongW ? 1 : 0   // the conv's axis among (H, W)
            let length = alongW ? width : h
            let w = try constant(wv.constantBufferIndex, TensorType(dtype, [.fixed(out), .fixed(p.kernel[a]), .fixed(groupIn)]), "filter_id")
            // XNN dims are the export's upper bounds: the time axis (H: Parakeet's subsampled frames) may be shorter
            // at run time, so the reshapes leave it to be inferred (-1): rows N·H along W, the length along H.
            let x3 = v()
            let inShape = alongW ? [-1, width, xv.dims[3]] : [n, -1, xv.dims[3]]
            emit(.reshape(ReshapeOp(x: x, out: x3, shape: inShape.map { .literal(Int64($0)) })))
            let y = v()
            let pad = alongW ? left : top
            emit(.conv1D(Conv1DOp(x: x3, w: w, out: y, stride: p.subsampling[a], padding: pad, dilation: p.dilation[a], groups: p.groups)))
            let outLength = (length + 2 * pad - p.dilation[a] * (p.kernel[a] - 1) - 1) / p.subsampling[a] + 1
            let shape = alongW ? [n, -1, outLength, out] : [n, -1, 1, out]
            conv = v()
            emit(.reshape(ReshapeOp(x: y, out: conv, shape: shape.map { .literal(Int64($0)) })))
        } else {
            var w = try constant(wv.constantBufferIndex, TensorType(dtype, wv.dims.map { .fixed($0) }), "filter_id")
            if depthwise {
                let oriented = v([out, p.kernel[0], p.kernel[1], 1])
                emit(.transpose(TransposeOp(x: w, out: oriented, perm: [3, 1, 2, 0])))
                w = oriented
            }
            if !symmetric {   // the IR's conv pads both sides alike: a zero pad before it, which its kernel absorbs
                let padded = v()
                let widths = [0, 0, top, bottom, left, right, 0, 0].map { IntOrValue.literal(Int64($0)) }
                emit(.pad(PadOp(x: x, out: padded, padWidth: widths, mode: "constant", constantValue: 0)))
                x = padded
            }
            conv = v()
            emit(.conv2D(Conv2DOp(x: x, w: w, out: conv, strideH: p.subsampling[0], strideW: p.subsampling[1],
                                  paddingH: symmetric ? top : 0, paddingW: symmetric ? left : 0,
                                  dilationH: p.dilation[0], dilationW: p.dilation[1], groups: p.groups)))
        }
        try define(node) { result in
            guard let bias else { return .idCopy(IdCopyOp(x: conv, out: result)) }
            return .add(AddOp(a: conv, b: bias, out: result))
        }
        return true
    }
}
