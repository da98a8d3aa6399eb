import MLXCIR

/// XNN matrix products: FullyConnected (float, QC8W per-channel int8, QC4W/QB4W per-channel and
/// per-channel-group 4-bit weights — the 8da4w layout), BatchMatrixMultiply, and the Convert to a
/// dynamically quantized int8 tensor (`qdint8`) that feeds quantized fully connected nodes.
///
/// A quantized fully connected node reading a Convert's per-row `qdint8` output becomes
/// `dynamic_quant_linear` on the Convert's f32 input: XNNPACK's arithmetic, integer-exact — each row
/// quantized to int8 with XNNPACK's asymmetric per-row parameters (range [min(x, 0), max(x, 0)] over
/// 255 steps, zero point rounded into [-128, 127], as xnn_f32_qd8_asymmetric_quantization_params and
/// xnn_compute_f32_qd8_convert compute them), exact int32 sums of code products per group, one f32
/// FMA per group with the weight scale, times the row's scale. Bias and clamps follow as their own ops.
///
/// Elsewhere (a Convert over more than the last axis, or a quantized node without one) the dynamic
/// quantization is emulated in float: the row is quantized and dequantized again, and the product
/// is float activations × dequantized weights, which equals XNNPACK's result up to f32 summation order.
///
/// 4-bit weights are stored two per byte, low nibble first, as unsigned codes u = q + 8: byte for
/// byte MLX's 4-bit affine layout (eight codes per little-endian u32), so they are read in place (as
/// `dynamic_quant_linear` codes, or as `quantized_matmul` weights with w = s·u + b, b = −8·s; the bf16
/// scales widened to f32 in the init block).
extension XNNInliner {
    static let flagTransposeWeights: UInt32 = 1

    func translateLinear(_ node: XNNNode) throws -> Bool {
        switch node.name {
        case "XNNFullyConnected": try fullyConnected(node)
        case "XNNBatchMatrixMultiply":
            let a = try operand(node.inputs[0], "input1_id")
            var b = try operand(node.inputs[1], "input2_id")
            if node.flags & Self.flagTransposeWeights != 0 {
                let r = rank(node.inputs[1])
                let t = importer.graph.addValue(nil, .computed)
                emit(.transpose(TransposeOp(x: b, out: t, perm: Array(0..<(r - 2)) + [r - 1, r - 2])))
                b = t
            }
            try define(node) { .matmul(MatmulOp(a: a, b: b, out: $0)) }
        case "XNNConvert":
            guard let to = graph.value(node.outputs[0]), to.datatype == .qdint8,
                  case .perTokenDynamic(let n)? = to.quant else { return false }
            let x = try operand(node.inputs[0], "input_id")
            let r = rank(node.inputs[0])
            values[node.outputs[0]] = fakeQuantizeRows(x, axes: Array((r - n)..<r))
            if n == 1 { dynamicQuantRows[node.outputs[0]] = x }
        default: return false
        }
        return true
    }

    func fullyConnected(_ node: XNNNode) throws {
        let x = try operand(node.inputs[0], "input1_id")
        let bias = node.inputs[2] == xnnInvalidValueID ? nil : try operand(node.inputs[2], "bias_id")
        guard let w = graph.value(node.inputs[1]) else { throw fail("filter_id: value \(node.inputs[1]) is not defined") }
        let transposed = node.flags & Self.flagTransposeWeights != 0
        guard w.dims.count == 2 else { throw fail("filter_id: a \(w.dims.count)-d filter \(w.dims)") }
        let (n, k) = transposed ? (w.dims[1], w.dims[0]) : (w.dims[0], w.dims[1])
        switch w.datatype {
        case .qbint4, .qcint4:
            guard !transposed, w.constantBufferIndex > 0 else { throw fail("filter_id: a 4-bit filter must be a constant [N, K]") }
            let group: Int, scaleRef: (index: UInt32, inline: [Float])
            switch w.quant {
            case .perChannelGroup(let s, 0, let g, let idx, _)?: group = g; scaleRef = (idx, s)
            case .perChannel(let s, 0, let idx, _)?: group = k; scaleRef = (idx, s)
            default: throw fail("filter_id: 4-bit filter with quant params \(w.quant?.name ?? "none") (expected per-channel or per-channel-group on dim 0)")
            }
            guard k % 8 == 0 else { throw fail("filter_id: 4-bit filter with \(k) input channels (a multiple of 8 is needed)") }
            let packed = try constant(w.constantBufferIndex, TensorType(.u32, [.fixed(n), .fixed(k / 8)]), "filter_id")
            let scalesType = TensorType(w.datatype == .qbint4 ? .bf16 : .f32, [.fixed(n), .fixed(k / group)])
            let scales = try scaleValue(scaleRef, scalesType)
            if let rows = dynamicQuantRows[node.inputs[0]] {
                return try dynamicQuantLinear(node, rows, packed, f32Scales(scales), bias, groupSize: group, bits: 4)
            }
            let (s32, b32) = affineParams(scales, zeroCode: 8)
            try define(node) { out in
                guard let bias else {
                    return .quantizedMatmul(QuantizedMatmulOp(x: x, w: packed, scales: s32, out: out, biases: b32, groupSize: group, bits: 4, mode: "affine", transpose: true))
                }
                let y = importer.graph.addValue(nil, .computed)
                emit(.quantizedMatmul(QuantizedMatmulOp(x: x, w: packed, scales: s32, out: y, biases: b32, groupSize: group, bits: 4, mode: "affine", transpose: true)))
                return .add(AddOp(a: y, b: bias, out: out))
            }
        case .qcint8:
            guard !transposed, w.constantBufferIndex > 0, case .perChannel(let s, 0, let idx, _)? = w.quant else {
                throw fail("filter_id: int8 filter must be a constant [N, K] with per-channel scales on dim 0")
            }
            let q = try constant(w.constantBufferIndex, TensorType(.i8, [.fixed(n), .fixed(k)]), "filter_id")
            let scales = try scaleValue((idx, s), TensorType(.f32, [.fixed(n), .fixed(1)]))
            if let rows = dynamicQuantRows[node.inputs[0]] {
                return try dynamicQuantLinear(node, rows, q, scales, bias, groupSize: k, bits: 8)
            }
            let d = importer.graph.addValue(TensorType(.f32, [.fixed(n), .fixed(k)]), .computed)
            emit(.dequantizeAffine(DequantizeAffineOp(x: q, blockSize: [1, k], scale: scales, zeroPoint: nil, quantMin: -128, quantMax: 127, dtype: .f32, out: d)))
            try linear(node, x, d, bias, transposed: false)
        case .fp32, .fp16, .bf16:
            try linear(node, x, try operand(node.inputs[1], "filter_id"), bias, transposed: transposed)
        default:
            throw fail("filter_id: \(w.datatype.name) filters are not supported")
        }
    }

    /// XNNPACK's QD8 fully connected on the f32 rows `x`, then the bias (and the node's clamps).
    func dynamicQuantLinear(_ node: XNNNode, _ x: ValueID, _ codes: ValueID, _ scales: ValueID, _ bias: ValueID?,
                            groupSize: Int, bits: Int) throws {
        try define(node) { out in
            let op = { (y: ValueID) in Op.dynamicQuantLinear(DynamicQuantLinearOp(x: x, w: codes, scales: scales, groupSize: groupSize, bits: bits, out: y)) }
            guard let bias else { return op(out) }
            let y = importer.graph.addValue(nil, .computed)
            emit(op(y))
            return .add(AddOp(a: y, b: bias, out: out))
        }
    }

    /// x · Wᵀ (+ bias) as the ATen importer writes nn.Linear, so fuse-linear / fuse-dequant-matmul apply.
    func linear(_ node: XNNNode, _ x: ValueID, _ w: ValueID, _ bias: ValueID?, transposed: Bool) throws {
        var wt = w
        if !transposed {
            wt = importer.graph.addValue(importer.graph.type(w).map { TensorType($0.dtype, $0.shape.reversed()) }, .computed)
            emit(.transpose(TransposeOp(x: w, out: wt, perm: [1, 0])))
        }
        try define(node) { .addmm(AddmmOp(mat1: x, mat2: wt, out: $0, bias: bias, alpha: 1, beta: 1)) }
    }

    /// The scales of a quantized filter: inline in the flatbuffer, or constant data `scale_buffer_idx`.
    func scaleValue(_ ref: (index: UInt32, inline: [Float]), _ type: TensorType) throws -> ValueID {
        if !ref.inline.isEmpty {
            return importer.graph.addValue(TensorType(.f32, type.shape), .constant(.literal(ref.inline.map(Double.init))))
        }
        return try constant(Int(ref.index), type, "scale_buffer_idx")
    }

    /// The scales in f32 (bf16 ones widened once in the init block).
    func f32Scales(_ scales: ValueID) -> ValueID {
        guard importer.graph.type(scales)?.dtype != .f32 else { return scales }
        if importer.graph.initBlock == nil {
            importer.graph.blocks.append(Block(name: "init"))
            importer.graph.initBlock = importer.graph.blocks.count - 1
        }
        let s32 = importer.graph.addValue(TensorType(.f32, importer.graph.type(scales)?.shape ?? []), .computed)
        importer.graph.append(.asType(AsTypeOp(x: scales, out: s32, scalarType: .f32)), origin: "XNNPACK delegate \(delegateIndex) \(origin)",
                              block: importer.graph.initBlock!)
        return s32
    }

    /// f32 scales and MLX biases b = −zeroCode·s for unsigned codes, computed once in the init block.
    func affineParams(_ scales: ValueID, zeroCode: Double) -> (ValueID, ValueID) {
        if importer.graph.initBlock == nil {
            importer.graph.blocks.append(Block(name: "init"))
            importer.graph.initBlock = importer.graph.blocks.count - 1
        }
        let block = importer.graph.initBlock!
        let shape = importer.graph.type(scales)?.shape ?? []
        var s32 = scales
        if importer.graph.type(scales)?.dtype != .f32 {
            s32 = importer.graph.addValue(TensorType(.f32, shape), .computed)
            importer.graph.append(.asType(AsTypeOp(x: scales, out: s32, scalarType: .f32)), origin: "XNNPACK delegate \(delegateIndex) \(origin)", block: block)
        }
        let b = importer.graph.addValue(TensorType(.f32, shape), .computed)
        importer.graph.append(.multiply(MultiplyOp(a: s32, b: scalar(-zeroCode), out: b)), origin: "XNNPACK delegate \(delegateIndex) \(origin)", block: block)
        return (s32, b)
    }

    /// XNNPACK's per-row asymmetric int8 quantization of x over `axes`, dequantized again (see above).
    func fakeQuantizeRows(_ x: ValueID, axes: [Int]) -> ValueID {
        func v() -> ValueID { importer.graph.addValue(nil, .computed) }
        let lo = v(), hi = v(), lo0 = v(), hi0 = v(), range = v(), range1 = v(), inv = v(), scale = v()
        emit(.min(MinOp(x: x, out: lo, axes: axes, keepdims: true)))
        emit(.max(MaxOp(x: x, out: hi, axes: axes, keepdims: true)))
        emit(.minimum(MinimumOp(a: lo, b: scalar(0), out: lo0)))
        emit(.maximum(MaximumOp(a: hi, b: scalar(0), out: hi0)))
        emit(.subtract(SubtractOp(a: hi0, b: lo0, out: range)))
        // An all-zero row has no range: any finite scale gives codes equal to the zero point.
        emit(.maximum(MaximumOp(a: range, b: scalar(1e-30), out: range1)))
        // As xnn_f32_qd8_asymmetric_quantization_params and xnn_compute_f32_qd8_convert round them: the
        // multiplier m = 255 / range, the GEMM's dequantization scale 1 / m, and the conversion's
        // multiplier 1 / (1 / m) (not always m: one ulp decides codes that sit on a rounding boundary).
        emit(.divide(DivideOp(a: scalar(255), b: range1, out: inv)))
        emit(.divide(DivideOp(a: scalar(1), b: inv, out: scale)))
        let qmul = v()
        emit(.divide(DivideOp(a: scalar(1), b: scale, out: qmul)))
        // The zero point from whichever end has the smaller error: qmin − lo·m when
        // (qmin + lo·m) + (qmax + hi·m) > 0, else qmax − hi·m; clamped, then rounded.
        let loScaled = v(), hiScaled = v(), fromMin = v(), fromMax = v(), minErr = v(), maxErr = v(), errSum = v(), useMin = v(), zRaw = v()
        emit(.multiply(MultiplyOp(a: lo0, b: inv, out: loScaled)))
        emit(.multiply(MultiplyOp(a: hi0, b: inv, out: hiScaled)))
        emit(.subtract(SubtractOp(a: scalar(-128), b: loScaled, out: fromMin)))
        emit(.subtract(SubtractOp(a: scalar(127), b: hiScaled, out: fromMax)))
        emit(.add(AddOp(a: scalar(-128), b: loScaled, out: minErr)))
        emit(.add(AddOp(a: scalar(127), b: hiScaled, out: maxErr)))
        emit(.add(AddOp(a: minErr, b: maxErr, out: errSum)))
        emit(.greater(GreaterOp(a: errSum, b: scalar(0), out: useMin)))
        emit(.where(WhereOp(condition: useMin, x: fromMin, y: fromMax, out: zRaw)))
        let zp = roundCode(clamp(zRaw))
        let xs = v(), xq = v(), xd = v(), out = v()
        emit(.multiply(MultiplyOp(a: x, b: qmul, out: xs)))
        emit(.add(AddOp(a: roundCode(xs), b: zp, out: xq)))
        emit(.subtract(SubtractOp(a: clamp(xq), b: zp, out: xd)))
        emit(.multiply(MultiplyOp(a: xd, b: scale, out: out)))
        return out
    }

    /// Clamped to the int8 codes [-128, 127] (maximum then minimum: both have kernels).
    func clamp(_ x: ValueID) -> ValueID {
        let a = importer.graph.addValue(nil, .computed), b = importer.graph.addValue(nil, .computed)
        emit(.maximum(MaximumOp(a: x, b: scalar(-128), out: a)))
        emit(.minimum(MinimumOp(a: a, b: scalar(127), out: b)))
        return b
    }

    /// Nearest integer, halves to even: XNNPACK converts with the FPU's default rounding (`cvtps2dq`,
    /// `lrintf`, NEON `fcvtns`), so a code exactly between two integers goes to the even one.
    func roundCode(_ x: ValueID) -> ValueID {
        let out = importer.graph.addValue(nil, .computed)
        emit(.round(RoundOp(x: x, out: out)))
        return out
    }
}
