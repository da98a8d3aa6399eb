import MLXCIR

/// A run-time int as a constant plus integer multiples of terms, read through `add_int`,
/// `subtract_int`, literals and `sym_size`: two ints with equal forms are equal on every call.
/// A term is a size shape inference names (`sym_size(k, 2)` and `sym_size(v, 2)` meet when k and v
/// have one token count), `x mod n` of a form, or any other value as itself.
struct ScalarForm: Hashable {
    indirect enum Term: Hashable {
        case size(DimIdentities.Size)
        case mod(ScalarForm, Int)
        case value(ValueID)
    }

    var terms: [Term: Int] = [:]
    var constant = 0

    init(constant: Int = 0) { self.constant = constant }
    init(_ term: Term) { terms = [term: 1] }

    /// The constant this form always is, if it has no terms.
    var fixed: Int? { terms.isEmpty ? constant : nil }

    static func + (a: ScalarForm, b: ScalarForm) -> ScalarForm {
        var r = a
        r.constant += b.constant
        for (t, k) in b.terms { r.terms[t, default: 0] += k; if r.terms[t] == 0 { r.terms[t] = nil } }
        return r
    }

    static prefix func - (a: ScalarForm) -> ScalarForm {
        var r = ScalarForm(constant: -a.constant)
        r.terms = a.terms.mapValues { -$0 }
        return r
    }

    static func - (a: ScalarForm, b: ScalarForm) -> ScalarForm { a + -b }
}

/// Computes `ScalarForm`s of one graph's run-time ints.
struct ScalarForms {
    let graph: Graph
    let ids: DimIdentities
    /// The op defining each value of the block.
    let producers: [ValueID: Op]

    init(_ graph: Graph, block: Int) {
        self.graph = graph
        ids = ShapeInference.dimIdentities(graph)
        var p: [ValueID: Op] = [:]
        for node in graph.blocks[block].nodes { for r in node.op.results { p[r] = node.op } }
        producers = p
    }

    func form(_ x: IntOrValue, depth: Int = 0) -> ScalarForm {
        switch x {
        case .literal(let n): return ScalarForm(constant: Int(n))
        case .value(let v): return form(v, depth: depth)
        }
    }

    func form(_ v: ValueID, depth: Int = 0) -> ScalarForm {
        guard graph.values.indices.contains(v.index) else { return ScalarForm(.value(v)) }   // made after the forms
        if case .constant(.literal(let xs)) = graph[v].kind, xs.count == 1, let n = Int(exactly: xs[0]) { return ScalarForm(constant: n) }
        if depth < 32, let op = producers[v] {
            switch op {
            case .addInt(let o): return form(o.a, depth: depth + 1) + form(o.b, depth: depth + 1)
            case .subtractInt(let o): return form(o.a, depth: depth + 1) - form(o.b, depth: depth + 1)
            case .symSize(let o): if let s = dim(o.a, o.dim) { return s }
            case .modInt(let o):
                if case .literal(let n) = o.b, n > 0 { return ScalarForm(.mod(form(o.a, depth: depth + 1), Int(n))) }
            default: break
            }
        }
        switch ids.size(ofScalar: v) {
        case .fixed(let n)?: return ScalarForm(constant: n)
        case let s?: return ScalarForm(.size(s))
        case nil: return ScalarForm(.value(v))
        }
    }

    /// Dim `axis` of `x` as a form (nil for an unknown type).
    func dim(_ x: ValueID, _ axis: Int) -> ScalarForm? {
        switch ids.size(x, axis: axis) {
        case .fixed(let n)?: return ScalarForm(constant: n)
        case let s?: return ScalarForm(.size(s))
        case nil: return nil
        }
    }
}
