/// A field of an op, in the uniform form that the printer, parser and verifier share.
/// Op structs (generated from the MLX schema plus mlxc's own op schema) convert to and from it.
public enum Attribute: Hashable, Sendable {
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case ints([Int64])
    case floats([Double])
    case strings([String])
    case value(ValueID)
    case values([ValueID])
    /// An int given either as a literal or by a scalar value computed at run time.
    case intOrValue(IntOrValue)
    case intOrValues([IntOrValue])
    case floatOrValue(FloatOrValue)
    case dtype(DType)
    case dtypes([DType])
    /// Absent optional field.
    case none
}

public enum IntOrValue: Hashable, Sendable, CustomStringConvertible {
    case literal(Int64)
    case value(ValueID)
    public var description: String {
        switch self { case .literal(let n): return String(n); case .value(let v): return v.description }
    }
    public var valueID: ValueID? { if case .value(let v) = self { return v } else { return nil } }
}

public enum FloatOrValue: Hashable, Sendable, CustomStringConvertible {
    case literal(Double)
    case value(ValueID)
    public var description: String {
        switch self { case .literal(let x): return formatIRNumber(x); case .value(let v): return v.description }
    }
    public var valueID: ValueID? { if case .value(let v) = self { return v } else { return nil } }
}

/// Numbers in IR text: integers without a fraction, others in the shortest round-tripping form.
public func formatIRNumber(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x < 0 ? "-inf" : "inf" }
    if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) + ".0" }
    return String(x)
}

/// A string literal in IR text, escaped so the parser reads it back.
public func quoteIR(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += "\\u{" + String(scalar.value, radix: 16) + "}" } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
