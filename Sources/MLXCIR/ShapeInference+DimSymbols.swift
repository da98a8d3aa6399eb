/// Which run-time dims are equal, for shape inference: bounds alone cannot say that a reshape's
/// `%n = sym_size(input, 1)` is the very T of the tensor it reshapes (both are `?1..63`), so
/// `[1, T, 64] → [1, %n, -1, 16]` would get `?1..252` heads instead of 4.
///
/// Every run-time dim gets a symbol: two dims (or a dim and an int scalar) with one symbol are
/// equal on every call. A dim nothing ties to another is its own symbol (value, axis). Symbols
/// flow from operands to results only where the op keeps a dim as it is: elementwise ops (a dim
/// of the result is its operands' dim where all that are not a fixed 1 agree), transposes,
/// expand_dims, the other axes of slices/concatenations/splits, gathers' index dims, matmul and sdpa rows,
/// reshape entries that are such scalars, `arange(0, n)`, RoPE; `sym_size` makes a scalar of a dim's
/// symbol. Anything else starts fresh symbols, which only costs precision.
enum DimSymbol: Hashable {
    case dim(value: Int, axis: Int)
}

extension ShapeInference.Walker {
    /// The symbol of dim `axis` of `v` (nil for a fixed dim or an unknown type).
    func symbol(_ v: ValueID, _ axis: Int) -> DimSymbol? {
        guard let t = type(v), t.shape.indices.contains(axis), t.shape[axis].fixedValue == nil else { return nil }
        if let s = dimSymbols[v.index], s.indices.contains(axis), let sym = s[axis] { return sym }
        return .dim(value: v.index, axis: axis)
    }

    /// The symbol of a run-time int that is some dim's size.
    func scalarSymbol(_ x: IntOrValue) -> DimSymbol? {
        if case .value(let v) = x { return scalarSymbols[v.index] }
        return nil
    }

    /// The run-time int `n` equals dim `axis` of `x`.
    func sameSize(_ n: ValueID, _ x: ValueID, _ axis: Int) -> Bool {
        guard let s = scalarSymbols[n.index] else { return false }
        return symbol(x, axis) == s
    }

    /// Records the symbols of `op`'s results (after their types are known).
    mutating func trackSymbols(_ op: Op) {
        let results = op.results
        guard results.count >= 1 else { return }
        if results.count == 1, let s = resultScalarSymbol(op) { scalarSymbols[results[0].index] = s }
        for (i, r) in results.enumerated() {
            guard let t = type(r), t.shape.contains(where: { $0.fixedValue == nil }) else { continue }
            var syms = resultDims(op, result: i, rank: t.rank)
            // A symbol only on a dim that is run-time in the result.
            for a in syms.indices where t.shape[a].fixedValue != nil { syms[a] = nil }
            if syms.contains(where: { $0 != nil }) { dimSymbols[r.index] = syms } else { dimSymbols[r.index] = nil }
        }
    }

    func resultScalarSymbol(_ op: Op) -> DimSymbol? {
        switch op {
        case .symSize(let o):
            guard let t = type(o.a) else { return nil }
            return symbol(o.a, o.dim < 0 ? o.dim + t.rank : o.dim)
        case .idCopy(let o): return scalarSymbols[o.x.index]
        case .contiguous(let o): return scalarSymbols[o.x.index]
        case .itemInt(let o): return scalarSymbols[o.x.index]
        case .asType(let o):
            guard ShapeRules.kind(o.scalarType) != .float else { return nil }
            return scalarSymbols[o.x.index]
        case .full(let o):
            guard o.shape.isEmpty else { return nil }
            if case .value(let v) = o.v, let t = type(v), ShapeRules.kind(t.dtype) != .float,
               ShapeRules.kind(o.scalarType) != .float { return scalarSymbols[v.index] }
            return nil
        default:
            return nil
        }
    }

    /// The symbols of result `result`'s dims (rank `rank`); nil entries are fresh.
    func resultDims(_ op: Op, result: Int, rank: Int) -> [DimSymbol?] {
        var out = [DimSymbol?](repeating: nil, count: rank)
        func all(_ v: ValueID) -> [DimSymbol?] { (0..<(type(v)?.rank ?? 0)).map { symbol(v, $0) } }
        func norm(_ axis: Int, _ r: Int) -> Int { axis < 0 ? axis + r : axis }
        switch op {
        case .transpose(let o):
            let xs = all(o.x)
            guard o.perm.count == rank, xs.count == rank else { return out }
            for (i, p) in o.perm.enumerated() where xs.indices.contains(norm(p, rank)) { out[i] = xs[norm(p, rank)] }
        case .expandDims(let o):
            var xs = all(o.x)
            let a = norm(o.axis, rank)
            guard xs.count + 1 == rank, a >= 0, a <= xs.count else { return out }
            xs.insert(nil, at: a)
            out = xs
        case .reshape(let o):
            guard o.shape.count == rank else { return out }
            for (i, s) in o.shape.enumerated() { out[i] = scalarSymbol(s) }
        case .slice(let o):
            guard case .literal(let a) = o.axis else { return out }
            out = all(o.x)
            if out.count == rank, out.indices.contains(norm(Int(a), rank)) { out[norm(Int(a), rank)] = nil } else { out = .init(repeating: nil, count: rank) }
        case .concatenate(let o):
            let a = norm(o.axis, rank)
            for i in 0..<rank where i != a { out[i] = agreed(o.tensors.map { symbol($0, i) }, fixedOnes: false) }
        case .split(let o):
            out = all(o.x)
            let a = norm(o.axis, rank)
            if out.count == rank, out.indices.contains(a) { out[a] = nil } else { out = .init(repeating: nil, count: rank) }
        case .take(let o):
            guard case .value(let idx) = o.index, let xt = type(o.x), let it = type(idx) else { return out }
            let a = norm(o.axis, xt.rank), xs = all(o.x)
            // The axis is checked by the shape rule, which may have failed (a typed result in IR text).
            guard xs.indices.contains(a) else { return out }
            let dims = Array(xs[..<a]) + all(idx) + Array(xs[(a + 1)...])
            if dims.count == rank, it.rank >= 0 { out = dims }
        case .addmm(let o):
            guard let m = type(o.mat1), let n = type(o.mat2), m.rank == rank, n.rank == 2 else { return out }
            out = Array(all(o.mat1).dropLast()) + [symbol(o.mat2, 1)]
        case .sdpa(let o):
            // [B, Hq, T, Dv]: q's rows.
            let qs = all(o.q)
            if qs.count == rank { out = Array(qs.dropLast()) + [nil] }
        case .rope(let o): out = all(o.x)        // RoPE keeps x's shape
        case .ropeTable(let o): out = all(o.x)
        case .arange(let o):
            if case .literal(0) = o.start, case .literal(1) = o.step, rank == 1 { out[0] = scalarSymbol(o.stop) }
        default:
            guard Self.elementwise.contains(op.name) else { return out }
            // Right-aligned broadcast: the operands' dims that are not a fixed 1 must agree.
            let operands = op.operands.filter { type($0) != nil }
            for i in 0..<rank {
                out[i] = agreed(operands.map { v -> DimSymbol?? in
                    let r = type(v)!.rank, j = i - (rank - r)
                    guard j >= 0 else { return .some(nil) }
                    if type(v)!.shape[j] == .fixed(1) { return .some(nil) }
                    return .some(symbol(v, j))
                }.map { $0 ?? nil }, fixedOnes: true)
            }
        }
        return out
    }

    /// The one symbol every operand dim has (with `fixedOnes`, operands that broadcast there
    /// are skipped); nil when they differ or one is fixed.
    func agreed(_ syms: [DimSymbol?], fixedOnes: Bool) -> DimSymbol? {
        let present = syms.compactMap { $0 }
        guard let first = present.first, present.allSatisfy({ $0 == first }) else { return nil }
        return fixedOnes || present.count == syms.count ? first : nil
    }

    /// Ops whose result keeps its operands' (broadcast) shape element for element.
    static let elementwise: Set<String> = [
        "add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "remainder", "floor_divide", "atan2",
        "neg", "abs", "exp", "log", "sqrt", "rsqrt", "square", "sin", "cos", "tanh", "sigmoid", "silu", "gelu", "erf",
        "as_type", "contiguous", "id_copy", "where", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
        "bitwise_and", "bitwise_or", "logical_not", "logical_and", "logical_or", "rms_norm", "layer_norm", "softmax",
    ]
}
