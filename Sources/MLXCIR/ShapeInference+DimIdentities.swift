/// Which run-time sizes shape inference proves equal (ShapeInference+DimSymbols.swift), for passes
/// that may only rewrite when two lengths agree on every call: a KV cache's k and v writes of one
/// token count, a slice that always spans a whole cache.
public struct DimIdentities: Sendable {
    /// A size as inference knows it: a fixed number, or a run-time size named by its symbol (two
    /// sizes with one symbol are equal on every call).
    public enum Size: Hashable, Sendable {
        case fixed(Int)
        case symbol(value: Int, axis: Int)
    }

    let types: [TensorType?]
    let bounds: [ShapeRules.Bounds?]
    let dims: [Int: [DimSymbol?]]
    let scalars: [Int: DimSymbol]

    /// `v`'s type as inference sees it.
    public func type(_ v: ValueID) -> TensorType? { types.indices.contains(v.index) ? types[v.index] : nil }

    /// Dim `axis` of `x` (negative counts from the end); nil for an unknown type.
    public func size(_ x: ValueID, axis: Int) -> Size? {
        guard types.indices.contains(x.index), let t = types[x.index] else { return nil }
        let a = axis < 0 ? axis + t.rank : axis
        guard t.shape.indices.contains(a) else { return nil }
        if let n = t.shape[a].fixedValue { return .fixed(n) }
        if let syms = dims[x.index], syms.indices.contains(a), let s = syms[a] { return Self.size(s) }
        return .symbol(value: x.index, axis: a)
    }

    /// The run-time int `n` as a size: a known constant, or the symbol of the dim it measures.
    public func size(ofScalar n: ValueID) -> Size? {
        if bounds.indices.contains(n.index), let exact = bounds[n.index]?.exact { return .fixed(exact) }
        return scalars[n.index].map(Self.size)
    }

    static func size(_ s: DimSymbol) -> Size {
        switch s { case .dim(let v, let a): return .symbol(value: v, axis: a) }
    }
}

extension ShapeInference {
    /// The size identities of every value of `graph` (main and init blocks).
    public static func dimIdentities(_ graph: Graph) -> DimIdentities {
        var walker = Walker(graph: graph)
        if let i = graph.initBlock { walker.walk(i) }
        walker.walk(0)
        let types = graph.values.indices.map { walker.type(ValueID($0)) }
        return DimIdentities(types: types, bounds: walker.bounds, dims: walker.dimSymbols, scalars: walker.scalarSymbols)
    }
}
