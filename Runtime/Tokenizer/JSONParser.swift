import Foundation

/// A JSON object that keeps every member in file order.
///
/// Foundation's parsers store objects in `[String: Any]`, whose keys compare by canonical
/// equivalence: a vocabulary holding both "é" and "e\u{301}" would silently lose one token.
final class JSONObject {
    let members: [(key: String, value: Any)]
    private let index: [[UInt8]: Int]

    init(_ members: [(key: String, value: Any)]) {
        self.members = members
        var index: [[UInt8]: Int] = [:]
        for (i, m) in members.enumerated() { index[Array(m.key.utf8)] = i }  // the last duplicate wins
        self.index = index
    }

    subscript(key: String) -> Any? { index[Array(key.utf8)].map { members[$0].value } }
}

/// A small RFC 8259 parser producing String, Int, Double, Bool, NSNull, [Any] and JSONObject.
struct JSONParser {
    private let bytes: [UInt8]
    private var i = 0
    private var depth = 0
    private let file: String
    private static let maxDepth = 256

    static func parse(_ data: Data, file: String) throws -> Any {
        var p = JSONParser(bytes: [UInt8](data), file: file)
        if p.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { p.i = 3 }
        let value = try p.value()
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.fail("unexpected data after the top-level value") }
        return value
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    private func fail(_ message: String) -> TokenizerError {
        let before = bytes[..<min(i, bytes.count)]
        let line = before.lazy.filter { $0 == 0x0A }.count + 1
        let column = i - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
        return .malformedJSON(file: file, reason: "\(message) at line \(line), column \(column)")
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func value() throws -> Any {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of data") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): return try literal("true", true)
        case UInt8(ascii: "f"): return try literal("false", false)
        case UInt8(ascii: "n"): return try literal("null", NSNull())
        default: return try number()
        }
    }

    private mutating func literal(_ word: String, _ value: Any) throws -> Any {
        let w = Array(word.utf8)
        guard bytes.count - i >= w.count, bytes[i..<i + w.count].elementsEqual(w) else { throw fail("invalid literal") }
        i += w.count
        return value
    }

    private mutating func nest() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth) levels") }
        i += 1
    }

    private mutating func object() throws -> JSONObject {
        try nest()
        var members: [(key: String, value: Any)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return JSONObject(members)
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            members.append((key, try value()))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            guard bytes[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
            i += 1
            depth -= 1
            return JSONObject(members)
        }
    }

    private mutating func array() throws -> [Any] {
        try nest()
        var items: [Any] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            return items
        }
        while true {
            items.append(try value())
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            guard bytes[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
            i += 1
            depth -= 1
            return items
        }
    }

    private mutating func string() throws -> String {
        i += 1
        let start = i
        // Fast path: no escapes, the bytes are the string.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") {
            guard bytes[i] >= 0x20 else { throw fail("control character in string") }
            i += 1
        }
        guard i < bytes.count else { throw fail("unterminated string") }
        var out = Array(bytes[start..<i])
        while bytes[i] != UInt8(ascii: "\"") {
            if bytes[i] != UInt8(ascii: "\\") {
                guard bytes[i] >= 0x20 else { throw fail("control character in string") }
                out.append(bytes[i])
                i += 1
            } else {
                i += 1
                guard i < bytes.count else { throw fail("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out.append(contentsOf: String(try unicodeEscape()).utf8)
                default: throw fail("invalid escape")
                }
            }
            guard i < bytes.count else { throw fail("unterminated string") }
        }
        i += 1
        return String(decoding: out, as: UTF8.self)
    }

    /// After "\u": four hex digits, combining a surrogate pair; a lone surrogate becomes U+FFFD.
    private mutating func unicodeEscape() throws -> Unicode.Scalar {
        let high = try hex4()
        if (0xD800..<0xDC00).contains(high), bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
            let save = i
            i += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low) { return Unicode.Scalar(0x10000 + (high - 0xD800) << 10 + (low - 0xDC00))! }
            i = save
        }
        return Unicode.Scalar(high) ?? "\u{FFFD}"
    }

    private mutating func hex4() throws -> UInt32 {
        guard bytes.count - i >= 4 else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for b in bytes[i..<i + 4] {
            guard let d = Character(Unicode.Scalar(b)).hexDigitValue else { throw fail("invalid \\u escape") }
            v = v << 4 | UInt32(d)
        }
        i += 4
        return v
    }

    private mutating func number() throws -> Any {
        let start = i
        var integral = true
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): break
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"): integral = false
            default:
                if i == start { throw fail("unexpected character") }
                return try finishNumber(start, integral)
            }
            i += 1
        }
        return try finishNumber(start, integral)
    }

    private func finishNumber(_ start: Int, _ integral: Bool) throws -> Any {
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let v = Int(text) { return v }
        guard let v = Double(text), v.isFinite else { throw fail("invalid number \(text)") }
        return v
    }
}
