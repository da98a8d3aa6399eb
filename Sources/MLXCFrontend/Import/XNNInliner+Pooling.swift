import MLXCIR

/// XNN pooling nodes over NHWC [N, H, W, C] (what ExecuTorch writes for vision models' pools):
/// - `XNNGlobalAvgPooling2d` (ATen `mean.dim` over H, W with keepdim, MobileNet's and ResNet's head) → `mean` over
///   axes 1, 2 keeping them: [N, 1, 1, C].
/// - `XNNMaxPooling2d` (`max_pool2d`, ResNet's stem; ceil mode arrives as extra bottom/right padding) → the input padded
///   with −∞, one strided window view per tap and their running `maximum` (`PoolingWindowTaps`): XNNPACK never lets a
///   padded element win, and neither does −∞.
/// - `XNNAvgPooling2d` (`avg_pool2d`; the partitioner takes padding only with count_include_pad = False) → the taps'
///   sum over the zero-padded input divided by the number of real elements under each window (a constant map; the
///   window size when there is no padding).
/// The taps are ordinary ops, so their kernels are the slice/elementwise ones the rest of the graph uses.
extension XNNInliner {
    func translatePooling(_ node: XNNNode) throws -> Bool {
        switch node.name {
        case "XNNGlobalAvgPooling2d":
            guard let xv = graph.value(node.inputs[0]), xv.dims.count == 4 else {
                throw fail("input_id: a 4-d NHWC input is expected, got \(graph.value(node.inputs[0])?.dims ?? [])")
            }
            let x = try operand(node.inputs[0], "input_id")
            try define(node) { .mean(MeanOp(x: x, out: $0, axes: [1, 2], keepdims: true)) }
            return true
        case "XNNMaxPooling2d", "XNNAvgPooling2d":
            guard case .pooling(let p) = node.params else { return false }
            try translateWindowPooling(node, p, max: node.name == "XNNMaxPooling2d")
            return true
        default:
            return false
        }
    }

    private func translateWindowPooling(_ node: XNNNode, _ p: XNNPoolingParams, max: Bool) throws {
        guard let xv = graph.value(node.inputs[0]), xv.dims.count == 4, let dtype = Self.floatDType(xv.datatype),
              dtype != .i32 else {
            throw fail("input_id: a 4-d float NHWC input is expected, got \(graph.value(node.inputs[0]).map { "\($0.datatype.name) \($0.dims)" } ?? "nothing")")
        }
        let (top, right, bottom, left) = (p.padding[0], p.padding[1], p.padding[2], p.padding[3])
        let (kh, kw, sh, sw) = (p.pooling[0], p.pooling[1], p.stride[0], p.stride[1])
        let (dh, dw) = (max ? p.dilation[0] : 1, max ? p.dilation[1] : 1)
        guard kh >= 1, kw >= 1, sh >= 1, sw >= 1, dh >= 1, dw >= 1, p.padding.allSatisfy({ $0 >= 0 }) else {
            throw fail("pooling \(p.pooling), stride \(p.stride), dilation \(p.dilation), padding \(p.padding): positive sizes and non-negative padding expected")
        }
        let (h, w) = (xv.dims[1], xv.dims[2])
        let (ph, pw) = (h + top + bottom, w + left + right)
        let (spanH, spanW) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        guard ph >= spanH, pw >= spanW else {
            throw fail("a \(kh)×\(kw) window (dilation \(dh), \(dw)) does not fit the padded \(ph)×\(pw) input")
        }
        let (ho, wo) = ((ph - spanH) / sh + 1, (pw - spanW) / sw + 1)
        let window = PoolingWindowTaps(axes: (1, 2), kernel: [kh, kw], stride: [sh, sw], dilation: [dh, dw], outSize: [ho, wo],
                                       emit: { self.emit($0) }, temporary: { self.importer.graph.addValue(nil, .computed) })
        let padded = top + bottom + left + right > 0
        let x = window.padded(try operand(node.inputs[0], "input_id"), before: [top, left], after: [bottom, right],
                              value: max ? -Double.infinity : 0)
        if max {
            try define(node, window.reduce(x, PoolingWindowTaps.maximum))
            return
        }
        let acc = importer.graph.addValue(nil, .computed)
        emit(window.reduce(x, PoolingWindowTaps.sum)(acc))
        // Average: divide by the count of real (unpadded) elements under each window.
        let divisor: ValueID
        if !padded {
            divisor = scalar(Double(kh * kw), dtype)
        } else {
            func count(_ o: Int, _ stride: Int, _ k: Int, _ before: Int, _ size: Int) -> Int {
                let start = o * stride - before
                return Swift.max(0, Swift.min(start + k, size) - Swift.max(start, 0))
            }
            var counts: [Double] = []
            for r in 0..<ho { for c in 0..<wo { counts.append(Double(count(r, sh, kh, top, h) * count(c, sw, kw, left, w))) } }
            guard !counts.contains(0) else { throw fail("a pooling window lies entirely in the padding (padding \(p.padding), pooling \(p.pooling))") }
            divisor = importer.graph.addValue(TensorType(dtype, [.fixed(1), .fixed(ho), .fixed(wo), .fixed(1)]), .constant(.literal(counts)))
        }
        try define(node) { .divide(DivideOp(a: acc, b: divisor, out: $0)) }
    }
}
