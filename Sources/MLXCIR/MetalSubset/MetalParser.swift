/// Recursive-descent parser of a Metal kernel body (the `source` MLX wraps into a kernel function) into
/// `MetalStmt`s; C's operator precedence. `typeNames` adds the kernel's dtype template parameters as type names.
public struct MetalParser {
    public static let scalarTypeNames: Set<String> = [
        "bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "size_t", "int8_t", "uint8_t", "int16_t",
        "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t", "half", "float", "bfloat", "bfloat16_t", "auto",
    ]
    /// Qualifiers that change nothing on a CPU thread.
    static let ignoredQualifiers: Set<String> = ["const", "constexpr", "thread", "metal::thread"]
    /// Constructs outside the subset, named when met.
    static let refusedWords: [String: String] = [
        "threadgroup": "threadgroup memory", "device": "device pointers declared in the body", "constant": "constant address space declarations",
        "atomic": "atomics", "atomic_int": "atomics", "atomic_uint": "atomics", "atomic_float": "atomics", "goto": "goto",
        "switch": "switch statements", "do": "do-while loops", "struct": "struct declarations", "template": "templates",
        "typedef": "typedef", "using": "using declarations", "static": "static variables",
    ]

    var tokens: [MetalToken]
    var at = 0
    /// Nesting of expressions and statements, bounded (a hostile source must not exhaust the stack).
    var depth = 0
    static let maxDepth = 256

    mutating func nest() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth) levels") }
    }

    static func unqualified(_ name: String) -> String { name.hasPrefix("metal::") ? String(name.dropFirst(7)) : name }
    let typeNames: Set<String>

    public static func parse(_ source: String, typeNames: Set<String> = []) throws -> [MetalStmt] {
        var p = MetalParser(tokens: try MetalLexer.tokens(source), typeNames: scalarTypeNames.union(typeNames))
        var body: [MetalStmt] = []
        while p.peek.kind != .end { body.append(try p.statement()) }
        return body
    }

    init(tokens: [MetalToken], typeNames: Set<String>) {
        self.tokens = tokens
        self.typeNames = typeNames
    }

    var peek: MetalToken { tokens[at] }
    func peek(_ k: Int) -> MetalToken { tokens[min(at + k, tokens.count - 1)] }
    mutating func next() -> MetalToken { let t = tokens[at]; if at < tokens.count - 1 { at += 1 }; return t }
    func fail(_ what: String) -> MetalSubsetError { MetalSubsetError("line \(peek.line): \(what) (at '\(peek.text)')") }
    mutating func accept(_ text: String) -> Bool {
        if peek.text == text && peek.kind != .end { at += 1; return true }
        return false
    }
    mutating func expect(_ text: String) throws {
        guard accept(text) else { throw fail("'\(text)' expected") }
    }

    func isTypeName(_ t: MetalToken) -> Bool {
        t.kind == .identifier && (typeNames.contains(t.text) || typeNames.contains(Self.unqualified(t.text)))
    }

    /// A declaration starts here: qualifiers then a type name then an identifier.
    func startsDeclaration() -> Bool {
        var k = 0
        while Self.ignoredQualifiers.contains(peek(k).text) { k += 1 }
        return isTypeName(peek(k)) && peek(k + 1).kind == .identifier
    }

    mutating func statement() throws -> MetalStmt {
        try nest()
        defer { depth -= 1 }
        let t = peek
        if t.kind == .identifier, let what = Self.refusedWords[t.text] { throw fail("\(what) are outside the supported Metal subset") }
        if accept(";") { return .block([]) }
        if accept("{") {
            var body: [MetalStmt] = []
            while !accept("}") {
                guard peek.kind != .end else { throw fail("'}' expected") }
                body.append(try statement())
            }
            return .block(body)
        }
        if accept("if") {
            try expect("(")
            let c = try expression()
            try expect(")")
            let then = try statement()
            return .ifElse(c, then, accept("else") ? try statement() : nil)
        }
        if accept("for") {
            try expect("(")
            let initial: MetalStmt? = peek.text == ";" ? nil : try simpleStatement()
            try expect(";")
            let condition: MetalExpr? = peek.text == ";" ? nil : try expression()
            try expect(";")
            let step: MetalStmt? = peek.text == ")" ? nil : try simpleStatement()
            try expect(")")
            return .forLoop(initial: initial, condition: condition, step: step, body: try statement())
        }
        if accept("while") {
            try expect("(")
            let c = try expression()
            try expect(")")
            return .whileLoop(c, try statement())
        }
        if accept("return") {
            guard accept(";") else { throw fail("a kernel returns no value") }
            return .returnStmt
        }
        if accept("break") { try expect(";"); return .breakStmt }
        if accept("continue") { try expect(";"); return .continueStmt }
        let s = try simpleStatement()
        try expect(";")
        return s
    }

    /// A declaration, an assignment (`=`, `op=`, `++`, `--`) or an expression, without its `;`.
    mutating func simpleStatement() throws -> MetalStmt {
        if startsDeclaration() {
            while Self.ignoredQualifiers.contains(peek.text) { _ = next() }
            let type = Self.unqualified(next().text)
            var names: [(String, MetalExpr?)] = []
            repeat {
                let name = next()
                guard name.kind == .identifier else { throw fail("a name expected") }
                if peek.text == "[" { throw fail("arrays declared in the body (thread-local arrays) are outside the supported Metal subset") }
                names.append((name.text, accept("=") ? try conditional() : nil))
            } while accept(",")
            return .declare(type: type, names)
        }
        if peek.text == "++" || peek.text == "--" {
            let op = next().text
            return .assign(target: try unary(), op: op == "++" ? "+" : "-", value: .int(1, unsigned: false))
        }
        let target = try expression()
        if peek.text == "++" || peek.text == "--" {
            let op = next().text
            return .assign(target: target, op: op == "++" ? "+" : "-", value: .int(1, unsigned: false))
        }
        for op in ["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="] where peek.text == op {
            _ = next()
            return .assign(target: target, op: String(op.dropLast()), value: try expression())
        }
        return .expression(target)
    }

    mutating func expression() throws -> MetalExpr {
        let e = try conditional()
        if peek.text == "," { throw fail("the comma operator is outside the supported Metal subset") }
        if ["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=", "++", "--"].contains(peek.text) && peek.kind == .punct {
            return e   // the statement parser takes the assignment
        }
        return e
    }

    mutating func conditional() throws -> MetalExpr {
        let c = try binary(0)
        guard accept("?") else { return c }
        let a = try conditional()
        try expect(":")
        return .conditional(c, a, try conditional())
    }

    static let precedence: [[String]] = [["||"], ["&&"], ["|"], ["^"], ["&"], ["==", "!="], ["<", ">", "<=", ">="], ["<<", ">>"],
                                          ["+", "-"], ["*", "/", "%"]]

    mutating func binary(_ level: Int) throws -> MetalExpr {
        guard level < Self.precedence.count else { return try unary() }
        var lhs = try binary(level + 1)
        while peek.kind == .punct, Self.precedence[level].contains(peek.text) {
            let op = next().text
            lhs = .binary(op, lhs, try binary(level + 1))
        }
        return lhs
    }

    mutating func unary() throws -> MetalExpr {
        try nest()
        defer { depth -= 1 }
        if peek.kind == .punct, ["-", "+", "!", "~"].contains(peek.text) {
            let op = next().text
            return .unary(op, try unary())
        }
        if peek.text == "++" || peek.text == "--" { throw fail("increments inside expressions are outside the supported Metal subset") }
        if peek.text == "*" || peek.text == "&" { throw fail("pointer operations are outside the supported Metal subset") }
        // (T) x
        if peek.text == "(" {
            var k = 1
            while Self.ignoredQualifiers.contains(peek(k).text) { k += 1 }
            if isTypeName(peek(k)) && peek(k + 1).text == ")" {
                at += k
                let type = Self.unqualified(next().text)
                try expect(")")
                return .cast(type, try unary())
            }
        }
        return try postfix()
    }

    mutating func postfix() throws -> MetalExpr {
        var e = try primary()
        while true {
            if accept("[") {
                let i = try expression()
                try expect("]")
                e = .index(e, i)
            } else if accept(".") {
                let m = next()
                guard m.kind == .identifier else { throw fail("a member name expected") }
                e = .member(e, m.text)
            } else if peek.text == "->" {
                throw fail("pointer operations are outside the supported Metal subset")
            } else {
                return e
            }
        }
    }

    mutating func primary() throws -> MetalExpr {
        let t = next()
        switch t.kind {
        case .number: return try Self.number(t)
        case .identifier:
            if t.text == "true" || t.text == "false" { return .bool(t.text == "true") }
            if let what = Self.refusedWords[t.text] { at -= 1; throw fail("\(what) are outside the supported Metal subset") }
            if t.text == "static_cast" {
                try expect("<")
                let type = next()
                guard isTypeName(type) else { throw fail("a type expected") }
                try expect(">")
                try expect("(")
                let x = try expression()
                try expect(")")
                return .cast(Self.unqualified(type.text), x)
            }
            if isTypeName(t) {
                try expect("(")
                let x = try expression()
                try expect(")")
                return .cast(Self.unqualified(t.text), x)
            }
            if peek.text == "<" && t.text.contains("::") == false && peek(1).kind == .identifier && isTypeName(peek(1)) && peek(2).text == ">" {
                throw fail("template function calls are outside the supported Metal subset")
            }
            if accept("(") {
                var args: [MetalExpr] = []
                if !accept(")") {
                    repeat { args.append(try conditional()) } while accept(",")
                    try expect(")")
                }
                return .call(t.text, args)
            }
            return .name(t.text)
        case .punct:
            if t.text == "(" {
                let e = try expression()
                try expect(")")
                return e
            }
            at -= 1
            throw fail("an expression expected")
        case .end:
            at -= 1
            throw fail("an expression expected")
        }
    }

    static func number(_ t: MetalToken) throws -> MetalExpr {
        var text = t.text.lowercased()
        let isHex = text.hasPrefix("0x")
        if !isHex && (text.contains(".") || text.contains("e") || text.hasSuffix("f") || text.hasSuffix("h")) {
            let half = text.hasSuffix("h")
            while let last = text.last, "fh".contains(last) { text.removeLast() }
            guard let v = Double(text) else { throw MetalSubsetError("line \(t.line): bad number '\(t.text)'") }
            return .float(v, half: half)
        }
        var unsigned = false
        while let last = text.last, "ul".contains(last) {
            if last == "u" { unsigned = true }
            text.removeLast()
        }
        let value = isHex ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let v = value else { throw MetalSubsetError("line \(t.line): bad number '\(t.text)'") }
        // A decimal literal beyond Int32 is long (C++), beyond Int64 unrepresentable here.
        guard v <= UInt64(Int64.max) else { throw MetalSubsetError("line \(t.line): number '\(t.text)' out of range") }
        return .int(Int64(v), unsigned: unsigned)
    }
}
