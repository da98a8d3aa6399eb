import MLXCCodegen
import MLXCIR

/// Data movement → strided copies (transpose, broadcast_to, slice, take of one index), row
/// gathers (take with an index tensor: embedding lookups), in-place row scatters into state
/// (index_copy, slice_update, llama update_cache: only the new rows of a KV cache are written),
/// concatenation, and tensors made from scalars (full, full_like, arange).
extension Lowerings {
    static let copyGrain = 32768

    static func dataMovement(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .transpose(let o): return transpose(o, node, c)
        case .broadcastTo(let o): return broadcastTo(o, node, c)
        case .tile(let o): return tile(o, node, c)
        case .slice(let o): return slice(o, node, c)
        case .take(let o): return take(o, node, c)
        case .concatenate(let o): return concatenate(o, node, c)
        case .stack(let o): return stack(o, node, c)
        case .split(let o): return split(o, node, c)
        case .indexCopy(let o): return indexCopy(o, node, c)
        case .sliceUpdate(let o): return sliceUpdate(o, node, c)
        case .llamaUpdateCache(let o): return updateCache(o, node, c)
        case .full(let o): return full(o, node, c)
        case .fullLike(let o): return fullLike(o, node, c)
        case .arange(let o): return arange(o, node, c)
        default: return nil
        }
    }

    /// The dtype a copy moves (inferred; f32 when unknown, checked per call).
    static func copyDType(_ v: ValueID, _ c: LoweringContext) -> DType? {
        let d = c.dtype(v) ?? .f32
        return ElementType(d) == nil ? nil : d
    }

    static func transpose(_ o: TransposeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        // Weight transposes are folded into the matmul that reads them (or stay on the reference).
        guard c.constant(o.x) == nil, let dtype = copyDType(o.x, c) else { return nil }
        // So is a transpose the kernel of its only reader reads through, or its producer writes through.
        func absorbing(_ node: Node) -> Bool {
            switch node.op {
            case .rope, .ropeTable, .indexCopy, .sdpa: return llm(node, c)?.absorbs.contains(o.out) ?? dataMovement(node, c)?.absorbs.contains(o.out) ?? false
            case .conv2D: return plain(node, c)?.absorbs.contains(o.out) ?? false
            default: return false
            }
        }
        if c.useCounts[o.out] == 1, let reader = c.readers(o.out).first, absorbing(reader) { return nil }
        if let producer = c.definingNode(o.x), absorbing(producer) { return nil }
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes)
        return launch(definition, node, operands: [o.x], results: [o.out], resultDTypes: [dtype], operandDTypes: [dtype],
                      grain: copyGrain) { inputs in
            let x = inputs[0]
            let rank = x.shape.count
            let axes = o.perm.map { $0 < 0 ? $0 + rank : $0 }
            guard axes.count == rank, Set(axes) == Set(0..<rank) else { return nil }
            let strides = StridedLayout.rowMajor(x.shape)
            return StridedLayout.copyLayout(axes.map { x.shape[$0] }, offset: 0, strides: axes.map { strides[$0] })
        }
    }

    static func broadcastTo(_ o: BroadcastToOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.x, c) else { return nil }
        var operands = [o.x], scalars: [Int] = []
        let sizes = o.shape.map { scalarOperand($0, &operands, &scalars) }
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype] + scalars.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            let x = inputs[0]
            var shape = sizes.map { $0(inputs) }
            let offset = shape.count - x.shape.count
            for i in shape.indices where shape[i] == -1 {
                guard i - offset >= 0 else { return nil }
                shape[i] = x.shape[i - offset]
            }
            guard shape.allSatisfy({ $0 >= 0 }), let strides = StridedLayout.broadcastStrides(x.shape, to: shape) else { return nil }
            return StridedLayout.copyLayout(shape, offset: 0, strides: strides)
        }
    }

    static func slice(_ o: SliceOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.step != 0, let dtype = copyDType(o.x, c) else { return nil }
        var operands = [o.x], scalars: [Int] = []
        let axis = scalarOperand(o.axis, &operands, &scalars)
        let start = scalarOperand(o.start, &operands, &scalars)
        let stop = scalarOperand(o.stop, &operands, &scalars)
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype] + scalars.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            let x = inputs[0]
            guard let a = try? Layout.axis(axis(inputs), rank: x.shape.count, "slice"),
                  let (s, count) = try? Layout.sliceRange(size: x.shape[a], start: start(inputs), stop: stop(inputs), step: o.step, "slice")
            else { return nil }
            var shape = x.shape, strides = StridedLayout.rowMajor(x.shape)
            shape[a] = count
            let offset = count > 0 ? s * strides[a] : 0
            strides[a] *= o.step
            return StridedLayout.copyLayout(shape, offset: offset, strides: strides)
        }
    }

    static func take(_ o: TakeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.x, c) else { return nil }
        // One index (a literal, or a rank-0 value): a strided copy of the slice it selects.
        func single(_ index: IntOrValue) -> LoweredKernel {
            var operands = [o.x], scalars: [Int] = []
            let position = scalarOperand(index, &operands, &scalars)
            let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
            return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                          operandDTypes: [dtype] + scalars.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
                let x = inputs[0]
                if scalars.count == 1 && inputs[1].shape.count != 0 { return nil }
                guard let a = try? Layout.axis(o.axis, rank: x.shape.count, "take") else { return nil }
                var p = position(inputs)
                if p < 0 { p += x.shape[a] }
                guard p >= 0, p < x.shape[a] else { return nil }
                var shape = x.shape, strides = StridedLayout.rowMajor(x.shape)
                let offset = p * strides[a]
                shape.remove(at: a)
                strides.remove(at: a)
                return StridedLayout.copyLayout(shape, offset: offset, strides: strides)
            }
        }
        guard case .value(let index) = o.index else { return single(o.index) }
        if c.type(index)?.rank == 0 { return single(o.index) }
        // An index tensor: gather rows of the slices after the axis (embedding lookup for a 2-D table).
        let indexDType = c.dtype(index) ?? .i64
        guard indexDType == .i64 || indexDType == .i32, let it = ElementType(indexDType) else { return nil }
        let definition = RowCopyKernels.gather(byteSize: dtype.byteSize, index: it, lanes: c.lanes)
        return launch(definition, node, operands: [o.x, index], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, indexDType], grain: 16, check: { inputs in
                          validIndices(inputs[1], axisSize: inputs[0].shape.isEmpty ? 0 : axisSize(inputs[0], o.axis))
                      }) { inputs in
            let x = inputs[0], idx = inputs[1]
            guard idx.shape.count > 0, let a = try? Layout.axis(o.axis, rank: x.shape.count, "take") else { return nil }
            let (outer, n, inner) = Broadcast.around(x.shape, axis: a)
            let shape = Array(x.shape[..<a]) + idx.shape + Array(x.shape[(a + 1)...])
            return CallLayout(shapes: [shape], dims: [Int64(outer), Int64(n), Int64(inner), Int64(idx.count)], work: outer * idx.count)
        }
    }

    static func axisSize(_ x: NativeTensor, _ axis: Int) -> Int {
        let a = axis < 0 ? axis + x.shape.count : axis
        return a >= 0 && a < x.shape.count ? x.shape[a] : 0
    }

    /// Every index of an i32/i64 tensor is in [−n, n) (the reference throws otherwise).
    static func validIndices(_ t: NativeTensor, axisSize n: Int) -> Bool {
        switch t.dtype {
        case .i64:
            let p = t.data.assumingMemoryBound(to: Int64.self)
            for i in 0..<t.count where p[i] < -Int64(n) || p[i] >= Int64(n) { return false }
        case .i32:
            let p = t.data.assumingMemoryBound(to: Int32.self)
            for i in 0..<t.count where Int(p[i]) < -n || Int(p[i]) >= n { return false }
        default: return false
        }
        return true
    }

    /// Positions of an index tensor wrapped into [0, n), if all are valid and distinct (a parallel
    /// scatter cannot order writes to the same row).
    static func distinctPositions(_ t: NativeTensor, axisSize n: Int) -> Bool {
        guard validIndices(t, axisSize: n) else { return false }
        if t.count <= 1 { return true }
        var seen = Set<Int>()
        for i in 0..<t.count {
            var p = t.dtype == .i64 ? Int(t.data.assumingMemoryBound(to: Int64.self)[i]) : Int(t.data.assumingMemoryBound(to: Int32.self)[i])
            if p < 0 { p += n }
            if !seen.insert(p).inserted { return false }
        }
        return true
    }

    static func concatenate(_ o: ConcatenateOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard !o.tensors.isEmpty, let dtype = commonDType(o.tensors, c), ElementType(dtype) != nil else { return nil }
        let parts = o.tensors.count
        let definition = RowCopyKernels.concatenate(parts: parts, byteSize: dtype.byteSize, lanes: c.lanes)
        return launch(definition, node, operands: o.tensors, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: o.tensors.map { _ in dtype }, grain: 16) { inputs in
            let first = inputs[0]
            guard let a = try? Layout.axis(o.axis, rank: first.shape.count, "concatenate") else { return nil }
            for p in inputs where p.shape.count != first.shape.count || p.shape.indices.contains(where: { $0 != a && p.shape[$0] != first.shape[$0] }) {
                return nil
            }
            let outer = first.shape[..<a].reduce(1, *)
            var shape = first.shape
            shape[a] = inputs.reduce(0) { $0 + $1.shape[a] }
            let chunks = inputs.map { Int64(outer == 0 ? 0 : $0.count / outer) }
            return CallLayout(shapes: [shape], dims: [Int64(outer)] + chunks, work: shape.reduce(1, *) == 0 ? 0 : outer)
        }
    }

    /// `stack` along a new axis a: the same bytes as concatenating the inputs each viewed with a size-1 axis at a,
    /// so the concatenate kernel with chunks of count / outer (every input of one shape, else the reference).
    static func stack(_ o: StackOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard !o.tensors.isEmpty, let dtype = commonDType(o.tensors, c), ElementType(dtype) != nil else { return nil }
        let definition = RowCopyKernels.concatenate(parts: o.tensors.count, byteSize: dtype.byteSize, lanes: c.lanes)
        return launch(definition, node, operands: o.tensors, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: o.tensors.map { _ in dtype }, grain: 16) { inputs in
            let first = inputs[0]
            guard inputs.allSatisfy({ $0.shape == first.shape }), let a = try? Layout.axis(o.axis, rank: first.shape.count + 1, "stack")
            else { return nil }
            let outer = first.shape[..<a].reduce(1, *)
            let shape = Array(first.shape[..<a]) + [inputs.count] + Array(first.shape[a...])
            let chunk = Int64(outer == 0 ? 0 : first.count / outer)
            return CallLayout(shapes: [shape], dims: [Int64(outer)] + inputs.map { _ in chunk }, work: shape.reduce(1, *) == 0 ? 0 : outer)
        }
    }

    /// `split` (MLX SplitNode, aten split_with_sizes_copy / split_copy): sizes as the reference reads
    /// them (one entry: a chunk size, the last part shorter; several: the parts' sizes, run-time
    /// values allowed); a call whose sizes give another number of parts than results falls back.
    static func split(_ o: SplitOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard !o.outs.isEmpty, let dtype = copyDType(o.x, c) else { return nil }
        var operands = [o.x], scalars: [Int] = []
        let sizes = o.sizes.map { scalarOperand($0, &operands, &scalars) }
        let parts = o.outs.count
        let definition = RowCopyKernels.split(parts: parts, byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
        return launch(definition, node, operands: operands, results: o.outs, resultDTypes: o.outs.map { _ in dtype },
                      operandDTypes: [dtype] + scalars.map { _ in nil }, grain: 16, scalars: scalars) { inputs in
            let x = inputs[0]
            guard let a = try? Layout.axis(o.axis, rank: x.shape.count, "split"),
                  let counts = Layout.splitSizes(x.shape[a], sizes.map { $0(inputs) }), counts.count == parts else { return nil }
            let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
            let shapes = counts.map { n -> [Int] in var s = x.shape; s[a] = n; return s }
            return CallLayout(shapes: shapes, dims: [Int64(outer)] + counts.map { Int64($0 * inner) },
                              work: x.count == 0 ? 0 : outer)
        }
    }

    /// A state write in place: the result is the destination's own buffer, so the destination must
    /// be the result itself (SSA reuse of a state value) or a temporary nothing else reads.
    static func writableInPlace(_ dst: ValueID, out: ValueID, _ c: LoweringContext) -> Bool {
        if dst == out { return c.constant(dst) == nil }
        guard case .computed = c.graph[dst].kind, c.useCounts[dst] == 1, !c.graph.outputs.contains(dst) else { return false }
        return true
    }

    /// Update rows read in order: (H, sB, sH, sT) = (1, m·inner, 0, inner).
    static func rowsInOrder(m: Int, inner: Int) -> [Int64] { [1, Int64(m * inner), 0, Int64(inner)] }

    static func indexCopy(_ o: IndexCopyOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard writableInPlace(o.dst, out: o.out, c), let dtype = copyDType(o.dst, c) else { return nil }
        let indexDType = c.dtype(o.indices) ?? .i64
        guard indexDType == .i64 || indexDType == .i32, let it = ElementType(indexDType) else { return nil }
        // update = transpose(v [B, T, H, D]) into a [B, H, S, D] cache: read v itself.
        let swap = headSwap(o.update, c).flatMap { c.dtype($0.source) == dtype ? $0 : nil }
        let definition = RowCopyKernels.scatter(byteSize: dtype.byteSize, positions: .indices(it), lanes: c.lanes)
        return launch(definition, node, operands: [o.dst, swap?.source ?? o.update, o.indices], results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype, indexDType], grain: 16, inPlace: [0: 0], check: { inputs in
                          distinctPositions(inputs[2], axisSize: axisSize(inputs[0], o.axis))
                      }, absorbs: swap == nil ? [] : [o.update], fallbackNodes: swap.map { [$0.node, node] }) { inputs in
            let dst = inputs[0], indices = inputs[2]
            var update = inputs[1]
            guard let a = try? Layout.axis(o.axis, rank: dst.shape.count, "index_copy"), indices.shape.count == 1,
                  update.shape.count == dst.shape.count else { return nil }
            if swap != nil {
                guard a == 2, update.shape.count == 4 else { return nil }
                update.shape = [update.shape[0], update.shape[2], update.shape[1], update.shape[3]]
            }
            var target = dst.shape
            target[a] = indices.count
            guard update.shape == target else { return nil }   // broadcast updates: reference
            let (outer, n, inner) = Broadcast.around(dst.shape, axis: a)
            let rows = swap == nil ? rowsInOrder(m: indices.count, inner: inner) : rowStrides(inputs[1], swapped: true)!
            return CallLayout(shapes: [dst.shape], dims: [Int64(outer), Int64(n), Int64(inner), Int64(indices.count), 0] + rows,
                              work: outer * indices.count)
        }
    }

    static func sliceUpdate(_ o: SliceUpdateOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        if o.step == 1, !writableInPlace(o.dst, out: o.out, c), o.dst != o.out { return sliceUpdateCopy(o, node, c) }
        guard o.step == 1, writableInPlace(o.dst, out: o.out, c), let dtype = copyDType(o.dst, c) else { return nil }
        var operands = [o.dst, o.update], scalars: [Int] = []
        let axis = scalarOperand(o.axis, &operands, &scalars)
        let start = scalarOperand(o.start, &operands, &scalars)
        let stop = scalarOperand(o.stop, &operands, &scalars)
        let definition = RowCopyKernels.scatter(byteSize: dtype.byteSize, positions: .consecutive, lanes: c.lanes,
                                                skip: operands.count - 2)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype] + scalars.map { _ in nil }, grain: 16, inPlace: [0: 0], scalars: scalars) { inputs in
            let dst = inputs[0], update = inputs[1]
            guard let a = try? Layout.axis(axis(inputs), rank: dst.shape.count, "slice_update"),
                  let (s, count) = try? Layout.sliceRange(size: dst.shape[a], start: start(inputs), stop: stop(inputs), step: 1, "slice_update")
            else { return nil }
            var target = dst.shape
            target[a] = count
            guard update.shape == target else { return nil }   // broadcast updates: reference
            let (outer, n, inner) = Broadcast.around(dst.shape, axis: a)
            return CallLayout(shapes: [dst.shape], dims: [Int64(outer), Int64(n), Int64(inner), Int64(count), Int64(s)]
                                + rowsInOrder(m: count, inner: inner), work: outer * count)
        }
    }

    /// `llama::update_cache`: value [B, S_new, H, D] written into cache [B, S, H, D] from start_pos on.
    static func updateCache(_ o: LlamaUpdateCacheOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard writableInPlace(o.cache, out: o.out, c), let dtype = copyDType(o.cache, c) else { return nil }
        var operands = [o.cache, o.value], scalars: [Int] = []
        let start = scalarOperand(o.startPos, &operands, &scalars)
        let definition = RowCopyKernels.scatter(byteSize: dtype.byteSize, positions: .consecutive, lanes: c.lanes,
                                                skip: operands.count - 2)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype] + scalars.map { _ in nil }, grain: 16, inPlace: [0: 0], scalars: scalars) { inputs in
            let cache = inputs[0], value = inputs[1]
            let s = start(inputs)
            guard value.shape.count == 4, cache.shape.count == 4, value.shape[0] == cache.shape[0],
                  Array(value.shape[2...]) == Array(cache.shape[2...]), s >= 0, s + value.shape[1] <= cache.shape[1] else { return nil }
            let outer = cache.shape[0], inner = cache.shape[2] * cache.shape[3]
            return CallLayout(shapes: [cache.shape], dims: [Int64(outer), Int64(cache.shape[1]), Int64(inner), Int64(value.shape[1]), Int64(s)]
                                + rowsInOrder(m: value.shape[1], inner: inner), work: outer * value.shape[1])
        }
    }

    /// The bit pattern of `v` stored as `dtype` (the reference rounds to the dtype the same way).
    static func pattern(_ v: Double, _ dtype: DType) -> Int64 {
        let bytes = DTypeCodec.encode([DTypeCodec.round(v, to: dtype)], dtype)
        var p: UInt64 = 0
        for (i, byte) in bytes.enumerated() { p |= UInt64(byte) << (8 * UInt64(i)) }
        return Int64(bitPattern: p)
    }

    /// A run-time float operand: the literal, or the index of the operand holding it.
    static func floatOperand(_ x: FloatOrValue, _ operands: inout [ValueID], _ scalars: inout [Int]) -> ([NativeTensor]) -> Double? {
        switch x {
        case .literal(let d): return { _ in d }
        case .value(let v):
            let index = operands.count
            operands.append(v)
            scalars.append(index)
            return { inputs in (try? inputs[index].host())?.storage.first }
        }
    }

    static func fillLaunch(_ node: Node, _ c: LoweringContext, operands: [ValueID], scalars: [Int], out: ValueID, dtype: DType,
                           shape: @escaping ([NativeTensor]) -> [Int]?, value: @escaping ([NativeTensor]) -> Double?) -> LoweredKernel? {
        guard ElementType(dtype) != nil else { return nil }
        let definition = FillKernels.fill(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count)
        // Scalar values (not only sizes) are part of the memo key: `scalars` covers both.
        return launch(definition, node, operands: operands, results: [out], resultDTypes: [dtype],
                      operandDTypes: operands.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            guard let shape = shape(inputs), shape.allSatisfy({ $0 >= 0 }), let v = value(inputs) else { return nil }
            return CallLayout(shapes: [shape], dims: [pattern(v, dtype)], work: shape.reduce(1, *))
        }
    }

    static func full(_ o: FullOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        var operands: [ValueID] = [], scalars: [Int] = []
        let sizes = o.shape.map { scalarOperand($0, &operands, &scalars) }
        let value = floatOperand(o.v, &operands, &scalars)
        return fillLaunch(node, c, operands: operands, scalars: scalars, out: o.out, dtype: o.scalarType,
                          shape: { inputs in sizes.map { $0(inputs) } }, value: value)
    }

    static func fullLike(_ o: FullLikeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = o.scalarType ?? c.dtype(o.x) else { return nil }
        var operands = [o.x], scalars: [Int] = []
        let value = floatOperand(o.v, &operands, &scalars)
        // The shape of x is part of the memo key already (every operand's shape is).
        return fillLaunch(node, c, operands: operands, scalars: scalars, out: o.out, dtype: dtype,
                          shape: { $0[0].shape }, value: value)
    }

    static func arange(_ o: ARangeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        let dtype = o.scalarType ?? c.dtype(o.out) ?? .i32
        guard dtype != .bool, let t = ElementType(dtype), ElementwiseKernels.convertible.contains(t) else { return nil }
        var operands: [ValueID] = [], scalars: [Int] = []
        let start = scalarOperand(o.start, &operands, &scalars)
        let stop = scalarOperand(o.stop, &operands, &scalars)
        let step = scalarOperand(o.step, &operands, &scalars)
        let definition = FillKernels.arange(t, lanes: c.lanes, skip: operands.count)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: operands.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            let a = start(inputs), b = stop(inputs), s = step(inputs)
            guard s != 0 else { return nil }
            let length = ((Double(b) - Double(a)) / Double(s)).rounded(.up)
            guard length <= Double(1 << 40) else { return nil }
            let n = max(0, Int(length))
            return CallLayout(shapes: [[n]], dims: [Int64(a), Int64(s)], work: n)
        }
    }
}
