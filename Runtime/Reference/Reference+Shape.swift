import MLXCIR

extension Environment {
    /// Reference kernels: Shape ops. Returns false for ops of other families.
    mutating func executeShape(_ op: Op) throws -> Bool {
        switch op {
        case .reshape(let o):
            let x = try tensor(o.x)
            set(o.out, try Layout.reshape(x, try shapeInts(o.shape)))
        case .transpose(let o):
            set(o.out, try Layout.transpose(try tensor(o.x), o.perm))
        case .expandDims(let o):
            let x = try tensor(o.x)
            let axis = try Layout.insertionAxis(o.axis, rank: x.rank, "expand_dims")
            var shape = x.shape
            shape.insert(1, at: axis)
            set(o.out, x.reshaped(shape))
        case .squeeze(let o):
            set(o.out, try Layout.squeeze(try tensor(o.x), o.dims))
        case .broadcastTo(let o):
            let x = try tensor(o.x)
            var shape = try shapeInts(o.shape)
            // -1 keeps the input's size, dims aligned from the right (PyTorch expand).
            let offset = shape.count - x.rank
            for i in shape.indices where shape[i] == -1 {
                guard i - offset >= 0 else {
                    throw ReferenceError("broadcast_to: -1 at position \(i) of \(shape) has no matching dim in \(x.shape)")
                }
                shape[i] = x.shape[i - offset]
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw ReferenceError("broadcast_to: invalid shape \(shape)") }
            set(o.out, try Broadcast.expand(x, to: shape))
        case .slice(let o):
            let x = try tensor(o.x)
            let axis = try Layout.axis(try int(o.axis), rank: x.rank, "slice")
            set(o.out, try Layout.slice(x, axis: axis, start: try int(o.start), stop: try int(o.stop), step: o.step))
        case .concatenate(let o):
            set(o.out, try Layout.concatenate(try o.tensors.map { try tensor($0) }, axis: o.axis))
        case .split(let o):
            let x = try tensor(o.x)
            let axis = try Layout.axis(o.axis, rank: x.rank, "split")
            let parts = try Layout.split(x, axis: axis, sizes: try shapeInts(o.sizes))
            guard parts.count == o.outs.count else {
                throw ReferenceError("split: \(x.shape) along axis \(axis) into sizes \(try shapeInts(o.sizes)) gives \(parts.count) parts, op has \(o.outs.count) outputs")
            }
            for (out, part) in zip(o.outs, parts) { set(out, part) }
        case .stack(let o):
            let parts = try o.tensors.map { try tensor($0) }
            guard let first = parts.first else { throw ReferenceError("stack: no tensors") }
            for p in parts where p.shape != first.shape {
                throw ReferenceError("stack: shapes differ, \(parts.map(\.shape))")
            }
            let axis = try Layout.insertionAxis(o.axis, rank: first.rank, "stack")
            var shape = first.shape
            shape.insert(1, at: axis)
            set(o.out, try Layout.concatenate(parts.map { $0.reshaped(shape) }, axis: axis))
        case .tile(let o):
            set(o.out, try Layout.tile(try tensor(o.x), reps: try shapeInts(o.reps)))
        case .repeat(let o):
            let x = try tensor(o.x)
            let axis = try Layout.axis(o.axis, rank: x.rank, "repeat")
            set(o.out, try Layout.repeatElements(x, try int(o.repeats), axis: axis))
        case .pad(let o):
            set(o.out, try Layout.pad(try tensor(o.x), widths: try shapeInts(o.padWidth), mode: o.mode, value: o.constantValue))
        case .flip(let o):
            let x = try tensor(o.x)
            var strides = x.strides, offset = 0
            var seen = Set<Int>()
            for a in o.axes {
                let axis = try Layout.axis(a, rank: x.rank, "flip")
                guard seen.insert(axis).inserted else { throw ReferenceError("flip: axis \(a) repeated in \(o.axes)") }
                if x.shape[axis] > 0 { offset += (x.shape[axis] - 1) * strides[axis] }
                strides[axis] = -strides[axis]
            }
            set(o.out, try Layout.view(x, shape: x.shape, strides: strides, offset: offset, "flip"))
        case .roll(let o):
            let x = try tensor(o.x)
            let shifts = try shapeInts(o.shift)
            guard shifts.count >= o.axes.count else {
                throw ReferenceError("roll: \(shifts.count) shifts for \(o.axes.count) axes \(o.axes)")
            }
            var r = x
            for (i, a) in o.axes.enumerated() {
                r = Layout.roll(r, shift: shifts[i], axis: try Layout.axis(a, rank: x.rank, "roll"))
            }
            set(o.out, r)
        case .asStrided(let o):
            let x = try tensor(o.x)
            let shape = try shapeInts(o.shape), strides = try shapeInts(o.strides)
            guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw ReferenceError("as_strided: shape \(shape) and strides \(strides) do not match")
            }
            set(o.out, try Layout.view(x, shape: shape, strides: strides, offset: o.offset, "as_strided"))
        case .tril(let o):
            set(o.out, try Layout.triangle(try tensor(o.x), k: o.k, lower: true))
        case .triu(let o):
            set(o.out, try Layout.triangle(try tensor(o.x), k: o.k, lower: false))
        default: return false
        }
        return true
    }

    /// A list of ints given as literals or run-time scalars.
    func shapeInts(_ xs: [IntOrValue]) throws -> [Int] { try xs.map { try int($0) } }
}

/// Layout kernels shared by the shape, indexing and linalg families: views over row-major
/// storage (every access bounds-checked up front), slicing, concatenation.
enum Layout {
    /// A possibly negative axis in [-rank, rank), normalized; the error names the op.
    static func axis(_ a: Int, rank: Int, _ op: String) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else { throw ReferenceError("\(op): axis \(a) is out of range for rank \(rank)") }
        return r
    }

    /// An axis at which a new dim is inserted: [-(rank+1), rank].
    static func insertionAxis(_ a: Int, rank: Int, _ op: String) throws -> Int {
        let r = a < 0 ? a + rank + 1 : a
        guard r >= 0 && r <= rank else { throw ReferenceError("\(op): axis \(a) is out of range for inserting into rank \(rank)") }
        return r
    }

    /// An element index along a dim of `size`: negative counts from the end; out of range throws.
    static func index(_ v: Double, size: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard v.isFinite, v == v.rounded() else { throw ReferenceError("\(what()): index \(v) is not an integer") }
        let i = Int(Int64(clampingToInt: v))
        let r = i < 0 ? i + size : i
        guard r >= 0 && r < size else { throw ReferenceError("\(what()): index \(i) is out of range for size \(size)") }
        return r
    }

    /// Visits every element of a strided view in row-major order: `body(flat, offset)`.
    @inline(__always)
    static func forEach(shape: [Int], strides: [Int], offset: Int, _ body: (Int, Int) throws -> Void) rethrows {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        let rank = shape.count
        var index = [Int](repeating: 0, count: rank)
        var at = offset
        for flat in 0..<count {
            try body(flat, at)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                at += strides[d]
                if index[d] < shape[d] { break }
                at -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// Throws unless every offset of the view lies inside `0..<count`.
    static func checkView(shape: [Int], strides: [Int], offset: Int, count: Int, _ op: String) throws {
        guard shape.reduce(1, *) > 0 else { return }
        var lo = offset, hi = offset
        for (n, s) in zip(shape, strides) {
            let (span, overflow) = (n - 1).multipliedReportingOverflow(by: s)
            guard !overflow else { throw ReferenceError("\(op): view \(shape) with strides \(strides) overflows") }
            if span < 0 { lo += span } else { hi += span }
        }
        guard lo >= 0 && hi < count else {
            throw ReferenceError("\(op): view \(shape) with strides \(strides) at offset \(offset) reaches elements \(lo)...\(hi) of \(count)")
        }
    }

    /// Materializes the strided view `shape`/`strides`/`offset` (in elements) over `x`'s flat storage.
    static func view(_ x: HostTensor, shape: [Int], strides: [Int], offset: Int, _ op: String) throws -> HostTensor {
        try checkView(shape: shape, strides: strides, offset: offset, count: x.count, op)
        var out = [Double](repeating: 0, count: shape.reduce(1, *))
        forEach(shape: shape, strides: strides, offset: offset) { flat, at in out[flat] = x.storage[at] }
        return HostTensor(dtype: x.dtype, shape: shape, storage: out)
    }

    static func reshape(_ x: HostTensor, _ requested: [Int]) throws -> HostTensor {
        var shape = requested
        let holes = shape.indices.filter { shape[$0] == -1 }
        guard holes.count <= 1, shape.allSatisfy({ $0 >= -1 }) else {
            throw ReferenceError("reshape: invalid shape \(requested) for \(x.shape)")
        }
        if let hole = holes.first {
            let known = shape.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            guard known > 0, x.count % known == 0 else {
                throw ReferenceError("reshape: cannot infer -1 in \(requested) for \(x.count) elements of \(x.shape)")
            }
            shape[hole] = x.count / known
        }
        guard shape.reduce(1, *) == x.count else { throw ReferenceError("reshape: \(x.shape) cannot become \(requested)") }
        return x.reshaped(shape)
    }

    static func transpose(_ x: HostTensor, _ perm: [Int]) throws -> HostTensor {
        let axes = try perm.map { try axis($0, rank: x.rank, "transpose") }
        guard axes.count == x.rank, Set(axes).count == x.rank else {
            throw ReferenceError("transpose: \(perm) is not a permutation of the dims of \(x.shape)")
        }
        let strides = x.strides
        return try view(x, shape: axes.map { x.shape[$0] }, strides: axes.map { strides[$0] }, offset: 0, "transpose")
    }

    static func squeeze(_ x: HostTensor, _ dims: [Int]) throws -> HostTensor {
        var drop = Set<Int>()
        if dims.isEmpty {
            drop = Set(x.shape.indices.filter { x.shape[$0] == 1 })
        } else {
            // PyTorch semantics: squeezing a dim whose size is not 1 leaves it alone.
            for d in dims {
                let a = try axis(d, rank: x.rank, "squeeze")
                if x.shape[a] == 1 { drop.insert(a) }
            }
        }
        return x.reshaped(x.shape.indices.filter { !drop.contains($0) }.map { x.shape[$0] })
    }

    /// Python slicing `start:stop:step` along `axis` (negative bounds count from the end; bounds clamp).
    static func sliceRange(size n: Int, start: Int, stop: Int, step: Int, _ op: String) throws -> (start: Int, count: Int) {
        guard step != 0 else { throw ReferenceError("\(op): step must not be 0") }
        var s = start, e = stop
        if s < 0 { s = s > Int.min / 2 ? s + n : -1 }
        if e < 0 { e = e > Int.min / 2 ? e + n : -1 }
        if step > 0 {
            s = min(max(s, 0), n)
            e = min(max(e, 0), n)
            return (s, e > s ? (e - s + step - 1) / step : 0)
        } else {
            s = min(max(s, -1), n - 1)
            e = min(max(e, -1), n - 1)
            return (s, s > e ? (s - e + (-step) - 1) / (-step) : 0)
        }
    }

    static func slice(_ x: HostTensor, axis: Int, start: Int, stop: Int, step: Int) throws -> HostTensor {
        let (s, count) = try sliceRange(size: x.shape[axis], start: start, stop: stop, step: step, "slice")
        var shape = x.shape, strides = x.strides
        shape[axis] = count
        let offset = count > 0 ? s * strides[axis] : 0
        strides[axis] *= step
        return try view(x, shape: shape, strides: strides, offset: offset, "slice")
    }

    static func concatenate(_ parts: [HostTensor], axis a: Int) throws -> HostTensor {
        guard let first = parts.first else { throw ReferenceError("concatenate: no tensors") }
        let axis = try axis(a, rank: first.rank, "concatenate")
        for p in parts {
            guard p.rank == first.rank,
                  p.shape.indices.allSatisfy({ $0 == axis || p.shape[$0] == first.shape[$0] }) else {
                throw ReferenceError("concatenate: shapes \(parts.map(\.shape)) differ off axis \(axis)")
            }
        }
        let dtype = parts.dropFirst().reduce(first.dtype) { Broadcast.promote($0, $1.dtype) }
        let outer = first.shape[..<axis].reduce(1, *)
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var out = [Double]()
        out.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for p in parts {
                let chunk = p.count / max(outer, 1)
                out.append(contentsOf: p.storage[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        return HostTensor(dtype: dtype, shape: shape, storage: out)
    }

    /// MLX delegate `SplitNode`: one size is a chunk size (the last chunk may be shorter);
    /// several are the part sizes, which must add up to the axis.
    static func split(_ x: HostTensor, axis: Int, sizes: [Int]) throws -> [HostTensor] {
        guard let parts = splitSizes(x.shape[axis], sizes) else {
            throw ReferenceError(sizes.count == 1 ? "split: chunk size must be positive, got \(sizes[0])"
                                                  : "split: sizes \(sizes) do not add up to dim \(axis) of \(x.shape)")
        }
        var start = 0
        return try parts.map { size in
            defer { start += size }
            return try slice(x, axis: axis, start: start, stop: start + size, step: 1)
        }
    }

    /// The parts' sizes when a dim of size `n` is split by `sizes`: one entry is a chunk size (the
    /// last part shorter), several are the parts' sizes, which must add up to n; nil if they cannot.
    static func splitSizes(_ n: Int, _ sizes: [Int]) -> [Int]? {
        if sizes.count == 1 {
            let chunk = sizes[0]
            guard chunk > 0 else { return nil }
            if n == 0 { return [0] }
            var parts = Array(repeating: chunk, count: n / chunk)
            if n % chunk != 0 { parts.append(n % chunk) }
            return parts
        }
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == n else { return nil }
        return sizes
    }

    /// NumPy `tile`: reps shorter than the rank are padded with leading 1s, longer ones add leading dims.
    static func tile(_ x: HostTensor, reps requested: [Int]) throws -> HostTensor {
        guard requested.allSatisfy({ $0 >= 0 }) else { throw ReferenceError("tile: negative reps \(requested)") }
        let rank = max(x.rank, requested.count)
        let reps = [Int](repeating: 1, count: rank - requested.count) + requested
        let shape = [Int](repeating: 1, count: rank - x.rank) + x.shape
        let strides = HostTensor.strides(shape)
        var viewShape: [Int] = [], viewStrides: [Int] = []
        for d in 0..<rank {
            viewShape += [reps[d], shape[d]]
            viewStrides += [0, strides[d]]
        }
        let v = try view(x.reshaped(shape), shape: viewShape, strides: viewStrides, offset: 0, "tile")
        return v.reshaped(zip(reps, shape).map { $0 * $1 })
    }

    /// NumPy `repeat` with one count: each element along `axis` appears `repeats` times in a row.
    static func repeatElements(_ x: HostTensor, _ repeats: Int, axis: Int) throws -> HostTensor {
        guard repeats >= 0 else { throw ReferenceError("repeat: repeats must be non-negative, got \(repeats)") }
        var shape = x.shape, strides = x.strides
        shape.insert(repeats, at: axis + 1)
        strides.insert(0, at: axis + 1)
        let v = try view(x, shape: shape, strides: strides, offset: 0, "repeat")
        var outShape = x.shape
        outShape[axis] *= repeats
        return v.reshaped(outShape)
    }

    /// `pad` with (before, after) pairs for every dim from the first; mode "constant" or "edge".
    static func pad(_ x: HostTensor, widths: [Int], mode: String, value: Double) throws -> HostTensor {
        guard widths.count == 2 * x.rank, widths.allSatisfy({ $0 >= 0 }) else {
            throw ReferenceError("pad: pad widths \(widths) do not give a non-negative (before, after) pair for each dim of \(x.shape)")
        }
        let before = stride(from: 0, to: widths.count, by: 2).map { widths[$0] }
        let shape = x.shape.indices.map { x.shape[$0] + widths[2 * $0] + widths[2 * $0 + 1] }
        let outStrides = HostTensor.strides(shape)
        switch mode {
        case "constant":
            var out = [Double](repeating: value, count: shape.reduce(1, *))
            let offset = zip(before, outStrides).map { $0 * $1 }.reduce(0, +)
            forEach(shape: x.shape, strides: outStrides, offset: offset) { flat, at in out[at] = x.storage[flat] }
            return HostTensor(dtype: x.dtype, shape: shape, storage: out)
        case "edge":
            if shape.reduce(1, *) > 0, x.count == 0 {
                throw ReferenceError("pad: edge padding of the empty tensor \(x.shape) to \(shape)")
            }
            let srcStrides = x.strides
            var out = [Double](repeating: 0, count: shape.reduce(1, *))
            var index = [Int](repeating: 0, count: shape.count)
            for flat in 0..<out.count {
                var src = 0
                for d in 0..<shape.count { src += min(max(index[d] - before[d], 0), x.shape[d] - 1) * srcStrides[d] }
                out[flat] = x.storage[src]
                var d = shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
            return HostTensor(dtype: x.dtype, shape: shape, storage: out)
        default:
            throw ReferenceError("pad: unsupported mode \"\(mode)\" (constant or edge)")
        }
    }

    /// `out[i] = x[(i - shift) mod n]` along `axis`.
    static func roll(_ x: HostTensor, shift: Int, axis: Int) -> HostTensor {
        let (outer, n, inner) = Broadcast.around(x.shape, axis: axis)
        guard n > 0 else { return x }
        let s = ((shift % n) + n) % n
        var out = x
        for o in 0..<outer {
            for i in 0..<n {
                let src = (i - s + n) % n
                for j in 0..<inner { out.storage[(o * n + i) * inner + j] = x.storage[(o * n + src) * inner + j] }
            }
        }
        return out
    }

    /// `tril` (keep col <= row + k) or `triu` (keep col >= row + k) over the last two dims.
    static func triangle(_ x: HostTensor, k: Int, lower: Bool) throws -> HostTensor {
        guard x.rank >= 2 else { throw ReferenceError("\(lower ? "tril" : "triu"): needs at least 2 dims, got \(x.shape)") }
        let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
        var out = x
        for flat in 0..<x.count {
            let c = flat % cols, r = (flat / cols) % rows
            let keep = lower ? c - r <= k : c - r >= k
            if !keep { out.storage[flat] = 0 }
        }
        return out
    }
}
