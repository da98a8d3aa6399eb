import MLXCCodegen
import MLXCIR

/// MoE layers → kernels: the expert matmuls (`gather_qmm`, `gather_mm`) read only the experts
/// the router picked, and the router's small ops (sorts, take_along_axis, sum, repeat,
/// floor_divide) run as scalar kernels instead of on the reference executor.
extension Lowerings {
    static func moe(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .gatherQmm(let o): return o.mode == "affine" ? gatherQmm(o, node, c) : floatGatherQmm(o, node, c)
        case .gatherMm(let o): return gatherMm(o, node, c)
        default: return router(node, c)
        }
    }

    static func moeReason(_ node: Node) -> String? {
        switch node.op {
        case .gatherQmm:
            return "only affine 2/4/8-bit or nvfp4 / mxfp4 / mxfp8 (u8 scales without NaN) constant expert weights with f32/bf16/f16 activations, transpose = true and i32/u32/i64 indices have a kernel"
        case .gatherMm:
            return "needs lhs or rhs indices (i32/u32/i64), f32/bf16/f16 operands of one dtype and expert weights of static shape"
        case .sort, .argsort, .partition, .argPartition:
            return "sorts need a known dtype and, for indices, an i32/u32/i64 result"
        default: return nil
        }
    }

    /// The dtype of an index operand if a gather kernel can read it.
    static func indexType(_ v: ValueID?, _ c: LoweringContext) -> (ElementType?, ok: Bool) {
        guard let v else { return (nil, true) }
        guard let d = c.dtype(v), let t = ElementType(d), GatherMatmulKernels.Indices.supported(t) else { return (nil, false) }
        return (t, true)
    }

    /// Dims and result shape of a gather matmul call (see `GatherMatmulKernels`): the index arrays
    /// (absent: an arange over that operand's batch shape) broadcast to B, read through strides.
    static func gatherLayout(xBatch: [Int], wBatch: [Int], lhs: [Int]?, rhs: [Int]?, m: Int, n: Int, work: Int) -> CallLayout? {
        let li = lhs ?? xBatch, ri = rhs ?? wBatch
        guard let batch = try? Broadcast.shape(li, ri), batch.count <= GatherMatmulKernels.batchRank,
              let ls = StridedLayout.broadcastStrides(li, to: batch), let rs = StridedLayout.broadcastStrides(ri, to: batch)
        else { return nil }
        let pad = GatherMatmulKernels.batchRank - batch.count
        let sizes = [Int](repeating: 1, count: pad) + batch
        let zeros = [Int](repeating: 0, count: pad)
        let entries = batch.reduce(1, *)
        let dims = [entries * m, m] + sizes + zeros + ls + zeros + rs
        return CallLayout(shapes: [batch + [m, n]], dims: dims.map { Int64($0) }, work: work)
    }

    /// Whether every index in `t` lies in 0..<bound (the reference reports the ones that do not).
    static func indicesInRange(_ t: NativeTensor, _ bound: Int) -> Bool {
        func all<T: BinaryInteger>(_ type: T.Type) -> Bool {
            let p = t.data.assumingMemoryBound(to: T.self)
            for i in 0..<t.count where p[i] < 0 || p[i] >= bound { return false }
            return true
        }
        switch t.dtype {
        case .i32: return all(Int32.self)
        case .u32: return all(UInt32.self)
        case .i64: return all(Int64.self)
        default: return false
        }
    }

    static func gatherQmm(_ o: GatherQmmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let xd = c.dtype(o.x) ?? .f32
        let (lt, lok) = indexType(o.lhsIndices, c), (rt, rok) = indexType(o.rhsIndices, c)
        guard o.mode == "affine", o.transpose, lok, rok, let biases = o.biases, let xt = ElementType(xd),
              ElementType.activations.contains(xt),
              QuantizedLinearKernels.supports(bits: o.bits, groupSize: o.groupSize, lanes: c.lanes),
              let wt = c.constant(o.w), wt.dtype == .u32, wt.shape.count >= 2,
              let s = c.constant(o.scales), let bb = c.constant(biases), s.dtype == bb.dtype else { return nil }
        guard let params = quantizedParams(s.dtype) else { return nil }
        let n = wt.shape[wt.shape.count - 2], k = wt.shape.last! * 32 / o.bits
        let wBatch = Array(wt.shape.dropLast(2)), experts = wBatch.reduce(1, *)
        guard k % o.groupSize == 0, s.count == experts * n * (k / o.groupSize), bb.count == s.count else { return nil }
        let indices = GatherMatmulKernels.Indices(lhs: lt, rhs: rt)
        let definition = GatherMatmulKernels.quantized(k: k, n: n, bits: o.bits, groupSize: o.groupSize, params: params,
                                                       x: xt, indices: indices, lanes: c.lanes)
        return quantizedGatherLaunch(definition, node, o, weightOperands: [o.w, o.scales, biases], weightDTypes: [.u32, s.dtype, s.dtype],
                                     xd: xd, k: k, n: n, wBatch: wBatch, c)
    }

    /// The launch of a quantized gather kernel: [x, weight operands…, lhs indices?, rhs indices?], indices
    /// checked in range per call (else the reference runs it), one work item per output column.
    static func quantizedGatherLaunch(_ definition: KernelDefinition, _ node: Node, _ o: GatherQmmOp, weightOperands: [ValueID],
                                      weightDTypes: [DType?], xd: DType, k: Int, n: Int, wBatch: [Int],
                                      _ c: LoweringContext) -> LoweredKernel {
        let experts = wBatch.reduce(1, *)
        var operands = [o.x] + weightOperands
        var dtypes: [DType?] = [xd] + weightDTypes
        if let l = o.lhsIndices { operands.append(l); dtypes.append(c.dtype(l)) }
        if let r = o.rhsIndices { operands.append(r); dtypes.append(c.dtype(r)) }
        let first = 1 + weightOperands.count
        let lhsAt = o.lhsIndices == nil ? nil : first, rhsAt = o.rhsIndices == nil ? nil : first + (o.lhsIndices == nil ? 0 : 1)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [xd], operandDTypes: dtypes, grain: 1,
                      check: { inputs in
                          let x = inputs[0]
                          let xBatch = x.count / max(1, x.shape.suffix(2).reduce(1, *))
                          return (lhsAt.map { indicesInRange(inputs[$0], xBatch) } ?? true)
                              && (rhsAt.map { indicesInRange(inputs[$0], experts) } ?? true)
                      }) { inputs in
            let x = inputs[0]
            guard x.shape.count >= 2, x.shape.last == k else { return nil }
            return gatherLayout(xBatch: Array(x.shape.dropLast(2)), wBatch: wBatch, lhs: lhsAt.map { inputs[$0].shape },
                                rhs: rhsAt.map { inputs[$0].shape }, m: x.shape[x.shape.count - 2], n: n, work: n)
        }
    }

    /// Expert weights [E, K, N] that are a transpose of a constant with contiguous columns (what
    /// `fuse-moe-pattern` makes of a stacked [K, E, N] weight, perm [1, 0, 2]): the constant, read
    /// in place through (expert, row) strides, and the transpose folded away.
    static func stridedExperts(_ b: ValueID, _ c: LoweringContext) -> (weight: ValueID, strides: (expert: Int, row: Int))? {
        guard case .transpose(let t)? = c.producer(b), let w = c.constant(t.x), w.shape.count == 3 else { return nil }
        let perm = t.perm.map { $0 < 0 ? $0 + 3 : $0 }
        guard Set(perm) == [0, 1, 2], perm[2] == 2 else { return nil }
        let strides = StridedLayout.rowMajor(w.shape)
        return (t.x, (strides[perm[0]], strides[perm[1]]))
    }

    static func gatherMm(_ o: GatherMmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let (lt, lok) = indexType(o.lhsIndices, c), (rt, rok) = indexType(o.rhsIndices, c)
        guard lok, rok, o.lhsIndices != nil || o.rhsIndices != nil,
              let ad = c.dtype(o.a), let bd = c.dtype(o.b), ad == bd, let t = ElementType(ad), ElementType.activations.contains(t),
              let wShape = staticShape(o.b, c), wShape.count >= 2 else { return nil }
        let (k, n) = (wShape[wShape.count - 2], wShape[wShape.count - 1])
        let wBatch = Array(wShape.dropLast(2)), experts = wBatch.reduce(1, *)
        let indices = GatherMatmulKernels.Indices(lhs: lt, rhs: rt)
        let strided = wShape.count == 3 ? stridedExperts(o.b, c) : nil
        let definition = GatherMatmulKernels.float(k: k, n: n, x: t, w: t, out: t, indices: indices, lanes: c.lanes,
                                                   weightStrides: strided?.strides)
        let width = GatherMatmulKernels.columnWidth(n: n, lanes: c.lanes)
        let weightShape = strided.flatMap { c.constant($0.weight)?.shape } ?? wShape
        var operands = [o.a, strided?.weight ?? o.b]
        var dtypes: [DType?] = [ad, bd]
        if let l = o.lhsIndices { operands.append(l); dtypes.append(c.dtype(l)) }
        if let r = o.rhsIndices { operands.append(r); dtypes.append(c.dtype(r)) }
        let lhsAt = o.lhsIndices == nil ? nil : 2, rhsAt = o.rhsIndices == nil ? nil : 2 + (o.lhsIndices == nil ? 0 : 1)
        let absorbs: Set<ValueID> = strided != nil && c.useCounts[o.b] == 1 ? [o.b] : []
        // A call the kernel declines runs on the reference, which needs the folded transpose's value.
        let fallbackNodes = absorbs.isEmpty ? nil : c.definingNode(o.b).map { [$0, node] }
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [ad], operandDTypes: dtypes, grain: 1,
                      check: { inputs in
                          let x = inputs[0]
                          let xBatch = x.count / max(1, x.shape.suffix(2).reduce(1, *))
                          return inputs[1].shape == weightShape
                              && (lhsAt.map { indicesInRange(inputs[$0], xBatch) } ?? true)
                              && (rhsAt.map { indicesInRange(inputs[$0], experts) } ?? true)
                      }, absorbs: absorbs, fallbackNodes: fallbackNodes) { inputs in
            let x = inputs[0]
            guard x.shape.count >= 2, x.shape.last == k else { return nil }
            return gatherLayout(xBatch: Array(x.shape.dropLast(2)), wBatch: wBatch, lhs: lhsAt.map { inputs[$0].shape },
                                rhs: rhsAt.map { inputs[$0].shape }, m: x.shape[x.shape.count - 2], n: n, work: n / width)
        }
    }
}
