/// Reads the textual IR that `IRPrinter` writes back into a `Graph`, so that printed graphs serve
/// as test inputs and reproducers:
///
///     graph @forward
///     input %0 : i64[1, ?1..31] "tokens"
///     const %2 : f32[256, 64] = named("cbc7/tok_embeddings.weight")
///     state %3 : f32[1, 2, 64, 16] = zeros "layers.0.attention.k_cache"
///     block main {
///       %5 = take(x: %2, index: %0, axis: 0) : f32[1, ?1..31, 64]  # chain 0 instruction 3
///     }
///     outputs %57
///
/// Values keep their numbers: declarations (`input`, `const`, `state`, `value`) and op results
/// together must number them densely from `%0`. An op's results, written left of `=`, go back into
/// its result field (`out`, `outs` or `outputs`); a trailing `# …` on an op line is its origin.
/// `graph.inputs` is the `input` lines in order unless an `inputs %a, %b` line says otherwise, and
/// an input's position is its place there unless a `# position N` comment says otherwise.
///
/// Malformed text throws `IRError` naming the line and column ("line 12, col 30: expected ')'
/// after field list"). The parser never traps, whatever the input: it does not recurse, and
/// every number is range-checked.
public enum IRParser {
    public static func parse(_ text: String) throws -> Graph {
        var parser = GraphTextParser(text)
        return try parser.run()
    }
}

// MARK: - One line

/// A cursor over one line's UTF-8 bytes. Columns count Unicode scalars from 1.
private struct LineCursor {
    let line: Int
    let bytes: [UInt8]
    var pos = 0

    init(line: Int, bytes: [UInt8]) {
        self.line = line
        self.bytes = bytes
    }

    /// Keeps `count + 1` and friends far from overflow.
    static let maxValueNumber = Int(Int32.max)

    var atEnd: Bool { pos >= bytes.count }
    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    func column(_ at: Int) -> Int {
        var col = 1
        for b in bytes.prefix(max(0, at)) where b & 0xC0 != 0x80 { col += 1 }
        return col
    }

    func error(_ message: String, at: Int? = nil) -> IRError {
        IRError("line \(line), col \(column(at ?? pos)): \(message)")
    }

    /// What stands at the cursor, for "expected X, found Y" messages.
    var found: String {
        guard pos < bytes.count else { return "end of line" }
        var end = pos
        if isWordByte(bytes[pos]) || bytes[pos] == UInt8(ascii: "%") || bytes[pos] >= 0x80 {
            end += 1
            while end < bytes.count, end - pos < 24, isWordByte(bytes[end]) || bytes[end] >= 0x80 { end += 1 }
            // Do not cut a multi-byte scalar in half.
            while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
        } else {
            end += 1
        }
        let token = String(decoding: bytes[pos..<end], as: UTF8.self)
        return token.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) ? quoteIR(token) : "'\(token)'"
    }

    func expected(_ what: String) -> IRError { error("expected \(what), found \(found)") }

    mutating func skipSpaces() {
        while pos < bytes.count, bytes[pos] == UInt8(ascii: " ") || bytes[pos] == UInt8(ascii: "\t") { pos += 1 }
    }

    /// Skips spaces, then consumes `c` if it is next.
    mutating func eat(_ c: Character) -> Bool {
        skipSpaces()
        guard let a = c.asciiValue, peek == a else { return false }
        pos += 1
        return true
    }

    mutating func expect(_ c: Character, _ context: String) throws {
        guard eat(c) else { throw expected("'\(c)' \(context)") }
    }

    /// True at the end of the line or at a `#` comment (after spaces).
    mutating func atLineEnd() -> Bool {
        skipSpaces()
        return atEnd || peek == UInt8(ascii: "#")
    }

    mutating func expectLineEnd(_ context: String) throws {
        guard atLineEnd() else { throw error("unexpected \(found) \(context)") }
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, or nil (cursor unmoved) if no word starts here.
    mutating func word() -> String? {
        skipSpaces()
        guard let b = peek, isLetter(b) || b == UInt8(ascii: "_") else { return nil }
        let start = pos
        while pos < bytes.count, isWordByte(bytes[pos]) { pos += 1 }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    mutating func expectWord(_ what: String) throws -> String {
        guard let w = word() else { throw expected(what) }
        return w
    }

    /// `%N`. The caller has checked (or wants) a `%` here.
    mutating func valueRef(_ context: String) throws -> ValueID {
        skipSpaces()
        guard peek == UInt8(ascii: "%") else { throw expected("a value (%N) \(context)") }
        let start = pos
        pos += 1
        let digitsStart = pos
        while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        guard pos > digitsStart else { pos = start + 1; throw expected("a value number after '%'") }
        guard pos >= bytes.count || !isWordByte(bytes[pos]) else { throw error("invalid value name", at: start) }
        guard let n = Int(String(decoding: bytes[digitsStart..<pos], as: UTF8.self)), n <= Self.maxValueNumber else {
            throw error("value number out of range (at most %\(Self.maxValueNumber))", at: start)
        }
        return ValueID(n)
    }

    /// A decimal integer with an optional sign (digits only: `1..32` reads as `1`, then `..32`).
    mutating func integer(_ what: String) throws -> Int {
        skipSpaces()
        let start = pos
        var i = pos
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { i += 1 }
        let digitsStart = i
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        guard i > digitsStart else { throw expected(what) }
        guard i >= bytes.count || !isWordByte(bytes[i]) else {
            pos = i
            throw expected(what + " (an integer)")
        }
        guard let n = Int(String(decoding: bytes[start..<i], as: UTF8.self)) else {
            throw error("integer \(String(decoding: bytes[start..<i], as: UTF8.self)) is out of range", at: start)
        }
        pos = i
        return n
    }

    enum Number { case int(Int64), float(Double) }

    /// A number (`12`, `-3`, `1.5`, `1e-05`, `inf`, `-inf`, `nan`), or nil (cursor unmoved) if
    /// none starts here. Throws on a malformed one (`12ab`).
    mutating func numberIfPresent() throws -> Number? {
        skipSpaces()
        let start = pos
        var i = pos
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { i += 1 }
        guard i < bytes.count, isDigit(bytes[i]) || isLetter(bytes[i]) || bytes[i] == UInt8(ascii: ".") else { return nil }
        let bodyStart = i
        while i < bytes.count {
            let b = bytes[i]
            if isWordByte(b) || b == UInt8(ascii: ".") {
                i += 1
            } else if (b == UInt8(ascii: "-") || b == UInt8(ascii: "+")), i > bodyStart,
                      bytes[i - 1] == UInt8(ascii: "e") || bytes[i - 1] == UInt8(ascii: "E"), isDigit(bytes[bodyStart]) {
                i += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        let body = bytes[bodyStart..<i]
        if body.allSatisfy(isDigit) {
            guard let n = Int64(text) else { throw error("integer \(text) is out of range", at: start) }
            pos = i
            return .int(n)
        }
        let bodyText = String(decoding: body, as: UTF8.self)
        let isWordNumber = bodyText == "inf" || bodyText == "nan"
        guard isWordNumber || isDigit(bytes[bodyStart]) || bytes[bodyStart] == UInt8(ascii: ".") else {
            // A word such as `f32` or `none`: not a number at all.
            return nil
        }
        guard let x = Double(text) else { throw error("invalid number '\(text)'", at: start) }
        pos = i
        return .float(x)
    }

    /// A string literal as `quoteIR` writes it: `\"`, `\\`, `\n`, `\t` and `\u{hex}` escapes.
    mutating func string(_ what: String) throws -> String {
        skipSpaces()
        guard peek == UInt8(ascii: "\"") else { throw expected(what) }
        let start = pos
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw error("unterminated string", at: start) }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { pos += 1; break }
            if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
            let escape = pos
            pos += 1
            guard pos < bytes.count else { throw error("unterminated string", at: start) }
            switch bytes[pos] {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\"")); pos += 1
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); pos += 1
            case UInt8(ascii: "n"): out.append(0x0A); pos += 1
            case UInt8(ascii: "t"): out.append(0x09); pos += 1
            case UInt8(ascii: "u"):
                pos += 1
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "{") else { throw error("expected '{' after \\u", at: escape) }
                pos += 1
                let hexStart = pos
                while pos < bytes.count, pos - hexStart <= 8, isHexDigit(bytes[pos]) { pos += 1 }
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "}"), pos > hexStart, pos - hexStart <= 8,
                      let code = UInt32(String(decoding: bytes[hexStart..<pos], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(code) else {
                    throw error("invalid \\u{…} escape (1 to 8 hex digits naming a Unicode scalar)", at: escape)
                }
                pos += 1
                out.append(contentsOf: Array(String(scalar).utf8))
            default:
                throw error("unknown escape '\\\(String(decoding: [bytes[pos]], as: UTF8.self))' in string", at: escape)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A graph or block name: a plain word of `IRPrinter.formatName`'s characters, or a string.
    mutating func name(_ what: String) throws -> String {
        skipSpaces()
        if peek == UInt8(ascii: "\"") { return try string(what) }
        let start = pos
        while pos < bytes.count, bytes[pos] < 0x80, IRPrinter.isNameScalar(Unicode.Scalar(bytes[pos])) { pos += 1 }
        guard pos > start else { throw expected(what) }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    /// `?` or `dtype[dims]`.
    mutating func type(_ context: String) throws -> TensorType? {
        skipSpaces()
        if peek == UInt8(ascii: "?") {
            pos += 1
            return nil
        }
        let start = pos
        guard let dtypeName = word() else { throw expected("a type (e.g. f32[2, 3], or ?) \(context)") }
        guard let dtype = DType(name: dtypeName) else { throw error("unknown dtype '\(dtypeName)'", at: start) }
        try expect("[", "after the dtype (a shape such as [2, ?1..32]; [] for a scalar)")
        var shape: [Dim] = []
        if eat("]") { return TensorType(dtype, shape) }
        while true {
            skipSpaces()
            if peek == UInt8(ascii: "?") {
                pos += 1
                let lo = try integer("the lower bound of a dynamic dimension (?MIN..MAX)")
                guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "."), bytes[pos + 1] == UInt8(ascii: ".") else {
                    throw expected("'..' in a dynamic dimension (?MIN..MAX)")
                }
                pos += 2
                var hi: Int?
                skipSpaces()
                if let b = peek, isDigit(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") {
                    hi = try integer("the upper bound of a dynamic dimension")
                }
                shape.append(.dynamic(min: lo, max: hi))
            } else {
                shape.append(.fixed(try integer("a dimension (a size, or ?MIN..MAX)")))
            }
            if eat(",") { continue }
            if eat("]") { break }
            throw expected("',' or ']' in the shape")
        }
        return TensorType(dtype, shape)
    }
}

private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
private func isLetter(_ b: UInt8) -> Bool {
    (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
}
private func isWordByte(_ b: UInt8) -> Bool { isDigit(b) || isLetter(b) || b == UInt8(ascii: "_") }
private func isHexDigit(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
}

// MARK: - The graph

private struct GraphTextParser {
    /// What is known about one value number so far.
    struct ValueDef {
        var info: ValueInfo
        /// The declaration line (`input`/`const`/`state`/`value`), if any.
        var declLine: Int?
        /// The first op line that defines it, if any.
        var opLine: Int?
        /// `input` declared without `# position N`.
        var implicitPosition = false
        var line: Int { declLine ?? opLine ?? 0 }
    }

    /// A value read (not defined) somewhere, checked once every value is known.
    struct Reference {
        var value: ValueID
        var line: Int
        var column: Int
    }

    static let opNames = Set(Op.allNames)
    static let topLevelKeywords: Set<String> = ["graph", "input", "const", "state", "value", "inputs", "block", "outputs"]
    static let resultFields = ["out", "outs", "outputs"]

    var lines: [[UInt8]]
    var next = 0

    var graphName: String?
    var defs: [Int: ValueDef] = [:]
    var inputOrder: [ValueID] = []
    var inputsLine: (values: [ValueID], line: Int)?
    var outputs: [ValueID]?
    var blocks: [Block] = []
    var initBlock: (index: Int, line: Int)?
    var references: [Reference] = []
    /// Which result field each op name turned out to use, to try it first next time.
    var resultFieldOf: [String: String] = [:]

    init(_ text: String) {
        var lines = Array(text.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        for i in lines.indices where lines[i].last == 0x0D { lines[i].removeLast() }
        self.lines = lines
    }

    /// The next line that is neither blank nor a comment, as a cursor at its first token.
    mutating func nextLine() -> LineCursor? {
        while next < lines.count {
            var c = LineCursor(line: next + 1, bytes: lines[next])
            next += 1
            c.skipSpaces()
            if c.atEnd || c.peek == UInt8(ascii: "#") { continue }
            return c
        }
        return nil
    }

    mutating func run() throws -> Graph {
        guard var header = nextLine() else { throw IRError("line 1, col 1: expected 'graph @name', found an empty text") }
        guard header.word() == "graph" else {
            header.pos = 0
            header.skipSpaces()
            throw header.expected("'graph @name' as the first line")
        }
        try header.expect("@", "before the graph name")
        graphName = try header.name("the graph name after '@'")
        try header.expectLineEnd("after the graph name")

        while var c = nextLine() {
            let start = c.pos
            guard let keyword = c.word() else {
                throw c.expected("a declaration (input, const, state, value), 'inputs', 'block' or 'outputs'")
            }
            switch keyword {
            case "input", "const", "state", "value":
                try declaration(keyword, &c)
            case "inputs":
                if let previous = inputsLine { throw c.error("duplicate 'inputs' line (the first is line \(previous.line))", at: start) }
                inputsLine = (try valueList(&c, "after 'inputs'"), c.line)
            case "outputs":
                if outputs != nil { throw c.error("duplicate 'outputs' line", at: start) }
                outputs = try valueList(&c, "after 'outputs'")
            case "block":
                try block(&c)
            case "graph":
                throw c.error("a second 'graph' line (one graph per text)", at: start)
            default:
                c.pos = start
                throw c.expected("a declaration (input, const, state, value), 'inputs', 'block' or 'outputs'")
            }
        }
        return try finish()
    }

    // MARK: declarations

    /// `input %0 : i64[1, ?1..31] "tokens"  # position 0`, `const %2 : T = SOURCE "name"`,
    /// `state %3 : T = zeros "name"`, `value %9 : T "name"`.
    mutating func declaration(_ keyword: String, _ c: inout LineCursor) throws {
        c.skipSpaces()
        let valueColumn = c.column(c.pos)
        let v = try c.valueRef("after '\(keyword)'")
        try c.expect(":", "and the type after \(v)")
        let type = try c.type("after ':'")
        var kind: ValueKind
        var implicitPosition = false
        switch keyword {
        case "input":
            kind = .input(position: 0)
            implicitPosition = true
        case "const":
            try c.expect("=", "and the constant's source after the type")
            guard let source = try source(&c, allowZeros: false) else { throw c.expected("a constant source") }
            kind = .constant(source)
        case "state":
            try c.expect("=", "and the state's initial value (zeros or a source) after the type")
            kind = .state(initial: try source(&c, allowZeros: true))
        default:
            kind = .computed
        }
        c.skipSpaces()
        let name: String? = c.peek == UInt8(ascii: "\"") ? try c.string("a name") : nil
        if !c.atLineEnd() { throw c.error("unexpected \(c.found) after the declaration of \(v) (a name is a string in quotes)") }
        if c.eat("#"), keyword == "input" {
            var comment = c
            if comment.word() == "position" {
                let position = try comment.integer("the input's position after '# position'")
                try comment.expectLineEnd("after the position")
                kind = .input(position: position)
                implicitPosition = false
            }
        }
        if keyword == "input" { inputOrder.append(v) }
        try declare(v, ValueInfo(type: type, kind: kind, name: name), line: c.line, column: valueColumn, implicitPosition: implicitPosition)
    }

    /// `buffer(N)`, `named("key")`, `mutable(N)`, `literal(1.0, 2.0)`; `zeros` (nil) for state.
    mutating func source(_ c: inout LineCursor, allowZeros: Bool) throws -> ConstantSource? {
        c.skipSpaces()
        let start = c.pos
        let choices = allowZeros ? "zeros, buffer(N), named(\"key\"), mutable(N) or literal(…)" : "buffer(N), named(\"key\"), mutable(N) or literal(…)"
        guard let word = c.word() else { throw c.expected(choices) }
        if word == "zeros", allowZeros { return nil }
        let result: ConstantSource
        switch word {
        case "buffer", "mutable":
            try c.expect("(", "after '\(word)'")
            let n = try c.integer("an index")
            try c.expect(")", "after the index")
            result = word == "buffer" ? .constantBuffer(index: n) : .mutableData(index: n)
        case "named":
            try c.expect("(", "after 'named'")
            let key = try c.string("a quoted key")
            try c.expect(")", "after the key")
            result = .namedData(key: key)
        case "literal":
            try c.expect("(", "after 'literal'")
            var xs: [Double] = []
            if !c.eat(")") {
                while true {
                    switch try c.numberIfPresent() {
                    case .int(let n)?: xs.append(Double(n))
                    case .float(let x)?: xs.append(x)
                    case nil: throw c.expected("a number in literal(…)")
                    }
                    if c.eat(",") { continue }
                    if c.eat(")") { break }
                    throw c.expected("',' or ')' in literal(…)")
                }
            }
            result = .literal(xs)
        default:
            c.pos = start
            throw c.expected(choices)
        }
        return result
    }

    mutating func declare(_ v: ValueID, _ info: ValueInfo, line: Int, column: Int, implicitPosition: Bool) throws {
        let at = "line \(line), col \(column)"
        if var d = defs[v.index] {
            if let previous = d.declLine { throw IRError("\(at): \(v) is already declared at line \(previous)") }
            // An op line defined it first (hand-written text may declare after use).
            guard d.info.type == info.type else {
                throw IRError("\(at): \(v) is declared as \(describe(info.type)) but the op at line \(d.line) gives it type \(describe(d.info.type))")
            }
            d.info = info
            d.declLine = line
            d.implicitPosition = implicitPosition
            defs[v.index] = d
        } else {
            defs[v.index] = ValueDef(info: info, declLine: line, opLine: nil, implicitPosition: implicitPosition)
        }
    }

    /// An op result: computed unless declared, and of one type wherever it is written.
    mutating func defineResult(_ v: ValueID, _ type: TensorType?, line: Int, column: Int) throws {
        if var d = defs[v.index] {
            guard d.info.type == type else {
                let source = d.declLine.map { "declared at line \($0)" } ?? "defined at line \(d.line)"
                throw IRError("line \(line), col \(column): \(v) has type \(describe(d.info.type)) (\(source)), not \(describe(type))")
            }
            if d.opLine == nil { d.opLine = line; defs[v.index] = d }
        } else {
            defs[v.index] = ValueDef(info: ValueInfo(type: type, kind: .computed), declLine: nil, opLine: line)
        }
    }

    func describe(_ type: TensorType?) -> String { type?.description ?? "?" }

    /// `%a, %b, …` to the end of the line (possibly empty).
    mutating func valueList(_ c: inout LineCursor, _ context: String) throws -> [ValueID] {
        var vs: [ValueID] = []
        if c.atLineEnd() { return vs }
        while true {
            c.skipSpaces()
            let column = c.column(c.pos)
            let v = try c.valueRef(vs.isEmpty ? context : "after ','")
            references.append(Reference(value: v, line: c.line, column: column))
            vs.append(v)
            if c.eat(",") { continue }
            try c.expectLineEnd("in the value list (expected ',' or the end of the line)")
            return vs
        }
    }

    // MARK: blocks and ops

    /// `block NAME [init] {`, op lines, `}`.
    mutating func block(_ c: inout LineCursor) throws {
        let headerLine = c.line
        let name = try c.name("a block name after 'block'")
        let index = blocks.count
        c.skipSpaces()
        let initStart = c.pos
        if let w = c.word() {
            guard w == "init" else { c.pos = initStart; throw c.expected("'init' or '{' after the block name") }
            if let previous = initBlock {
                throw c.error("a second init block (block \(previous.index) at line \(previous.line) is already the init block)", at: initStart)
            }
            initBlock = (index, headerLine)
        }
        try c.expect("{", "after the block name")
        try c.expectLineEnd("after '{' (ops go on the following lines)")
        var block = Block(name: name)
        while true {
            guard var line = nextLine() else {
                throw IRError("line \(headerLine), col 1: block \(IRPrinter.formatName(name)) is not closed (expected a '}' line)")
            }
            if line.eat("}") {
                try line.expectLineEnd("after '}'")
                break
            }
            block.nodes.append(try node(&line))
        }
        blocks.append(block)
    }

    /// `%a, %b = name(field: attr, …) : type-or-(types)  # origin`, or `name(…)` without results.
    mutating func node(_ c: inout LineCursor) throws -> Node {
        var results: [(value: ValueID, column: Int)] = []
        c.skipSpaces()
        if c.peek == UInt8(ascii: "%") {
            repeat {
                c.skipSpaces()
                let column = c.column(c.pos)
                results.append((try c.valueRef("after ','"), column))
            } while c.eat(",")
            try c.expect("=", "after the op's results")
        }
        c.skipSpaces()
        let nameStart = c.pos
        guard let opName = c.word() else { throw c.expected(results.isEmpty ? "an op or '}'" : "an op name after '='") }
        guard Self.opNames.contains(opName) else {
            if results.isEmpty, Self.topLevelKeywords.contains(opName) {
                throw c.error("'\(opName)' cannot appear inside a block (expected an op or '}' closing the block)", at: nameStart)
            }
            throw c.error("unknown op '\(opName)'", at: nameStart)
        }
        try c.expect("(", "after the op name '\(opName)'")

        var fields: [String: Attribute] = [:]
        var fieldColumns: [String: Int] = [:]
        if !c.eat(")") {
            while true {
                c.skipSpaces()
                let fieldStart = c.pos
                guard let field = c.word() else { throw c.expected("a field name") }
                if fields[field] != nil { throw c.error("duplicate field '\(field)'", at: fieldStart) }
                try c.expect(":", "after the field name '\(field)'")
                fields[field] = try attribute(&c)
                fieldColumns[field] = c.column(fieldStart)
                if c.eat(",") { continue }
                if c.eat(")") { break }
                throw c.atEnd ? c.error("expected ')' after field list") : c.expected("',' or ')' after field '\(field)'")
            }
        }
        let op = try buildOp(opName, fields, results.map(\.value), &c, nameStart: nameStart, fieldColumns: fieldColumns)

        var types: [TensorType?] = []
        if !results.isEmpty {
            try c.expect(":", "and the result type after ')'")
            c.skipSpaces()
            if c.peek == UInt8(ascii: "(") {
                c.pos += 1
                while true {
                    types.append(try c.type(types.isEmpty ? "after '('" : "after ','"))
                    if c.eat(",") { continue }
                    if c.eat(")") { break }
                    throw c.expected("',' or ')' in the result types")
                }
            } else {
                types.append(try c.type("after ':'"))
            }
            guard types.count == results.count else {
                throw c.error("\(results.count) result\(results.count == 1 ? "" : "s") but \(types.count) type\(types.count == 1 ? "" : "s")")
            }
        } else if c.eat(":") {
            throw c.error("an op without results has no type", at: c.pos - 1)
        }

        var origin: String?
        c.skipSpaces()
        if c.peek == UInt8(ascii: "#") {
            c.pos += 1
            if c.peek == UInt8(ascii: " ") { c.pos += 1 }
            if c.peek == UInt8(ascii: "\"") {
                // A quoted origin (`IRPrinter.formatOrigin`): it holds a line break, a control
                // character or a leading quote.
                origin = try c.string("a quoted origin")
                guard c.atEnd else { throw c.error("unexpected \(c.found) after the quoted origin") }
            } else {
                origin = String(decoding: c.bytes[c.pos...], as: UTF8.self)
                c.pos = c.bytes.count
            }
        } else if !c.atEnd {
            throw c.error("unexpected \(c.found) after the op (an origin comment starts with '#')")
        }

        for (i, r) in results.enumerated() { try defineResult(r.value, types[i], line: c.line, column: r.column) }
        return Node(op, origin: origin)
    }

    /// One field value: a number, string, `%N`, dtype, `true`/`false`/`none`, or a flat list.
    mutating func attribute(_ c: inout LineCursor) throws -> Attribute {
        c.skipSpaces()
        guard let b = c.peek else { throw c.expected("a field value") }
        if b == UInt8(ascii: "[") { return try list(&c) }
        switch try element(&c, inList: false) {
        case .int(let n): return .int(n)
        case .float(let x): return .float(x)
        case .string(let s): return .string(s)
        case .value(let v): return .value(v)
        case .dtype(let d): return .dtype(d)
        case .bool(let x): return .bool(x)
        case .none: return .none
        }
    }

    enum Element {
        case int(Int64), float(Double), string(String), value(ValueID), dtype(DType), bool(Bool), none
    }

    mutating func element(_ c: inout LineCursor, inList: Bool) throws -> Element {
        c.skipSpaces()
        let start = c.pos
        let what = inList ? "a list element (number, string, %N or dtype)" : "a field value (number, string, %N, dtype, true, false, none or a list)"
        guard let b = c.peek else { throw c.expected(what) }
        if b == UInt8(ascii: "%") {
            let v = try c.valueRef("")
            references.append(Reference(value: v, line: c.line, column: c.column(start)))
            return .value(v)
        }
        if b == UInt8(ascii: "\"") { return .string(try c.string("a string")) }
        switch try c.numberIfPresent() {
        case .int(let n)?: return .int(n)
        case .float(let x)?: return .float(x)
        case nil: break
        }
        guard let word = c.word() else { throw c.expected(what) }
        if !inList {
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "none": return .none
            default: break
            }
        }
        if let d = DType(name: word) { return .dtype(d) }
        c.pos = start
        throw c.expected(what)
    }

    /// `[…]`: ints, floats (ints allowed among them), strings, values, dtypes, or ints and values
    /// mixed (an int-or-value list). `[]` reads as an empty int list, which every list field accepts.
    mutating func list(_ c: inout LineCursor) throws -> Attribute {
        let start = c.pos
        c.pos += 1
        var elements: [Element] = []
        if !c.eat("]") {
            while true {
                elements.append(try element(&c, inList: true))
                if c.eat(",") { continue }
                if c.eat("]") { break }
                throw c.atEnd ? c.error("expected ']' to close the list") : c.expected("',' or ']' in the list")
            }
        }
        var ints: [Int64] = [], floats: [Double] = [], strings: [String] = [], values: [ValueID] = []
        var dtypes: [DType] = [], mixed: [IntOrValue] = []
        var kinds = Set<String>()
        for e in elements {
            switch e {
            case .int(let n): ints.append(n); floats.append(Double(n)); mixed.append(.literal(n)); kinds.insert("int")
            case .float(let x): floats.append(x); kinds.insert("float")
            case .string(let s): strings.append(s); kinds.insert("string")
            case .value(let v): values.append(v); mixed.append(.value(v)); kinds.insert("value")
            case .dtype(let d): dtypes.append(d); kinds.insert("dtype")
            case .bool, .none: break  // not produced in lists
            }
        }
        switch kinds {
        case []: return .ints([])
        case ["int"]: return .ints(ints)
        case ["float"], ["int", "float"]: return .floats(floats)
        case ["string"]: return .strings(strings)
        case ["value"]: return .values(values)
        case ["int", "value"]: return .intOrValues(mixed)
        case ["dtype"]: return .dtypes(dtypes)
        default:
            throw c.error("a list cannot mix \(kinds.sorted().joined(separator: ", ")) elements", at: start)
        }
    }

    /// The op from its fields, with the results on the left put back into its result field.
    mutating func buildOp(_ name: String, _ fields: [String: Attribute], _ results: [ValueID], _ c: inout LineCursor,
                          nameStart: Int, fieldColumns: [String: Int]) throws -> Op {
        let line = c.line, nameColumn = c.column(nameStart)
        func located(_ e: IRError) -> IRError {
            // Messages from `Op(name:fields:)` start with `op.field:` when a field is at fault, and
            var column = nameColumn
            // `op: unknown field 'f' (known: …)` points at that field.
            if e.message.hasPrefix(name + "."),
               let field = e.message.dropFirst(name.count + 1).split(separator: ":", maxSplits: 1).first,
               let fieldColumn = fieldColumns[String(field)] {
                column = fieldColumn
            } else if let range = e.message.firstRange(of: ": unknown field '"),
                      let field = e.message[range.upperBound...].split(separator: "'", maxSplits: 1).first,
                      let fieldColumn = fieldColumns[String(field)] {
                column = fieldColumn
            }
            return IRError("line \(line), col \(column): \(e.message)")
        }
        if results.isEmpty {
            let op: Op
            do { op = try Op(name: name, fields: fields) } catch let e as IRError { throw located(e) }
            guard op.results.isEmpty else {
                let list = op.results.map(\.description).joined(separator: ", ")
                throw c.error("'\(name)' has results; write them left of '=': \(list) = \(name)(…)", at: nameStart)
            }
            return op
        }
        if let field = Self.resultFields.first(where: { fields[$0] != nil }) {
            throw IRError("line \(c.line), col \(fieldColumns[field] ?? c.column(nameStart)): the results are on the left of '='; remove the field '\(field)'")
        }
        var candidates = results.count == 1 ? Self.resultFields : ["outs", "outputs"]
        if let known = resultFieldOf[name], let i = candidates.firstIndex(of: known) {
            candidates.remove(at: i)
            candidates.insert(known, at: 0)
        }
        var failures: [(field: String, error: IRError)] = []
        for field in candidates {
            var withResults = fields
            withResults[field] = field == "out" ? .value(results[0]) : .values(results)
            do {
                let op = try Op(name: name, fields: withResults)
                guard op.results == results else { continue }
                resultFieldOf[name] = field
                return op
            } catch let e as IRError {
                failures.append((field, e))
            }
        }
        // Report the attempt that failed for a reason other than the result field's name.
        let aboutResultField: (String, IRError) -> Bool = { field, e in
            Self.resultFields.contains { e.message.contains("missing required field '\($0)'") }
                || (e.message.contains("unknown field") && e.message.contains("'\(field)'"))
        }
        if let relevant = failures.first(where: { !aboutResultField($0.field, $0.error) }) {
            throw located(relevant.error)
        }
        throw c.error("'\(name)' does not take \(results.count) result\(results.count == 1 ? "" : "s") on the left of '='", at: nameStart)
    }

    // MARK: assembling the graph

    mutating func finish() throws -> Graph {
        var graph = Graph(name: graphName ?? "")
        // Dense numbering: every number below the largest must be declared or defined.
        let count = (defs.keys.max() ?? -1) + 1
        var values: [ValueInfo] = []
        values.reserveCapacity(defs.count)
        for i in 0..<count {
            guard let d = defs[i] else {
                let next = defs.filter { $0.key > i }.min { $0.key < $1.key }
                let line = next?.value.line ?? 0
                throw IRError("line \(line), col 1: %\(i) is never declared or defined (values are numbered densely from %0; %\(next?.key ?? i) is the next)")
            }
            values.append(d.info)
        }
        for r in references where r.value.index >= count {
            throw IRError("line \(r.line), col \(r.column): \(r.value) is not declared or defined")
        }
        graph.values = values
        graph.inputs = inputsLine?.values ?? inputOrder
        for v in inputOrder {
            guard let d = defs[v.index], d.implicitPosition else { continue }
            guard let position = graph.inputs.firstIndex(of: v) else {
                throw IRError("line \(d.line), col 1: input \(v) is not on the 'inputs' line; give its position with '# position N'")
            }
            graph.values[v.index].kind = .input(position: position)
        }
        graph.outputs = outputs ?? []
        if !blocks.isEmpty { graph.blocks = blocks }
        graph.initBlock = initBlock?.index
        return graph
    }
}
