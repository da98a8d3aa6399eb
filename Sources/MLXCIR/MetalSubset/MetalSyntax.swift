/// The syntax of the Metal Shading Language subset that user kernels (MLX's `metal_kernel`, ExecuTorch's
/// `MetalKernelNode` with its own source) are compiled from for the CPU: a kernel body of declarations,
/// assignments, if/else, for/while loops and return, over scalar expressions — literals, names, indexing, `.x/.y/.z`
/// of the thread-position builtins, casts, calls of math builtins, the C operators and `?:`. Anything else
/// (threadgroup memory, barriers, simd-group functions, atomics, pointers, user functions, vectors beyond the
/// builtins) is refused by `MetalParser`/`MetalChecker` with one line naming the construct.
public struct MetalSubsetError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public indirect enum MetalExpr: Equatable {
    case int(Int64, unsigned: Bool)
    case float(Double, half: Bool)
    case bool(Bool)
    case name(String)
    case index(MetalExpr, MetalExpr)
    case member(MetalExpr, String)
    case call(String, [MetalExpr])
    /// `(T)x`, `T(x)`, `static_cast<T>(x)`.
    case cast(String, MetalExpr)
    case unary(String, MetalExpr)
    case binary(String, MetalExpr, MetalExpr)
    case conditional(MetalExpr, MetalExpr, MetalExpr)
}

public indirect enum MetalStmt: Equatable {
    /// `T a = e, b;` (type name as written, `auto` allowed with an initialiser).
    case declare(type: String, [(name: String, value: MetalExpr?)])
    /// `target op= value` (op "" for plain `=`); `++`/`--` are `+= 1`/`-= 1`.
    case assign(target: MetalExpr, op: String, value: MetalExpr)
    case expression(MetalExpr)
    case block([MetalStmt])
    case ifElse(MetalExpr, MetalStmt, MetalStmt?)
    case forLoop(initial: MetalStmt?, condition: MetalExpr?, step: MetalStmt?, body: MetalStmt)
    case whileLoop(MetalExpr, MetalStmt)
    case returnStmt
    case breakStmt
    case continueStmt

    public static func == (a: MetalStmt, b: MetalStmt) -> Bool { "\(a)" == "\(b)" }
}

/// Tokens: identifiers (with `::` joined in: `metal::exp`), numbers, punctuation.
struct MetalToken: Equatable {
    enum Kind { case identifier, number, punct, end }
    var kind: Kind
    var text: String
    var line: Int
}

enum MetalLexer {
    static let punctuation = ["<<=", ">>=", "::", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "++", "--", "+=", "-=", "*=",
                              "/=", "%=", "&=", "|=", "^=", "->", "+", "-", "*", "/", "%", "<", ">", "=", "!", "~", "&", "|",
                              "^", "?", ":", ";", ",", ".", "(", ")", "[", "]", "{", "}"]

    static func tokens(_ source: String) throws -> [MetalToken] {
        let chars = Array(source.unicodeScalars)
        var out: [MetalToken] = []
        var i = 0, line = 1
        func at(_ k: Int) -> Character { k < chars.count ? Character(chars[k]) : "\0" }
        while i < chars.count {
            let c = at(i)
            if c == "\n" { line += 1; i += 1; continue }
            if c.isWhitespace { i += 1; continue }
            if c == "/" && at(i + 1) == "/" {
                while i < chars.count && at(i) != "\n" { i += 1 }
                continue
            }
            if c == "/" && at(i + 1) == "*" {
                i += 2
                while i < chars.count && !(at(i) == "*" && at(i + 1) == "/") { if at(i) == "\n" { line += 1 }; i += 1 }
                i += 2
                continue
            }
            if c == "#" { throw MetalSubsetError("line \(line): preprocessor directives are not supported") }
            if c.isLetter || c == "_" {
                var j = i
                while j < chars.count && (at(j).isLetter || at(j).isNumber || at(j) == "_") { j += 1 }
                out.append(MetalToken(kind: .identifier, text: String(String.UnicodeScalarView(chars[i..<j])), line: line))
                i = j
                continue
            }
            if c.isNumber || (c == "." && at(i + 1).isNumber) {
                var j = i
                if c == "0" && (at(i + 1) == "x" || at(i + 1) == "X") {
                    j += 2
                    while at(j).isHexDigit { j += 1 }
                } else {
                    while at(j).isNumber || at(j) == "." { j += 1 }
                    if at(j) == "e" || at(j) == "E" {
                        j += 1
                        if at(j) == "+" || at(j) == "-" { j += 1 }
                        while at(j).isNumber { j += 1 }
                    }
                }
                while "uUlLfFhH".contains(at(j)) { j += 1 }
                out.append(MetalToken(kind: .number, text: String(String.UnicodeScalarView(chars[i..<j])), line: line))
                i = j
                continue
            }
            guard let p = punctuation.first(where: { p in p.unicodeScalars.enumerated().allSatisfy { at(i + $0.offset) == Character($0.element) } }) else {
                throw MetalSubsetError("line \(line): unexpected character '\(c)'")
            }
            out.append(MetalToken(kind: .punct, text: p, line: line))
            i += p.unicodeScalars.count
        }
        // Qualified names (`metal::exp`, `precise::sqrt`) as one identifier.
        var joined: [MetalToken] = []
        for t in out {
            if let last = joined.last, last.kind == .identifier, last.text.hasSuffix("::"), t.kind == .identifier {
                joined[joined.count - 1].text += t.text
            } else if t.text == "::", let last = joined.last, last.kind == .identifier {
                joined[joined.count - 1].text += "::"
            } else {
                joined.append(t)
            }
        }
        joined.append(MetalToken(kind: .end, text: "end of source", line: line))
        return joined
    }
}
