import MLXCIR

/// What the attention matcher knows about one dimension: a fixed size, or "the run-time value of
/// this symbolic int" (`%2 = sym_size(…)`, as reshape and broadcast targets name the query length).
/// Dynamic dims in types carry only bounds, so two `?1..32` dims are not known to be equal; the
/// symbol a shape attribute names is what ties them together.
enum AttentionExtent: Equatable {
    case fixed(Int)
    case symbol(ValueID)

    /// A reshape/broadcast target entry; nil for -1 (inferred) and other negatives.
    init?(_ entry: IntOrValue) {
        switch entry {
        case .literal(let n): guard n >= 0 else { return nil }; self = .fixed(Int(n))
        case .value(let v): self = .symbol(v)
        }
    }
}

extension AttentionMatcher {
    /// A target shape attribute that spells exactly `want`.
    func target(_ entries: [IntOrValue], is want: [AttentionExtent]) -> Bool {
        entries.count == want.count && zip(entries, want).allSatisfy { AttentionExtent($0) == $1 }
    }

    /// `v` has shape `want` whenever the graph runs without a shape error, given that `v` is read by
    /// a reshape to a shape of `want`'s element count or by a broadcast to `want` (every use here is
    /// one of those): fixed extents are the type's, and for a symbolic extent `v`'s dim is provably
    /// at least the symbol (`atLeast`). A reshape keeps the element count, so dims that are each ≥
    /// their target are equal to it; a broadcast's input dim is 1 or the target, so ≥ means equal.
    func holds(_ v: ValueID, _ want: [AttentionExtent]) -> Bool {
        guard let t = graph.type(v), t.rank == want.count else { return false }
        return want.enumerated().allSatisfy { axis, extent in
            switch extent {
            case .fixed(let n): return t.shape[axis] == .fixed(n)
            case .symbol(let s): return atLeast(v, axis, s)
            }
        }
    }

    /// `v`'s dim `axis` is at least the run-time value of `s` in every run without a shape error:
    /// it was set to `s` by a reshape/broadcast/full target, and shape-preserving or broadcasting
    /// ops (elementwise, transpose, softmax, rope, norms, concatenate, slices of other axes) only keep
    /// or grow it.
    func atLeast(_ v: ValueID, _ axis: Int, _ s: ValueID, depth: Int = 0) -> Bool {
        guard depth < 32, let rank = graph.type(v)?.rank, axis >= 0, axis < rank, let op = op(v) else { return false }
        func named(_ shape: [IntOrValue]) -> Bool { shape.count == rank && shape[axis] == .value(s) }
        func same(_ x: ValueID) -> Bool { atLeast(x, axis, s, depth: depth + 1) }
        /// Some operand of a broadcasting elementwise op, aligned from the right.
        func anyOf(_ xs: [ValueID]) -> Bool {
            xs.contains { x in
                guard let r = graph.type(x)?.rank, axis - (rank - r) >= 0 else { return false }
                return atLeast(x, axis - (rank - r), s, depth: depth + 1)
            }
        }
        switch op {
        case .reshape(let o): return named(o.shape)
        case .broadcastTo(let o): return named(o.shape)
        case .full(let o): return named(o.shape)
        case .transpose(let o):
            guard o.perm.count == rank else { return false }
            let p = o.perm[axis] < 0 ? o.perm[axis] + rank : o.perm[axis]
            return atLeast(o.x, p, s, depth: depth + 1)
        case .idCopy(let o): return same(o.x)
        case .softmax(let o): return same(o.x)
        case .logicalNot(let o): return same(o.x)
        case .fullLike(let o): return same(o.x)
        case .asType(let o): return same(o.x)
        case .rope(let o): return same(o.x)
        case .ropeTable(let o): return same(o.x)
        case .rmsNorm(let o): return same(o.x)
        case .layerNorm(let o): return same(o.x)
        case .add(let o): return anyOf([o.a, o.b])
        case .subtract(let o): return anyOf([o.a, o.b])
        case .multiply(let o): return anyOf([o.a, o.b])
        case .where(let o): return anyOf([o.condition, o.x, o.y])
        case .concatenate(let o): return anyOf(o.tensors)   // the joined axis only grows
        case .slice(let o):
            guard case .literal(let a) = o.axis, Int(a) != axis, Int(a) + rank != axis else { return false }
            return same(o.x)
        default: return false
        }
    }
}
