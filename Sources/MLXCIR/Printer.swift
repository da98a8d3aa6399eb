/// The textual form of a graph. One line per declaration or op; results on the left, fields by
/// name, the result types after a colon, the file location as a trailing comment:
///
///     graph @forward
///     input %0 : i64[1, ?1..31] "tokens"
///     const %2 : f32[256, 64] = named("cbc7/tok_embeddings.weight")
///     state %3 : f32[1, 2, 64, 16] = zeros "layers.0.attention.k_cache"
///     block main {
///       %5 = take(x: %2, index: %0, axis: 0) : f32[1, ?1..31, 64]
///     }
///     outputs %57
///
/// `IRParser` reads it back. So that nothing is lost: a `value` line also declares a named op result
/// (the op line has no room for the name), an `inputs %a, %b` line follows the declarations when
/// `graph.inputs` is not simply the `input` lines in order, graph and block names that are not plain
/// words are quoted, and an origin that would not survive as a comment (a line break, a leading
/// quote) is written as a string literal.
public enum IRPrinter {
    public static func print(_ graph: Graph, origins: Bool = true) -> String {
        var out = "graph @\(formatName(graph.name))\n"
        var defined = Set<Int>()
        for block in graph.blocks { for node in block.nodes { for r in node.op.results { defined.insert(r.index) } } }
        for (i, info) in graph.values.enumerated() {
            let type = info.type?.description ?? "?"
            let name = info.name.map { " " + quoteIR($0) } ?? ""
            switch info.kind {
            case .input(let position):
                out += "input %\(i) : \(type)\(name)" + (position == graph.inputs.firstIndex(of: ValueID(i)) ? "" : " # position \(position)") + "\n"
            case .constant(let source):
                out += "const %\(i) : \(type) = \(source)\(name)\n"
            case .state(let initial):
                out += "state %\(i) : \(type) = \(initial.map(\.description) ?? "zeros")\(name)\n"
            case .computed:
                // Op results get their type on the op line; a `value` line declares the rest, and
                // carries the name of a named result (the op line has no room for it).
                if !defined.contains(i) || info.name != nil { out += "value %\(i) : \(type)\(name)\n" }
            }
        }
        // `graph.inputs` is normally the `input` lines in order; spell it out when it is not.
        let declaredInputs = graph.values.indices.filter {
            if case .input = graph.values[$0].kind { return true } else { return false }
        }.map(ValueID.init)
        if graph.inputs != declaredInputs {
            out += "inputs " + graph.inputs.map(\.description).joined(separator: ", ") + "\n"
        }
        for (b, block) in graph.blocks.enumerated() {
            out += "block \(formatName(block.name))" + (graph.initBlock == b ? " init" : "") + " {\n"
            for node in block.nodes { out += "  " + line(node, graph, origins: origins) + "\n" }
            out += "}\n"
        }
        out += "outputs " + graph.outputs.map(\.description).joined(separator: ", ") + "\n"
        return out
    }

    static func line(_ node: Node, _ graph: Graph, origins: Bool) -> String {
        let op = node.op
        let results = op.results
        let resultSet = Set(results)
        let fields = op.fields.filter { field in
            switch field.value {
            case .value(let v): return !(resultSet.contains(v) && isResultField(field.name))
            case .values(let vs): return !(isResultField(field.name) && !vs.isEmpty && vs.allSatisfy(resultSet.contains))
            default: return true
            }
        }
        var text = results.isEmpty ? "" : results.map(\.description).joined(separator: ", ") + " = "
        text += op.name + "(" + fields.map { "\($0.name): \(format($0.value))" }.joined(separator: ", ") + ")"
        if !results.isEmpty {
            let types = results.map { graph.values.indices.contains($0.index) ? (graph.values[$0.index].type?.description ?? "?") : "?" }
            text += " : " + (types.count == 1 ? types[0] : "(" + types.joined(separator: ", ") + ")")
        }
        if origins, let origin = node.origin { text += "  # " + formatOrigin(origin) }
        return text
    }

    /// An origin comment runs to the end of the line as written, unless that would not read back
    /// (a line break or other control character, or a leading quote): then it is a string literal.
    static func formatOrigin(_ origin: String) -> String {
        origin.hasPrefix("\"") || origin.unicodeScalars.contains(where: { $0.value < 0x20 }) ? quoteIR(origin) : origin
    }

    /// A graph or block name: bare when it is a plain word (`forward`, `mlx0.chain1`), else quoted.
    public static func formatName(_ name: String) -> String {
        !name.isEmpty && name.unicodeScalars.allSatisfy(isNameScalar) ? name : quoteIR(name)
    }

    static func isNameScalar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-", "$": return true
        default: return false
        }
    }

    public static func isResultField(_ name: String) -> Bool { name == "out" || name == "outs" || name == "outputs" }

    public static func format(_ a: Attribute) -> String {
        switch a {
        case .int(let n): return String(n)
        case .float(let x): return formatIRNumber(x)
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return quoteIR(s)
        case .ints(let xs): return "[" + xs.map(String.init).joined(separator: ", ") + "]"
        case .floats(let xs): return "[" + xs.map(formatIRNumber).joined(separator: ", ") + "]"
        case .strings(let xs): return "[" + xs.map(quoteIR).joined(separator: ", ") + "]"
        case .value(let v): return v.description
        case .values(let vs): return "[" + vs.map(\.description).joined(separator: ", ") + "]"
        case .intOrValue(let x): return x.description
        case .intOrValues(let xs): return "[" + xs.map(\.description).joined(separator: ", ") + "]"
        case .floatOrValue(let x): return x.description
        case .dtype(let d): return d.name
        case .dtypes(let ds): return "[" + ds.map(\.name).joined(separator: ", ") + "]"
        case .none: return "none"
        }
    }
}
