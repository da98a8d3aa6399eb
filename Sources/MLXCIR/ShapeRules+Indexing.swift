/// Gathers (take, take_along_axis, gather) and in-place writes (scatter_add, slice_update,
/// index_copy, index_put, copy_into), whose result is the destination.
extension ShapeRules {
    /// NumPy take: a scalar index (a literal, or a rank-0 value) removes the axis; an index tensor
    /// of shape S replaces it by S.
    static func take(_ o: TakeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let ax = try axis(o.axis, rank: x.rank, "take")
        var shape: [Dim] = []
        shape.reserveCapacity(x.rank + 2)
        shape.append(contentsOf: x.shape[..<ax])
        switch o.index {
        case .value(let v):
            shape.append(contentsOf: try e.t(v).shape)
        case .literal(let i):
            // A literal index must lie in the dim (negative counts from the end).
            if case .fixed(let n) = x.shape[ax], i < -Int64(n) || i >= Int64(n) {
                throw fail("take", "index \(i) is out of range for size \(n) (axis \(ax) of \(text(x.shape)))")
            }
        }
        shape.append(contentsOf: x.shape[(ax + 1)...])
        return TensorType(x.dtype, shape)
    }

    /// The broadcast of `shapes` (all of one rank) in every dim but `axis`, which is left as 1.
    static func broadcastOffAxis(_ shapes: [[Dim]], axis: Int, _ op: String) throws -> [Dim] {
        var common = shapes[0]
        common[axis] = .fixed(1)
        for s in shapes {
            var t = s
            t[axis] = .fixed(1)
            do { common = try broadcast(common, t, op) } catch {
                throw fail(op, "shapes \(shapes.map(text).joined(separator: " and ")) do not broadcast outside axis \(axis)")
            }
        }
        return common
    }

    /// MLX take_along_axis: x and indices broadcast except along the axis, which has the indices' size.
    static func takeAlongAxis(_ o: TakeAlongAxisOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), indices = try e.t(o.indices)
        let ax = try axis(o.axis, rank: x.rank, "take_along_axis")
        guard indices.rank == x.rank else {
            throw fail("take_along_axis", "indices \(text(indices.shape)) and input \(text(x.shape)) differ in rank")
        }
        var shape = try broadcastOffAxis([x.shape, indices.shape], axis: ax, "take_along_axis")
        shape[ax] = indices.shape[ax]
        return TensorType(x.dtype, shape)
    }

    /// MLX gather: the index arrays broadcast to B; the result is B + slice_sizes.
    static func gather(_ o: GatherOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard o.indices.count == o.axes.count else {
            throw fail("gather", "\(o.indices.count) index arrays for \(o.axes.count) axes \(o.axes)")
        }
        guard o.sliceSizes.count == x.rank else {
            throw fail("gather", "slice sizes \(o.sliceSizes) do not match the rank of \(text(x.shape))")
        }
        var seen: [Int] = []
        for a in o.axes {
            let ax = try axis(a, rank: x.rank, "gather")
            guard !seen.contains(ax) else { throw fail("gather", "repeated axes \(o.axes)") }
            seen.append(ax)
        }
        for (d, n) in o.sliceSizes.enumerated() {
            guard n >= 0, x.shape[d].upperBound.map({ n <= $0 }) ?? true else {
                throw fail("gather", "slice sizes \(o.sliceSizes) do not fit in \(text(x.shape))")
            }
        }
        var batch: [Dim] = []
        for v in o.indices { batch = try broadcast(batch, try e.t(v).shape, "gather") }
        return TensorType(x.dtype, batch + o.sliceSizes.map { .fixed($0) })
    }

    /// MLX scatter_add_axis: updates (leading 1s dropped) broadcast with the indices, then with x off
    /// the axis; the result is x broadcast off the axis.
    static func scatterAdd(_ o: ScatterAddOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), indices = try e.t(o.indices), updates = try e.t(o.updates)
        let ax = try axis(o.axis, rank: x.rank, "scatter_add")
        guard indices.rank == x.rank else {
            throw fail("scatter_add", "indices \(text(indices.shape)) and input \(text(x.shape)) differ in rank")
        }
        var upd = updates.shape
        if upd.count > indices.rank {
            let lead = upd.count - indices.rank
            guard upd[..<lead].allSatisfy({ canBe($0, 1) }) else {
                throw fail("scatter_add", "updates \(text(updates.shape)) have more dims than indices \(text(indices.shape))")
            }
            upd = Array(upd[lead...])
        }
        let shared = try broadcast(indices.shape, upd, "scatter_add")
        var shape = try broadcastOffAxis([x.shape, shared], axis: ax, "scatter_add")
        shape[ax] = x.shape[ax]
        return TensorType(x.dtype, shape)
    }

    /// dst with a slice along an axis replaced by `update` (broadcast to the slice).
    static func sliceUpdate(_ o: SliceUpdateOp, _ e: Env) throws -> TensorType {
        let dst = try e.t(o.dst), update = try e.t(o.update)
        guard o.step >= 1 else { throw fail("slice_update", "step must be >= 1, got \(o.step)") }
        if let a = e.int(o.axis).exact {
            let ax = try axis(a, rank: dst.rank, "slice_update")
            var slice = dst.shape
            slice[ax] = try sliceDim(dst.shape[ax], o.start, o.stop, step: o.step, e, "slice_update")
            if slice[ax] != .fixed(0) && !broadcasts(update.shape, to: slice) {
                throw fail("slice_update", "update \(text(update.shape)) does not broadcast to the slice \(text(slice)) of \(text(dst.shape)) (axis \(ax))")
            }
        }
        return dst
    }

    /// dst with the slices at 1-D `indices` along an axis replaced by those of `update`.
    static func indexCopy(_ o: IndexCopyOp, _ e: Env) throws -> TensorType {
        let dst = try e.t(o.dst), update = try e.t(o.update), indices = try e.t(o.indices)
        let ax = try axis(o.axis, rank: dst.rank, "index_copy")
        guard indices.rank == 1 else { throw fail("index_copy", "indices must be 1-D, got \(text(indices.shape))") }
        guard update.rank == dst.rank, meet(update.shape[ax], indices.shape[0]) != nil else {
            throw fail("index_copy", "update \(text(update.shape)) does not match \(text(indices.shape)) indices into \(text(dst.shape)) along axis \(ax)")
        }
        var target = dst.shape
        target[ax] = indices.shape[0]
        guard broadcasts(update.shape, to: target) else {
            throw fail("index_copy", "update \(text(update.shape)) does not fit \(text(dst.shape)) off axis \(ax)")
        }
        return dst
    }

    /// PyTorch index_put: the result is x. With integer index tensors only, `values` must broadcast
    /// to the indexed shape (pre + B + post for adjacent axes, else B + the other dims).
    static func indexPut(_ o: IndexPutOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard o.indices.count == o.indexAxes.count, !o.indices.isEmpty else {
            throw fail("index_put", "\(o.indices.count) index tensors for axes \(o.indexAxes)")
        }
        var axes: [Int] = [], batch: [Dim] = [], masks = false
        for (v, a) in zip(o.indices, o.indexAxes) {
            let ax = try axis(a, rank: x.rank, "index_put")
            let t = try e.t(v)
            if t.dtype == .bool { masks = true; continue }
            guard !axes.contains(ax) else { throw fail("index_put", "repeated axes \(o.indexAxes)") }
            axes.append(ax)
            do { batch = try broadcast(batch, t.shape, "index_put") } catch {
                throw fail("index_put", "index shapes \(o.indices.map { e.typeOf($0).map { text($0.shape) } ?? "?" }) do not broadcast")
            }
        }
        if !masks, let values = e.typeOf(o.values) {
            let rest = (0..<x.rank).filter { !axes.contains($0) }
            let adjacent = axes == Array(axes[0]..<(axes[0] + axes.count))
            let pre = adjacent ? rest.filter { $0 < axes[0] } : []
            let post = adjacent ? rest.filter { $0 > axes[0] } : rest
            let indexed = pre.map { x.shape[$0] } + batch + post.map { x.shape[$0] }
            guard broadcasts(values.shape, to: indexed) else {
                throw fail("index_put", "values \(text(values.shape)) do not broadcast to the indexed shape \(text(indexed)) of \(text(x.shape))")
            }
        }
        return x
    }

    static func copyInto(_ o: CopyIntoOp, _ e: Env) throws -> TensorType {
        let dst = try e.t(o.dst), src = try e.t(o.src)
        guard broadcasts(src.shape, to: dst.shape) else {
            throw fail("copy_into", "source \(text(src.shape)) does not broadcast to destination \(text(dst.shape))")
        }
        return dst
    }
}
