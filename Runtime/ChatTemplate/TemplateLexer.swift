import Foundation

/// One token of a template: literal text between tags, tag delimiters, and the tokens of the
/// expressions and statements inside tags. `offset` points into the normalized source.
struct TemplateToken {
    enum Kind: Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case int(Int)
        case float(Double)
        case op(String)
        case end
    }

    var kind: Kind
    var offset: Int
}

/// Splits a template into tokens as Jinja does with the settings Hugging Face renders chat
/// templates with (`trim_blocks`, `lstrip_blocks`, no trailing newline kept):
/// - `{%-`/`{{-`/`{#-` strip all whitespace before the tag, `-%}`/`-}}`/`-#}` all whitespace after;
/// - a block or comment tag alone on its line takes the line's indentation with it (unless `{%+`),
///   and the newline right after `%}` / `#}` is dropped.
struct TemplateLexer {
    let src: [Unicode.Scalar]
    let locator: SourceLocator

    /// Newlines normalized to "\n" and one trailing newline removed, as Jinja loads a template.
    init(_ source: String) {
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        src = Array(text.unicodeScalars)
        locator = SourceLocator(src)
    }

    func fail(_ message: String, at offset: Int) -> TemplateError { locator.error(.syntax, message, at: offset) }

    func starts(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s.unicodeScalars {
            guard j < src.count, src[j] == c else { return false }
            j += 1
        }
        return true
    }

    static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }

    func tokenize() throws -> [TemplateToken] {
        var tokens: [TemplateToken] = []
        var pos = 0
        var lineStarting = true
        while pos < src.count {
            // The next tag.
            var i = pos
            while i < src.count - 1, !(src[i] == "{" && (src[i + 1] == "{" || src[i + 1] == "%" || src[i + 1] == "#")) { i += 1 }
            guard i < src.count - 1 else {
                tokens.append(TemplateToken(kind: .text(String(String.UnicodeScalarView(src[pos...]))), offset: pos))
                break
            }
            let kind = src[i + 1]
            let sign: Unicode.Scalar? = i + 2 < src.count && (src[i + 2] == "-" || src[i + 2] == "+") ? src[i + 2] : nil
            var text = Array(src[pos..<i])
            if sign == "-" {
                while let last = text.last, Self.isSpace(last) { text.removeLast() }
            } else if sign != "+" && kind != "{" {
                // lstrip_blocks: indentation before a block tag that starts its line.
                let lineStart = (text.lastIndex(of: "\n") ?? -1) + 1
                if (lineStart > 0 || lineStarting) && lineStart < text.count && text[lineStart...].allSatisfy(Self.isSpace) {
                    text.removeSubrange(lineStart...)
                }
            }
            if !text.isEmpty { tokens.append(TemplateToken(kind: .text(String(String.UnicodeScalarView(text))), offset: pos)) }
            var j = i + 2 + (sign == nil ? 0 : 1)
            if kind == "#" {
                guard let close = find("#}", from: j) else { throw fail("comment not closed (missing #})", at: i) }
                let stripAll = close > j && src[close - 1] == "-"
                let keep = close > j && src[close - 1] == "+"
                j = close + 2
                let before = j
                j = skipAfterTag(j, stripAll: stripAll, trimNewline: !keep)
                lineStarting = j > before ? src[j - 1] == "\n" : false
                pos = j
                continue
            }
            let isBlock = kind == "%"
            tokens.append(TemplateToken(kind: isBlock ? .blockBegin : .variableBegin, offset: i))
            var depth: [Unicode.Scalar] = []
            while true {
                while j < src.count, Self.isSpace(src[j]) { j += 1 }
                guard j < src.count else { throw fail(isBlock ? "tag not closed (missing %})" : "expression not closed (missing }})", at: i) }
                if depth.isEmpty, let (endLength, stripAll, keep) = tagEnd(at: j, block: isBlock) {
                    tokens.append(TemplateToken(kind: isBlock ? .blockEnd : .variableEnd, offset: j))
                    j += endLength
                    let before = j
                    j = skipAfterTag(j, stripAll: stripAll, trimNewline: isBlock && !keep)
                    lineStarting = j > before ? src[j - 1] == "\n" : false
                    break
                }
                let token = try expressionToken(at: &j)
                if case .op(let o) = token.kind {
                    switch o {
                    case "(": depth.append(")")
                    case "[": depth.append("]")
                    case "{": depth.append("}")
                    case ")", "]", "}":
                        guard let want = depth.popLast(), String(want) == o else { throw fail("unexpected '\(o)'", at: token.offset) }
                    default: break
                    }
                }
                tokens.append(token)
            }
            pos = j
        }
        tokens.append(TemplateToken(kind: .end, offset: src.count))
        return tokens
    }

    func find(_ s: String, from i: Int) -> Int? {
        var j = i
        while j < src.count {
            if starts(s, at: j) { return j }
            j += 1
        }
        return nil
    }

    /// `-%}` / `+%}` / `%}` (or `}}` forms) at `j`: its length and whitespace control.
    func tagEnd(at j: Int, block: Bool) -> (Int, Bool, Bool)? {
        let close = block ? "%}" : "}}"
        if starts("-" + close, at: j) { return (3, true, false) }
        if block && starts("+" + close, at: j) { return (3, false, true) }
        if starts(close, at: j) { return (2, false, false) }
        return nil
    }

    /// After a tag: all whitespace (`-`), or the one newline trim_blocks drops.
    func skipAfterTag(_ start: Int, stripAll: Bool, trimNewline: Bool) -> Int {
        var j = start
        if stripAll {
            while j < src.count, Self.isSpace(src[j]) { j += 1 }
        } else if trimNewline, j < src.count, src[j] == "\n" {
            j += 1
        }
        return j
    }

    static let operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                            "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"]

    func expressionToken(at j: inout Int) throws -> TemplateToken {
        let start = j
        let c = src[j]
        if c == "_" || c.properties.isAlphabetic && c.isASCII {
            while j < src.count, src[j] == "_" || src[j].isASCII && (src[j].properties.isAlphabetic || ("0"..."9").contains(src[j])) { j += 1 }
            return TemplateToken(kind: .name(String(String.UnicodeScalarView(src[start..<j]))), offset: start)
        }
        if ("0"..."9").contains(c) {
            while j < src.count, ("0"..."9").contains(src[j]) || src[j] == "_" { j += 1 }
            var isFloat = false
            if j + 1 < src.count, src[j] == ".", ("0"..."9").contains(src[j + 1]) {
                isFloat = true
                j += 1
                while j < src.count, ("0"..."9").contains(src[j]) || src[j] == "_" { j += 1 }
            }
            if j < src.count, src[j] == "e" || src[j] == "E" {
                var k = j + 1
                if k < src.count, src[k] == "+" || src[k] == "-" { k += 1 }
                if k < src.count, ("0"..."9").contains(src[k]) {
                    isFloat = true
                    j = k
                    while j < src.count, ("0"..."9").contains(src[j]) { j += 1 }
                }
            }
            let digits = String(String.UnicodeScalarView(src[start..<j])).replacingOccurrences(of: "_", with: "")
            if isFloat {
                guard let d = Double(digits) else { throw fail("bad number \(digits)", at: start) }
                return TemplateToken(kind: .float(d), offset: start)
            }
            guard let n = Int(digits) else { throw fail("number \(digits) is too large", at: start) }
            return TemplateToken(kind: .int(n), offset: start)
        }
        if c == "'" || c == "\"" {
            return TemplateToken(kind: .string(try stringLiteral(at: &j)), offset: start)
        }
        for o in Self.operators where starts(o, at: j) {
            j += o.unicodeScalars.count
            return TemplateToken(kind: .op(o), offset: start)
        }
        throw fail("unexpected character '\(c)'", at: start)
    }

    /// A quoted string with Python's escapes.
    func stringLiteral(at j: inout Int) throws -> String {
        let start = j
        let quote = src[j]
        j += 1
        var out = String.UnicodeScalarView()
        while true {
            guard j < src.count else { throw fail("string not closed", at: start) }
            let c = src[j]
            if c == quote { j += 1; break }
            if c == "\\", j + 1 < src.count {
                let e = src[j + 1]
                j += 2
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                case "\\", "'", "\"": out.append(e)
                case "\n": break
                case "u", "x", "U":
                    let n = e == "x" ? 2 : e == "u" ? 4 : 8
                    guard j + n <= src.count, let v = UInt32(String(String.UnicodeScalarView(src[j..<(j + n)])), radix: 16),
                          let s = Unicode.Scalar(v) else { throw fail("bad \\\(e) escape", at: j - 2) }
                    out.append(s)
                    j += n
                default:
                    out.append("\\")
                    out.append(e)
                }
                continue
            }
            out.append(c)
            j += 1
        }
        return String(out)
    }
}
