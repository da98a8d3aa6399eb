import MLXCCodegen
import MLXCIR

/// What plain (non-delegated) ExecuTorch exports call that MLX programs do not: ATen `matmul` of
/// two activations (attention's q·kᵀ and p·v), `pow` by a constant (RMSNorm's x²), `mean`/`sum`/
/// `any`/`all` over adjacent axes, `index_put` into a KV cache followed by its `copy_into`
/// write-back (only the new rows are written, in place), `conv1d` (whisper's stem) and `conv2d` (Parakeet's
/// subsampling; Lowerings+Conv2D).
extension Lowerings {
    static func plain(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .matmul(let o): return batchedMatmul(o, node, c)
        case .power(let o): return power(o, node, c)
        case .mean(let o): return reduction(.mean, x: o.x, out: o.out, axes: o.axes, node, c)
        case .sum(let o): return reduction(.sum, x: o.x, out: o.out, axes: o.axes, node, c)
        case .any(let o): return reduction(.any, x: o.x, out: o.out, axes: o.axes, node, c)
        case .all(let o): return reduction(.all, x: o.x, out: o.out, axes: o.axes, node, c)
        case .max(let o): return reduction(.max, x: o.x, out: o.out, axes: o.axes, node, c)
        case .min(let o): return reduction(.min, x: o.x, out: o.out, axes: o.axes, node, c)
        case .argmax(let o): return argReduction(max: true, x: o.x, out: o.out, axis: o.axis, keepdims: o.keepdims, node, c)
        case .argmin(let o): return argReduction(max: false, x: o.x, out: o.out, axis: o.axis, keepdims: o.keepdims, node, c)
        case .indexPut(let o): return indexPut(o, node, c)
        case .copyInto(let o): return copyInto(o, node, c)
        case .conv1D(let o): return conv1d(o, node, c)
        case .conv2D(let o): return conv2d(o, node, c)
        default: return nil
        }
    }

    /// Why a plain op has no kernel (nil: not one of these ops).
    static func plainReason(_ node: Node, _ c: LoweringContext) -> String? {
        switch node.op {
        case .matmul: return "needs two f32/bf16/f16 operands of one dtype"
        case .power: return "only a constant scalar exponent of 2, 0.5, -0.5 or -1, or a constant positive scalar base, on f32/bf16/f16 has a kernel"
        case .mean, .sum, .max, .min: return "needs an f32/bf16/f16 (max/min: also integer) operand reduced over adjacent axes"
        case .argmax, .argmin: return "needs an f32/bf16/f16 operand and an i32/i64/u32 result"
        case .any, .all: return "needs a bool operand reduced over adjacent axes"
        case .indexPut:
            return "needs one i32/i64 index tensor, accumulate = false, and a state (or single-use temporary) destination nothing but its copy_into write-back reads afterwards"
        case .copyInto: return "the source does not have the destination's element count and dtype"
        case .conv1D: return "needs f32/bf16/f16 x and a constant weight (or a transpose of one) of the same dtype"
        case .conv2D: return conv2dReason
        default: return nil
        }
    }

    // MARK: matmul

    /// Broadcast batch dims collapsed to two, with each operand's matrix stride per dim (0 where it
    /// broadcasts); nil if more than two dims stay apart after merging.
    static func collapsedBatch(_ a: [Int], _ b: [Int], aMatrix: Int, bMatrix: Int) -> (sizes: [Int], a: [Int], b: [Int])? {
        guard let batch = try? Broadcast.shape(a, b) else { return nil }
        func strides(_ s: [Int], _ matrix: Int) -> [Int] {
            let padded = [Int](repeating: 1, count: batch.count - s.count) + s
            var result = [Int](repeating: 0, count: batch.count), running = matrix
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                result[d] = padded[d] == 1 ? 0 : running
                running *= padded[d]
            }
            return result
        }
        let sa = strides(a, aMatrix), sb = strides(b, bMatrix)
        var sizes: [Int] = [], outA: [Int] = [], outB: [Int] = []   // outermost first
        for d in batch.indices where batch[d] != 1 {
            if let last = sizes.last, outA.last! == sa[d] * batch[d], outB.last! == sb[d] * batch[d] {
                sizes[sizes.count - 1] = last * batch[d]
                outA[outA.count - 1] = sa[d]
                outB[outB.count - 1] = sb[d]
            } else {
                sizes.append(batch[d]); outA.append(sa[d]); outB.append(sb[d])
            }
        }
        guard sizes.count <= 2 else { return nil }
        while sizes.count < 2 { sizes.insert(1, at: 0); outA.insert(0, at: 0); outB.insert(0, at: 0) }
        return (sizes, outA, outB)
    }

    /// The batched matmul kernel's layout for a [..., M, K] @ b [..., K, N] (rank-1 operands as
    /// NumPy treats them): the result shape, the dims (without addmm's bias stride), the work, M and N.
    static func matmulLayout(_ a: [Int], _ b: [Int]) -> (shape: [Int], dims: [Int64], work: Int, m: Int, n: Int)? {
        let rows = BatchedMatmulKernels.rows
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let a2 = a.count == 1 ? [1] + a : a, b2 = b.count == 1 ? b + [1] : b
        let (m, k) = (a2[a2.count - 2], a2[a2.count - 1]), (k2, n) = (b2[b2.count - 2], b2[b2.count - 1])
        guard k == k2, let batch = collapsedBatch(Array(a2.dropLast(2)), Array(b2.dropLast(2)), aMatrix: m * k, bMatrix: k * n),
              let full = try? Broadcast.shape(Array(a2.dropLast(2)), Array(b2.dropLast(2))) else { return nil }
        var shape = full + [m, n]
        if a.count == 1 { shape.remove(at: shape.count - 2) }
        if b.count == 1 { shape.removeLast() }
        let blocks = (m + rows - 1) / rows
        let count = batch.sizes[0] * batch.sizes[1]
        let dims = [m, k, n, batch.sizes[1], batch.a[0], batch.a[1], batch.b[0], batch.b[1], blocks].map { Int64($0) }
        return (shape, dims, n == 0 ? 0 : count * blocks, m, n)
    }

    static func batchedMatmul(_ o: MatmulOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = sharedActivation([o.a, o.b], c) else { return nil }
        let definition = BatchedMatmulKernels.matmul(t, lanes: c.lanes)
        return launch(definition, node, operands: [o.a, o.b], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype], grain: 1) { inputs in
            guard let l = matmulLayout(inputs[0].shape, inputs[1].shape) else { return nil }
            return CallLayout(shapes: [l.shape], dims: l.dims, work: l.work)
        }
    }

    /// `addmm` in a form no linear kernel takes (mat2 an activation — HF RoPE's inv_freq ⊗ positions —
    /// or a constant [K, N] read as stored, alpha or beta ≠ 1): the batched matmul kernel with
    /// alpha·(mat1·mat2) + beta·bias applied before the one rounding; the bias [N] or [M, N] (leading
    /// 1s allowed). One dtype for every operand.
    static func batchedAddmm(_ o: AddmmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let operands = [o.mat1, o.mat2] + (o.bias.map { [$0] } ?? [])
        guard let (dtype, t) = sharedActivation(operands, c), o.alpha.isFinite, o.beta.isFinite else { return nil }
        let addmm = BatchedMatmulKernels.Addmm(alpha: Float(o.alpha), beta: Float(o.beta), hasBias: o.bias != nil)
        let definition = BatchedMatmulKernels.matmul(t, addmm: addmm, lanes: c.lanes)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: operands.map { _ in dtype }, grain: 1) { inputs in
            guard let l = matmulLayout(inputs[0].shape, inputs[1].shape), inputs[0].shape.count >= 2, inputs[1].shape.count >= 2 else { return nil }
            guard o.bias != nil else { return CallLayout(shapes: [l.shape], dims: l.dims, work: l.work) }
            // Bias [.., N] with one row, or [.., M, N]; leading dims 1.
            let bias = inputs[2].shape
            guard bias.last == l.n, bias.count <= l.shape.count else { return nil }
            let rows = bias.dropLast().reduce(1, *)
            guard rows == 1 || (rows == l.m && bias[bias.count - 2] == l.m) else { return nil }
            return CallLayout(shapes: [l.shape], dims: l.dims + [Int64(rows == 1 ? 0 : l.n)], work: l.work)
        }
    }

    // MARK: power

    /// x ** p for a constant scalar p that one correctly rounded op computes (as the reference's
    /// double `pow` rounded to the dtype does): x² (exact in f32 for bf16/f16 inputs too), √x, 1/x.
    static func power(_ o: PowerOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        // A constant scalar base to a tensor's power (RoPE frequencies computed in the graph).
        if let base = c.constant(o.a), base.count == 1, let value = (try? base.host())?.storage.first,
           let (dtype, t) = activation(o.b, c), c.dtype(o.out) ?? dtype == dtype, c.dtype(o.a) == dtype,
           let definition = ElementwiseKernels.powerOfConstantBase(value, t, lanes: c.lanes) {
            return mapLaunch(definition, node, operands: [o.b], out: o.out, resultDType: dtype, operandDTypes: [dtype],
                             grain: elementwiseGrain(transcendental: true))
        }
        guard let (dtype, t) = activation(o.a, c), c.dtype(o.out) ?? dtype == dtype,
              let p = c.constant(o.b), p.count == 1, let exponent = (try? p.host())?.storage.first else { return nil }
        let op: ElementwiseKernels.Unary
        switch exponent {
        case 2: op = .square
        case 0.5: op = .sqrt
        case -1: op = .reciprocal
        case -0.5: op = .rsqrt
        default: return nil
        }
        guard let definition = ElementwiseKernels.unary(op, t, lanes: c.lanes) else { return nil }
        return mapLaunch(definition, node, operands: [o.a], out: o.out, resultDType: dtype, operandDTypes: [dtype],
                         grain: elementwiseGrain(transcendental: false))
    }

    // MARK: reductions

    /// (outer, n, inner) of `shape` reduced over `axes` (normalized, sorted), if they are adjacent.
    static func adjacentReduction(_ shape: [Int], axes given: [Int]) -> (outer: Int, n: Int, inner: Int, axes: [Int])? {
        guard !shape.isEmpty, let axes = try? ReductionMath.axes(given, rank: shape.count, "reduce"), let first = axes.first,
              axes == Array(first..<(first + axes.count)) else { return nil }
        let last = first + axes.count - 1
        return (shape[..<first].reduce(1, *), shape[first...last].reduce(1, *), shape[(last + 1)...].reduce(1, *), axes)
    }

    static func reduction(_ kind: ReductionKernels.Kind, x: ValueID, out: ValueID, axes: [Int], _ node: Node,
                          _ c: LoweringContext) -> LoweredKernel? {
        if kind == .max || kind == .min, let d = c.dtype(x), let t = ElementType(d), !t.isFloat, t != .bool {
            return integerExtremum(max: kind == .max, t, dtype: d, x: x, out: out, axes: axes, node, c)
        }
        let xDType: DType, t: ElementType
        if kind.isLogical {
            guard c.dtype(x) ?? .bool == .bool else { return nil }
            (xDType, t) = (.bool, .bool)
        } else {
            guard let (d, e) = activation(x, c) else { return nil }
            (xDType, t) = (d, e)
        }
        let resultDType: DType = kind.isLogical ? .bool : xDType
        guard c.dtype(out) ?? resultDType == resultDType else { return nil }
        let keepdims: Bool
        switch node.op {
        case .mean(let o): keepdims = o.keepdims
        case .sum(let o): keepdims = o.keepdims
        case .any(let o): keepdims = o.keepdims
        case .all(let o): keepdims = o.keepdims
        case .max(let o): keepdims = o.keepdims
        case .min(let o): keepdims = o.keepdims
        default: return nil
        }
        let definition = ReductionKernels.reduce(kind, t, lanes: c.lanes)
        let rowSize = staticShape(x, c).flatMap { s in adjacentReduction(s, axes: axes).map { $0.n * $0.inner } } ?? 256
        return launch(definition, node, operands: [x], results: [out], resultDTypes: [resultDType], operandDTypes: [xDType],
                      grain: max(1, 16384 / max(rowSize, 1))) { inputs in
            let shape = inputs[0].shape
            guard let r = adjacentReduction(shape, axes: axes) else { return nil }
            let outShape = ReductionMath.reducedShape(shape, axes: r.axes, keepdims: keepdims)
            return CallLayout(shapes: [outShape], dims: [Int64(r.n), Int64(r.inner)], work: r.inner == 0 ? 0 : r.outer)
        }
    }

    /// Integer max / min (exact) over adjacent axes.
    static func integerExtremum(max: Bool, _ t: ElementType, dtype: DType, x: ValueID, out: ValueID, axes: [Int], _ node: Node,
                                _ c: LoweringContext) -> LoweredKernel? {
        guard c.dtype(out) ?? dtype == dtype, let definition = ReductionKernels.integerExtremum(max: max, t, lanes: c.lanes) else { return nil }
        let keepdims: Bool
        switch node.op {
        case .max(let o): keepdims = o.keepdims
        case .min(let o): keepdims = o.keepdims
        default: return nil
        }
        return launch(definition, node, operands: [x], results: [out], resultDTypes: [dtype], operandDTypes: [dtype], grain: 64) { inputs in
            let shape = inputs[0].shape
            guard inputs[0].count > 0, let r = adjacentReduction(shape, axes: axes) else { return nil }
            let outShape = ReductionMath.reducedShape(shape, axes: r.axes, keepdims: keepdims)
            return CallLayout(shapes: [outShape], dims: [Int64(r.n), Int64(r.inner)], work: r.inner == 0 ? 0 : r.outer)
        }
    }

    /// argmax / argmin along one axis: indices in the result's declared integer type (else u32, as the reference).
    static func argReduction(max: Bool, x: ValueID, out: ValueID, axis: Int, keepdims: Bool, _ node: Node,
                             _ c: LoweringContext) -> LoweredKernel? {
        guard let (xDType, t) = activation(x, c) else { return nil }
        let indexDType = c.dtype(out) ?? .u32
        guard [.i32, .i64, .u32].contains(indexDType), let it = ElementType(indexDType) else { return nil }
        let definition = ReductionKernels.argReduce(max: max, t, index: it)
        return launch(definition, node, operands: [x], results: [out], resultDTypes: [indexDType], operandDTypes: [xDType],
                      grain: 256) { inputs in
            let shape = inputs[0].shape
            guard !shape.isEmpty, inputs[0].count > 0, let r = adjacentReduction(shape, axes: [axis]) else { return nil }
            let outShape = ReductionMath.reducedShape(shape, axes: r.axes, keepdims: keepdims)
            return CallLayout(shapes: [outShape], dims: [Int64(r.n), Int64(r.inner)], work: r.outer * r.inner)
        }
    }

    // MARK: KV-cache writes

    /// `index_put` may write into x's own buffer: x is a single-use temporary (or the result itself),
    /// or state whose only other readers are `copy_into(dst: x, src: out)` write-backs after it (the
    /// old rows are never read again, and the write-back becomes a no-op).
    static func indexPutInPlace(_ o: IndexPutOp, _ node: Node, _ c: LoweringContext) -> Bool {
        if writableInPlace(o.x, out: o.out, c) { return true }
        guard case .state = c.graph[o.x].kind, !c.graph.outputs.contains(o.x) else { return false }
        var seenSelf = false
        for block in c.graph.blocks {
            for n in block.nodes {
                if n.op.results.contains(o.out) { seenSelf = true; continue }
                // Readers before the write see the old rows, as they should.
                guard seenSelf, n.op.operands.contains(o.x) || n.op.results.contains(o.x) else { continue }
                guard case .copyInto(let w) = n.op, w.dst == o.x, w.out == o.x, w.src == o.out else { return false }
            }
        }
        return seenSelf
    }

    /// `x[..., index, ...] = values` along one axis with a 1-D index tensor: the row scatter of
    /// `index_copy`, in place. values may carry extra leading 1s (PyTorch's [H, T, D] into
    /// [1, H, S, D]); other broadcasts and repeated positions run on the reference.
    static func indexPut(_ o: IndexPutOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard !o.accumulate, o.indices.count == 1, o.indexAxes.count == 1, indexPutInPlace(o, node, c),
              let dtype = copyDType(o.x, c), c.dtype(o.values) ?? dtype == dtype else { return nil }
        let index = o.indices[0], axis = o.indexAxes[0]
        let indexDType = c.dtype(index) ?? .i64
        guard indexDType == .i64 || indexDType == .i32, let it = ElementType(indexDType) else { return nil }
        let definition = RowCopyKernels.scatter(byteSize: dtype.byteSize, positions: .indices(it), lanes: c.lanes)
        func strip(_ s: [Int]) -> [Int] { Array(s.drop { $0 == 1 }) }
        return launch(definition, node, operands: [o.x, o.values, index], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype, indexDType], grain: 16, inPlace: [0: 0], check: { inputs in
                          distinctPositions(inputs[2], axisSize: axisSize(inputs[0], axis))
                      }) { inputs in
            let x = inputs[0], values = inputs[1], indices = inputs[2]
            guard let a = try? Layout.axis(axis, rank: x.shape.count, "index_put"), indices.shape.count == 1 else { return nil }
            var target = x.shape
            target[a] = indices.count
            guard values.count == target.reduce(1, *), strip(values.shape) == strip(target) else { return nil }
            let (outer, n, inner) = Broadcast.around(x.shape, axis: a)
            return CallLayout(shapes: [x.shape], dims: [Int64(outer), Int64(n), Int64(inner), Int64(indices.count), 0]
                                + rowsInOrder(m: indices.count, inner: inner), work: outer * indices.count)
        }
    }

    /// `copy_into(dst: state, src)` as an in-place copy (nothing to do when src is dst's buffer).
    static func copyInto(_ o: CopyIntoOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.dst, c), c.dtype(o.src) ?? dtype == dtype else { return nil }
        // Into the state it redefines (or a temporary nothing else reads): in place. Otherwise the op is
        // a pure copy of src in dst's shape — dst itself is not written (the reference's semantics; e.g.
        // etLLM's ring caches copy their position buffer mid-graph and write it back at the end) — into
        // a fresh buffer.
        let inPlace = writableInPlace(o.dst, out: o.out, c)
        let definition = StateCopyKernels.copyInto(byteSize: dtype.byteSize, lanes: c.lanes)
        func strip(_ s: [Int]) -> [Int] { Array(s.drop { $0 == 1 }) }
        return launch(definition, node, operands: [o.dst, o.src], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype], grain: copyGrain, inPlace: inPlace ? [0: 0] : [:]) { inputs in
            let dst = inputs[0], src = inputs[1]
            guard src.count == dst.count, strip(src.shape) == strip(dst.shape) else { return nil }   // broadcasts: reference
            return CallLayout(shapes: [dst.shape], dims: [], work: dst.count)
        }
    }

    // MARK: conv1d

    static func conv1d(_ o: Conv1DOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c), o.groups >= 1, o.stride >= 1, o.dilation >= 1, o.padding >= 0 else { return nil }
        // The weight as stored: a constant, or a constant read through its (only) transpose.
        var weight = o.w, strides: [Int], shape: [Int], transposeNode: Node? = nil
        if let w = c.constant(o.w) {
            guard w.shape.count == 3 else { return nil }
            (shape, strides) = (w.shape, StridedLayout.rowMajor(w.shape))
        } else if let producer = c.definingNode(o.w), case .transpose(let tr) = producer.op, c.useCounts[o.w] == 1,
                  let w = c.constant(tr.x), w.shape.count == 3 {
            let perm = tr.perm.map { $0 < 0 ? $0 + 3 : $0 }
            guard Set(perm) == [0, 1, 2] else { return nil }
            let own = StridedLayout.rowMajor(w.shape)
            (shape, strides) = (perm.map { w.shape[$0] }, perm.map { own[$0] })
            (weight, transposeNode) = (tr.x, producer)
        } else { return nil }
        guard c.dtype(weight) == dtype else { return nil }
        let (outChannels, kernel, groupChannels) = (shape[0], shape[1], shape[2])
        guard outChannels % o.groups == 0, kernel > 0, groupChannels > 0 else { return nil }
        if groupChannels == 1, outChannels == o.groups { return depthwiseConv1d(o, node, c, weight: weight, kernel: kernel, strides: strides, transposeNode: transposeNode) }
        let s = Conv1DShape(kernel: kernel, groupChannels: groupChannels, outChannels: outChannels, groups: o.groups,
                            stride: o.stride, padding: o.padding, dilation: o.dilation, weightStrides: strides)
        let definition = ConvKernels.conv1d(s, t, weight: t, lanes: c.lanes)
        return launch(definition, node, operands: [o.x, weight], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype], grain: 2, absorbs: transposeNode == nil ? [] : [o.w],
                      fallbackNodes: transposeNode.map { [$0, node] }) { inputs in
            let x = inputs[0].shape
            guard x.count == 3, x[2] == groupChannels * o.groups else { return nil }
            let span = x[1] + 2 * o.padding - o.dilation * (kernel - 1) - 1
            guard span >= 0 else { return nil }
            let outLength = span / o.stride + 1
            return CallLayout(shapes: [[x[0], outLength, outChannels]], dims: [Int64(x[1]), Int64(outLength)], work: x[0] * outLength)
        }
    }
}
