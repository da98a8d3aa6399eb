import MLXCIR

extension Environment {
    /// Reference kernels: Indexing ops. Returns false for ops of other families.
    mutating func executeIndexing(_ op: Op) throws -> Bool {
        switch op {
        case .take(let o):
            let x = try tensor(o.x)
            let axis = try Layout.axis(o.axis, rank: x.rank, "take")
            switch o.index {
            case .literal(let n):
                set(o.out, try Indexing.take(x, index: .scalar(Double(n)), axis: axis))
            case .value(let v):
                let index = try tensor(v)
                set(o.out, try Indexing.take(x, index: index.rank == 0 ? .scalar(index.storage[0]) : .tensor(index), axis: axis))
            }
        case .takeAlongAxis(let o):
            set(o.out, try Indexing.takeAlongAxis(try tensor(o.x), indices: try tensor(o.indices), axis: o.axis))
        case .gather(let o):
            set(o.out, try Indexing.gather(try tensor(o.x), indices: try o.indices.map { try tensor($0) }, axes: o.axes,
                                           sliceSizes: o.sliceSizes))
        case .scatterAdd(let o):
            set(o.out, try Indexing.scatterAdd(try tensor(o.x), indices: try tensor(o.indices), updates: try tensor(o.updates),
                                               axis: o.axis))
        case .sliceUpdate(let o):
            let dst = try tensor(o.dst)
            let axis = try Layout.axis(try int(o.axis), rank: dst.rank, "slice_update")
            set(o.out, try Indexing.sliceUpdate(dst, update: try tensor(o.update), axis: axis, start: try int(o.start),
                                                stop: try int(o.stop), step: o.step))
        case .indexCopy(let o):
            set(o.out, try Indexing.indexCopy(try tensor(o.dst), update: try tensor(o.update), indices: try tensor(o.indices),
                                              axis: o.axis))
        case .indexPut(let o):
            set(o.out, try Indexing.indexPut(try tensor(o.x), indices: try o.indices.map { try tensor($0) }, axes: o.indexAxes,
                                             values: try tensor(o.values), accumulate: o.accumulate))
        case .copyInto(let o):
            let dst = try tensor(o.dst), src = try tensor(o.src)
            let expanded: HostTensor
            do { expanded = try Broadcast.expand(src, to: dst.shape) } catch {
                throw ReferenceError("copy_into: source \(src.shape) does not broadcast to destination \(dst.shape)")
            }
            set(o.out, HostTensor(dtype: dst.dtype, shape: dst.shape, storage: expanded.storage))
        default: return false
        }
        return true
    }
}

/// Gather and scatter kernels. Every index is wrapped (negative counts from the end) and checked
/// before it is used; an index outside its dim throws.
enum Indexing {
    enum TakeIndex {
        case scalar(Double)
        case tensor(HostTensor)
    }

    /// NumPy `take`: a scalar index removes `axis`; an index tensor of shape S replaces it by S.
    static func take(_ x: HostTensor, index: TakeIndex, axis: Int) throws -> HostTensor {
        let (outer, n, inner) = Broadcast.around(x.shape, axis: axis)
        let positions: [Int], indexShape: [Int]
        switch index {
        case .scalar(let i):
            positions = [try Layout.index(i, size: n, "take from \(x.shape) along axis \(axis)")]
            indexShape = []
        case .tensor(let t):
            positions = try t.storage.map { try Layout.index($0, size: n, "take from \(x.shape) along axis \(axis)") }
            indexShape = t.shape
        }
        var out = [Double]()
        out.reserveCapacity(outer * positions.count * inner)
        for o in 0..<outer {
            for p in positions {
                let base = (o * n + p) * inner
                out.append(contentsOf: x.storage[base..<(base + inner)])
            }
        }
        let shape = Array(x.shape[..<axis]) + indexShape + Array(x.shape[(axis + 1)...])
        return HostTensor(dtype: x.dtype, shape: shape, storage: out)
    }

    /// The broadcast of `shapes` in every dim but `axis` (all the same rank); `axis` keeps each one's own size.
    static func broadcastOffAxis(_ shapes: [[Int]], axis: Int, _ op: String) throws -> [Int] {
        var common = shapes[0]
        common[axis] = 1
        for s in shapes {
            var t = s
            t[axis] = 1
            do { common = try Broadcast.shape(common, t) } catch {
                throw ReferenceError("\(op): shapes \(shapes) do not broadcast outside axis \(axis)")
            }
        }
        return common
    }

    static func expand(_ t: HostTensor, offAxis common: [Int], axis: Int) throws -> HostTensor {
        var target = common
        target[axis] = t.shape[axis]
        return try Broadcast.expand(t, to: target)
    }

    /// MLX `take_along_axis`: x and indices broadcast against each other except along `axis`.
    static func takeAlongAxis(_ x: HostTensor, indices: HostTensor, axis a: Int) throws -> HostTensor {
        let axis = try Layout.axis(a, rank: x.rank, "take_along_axis")
        guard indices.rank == x.rank else {
            throw ReferenceError("take_along_axis: indices \(indices.shape) and input \(x.shape) differ in rank")
        }
        let common = try broadcastOffAxis([x.shape, indices.shape], axis: axis, "take_along_axis")
        let xe = try expand(x, offAxis: common, axis: axis), ie = try expand(indices, offAxis: common, axis: axis)
        let (outer, m, inner) = Broadcast.around(ie.shape, axis: axis)
        let n = xe.shape[axis]
        var out = [Double](repeating: 0, count: ie.count)
        for o in 0..<outer {
            for i in 0..<m {
                for j in 0..<inner {
                    let flat = (o * m + i) * inner + j
                    let p = try Layout.index(ie.storage[flat], size: n, "take_along_axis from \(x.shape) along axis \(axis)")
                    out[flat] = xe.storage[(o * n + p) * inner + j]
                }
            }
        }
        return HostTensor(dtype: x.dtype, shape: ie.shape, storage: out)
    }

    /// MLX `gather`: the index arrays (one per listed axis) broadcast to B; the result is
    /// B + slice_sizes, each slice of x starting at the indexed positions (0 on other axes).
    static func gather(_ x: HostTensor, indices: [HostTensor], axes: [Int], sliceSizes: [Int]) throws -> HostTensor {
        guard indices.count == axes.count else {
            throw ReferenceError("gather: \(indices.count) index arrays for \(axes.count) axes \(axes)")
        }
        guard sliceSizes.count == x.rank else {
            throw ReferenceError("gather: slice sizes \(sliceSizes) do not match the rank of \(x.shape)")
        }
        let normalized = try axes.map { try Layout.axis($0, rank: x.rank, "gather") }
        guard Set(normalized).count == normalized.count else { throw ReferenceError("gather: repeated axes \(axes)") }
        for d in 0..<x.rank where sliceSizes[d] < 0 || sliceSizes[d] > x.shape[d] {
            throw ReferenceError("gather: slice sizes \(sliceSizes) do not fit in \(x.shape)")
        }
        let batch = try Broadcast.shape(indices.map(\.shape))
        let expanded = try indices.map { try Broadcast.expand($0, to: batch) }
        let strides = x.strides
        let sliceCount = sliceSizes.reduce(1, *)
        let batchCount = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: batchCount * sliceCount)
        for b in 0..<batchCount {
            var offset = 0
            for (k, axis) in normalized.enumerated() {
                let size = x.shape[axis] - sliceSizes[axis] + 1
                let p = try Layout.index(expanded[k].storage[b], size: x.shape[axis], "gather from \(x.shape) along axis \(axis)")
                guard p < size else {
                    throw ReferenceError("gather: slice of \(sliceSizes[axis]) at index \(p) overruns axis \(axis) of \(x.shape)")
                }
                offset += p * strides[axis]
            }
            Layout.forEach(shape: sliceSizes, strides: strides, offset: offset) { flat, at in
                out[b * sliceCount + flat] = x.storage[at]
            }
        }
        return HostTensor(dtype: x.dtype, shape: batch + sliceSizes, storage: out)
    }

    /// MLX `scatter_add_axis`: out = x, then out[..., indices[i], ...] += updates[..., i, ...] along `axis`
    /// (indices and updates broadcast together, then everything broadcasts off the axis).
    static func scatterAdd(_ x: HostTensor, indices: HostTensor, updates: HostTensor, axis a: Int) throws -> HostTensor {
        let axis = try Layout.axis(a, rank: x.rank, "scatter_add")
        guard indices.rank == x.rank else {
            throw ReferenceError("scatter_add: indices \(indices.shape) and input \(x.shape) differ in rank")
        }
        var upd = updates.converted(to: x.dtype)
        if upd.rank > indices.rank {
            let lead = upd.shape[..<(upd.rank - indices.rank)]
            guard lead.allSatisfy({ $0 == 1 }) else {
                throw ReferenceError("scatter_add: updates \(updates.shape) have more dims than indices \(indices.shape)")
            }
            upd = upd.reshaped(Array(upd.shape[(upd.rank - indices.rank)...]))
        }
        let shared = try Broadcast.shape(indices.shape, upd.shape)
        let idx0 = try Broadcast.expand(indices, to: shared), upd0 = try Broadcast.expand(upd, to: shared)
        let common = try broadcastOffAxis([x.shape, shared], axis: axis, "scatter_add")
        var out = try expand(x, offAxis: common, axis: axis)
        let ie = try expand(idx0, offAxis: common, axis: axis), ue = try expand(upd0, offAxis: common, axis: axis)
        let (outer, m, inner) = Broadcast.around(ie.shape, axis: axis)
        let n = out.shape[axis]
        for o in 0..<outer {
            for i in 0..<m {
                for j in 0..<inner {
                    let flat = (o * m + i) * inner + j
                    let p = try Layout.index(ie.storage[flat], size: n, "scatter_add into \(x.shape) along axis \(axis)")
                    out.storage[(o * n + p) * inner + j] += ue.storage[flat]
                }
            }
        }
        return out
    }

    /// `dst` with `dst[..., start:stop:step, ...]` (along `axis`) replaced by `update` broadcast to the slice.
    /// Bounds follow the MLX delegate: negative ones count from the end, both clamp to [0, size].
    static func sliceUpdate(_ dst: HostTensor, update: HostTensor, axis: Int, start: Int, stop: Int, step: Int) throws -> HostTensor {
        guard step >= 1 else { throw ReferenceError("slice_update: step must be >= 1, got \(step)") }
        let (s, count) = try Layout.sliceRange(size: dst.shape[axis], start: start, stop: stop, step: step, "slice_update")
        var shape = dst.shape, strides = dst.strides
        shape[axis] = count
        guard count > 0 else { return dst }
        let offset = s * strides[axis]
        strides[axis] *= step
        let upd: HostTensor
        do { upd = try Broadcast.expand(update, to: shape) } catch {
            throw ReferenceError("slice_update: update \(update.shape) does not broadcast to the slice \(shape) of \(dst.shape) (axis \(axis), \(start):\(stop):\(step))")
        }
        try Layout.checkView(shape: shape, strides: strides, offset: offset, count: dst.count, "slice_update")
        var out = dst
        Layout.forEach(shape: shape, strides: strides, offset: offset) { flat, at in
            out.storage[at] = DTypeCodec.round(upd.storage[flat], to: dst.dtype)
        }
        return out
    }

    /// `dst` with `dst[..., indices[i], ...] = update[..., i, ...]` along `axis` (1-D indices, later ones win).
    static func indexCopy(_ dst: HostTensor, update: HostTensor, indices: HostTensor, axis a: Int) throws -> HostTensor {
        let axis = try Layout.axis(a, rank: dst.rank, "index_copy")
        guard indices.rank == 1 else { throw ReferenceError("index_copy: indices must be 1-D, got \(indices.shape)") }
        guard update.rank == dst.rank, update.shape[axis] == indices.count else {
            throw ReferenceError("index_copy: update \(update.shape) does not match \(indices.count) indices into \(dst.shape) along axis \(axis)")
        }
        var target = dst.shape
        target[axis] = indices.count
        let upd: HostTensor
        do { upd = try Broadcast.expand(update, to: target) } catch {
            throw ReferenceError("index_copy: update \(update.shape) does not fit \(dst.shape) off axis \(axis)")
        }
        let (outer, n, inner) = Broadcast.around(dst.shape, axis: axis)
        let positions = try indices.storage.map { try Layout.index($0, size: n, "index_copy into \(dst.shape) along axis \(axis)") }
        var out = dst
        for (r, p) in positions.enumerated() {
            for o in 0..<outer {
                for j in 0..<inner {
                    out.storage[(o * n + p) * inner + j] = DTypeCodec.round(upd.storage[(o * positions.count + r) * inner + j], to: dst.dtype)
                }
            }
        }
        return out
    }

    /// PyTorch `index_put`: one index tensor per axis in `axes` (broadcast together to B); x[indices] has
    /// shape pre + B + post when the axes are adjacent (in order), B + the other dims otherwise.
    /// `values` broadcasts to that shape. Bool index tensors are masks over as many dims as their rank.
    static func indexPut(_ x: HostTensor, indices given: [HostTensor], axes givenAxes: [Int], values: HostTensor,
                         accumulate: Bool) throws -> HostTensor {
        guard given.count == givenAxes.count, !given.isEmpty else {
            throw ReferenceError("index_put: \(given.count) index tensors for axes \(givenAxes)")
        }
        var indices: [HostTensor] = [], axes: [Int] = []
        for (t, a) in zip(given, givenAxes) {
            let axis = try Layout.axis(a, rank: x.rank, "index_put")
            guard t.dtype == .bool else {
                indices.append(t)
                axes.append(axis)
                continue
            }
            // A mask over dims axis..<axis+rank: its true positions, one coordinate tensor per dim.
            guard axis + t.rank <= x.rank, Array(x.shape[axis..<(axis + t.rank)]) == t.shape else {
                throw ReferenceError("index_put: mask \(t.shape) does not match \(x.shape) from axis \(axis)")
            }
            var coords = [[Double]](repeating: [], count: t.rank)
            let strides = t.strides
            for (flat, v) in t.storage.enumerated() where v != 0 {
                for d in 0..<t.rank { coords[d].append(Double((flat / strides[d]) % t.shape[d])) }
            }
            for d in 0..<t.rank {
                indices.append(HostTensor(dtype: .i64, shape: [coords[d].count], storage: coords[d]))
                axes.append(axis + d)
            }
        }
        guard Set(axes).count == axes.count else { throw ReferenceError("index_put: repeated axes \(givenAxes)") }
        let batch: [Int]
        do { batch = try Broadcast.shape(indices.map(\.shape)) } catch {
            throw ReferenceError("index_put: index shapes \(indices.map(\.shape)) do not broadcast")
        }
        let expanded = try indices.map { try Broadcast.expand($0, to: batch) }
        let strides = x.strides
        let batchCount = batch.reduce(1, *)
        var batchOffsets = [Int](repeating: 0, count: batchCount)
        for (k, axis) in axes.enumerated() {
            for b in 0..<batchCount {
                batchOffsets[b] += try Layout.index(expanded[k].storage[b], size: x.shape[axis],
                                                    "index_put into \(x.shape) along axis \(axis)") * strides[axis]
            }
        }
        let rest = (0..<x.rank).filter { !axes.contains($0) }
        let adjacent = axes == Array(axes[0]..<(axes[0] + axes.count))
        let pre = adjacent ? rest.filter { $0 < axes[0] } : []
        let post = adjacent ? rest.filter { $0 > axes[0] } : rest
        let resultShape = pre.map { x.shape[$0] } + batch + post.map { x.shape[$0] }
        let vals: HostTensor
        do { vals = try Broadcast.expand(values.converted(to: x.dtype), to: resultShape) } catch {
            throw ReferenceError("index_put: values \(values.shape) do not broadcast to the indexed shape \(resultShape) of \(x.shape)")
        }
        // Offsets of the non-indexed dims before and after the batch dims (a rank-0 walk visits offset 0 once).
        var preOffsets: [Int] = [], postOffsets: [Int] = []
        Layout.forEach(shape: pre.map { x.shape[$0] }, strides: pre.map { strides[$0] }, offset: 0) { _, at in preOffsets.append(at) }
        Layout.forEach(shape: post.map { x.shape[$0] }, strides: post.map { strides[$0] }, offset: 0) { _, at in postOffsets.append(at) }
        var out = x
        var flat = 0
        for p in preOffsets {
            for b in batchOffsets {
                for q in postOffsets {
                    let at = p + b + q
                    out.storage[at] = accumulate ? out.storage[at] + vals.storage[flat] : vals.storage[flat]
                    flat += 1
                }
            }
        }
        return out
    }
}
