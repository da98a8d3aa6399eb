import Foundation

/// A value in a chat template: what Jinja sees of Python's values (None, bools, ints, floats,
/// strings, lists, dicts with insertion order, namespaces, callables) and its undefined value.
/// Strings index, slice and count by Unicode scalar, as Python's do.
public indirect enum TemplateValue {
    /// A name or key that does not exist; rendering it gives "", using it further is an error.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    case dict(TemplateDict)
    case namespace(TemplateNamespace)
    case function(TemplateFunction)

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python truthiness.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let n): return n != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let xs): return !xs.isEmpty
        case .dict(let d): return !d.keys.isEmpty
        case .namespace, .function: return true
        }
    }

    /// Python's `str()` (what `{{ }}` prints); undefined prints nothing.
    public var text: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// Python's `repr()` (how lists and dicts print their items).
    public var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let n): return String(n)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s):
            let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
            var out = String(quote)
            for c in s {
                switch c {
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case "\r": out += "\\r"
                case quote: out += "\\\(quote)"
                default: out.append(c)
                }
            }
            return out + String(quote)
        case .list(let xs): return "[" + xs.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.keys.map { "'\($0)': \(d.values[$0]!.repr)" }.joined(separator: ", ") + "}"
        case .namespace(let n): return "<Namespace \(TemplateValue.dict(n.values).repr)>"
        case .function(let f): return "<function \(f.name)>"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        var s = "\(d)"
        // Swift writes 1e-05 as "1e-05" and 1.5e+20 as "1.5e+20", as Python does.
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }

    /// The type name used in error messages.
    public var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "none"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "string"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "namespace"
        case .function: return "function"
        }
    }

    /// A number as a Double (bools count as 0/1, as in Python).
    var number: Double? {
        switch self {
        case .int(let n): return Double(n)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python `==`.
    public static func equal(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { equal(x.values[$0]!, y.values[$0]!) }
        case (.namespace(let x), .namespace(let y)): return x === y
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }
}

/// A dict whose keys keep their insertion order (as Python's do, which `tojson` and `items()` show).
public struct TemplateDict {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TemplateValue] = [:]

    public init() {}

    public init(_ pairs: [(String, TemplateValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public subscript(key: String) -> TemplateValue? {
        get { values[key] }
        set {
            if let newValue {
                if values[key] == nil { keys.append(key) }
                values[key] = newValue
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// `namespace(...)`: the one mutable object a template has (a `set ns.x = …` inside a loop is
/// seen after it).
public final class TemplateNamespace {
    public var values: TemplateDict
    public init(_ values: TemplateDict) { self.values = values }
}

/// Positional and keyword arguments of a call.
public struct TemplateArguments {
    public var positional: [TemplateValue] = []
    public var keyword: [(String, TemplateValue)] = []

    /// Argument `index`, or the keyword `name`, or nil.
    public func value(_ index: Int, _ name: String) -> TemplateValue? {
        if index < positional.count { return positional[index] }
        return keyword.first { $0.0 == name }?.1
    }
}

/// A callable: a global (`range`, `namespace`, `raise_exception`), a method bound to a value
/// (`content.strip`), or a macro.
public final class TemplateFunction {
    public let name: String
    let body: (TemplateArguments) throws -> TemplateValue
    public init(_ name: String, _ body: @escaping (TemplateArguments) throws -> TemplateValue) {
        self.name = name
        self.body = body
    }
}
