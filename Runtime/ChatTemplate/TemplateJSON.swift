import Foundation

/// The `tojson` filter as Hugging Face defines it for chat templates: Python's `json.dumps` with
/// `ensure_ascii=False` (non-ASCII text kept), keys in insertion order unless `sort_keys`, and
/// Python's separators (", " and ": "; "," and newlines when indented).
enum TemplateJSON {
    static func encode(_ v: TemplateValue, indent: Int?, sortKeys: Bool) throws -> String {
        var out = ""
        try write(v, indent: indent, level: 0, sortKeys: sortKeys, into: &out)
        return out
    }

    static func write(_ v: TemplateValue, indent: Int?, level: Int, sortKeys: Bool, into out: inout String) throws {
        func newline(_ depth: Int) {
            if let indent { out += "\n" + String(repeating: " ", count: indent * depth) }
        }
        let itemSeparator = indent == nil ? ", " : ","
        switch v {
        case .undefined(let n): throw TemplateFailure("tojson: '\(n)' is undefined")
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let n): out += String(n)
        case .double(let d):
            out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : TemplateValue.pythonFloat(d)
        case .string(let s): out += quoted(s)
        case .list(let xs):
            guard !xs.isEmpty else { out += "[]"; return }
            out += "["
            for (i, x) in xs.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                try write(x, indent: indent, level: level + 1, sortKeys: sortKeys, into: &out)
            }
            newline(level)
            out += "]"
        case .dict(let d):
            try writeObject(d, indent: indent, level: level, sortKeys: sortKeys, into: &out)
        case .namespace(let ns):
            try writeObject(ns.values, indent: indent, level: level, sortKeys: sortKeys, into: &out)
        case .function(let f): throw TemplateFailure("tojson: a function (\(f.name)) is not JSON")
        }
    }

    static func writeObject(_ d: TemplateDict, indent: Int?, level: Int, sortKeys: Bool, into out: inout String) throws {
        guard !d.keys.isEmpty else { out += "{}"; return }
        out += "{"
        for (i, k) in (sortKeys ? d.keys.sorted() : d.keys).enumerated() {
            if i > 0 { out += indent == nil ? ", " : "," }
            if let indent { out += "\n" + String(repeating: " ", count: indent * (level + 1)) }
            out += quoted(k) + ": "
            try write(d[k]!, indent: indent, level: level + 1, sortKeys: sortKeys, into: &out)
        }
        if let indent { out += "\n" + String(repeating: " ", count: indent * level) }
        out += "}"
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 {
                    out += String(format: "\\u%04x", c.value)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
