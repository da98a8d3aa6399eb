/// Layout ops: reshape, transpose, slicing, joining and splitting, padding, tiling.
extension ShapeRules {
    /// `⌈count / divisor⌉ ... ⌊count / divisor⌋` for a size that times `divisor` gives `count`.
    static func quotient(_ count: Bounds, _ divisor: Bounds) -> Bounds {
        let lo: Int
        if let c = count.lo, let d = divisor.hi, d > 0 { lo = -Bounds.floorDiv(-c, d) } else { lo = 0 }
        var hi: Int? = nil
        if let c = count.hi, let d = divisor.lo, d > 0 { hi = c / d }
        return Bounds(Swift.max(lo, 0), hi)
    }

    /// reshape: one `-1` takes the remaining size; the element count must not change.
    static func reshape(_ o: ReshapeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        // A run-time entry that is one of x's run-time dims (the same sym_size) keeps that dim and
        // cancels out of the count: [1, T, 64] → [1, T, -1, 16] has 4 heads, not ?1..4·T.
        var matched: [Int: Int] = [:]
        if let same = e.sameSize {
            for (i, s) in o.shape.enumerated() {
                guard case .value(let v) = s, e.int(s).exact == nil else { continue }
                if let a = x.shape.indices.first(where: { a in x.shape[a].fixedValue == nil && !matched.values.contains(a) && same(v, o.x, a) }) {
                    matched[i] = a
                }
            }
        }
        let cancelled = Set(matched.values)
        let total = count(x.shape.indices.filter { !cancelled.contains($0) }.map { x.shape[$0] })
        var shape: [Dim] = []
        shape.reserveCapacity(o.shape.count)
        var hole = -1, unknown = -1, unknownCount = 0
        var known = Bounds.exactly(1)
        for (i, s) in o.shape.enumerated() {
            if let a = matched[i] {
                shape.append(x.shape[a])
                continue
            }
            let b = e.int(s)
            if let n = b.exact {
                if n == -1 {
                    guard hole < 0 else { throw fail("reshape", "invalid shape \(o.shape) (two -1) for \(text(x.shape))") }
                    hole = i
                    shape.append(.fixed(0))
                    continue
                }
                guard n >= 0 else { throw fail("reshape", "invalid shape \(o.shape) for \(text(x.shape))") }
                shape.append(.fixed(n))
                known = known * .exactly(n)
            } else {
                // A run-time size, possibly -1 unless its bounds say otherwise.
                unknown = i
                unknownCount += 1
                shape.append(.fixed(0))
            }
        }
        if unknownCount == 0 {
            if hole >= 0 {
                if let k = known.exact, let n = total.exact {
                    guard k > 0, n % k == 0 else {
                        throw fail("reshape", "cannot infer -1 in \(o.shape) for \(n) elements of \(text(x.shape))")
                    }
                    shape[hole] = .fixed(n / k)
                } else {
                    if known.exact == 0 { throw fail("reshape", "cannot infer -1 in \(o.shape) for the elements of \(text(x.shape))") }
                    shape[hole] = quotient(total, known).dim
                }
            } else if let k = known.exact, let n = total.exact, k != n {
                throw fail("reshape", "\(text(x.shape)) cannot become \(o.shape)")
            } else if !known.overlaps(total) {
                throw fail("reshape", "\(text(x.shape)) cannot become \(o.shape)")
            }
            return TensorType(x.dtype, shape)
        }
        if unknownCount == 1 && hole < 0 {
            // The one run-time entry is a size or -1: either way it is what makes the count match.
            var d = quotient(total, known)
            let b = e.int(o.shape[unknown])
            if (b.lo ?? -1) >= 0, let r = d.intersection(b) { d = r }
            shape[unknown] = d.dim
            return TensorType(x.dtype, shape)
        }
        // Several run-time entries. With a literal -1 none of them can be -1 too: each is its own
        // size, and the -1 is the element count divided by all the others. Without one, an entry
        // that may be -1 is at most the element count.
        var others = known
        for (i, s) in o.shape.enumerated() where i != hole && e.int(s).exact == nil && matched[i] == nil { others = others * Bounds(e.int(s).dim) }
        for i in shape.indices where matched[i] == nil && (i == hole || e.int(o.shape[i]).exact == nil) {
            if i == hole {
                shape[i] = quotient(total, others).dim
                continue
            }
            let b = e.int(o.shape[i])
            let isSize = hole >= 0 || (b.lo ?? -1) >= 0
            if let t = total.lo, t >= 1 {
                // A non-empty tensor: every size lies in 1...count.
                let range = Bounds(1, total.hi)
                shape[i] = (isSize ? b.intersection(range) ?? range : range).dim
            } else if isSize {
                shape[i] = b.dim
            } else {
                shape[i] = Bounds(0, b.hi != nil && total.hi != nil ? Swift.max(b.hi!, total.hi!) : nil).dim
            }
        }
        return TensorType(x.dtype, shape)
    }

    static func transpose(_ o: TransposeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        var shape: [Dim] = []
        shape.reserveCapacity(x.rank)
        var seen = 0 as UInt64
        for p in o.perm {
            let a = try axis(p, rank: x.rank, "transpose")
            if a < 64 { seen |= 1 << UInt64(a) }
            shape.append(x.shape[a])
        }
        guard o.perm.count == x.rank, x.rank > 64 || seen.nonzeroBitCount == x.rank else {
            throw fail("transpose", "\(o.perm) is not a permutation of the dims of \(text(x.shape))")
        }
        return TensorType(x.dtype, shape)
    }

    static func expandDims(_ o: ExpandDimsOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        var shape = x.shape
        shape.insert(.fixed(1), at: try insertionAxis(o.axis, rank: x.rank, "expand_dims"))
        return TensorType(x.dtype, shape)
    }

    /// squeeze: no dims → every dim of size 1; listed dims go only if their size is 1 (PyTorch).
    /// A dynamic dim that may or may not be 1 leaves the rank unknown.
    static func squeeze(_ o: SqueezeOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        var drop = [Bool](repeating: o.dims.isEmpty, count: x.rank)
        if !o.dims.isEmpty { for d in o.dims { drop[try axis(d, rank: x.rank, "squeeze")] = true } }
        var shape: [Dim] = []
        shape.reserveCapacity(x.rank)
        for (i, d) in x.shape.enumerated() {
            if drop[i] {
                if d == .fixed(1) { continue }
                if canBe(d, 1) { throw Unknown() }
            }
            shape.append(d)
        }
        return TensorType(x.dtype, shape)
    }

    /// broadcast_to: -1 keeps the input's size (dims aligned from the right); x must broadcast to the target.
    static func broadcastTo(_ o: BroadcastToOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let offset = o.shape.count - x.rank
        var shape: [Dim] = []
        shape.reserveCapacity(o.shape.count)
        for (i, s) in o.shape.enumerated() {
            let b = e.int(s)
            let own: Dim? = i - offset >= 0 ? x.shape[i - offset] : nil
            if let n = b.exact {
                if n == -1 {
                    guard let own else {
                        throw fail("broadcast_to", "-1 at position \(i) of \(o.shape) has no matching dim in \(text(x.shape))")
                    }
                    shape.append(own)
                } else {
                    guard n >= 0 else { throw fail("broadcast_to", "invalid shape \(o.shape)") }
                    shape.append(.fixed(n))
                }
            } else if (b.lo ?? -1) >= 0 || own == nil {
                shape.append(b.dim)
            } else {
                shape.append(hull(own!, b.dim))
            }
            // A target dim must equal an input dim that is not 1.
            if let own, !canBe(own, 1) {
                guard let m = meet(own, shape[i]) else {
                    throw fail("broadcast_to", "\(text(x.shape)) does not broadcast to \(o.shape)")
                }
                shape[i] = m
            }
        }
        guard broadcasts(x.shape, to: shape) else {
            throw fail("broadcast_to", "\(text(x.shape)) does not broadcast to \(text(shape))")
        }
        return TensorType(x.dtype, shape)
    }

    /// Python slicing of a dim of size n: start, count (Layout.sliceRange).
    @inline(__always)
    static func sliceCount(size n: Int, start: Int, stop: Int, step: Int) -> Int {
        var s = start, e = stop
        if s < 0 { s = s > Int.min / 2 ? s + n : -1 }
        if e < 0 { e = e > Int.min / 2 ? e + n : -1 }
        if step > 0 {
            s = Swift.min(Swift.max(s, 0), n)
            e = Swift.min(Swift.max(e, 0), n)
            return e > s ? (e - s + step - 1) / step : 0
        } else {
            s = Swift.min(Swift.max(s, -1), n - 1)
            e = Swift.min(Swift.max(e, -1), n - 1)
            return s > e ? (s - e + (-step) - 1) / (-step) : 0
        }
    }

    /// The size of `start:stop:step` of a dim: exact when everything is, else bounds.
    static func sliceDim(_ size: Dim, _ startField: IntOrValue, _ stopField: IntOrValue, step: Int, _ e: Env, _ op: String) throws -> Dim {
        guard step != 0 else { throw fail(op, "step must not be 0") }
        let start = e.int(startField), stop = e.int(stopField)
        if let a = start.exact, let b = stop.exact {
            if case .fixed(let n) = size { return .fixed(sliceCount(size: n, start: a, stop: b, step: step)) }
            let r = Bounds(size)
            if let lo = r.lo, let hi = r.hi, hi - lo <= 4096 {
                var least = Int.max, most = 0
                for n in lo...hi {
                    let c = sliceCount(size: n, start: a, stop: b, step: step)
                    least = Swift.min(least, c)
                    most = Swift.max(most, c)
                }
                return Bounds(least, most).dim
            }
        }
        var hi = size.upperBound
        // A forward slice with stop ≥ start has at most ⌈(stop − start) / step⌉ elements (wrapping a
        // negative start or stop, and clamping, only shorten it), as has one between non-negative bounds.
        let span = e.span(startField, stopField)
        var most: Int? = nil
        if step > 0, let l = span.lo, l >= 0, let h = span.hi { most = h }
        if step > 0, let a = start.lo, a >= 0, let b = stop.hi, b >= 0 { most = Swift.min(most ?? Int.max, Swift.max(b - a, 0)) }
        if let m = most {
            let c = (m + step - 1) / step
            hi = hi.map { Swift.min($0, c) } ?? c
        }
        return Bounds(0, hi).dim
    }

    static func slice(_ o: SliceOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard let a = e.int(o.axis).exact else {
            // Some dim is sliced: each may shrink.
            guard x.rank > 0 else { throw fail("slice", "axis is out of range for rank 0") }
            guard o.step != 0 else { throw fail("slice", "step must not be 0") }
            return TensorType(x.dtype, x.shape.map { Bounds(0, $0.upperBound).dim })
        }
        let ax = try axis(a, rank: x.rank, "slice")
        var shape = x.shape
        shape[ax] = try sliceDim(x.shape[ax], o.start, o.stop, step: o.step, e, "slice")
        return TensorType(x.dtype, shape)
    }

    static func concatenate(_ o: ConcatenateOp, _ e: Env) throws -> TensorType {
        guard let firstID = o.tensors.first else { throw fail("concatenate", "no tensors") }
        let first = try e.t(firstID)
        let ax = try axis(o.axis, rank: first.rank, "concatenate")
        var shape = first.shape, dtype = first.dtype
        var along = Bounds(first.shape[ax])
        for v in o.tensors.dropFirst() {
            let p = try e.t(v)
            guard p.rank == first.rank else { throw concatMismatch(o, e, ax) }
            for d in 0..<p.rank where d != ax {
                guard let m = meet(shape[d], p.shape[d]) else { throw concatMismatch(o, e, ax) }
                shape[d] = m
            }
            along = along + Bounds(p.shape[ax])
            dtype = promote(dtype, p.dtype)
        }
        shape[ax] = along.dim
        return TensorType(dtype, shape)
    }

    @inline(never)
    static func concatMismatch(_ o: ConcatenateOp, _ e: Env, _ axis: Int) -> IRError {
        let shapes = o.tensors.map { e.typeOf($0).map { text($0.shape) } ?? "?" }.joined(separator: ", ")
        return fail("concatenate", "shapes \(shapes) differ off axis \(axis)")
    }

    /// split: one size is a chunk size (the last chunk may be shorter); several are the part sizes,
    /// which must add up to the dim. The parts must be as many as the results.
    static func split(_ o: SplitOp, _ e: Env) throws -> [TensorType?] {
        let x = try e.t(o.x)
        let ax = try axis(o.axis, rank: x.rank, "split")
        let n = x.shape[ax]
        var parts: [Dim] = []
        if o.sizes.count == 1 {
            let chunk = e.int(o.sizes[0])
            if let c = chunk.exact {
                guard c > 0 else { throw fail("split", "chunk size must be positive, got \(c)") }
                if case .fixed(let size) = n {
                    parts = [Dim](repeating: .fixed(c), count: size / c)
                    if size % c != 0 { parts.append(.fixed(size % c)) }
                    if size == 0 { parts = [.fixed(0)] }
                } else {
                    // As many full chunks as results but one, then the rest (1...c elements).
                    let k = o.outs.count
                    guard k > 0 else { throw fail("split", "no outputs for \(text(x.shape)) along axis \(ax)") }
                    let rest = Bounds(n) - Bounds.exactly((k - 1) * c)
                    let last = rest.intersection(Bounds(k > 1 ? 1 : 0, c)) ?? Bounds(k > 1 ? 1 : 0, c)
                    parts = [Dim](repeating: .fixed(c), count: k - 1) + [last.dim]
                }
            } else {
                parts = [Dim](repeating: Bounds(0, n.upperBound).dim, count: o.outs.count)
            }
        } else {
            var total = Bounds.exactly(0)
            for s in o.sizes {
                let d = try size(e.int(s), "split", "sizes \(o.sizes)")
                parts.append(d)
                total = total + Bounds(d)
            }
            if let t = total.exact, case .fixed(let size) = n, t != size {
                throw fail("split", "sizes \(o.sizes) do not add up to dim \(ax) of \(text(x.shape))")
            }
            if !total.overlaps(Bounds(n)) {
                throw fail("split", "sizes \(o.sizes) do not add up to dim \(ax) of \(text(x.shape))")
            }
        }
        guard parts.count == o.outs.count else {
            throw fail("split", "\(text(x.shape)) along axis \(ax) into sizes \(o.sizes) gives \(parts.count) parts, op has \(o.outs.count) outputs")
        }
        return parts.map { d in
            var shape = x.shape
            shape[ax] = d
            return TensorType(x.dtype, shape)
        }
    }

    static func stack(_ o: StackOp, _ e: Env) throws -> TensorType {
        guard let firstID = o.tensors.first else { throw fail("stack", "no tensors") }
        let first = try e.t(firstID)
        var shape = first.shape, dtype = first.dtype
        for v in o.tensors.dropFirst() {
            let p = try e.t(v)
            var same = p.rank == first.rank
            if same {
                for d in 0..<p.rank {
                    guard let m = meet(shape[d], p.shape[d]) else { same = false; break }
                    shape[d] = m
                }
            }
            guard same else {
                let shapes = o.tensors.map { e.typeOf($0).map { text($0.shape) } ?? "?" }.joined(separator: ", ")
                throw fail("stack", "shapes differ, \(shapes)")
            }
            dtype = promote(dtype, p.dtype)
        }
        shape.insert(.fixed(o.tensors.count), at: try insertionAxis(o.axis, rank: first.rank, "stack"))
        return TensorType(dtype, shape)
    }

    /// NumPy tile: reps shorter than the rank are padded with leading 1s, longer ones add leading dims.
    static func tile(_ o: TileOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let rank = Swift.max(x.rank, o.reps.count)
        var shape: [Dim] = []
        shape.reserveCapacity(rank)
        for d in 0..<rank {
            let i = d - (rank - o.reps.count), j = d - (rank - x.rank)
            let r = i >= 0 ? try size(e.int(o.reps[i]), "tile", "reps \(o.reps)") : .fixed(1)
            let n = j >= 0 ? x.shape[j] : .fixed(1)
            shape.append((Bounds(r) * Bounds(n)).dim)
        }
        return TensorType(x.dtype, shape)
    }

    /// NumPy repeat with one count along an axis.
    static func repeatOp(_ o: RepeatOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        let ax = try axis(o.axis, rank: x.rank, "repeat")
        let r = e.int(o.repeats)
        if let n = r.exact, n < 0 { throw fail("repeat", "repeats must be non-negative, got \(n)") }
        var shape = x.shape
        shape[ax] = (Bounds(x.shape[ax]) * Bounds(r.dim)).dim
        return TensorType(x.dtype, shape)
    }

    /// pad with (before, after) pairs for every dim; mode "constant" or "edge".
    static func pad(_ o: PadOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard o.padWidth.count == 2 * x.rank else {
            throw fail("pad", "pad widths \(o.padWidth) do not give a (before, after) pair for each dim of \(text(x.shape))")
        }
        guard o.mode == "constant" || o.mode == "edge" else { throw fail("pad", "unsupported mode \"\(o.mode)\" (constant or edge)") }
        var shape = x.shape
        for d in 0..<x.rank {
            let before = e.int(o.padWidth[2 * d]), after = e.int(o.padWidth[2 * d + 1])
            for w in [before, after] {
                if let n = w.exact, n < 0 { throw fail("pad", "negative pad width \(n) in \(o.padWidth) for \(text(x.shape))") }
            }
            shape[d] = (Bounds(x.shape[d]) + Bounds(before.dim) + Bounds(after.dim)).dim
        }
        return TensorType(x.dtype, shape)
    }

    static func flip(_ o: FlipOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        var seen: [Int] = []
        for a in o.axes {
            let ax = try axis(a, rank: x.rank, "flip")
            guard !seen.contains(ax) else { throw fail("flip", "axis \(a) repeated in \(o.axes)") }
            seen.append(ax)
        }
        return x
    }

    static func roll(_ o: RollOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard o.shift.count >= o.axes.count else { throw fail("roll", "\(o.shift.count) shifts for \(o.axes.count) axes \(o.axes)") }
        for a in o.axes { _ = try axis(a, rank: x.rank, "roll") }
        return x
    }

    static func asStrided(_ o: AsStridedOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x)
        guard o.shape.count == o.strides.count else {
            throw fail("as_strided", "shape \(o.shape) and strides \(o.strides) do not match")
        }
        var shape: [Dim] = []
        for s in o.shape { shape.append(try size(e.int(s), "as_strided", "shape \(o.shape)")) }
        // The view must stay inside x's elements (checked when everything is known).
        if let sizes = TensorType(x.dtype, shape).staticShape, let count = count(x.shape).exact, sizes.reduce(1, *) > 0 {
            var lo = o.offset, hi = o.offset
            for (n, st) in zip(sizes, o.strides) {
                guard let stride = e.int(st).exact else { return TensorType(x.dtype, shape) }
                let (span, overflow) = (n - 1).multipliedReportingOverflow(by: stride)
                guard !overflow else { throw fail("as_strided", "view \(sizes) with strides \(o.strides) overflows") }
                if span < 0 { lo += span } else { hi += span }
            }
            guard lo >= 0 && hi < count else {
                throw fail("as_strided", "view \(sizes) with strides \(o.strides) at offset \(o.offset) reaches elements \(lo)...\(hi) of \(count)")
            }
        }
        return TensorType(x.dtype, shape)
    }

    static func triangle(_ name: String, _ v: ValueID, _ e: Env) throws -> TensorType {
        let x = try e.t(v)
        guard x.rank >= 2 else { throw fail(name, "needs at least 2 dims, got \(text(x.shape))") }
        return x
    }
}
