/// Types for every value of a graph, by `ShapeRules` in symbolic mode, walked in program order:
/// the init block, then main, descending into control-flow bodies where their op stands.
///
/// Inputs, constants and state keep their declared types. Run-time ints are tracked as bounds
/// (`ShapeRules.Bounds`): exact for int literals, a dim's range for `sym_size`, interval arithmetic
/// through the scalar ops; everything else (an `item_int` of a tensor, say) is unknown. So
/// `reshape(x, [1, %n, 64])` with `%n = sym_size(input, 1)` gets the input's `?1..32` for that dim.
///
/// Computed values flow by their inferred type (the declared one where the rules give none): the
/// reference executor ignores the declared shapes of computed values, so the inferred type is what
/// a run produces. A value written in both branches of an `if` gets the join of the two. State is
/// read with its declared type until an op writes it, then with the written type.
public enum ShapeInference {
    public struct Inference: Sendable {
        /// Every value's type as inference sees it (indexed by value number; nil where unknown).
        public var types: [TensorType?]
        /// What is known of every int scalar (nil where nothing is).
        public var bounds: [ShapeRules.Bounds?]
        /// Declared types that disagree with the inferred ones, ops whose operands cannot go
        /// together, branches that write different types to one value.
        public var warnings: [String]
    }

    /// Fills in the type of every computed value that has none. Declared types stay as they are;
    /// where one disagrees with the inferred type (a different dtype or rank, a fixed dim that
    /// differs, dynamic bounds that cannot hold), a warning says so.
    @discardableResult
    public static func annotate(_ graph: inout Graph) -> [String] {
        let result = infer(graph)
        for i in graph.values.indices where graph.values[i].type == nil {
            if case .computed = graph.values[i].kind { graph.values[i].type = result.types[i] }
        }
        return result.warnings
    }

    /// The types and scalar bounds of every value, without changing the graph.
    public static func infer(_ graph: Graph) -> Inference {
        var walker = Walker(graph: graph)
        if let i = graph.initBlock { walker.walk(i) }
        walker.walk(0)
        return Inference(types: walker.types, bounds: walker.bounds, warnings: walker.warnings)
    }

    /// True if a value of one type can never be a value of the other: dtype or rank differ, or
    /// some dim pair has no size in common.
    public static func conflicts(_ a: TensorType, _ b: TensorType) -> Bool {
        guard a.dtype == b.dtype, a.rank == b.rank else { return true }
        return zip(a.shape, b.shape).contains { !ShapeRules.Bounds($0).overlaps(ShapeRules.Bounds($1)) }
    }

    /// The first dim where `declared` gives a range (a dynamic dim) that leaves out sizes the
    /// inferred dim allows, if any: the importer claims bounds the operands do not justify.
    public static func narrowerRange(_ declared: TensorType, _ inferred: TensorType) -> Int? {
        for (i, (d, t)) in zip(declared.shape, inferred.shape).enumerated() {
            guard case .dynamic(let lo, let hi) = d else { continue }
            let r = ShapeRules.Bounds(t)
            // A size of 0 is one inference cannot rule out where the importer can (export ranges
            // start at 1 or 2), so only a lower bound of at least 1 counts.
            if let tl = r.lo, tl >= 1, tl < lo { return i }
            if let hi, r.hi.map({ $0 > hi }) ?? true { return i }
        }
        return nil
    }

    /// The type of a value that is one or the other (nil if dtype or rank differ).
    public static func join(_ a: TensorType, _ b: TensorType) -> TensorType? {
        guard a.dtype == b.dtype, a.rank == b.rank else { return nil }
        return TensorType(a.dtype, zip(a.shape, b.shape).map { ShapeRules.hull($0, $1) })
    }

    struct Walker {
        typealias Bounds = ShapeRules.Bounds
        let graph: Graph
        var types: [TensorType?]
        var bounds: [Bounds?]
        var warnings: [String] = []
        var defined: [Bool]
        var visited = Set<Int>()
        /// Int scalars as `base + offset` (base another scalar, offset a range), so that `a − b`
        /// is known for two scalars of one base (a slice's `start` and `start + n`).
        var affine: [Int: (base: ValueID, offset: Bounds)] = [:]
        /// Which run-time dims and int scalars are equal (ShapeInference+DimSymbols.swift).
        var dimSymbols: [Int: [DimSymbol?]] = [:]
        var scalarSymbols: [Int: DimSymbol] = [:]

        init(graph: Graph) {
            self.graph = graph
            types = graph.values.map { info in
                if case .computed = info.kind { return nil }
                return info.type
            }
            bounds = graph.values.map { info in
                guard case .constant(.literal(let xs)) = info.kind, xs.count == 1 else { return nil }
                return Walker.integral(xs[0]).map(Bounds.exactly)
            }
            defined = [Bool](repeating: false, count: graph.values.count)
        }

        static func integral(_ x: Double) -> Int? {
            guard x.isFinite, x == x.rounded(), Swift.abs(x) < 9.2e18 else { return nil }
            return Int(x)
        }

        func type(_ v: ValueID) -> TensorType? {
            guard types.indices.contains(v.index) else { return nil }
            return types[v.index] ?? graph.values[v.index].type
        }

        func scalar(_ v: ValueID) -> Bounds? {
            guard bounds.indices.contains(v.index) else { return nil }
            return bounds[v.index]
        }

        func int(_ x: IntOrValue) -> Bounds {
            switch x {
            case .literal(let n): return .exactly(Int(n))
            case .value(let v): return scalar(v) ?? .unknown
            }
        }

        mutating func walk(_ b: Int) {
            guard graph.blocks.indices.contains(b), visited.insert(b).inserted else { return }
            let block = graph.blocks[b]
            for (n, node) in block.nodes.enumerated() {
                let op = node.op
                for body in op.referencedBlocks { walk(body) }
                let results = op.results
                guard !results.isEmpty else { continue }
                let place = "\(block.name) node \(n) (\(op.name))"
                var inferred: [TensorType?]
                do {
                    inferred = try ShapeRules.resultTypes(of: op, type: { type($0) }, scalarBounds: { scalar($0) },
                                                          difference: { difference($0, $1) }, sameSize: { sameSize($0, $1, $2) })
                } catch {
                    warnings.append("\(place): \(error)")
                    inferred = [TensorType?](repeating: nil, count: results.count)
                }
                let scalarResult = results.count == 1 ? scalarBounds(op) : nil
                for (r, t) in zip(results, inferred) {
                    guard graph.values.indices.contains(r.index) else { continue }
                    let first = !defined[r.index]
                    record(r, t, scalarResult, place)
                    if results.count == 1, first, case .computed = graph.values[r.index].kind { affine[r.index] = affineForm(op) }
                    else { affine[r.index] = nil }
                }
                // Main and init values are defined once; a body's may be written by both branches.
                if b == 0 || b == graph.initBlock { trackSymbols(op) }
            }
        }

        /// Stores the inferred type of result `r`, checking it against the declared one.
        mutating func record(_ r: ValueID, _ t: TensorType?, _ b: Bounds?, _ place: String) {
            let info = graph.values[r.index]
            if let declared = info.type, let t {
                if ShapeInference.conflicts(declared, t) {
                    warnings.append("\(r) (\(place)): declared \(declared) but inferred \(t)")
                } else if let d = ShapeInference.narrowerRange(declared, t) {
                    warnings.append("\(r) (\(place)): declared \(declared) but inferred \(t): dim \(d) may be outside the declared range")
                }
            }
            guard case .computed = info.kind else {
                // State: later reads see what was written (the reference replaces the buffer).
                bounds[r.index] = nil
                types[r.index] = t ?? info.type
                return
            }
            if defined[r.index] {
                // Written again (the other branch of an `if`): either write may be the value.
                if let old = bounds[r.index], let b { bounds[r.index] = old.hull(b) } else { bounds[r.index] = nil }
                guard let old = types[r.index], let t else {
                    if let known = types[r.index] ?? t {
                        warnings.append("\(r) (\(place)): written as \(known) and as a value of unknown type")
                    }
                    types[r.index] = nil
                    return
                }
                guard let joined = ShapeInference.join(old, t) else {
                    warnings.append("\(r) (\(place)): written as \(old) and as \(t)")
                    types[r.index] = nil
                    return
                }
                types[r.index] = joined
            } else {
                defined[r.index] = true
                types[r.index] = t ?? info.type
                bounds[r.index] = b
            }
        }

        /// `v` as base + offset.
        func form(_ v: ValueID) -> (base: ValueID, offset: Bounds) { affine[v.index] ?? (v, .exactly(0)) }

        /// What is known of `a − b` from their forms (nil unless they share a base).
        func difference(_ a: ValueID, _ b: ValueID) -> Bounds? {
            let x = form(a), y = form(b)
            return x.base == y.base ? x.offset - y.offset : nil
        }

        /// The form of an int scalar that adds or subtracts a bounded amount to another.
        func affineForm(_ op: Op) -> (base: ValueID, offset: Bounds)? {
            func finite(_ b: Bounds) -> Bool { b.lo != nil && b.hi != nil }
            func shifted(_ x: IntOrValue, by amount: Bounds) -> (base: ValueID, offset: Bounds)? {
                guard case .value(let v) = x, finite(amount) else { return nil }
                let f = form(v)
                return (f.base, f.offset + amount)
            }
            switch op {
            case .addInt(let o): return shifted(o.a, by: int(o.b)) ?? shifted(o.b, by: int(o.a))
            case .subtractInt(let o): return shifted(o.a, by: -int(o.b))
            case .idCopy(let o): return affine[o.x.index]
            case .scalarMath(let o) where o.args.count == 2 && (o.kind == "add" || o.kind == "sub"):
                let rhs = scalar(o.args[1]) ?? .unknown
                if o.kind == "sub" { return shifted(.value(o.args[0]), by: -rhs) }
                return shifted(.value(o.args[0]), by: rhs) ?? shifted(.value(o.args[1]), by: scalar(o.args[0]) ?? .unknown)
            default: return nil
            }
        }

        /// Bounds of an int scalar an op computes.
        func scalarBounds(_ op: Op) -> Bounds? {
            switch op {
            case .symSize(let o):
                guard let t = type(o.a) else { return nil }
                let d = o.dim < 0 ? o.dim + t.rank : o.dim
                return t.shape.indices.contains(d) ? Bounds(t.shape[d]) : nil
            case .addInt(let o): return int(o.a) + int(o.b)
            case .subtractInt(let o): return int(o.a) - int(o.b)
            case .multiplyInt(let o): return int(o.a) * int(o.b)
            case .floorDivideInt(let o): return int(o.a).floorDivided(by: int(o.b))
            case .modInt(let o): return int(o.a).remainder(int(o.b))
            case .itemInt(let o): return scalar(o.x)
            case .idCopy(let o): return scalar(o.x)
            case .contiguous(let o): return scalar(o.x)
            case .asType(let o):
                guard ShapeRules.kind(o.scalarType) != .float, let t = type(o.x), ShapeRules.kind(t.dtype) != .float else { return nil }
                return scalar(o.x)
            case .full(let o):
                guard o.shape.allSatisfy({ int($0).exact == 1 }), case .literal(let x) = o.v else { return nil }
                return Walker.integral(x).map(Bounds.exactly)
            case .scalarMath(let o):
                let xs = o.args.map { scalar($0) ?? .unknown }
                let isInt = o.args.allSatisfy { type($0).map { ShapeRules.kind($0.dtype) != .float } ?? false }
                switch (o.kind, xs.count) {
                case ("numel", 1): return type(o.args[0]).map { ShapeRules.count($0.shape) }
                case ("sym_int", 1) where isInt, ("ceil", 1) where isInt, ("round", 1) where isInt, ("trunc", 1) where isInt:
                    return xs[0]
                case ("neg", 1) where isInt: return -xs[0]
                case ("add", 2) where isInt: return xs[0] + xs[1]
                case ("sub", 2) where isInt: return xs[0] - xs[1]
                case ("mul", 2) where isInt: return xs[0] * xs[1]
                case ("floordiv", 2) where isInt: return xs[0].floorDivided(by: xs[1])
                case ("mod", 2) where isInt: return xs[0].remainder(xs[1])
                case ("sym_max", 2) where isInt: return Bounds.maximum(xs[0], xs[1])
                case ("sym_min", 2) where isInt: return Bounds.minimum(xs[0], xs[1])
                case ("sym_ite", 3):
                    if let c = xs[0].exact { return c != 0 ? scalar(o.args[1]) : scalar(o.args[2]) }
                    guard let a = scalar(o.args[1]), let b = scalar(o.args[2]) else { return nil }
                    return a.hull(b)
                default: return nil
                }
            default: return nil
            }
        }
    }
}
