import MLXCCodegen
import MLXCIR

/// `quantized_matmul` with MLX's block-scaled float modes (nvfp4, mxfp4, mxfp8; transpose = true)
/// → `FloatQuantizedLinearKernels`: the packed codes are read once and decoded in registers.
/// The ExecuTorch MLX delegate emits nvfp4's per-tensor scale as a separate `multiply` after the
/// matmul; when the matmul's result has no other reader, the kernel applies the scale before its
/// store and absorbs the multiply (which runs again, with the matmul, if a call falls back).
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
        let global = perTensorScale(of: o.out, dtype: xd, c)
        let definition = FloatQuantizedLinearKernels.linear(k: k, n: n, mode: mode, x: xt, globalScale: global?.type, lanes: c.lanes)
        var operands = [o.x, o.w, o.scales], dtypes: [DType?] = [xd, .u32, .u8]
        if let global { operands.append(global.scale); dtypes.append(global.dtype) }
        return launch(definition, node, operands: operands, results: [global?.out ?? o.out], resultDTypes: [xd],
                      operandDTypes: dtypes, grain: 1, absorbs: global.map { [$0.out] } ?? [],
                      fallbackNodes: global.map { [node, $0.node] }) { inputs in
            let x = inputs[0]
            guard x.shape.last == k else { return nil }
            return CallLayout(shapes: [Array(x.shape.dropLast()) + [n]], dims: [Int64(x.count / k)], work: n)
        }
    }

    /// `multiply(v, g)` (either order) as the only reader of `v`, with g a one-element float
    /// constant and the product in v's dtype: the scale, its dtype, the product and its node.
    static func perTensorScale(of v: ValueID, dtype: DType, _ c: LoweringContext)
        -> (scale: ValueID, dtype: DType, type: ElementType, out: ValueID, node: Node)? {
        // The reader must be in v's block (it then comes later, and is skipped there).
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v),
              let block = c.graph.blocks.first(where: { $0.nodes.contains { $0.op.results.contains(v) } }),
              let reader = block.nodes.first(where: { $0.op.operands.contains(v) }),
              case .multiply(let mul) = reader.op, mul.a != mul.b, c.dtype(mul.out) == dtype else { return nil }
        let g = mul.a == v ? mul.b : mul.a
        // One element, of a rank that does not widen the product's shape.
        guard let t = c.constant(g), t.count == 1, t.shape.count <= (c.type(v)?.rank ?? 0),
              let e = ElementType(t.dtype), ElementType.activations.contains(e) else { return nil }
        return (g, t.dtype, e, mul.out, reader)
    }

    /// `gather_qmm` with float-quantized constant experts (see `GatherMatmulKernels.floatQuantized`).
    static func floatGatherQmm(_ o: GatherQmmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let xd = c.dtype(o.x) ?? .f32
        let (lt, lok) = indexType(o.lhsIndices, c), (rt, rok) = indexType(o.rhsIndices, c)
        guard let mode = FloatQuantization(rawValue: o.mode), o.transpose, o.biases == nil, lok, rok,
              let xt = ElementType(xd), ElementType.activations.contains(xt),
              let q = floatQuantizedWeight(w: o.w, scales: o.scales, mode: mode, groupSize: o.groupSize, c) else { return nil }
        let (n, k, wBatch) = (q.n, q.k, q.batch)
        let indices = GatherMatmulKernels.Indices(lhs: lt, rhs: rt)
        let definition = GatherMatmulKernels.floatQuantized(k: k, n: n, mode: mode, x: xt, indices: indices, lanes: c.lanes)
        return quantizedGatherLaunch(definition, node, o, weightOperands: [o.w, o.scales], weightDTypes: [.u32, .u8],
                                     xd: xd, k: k, n: n, wBatch: wBatch, c)
    }

    /// `dequantize` of float-quantized codes (an nvfp4 embedding's gathered rows), with the global
    /// scale if any, to f32 / bf16 / f16.
    static func floatDequantize(_ o: DequantizeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let mode = FloatQuantization(rawValue: o.mode), o.biases == nil, o.groupSize == mode.groupSize,
              c.dtype(o.w) ?? .u32 == .u32, c.dtype(o.scales) ?? .u8 == .u8, let words = lastDim(o.w, c),
              let outDType = o.dtype, let outType = ElementType(outDType), ElementType.activations.contains(outType) else { return nil }
        let k = words * 32 / mode.codeBits
        guard FloatQuantizedLinearKernels.supports(k: k, mode: mode) else { return nil }
        var globalType: ElementType? = nil
        if let g = o.globalScale {
            guard let d = c.dtype(g), let t = ElementType(d), ElementType.activations.contains(t), c.type(g)?.staticShape?.reduce(1, *) == 1
            else { return nil }
            globalType = t
        }
        // Scales may be computed per call (a gather of the embedding's rows): checked on every call.
        let groups = k / mode.groupSize
        let definition = DequantizeKernels.float(k: k, mode: mode, globalScale: globalType, out: outType, lanes: c.lanes)
        var operands = [o.w, o.scales], dtypes: [DType?] = [.u32, .u8]
        if let g = o.globalScale { operands.append(g); dtypes.append(c.dtype(g)) }
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [outDType], operandDTypes: dtypes,
                      grain: max(1, 4096 / k),
                      check: { inputs in
                          let s = inputs[1], bytes = s.data.assumingMemoryBound(to: UInt8.self)
                          for i in 0..<s.count where !mode.decodesExactly(scale: bytes[i]) { return false }
                          return true
                      }) { inputs in
            let w = inputs[0]
            guard w.shape.last == words else { return nil }
            let rows = w.count / words
            guard inputs[1].count == rows * groups, inputs.count < 3 || inputs[2].count == 1 else { return nil }
            return CallLayout(shapes: [Array(w.shape.dropLast()) + [k]], dims: [], work: rows)
        }
    }
}
