/// Parses template tokens into statements and expressions with Jinja's grammar and precedence
/// (`or` < `and` < `not` < comparisons < `+ -` < `~` < `* / // %` < `**` < unary minus < postfix,
/// filters and tests). Statements and tags outside the subset chat templates use are named with
/// their line:column, never guessed at.
struct TemplateParser {
    let tokens: [TemplateToken]
    let locator: SourceLocator
    var index = 0
    /// Expressions and blocks open at this point. Bounded, so that `- - - … 1` or thousands of nested
    /// blocks are a syntax error rather than a stack overflow (here, or later in the renderer).
    var depth = 0
    static let maxDepth = 256

    init(tokens: [TemplateToken], locator: SourceLocator) {
        self.tokens = tokens
        self.locator = locator
    }

    static func parse(_ source: String) throws -> [TemplateNode] {
        let lexer = TemplateLexer(source)
        var parser = TemplateParser(tokens: try lexer.tokenize(), locator: lexer.locator)
        let (nodes, end) = try parser.nodes(until: [])
        if let end { throw parser.fail("unexpected '{% \(end) %}'", at: parser.previousOffset) }
        return nodes
    }

    var current: TemplateToken { tokens[index] }
    var previousOffset: Int { tokens[max(index - 1, 0)].offset }

    func fail(_ message: String, at offset: Int) -> TemplateError { locator.error(.syntax, message, at: offset) }
    func unsupported(_ message: String, at offset: Int) -> TemplateError { locator.error(.unsupported, message, at: offset) }

    mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nested more than \(Self.maxDepth) levels deep", at: current.offset) }
    }

    mutating func advance() -> TemplateToken {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    func isName(_ name: String) -> Bool { current.kind == .name(name) }
    func isOp(_ op: String) -> Bool { current.kind == .op(op) }

    mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw fail("expected '\(op)', found \(describe(current))", at: current.offset) }
        _ = advance()
    }

    mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw fail("expected a name, found \(describe(current))", at: current.offset) }
        _ = advance()
        return n
    }

    mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw fail("expected '%}', found \(describe(current))", at: current.offset) }
        _ = advance()
    }

    func describe(_ t: TemplateToken) -> String {
        switch t.kind {
        case .text: return "text"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .int(let n): return "\(n)"
        case .float(let d): return "\(d)"
        case .op(let o): return "'\(o)'"
        case .end: return "the end of the template"
        }
    }

    // MARK: statements

    /// Nodes up to one of the `until` tags; returns the tag found (its name consumed), nil at the end.
    mutating func nodes(until: Set<String>) throws -> ([TemplateNode], String?) {
        try enter()
        defer { depth -= 1 }
        var out: [TemplateNode] = []
        while true {
            let token = advance()
            switch token.kind {
            case .end:
                return (out, nil)
            case .text(let s):
                out.append(.text(s))
            case .variableBegin:
                let e = try expression()
                guard current.kind == .variableEnd else { throw fail("expected '}}', found \(describe(current))", at: current.offset) }
                _ = advance()
                out.append(.output(e))
            case .blockBegin:
                let at = current.offset
                let tag = try expectName()
                if until.contains(tag) { return (out, tag) }
                if let node = try statement(tag, at: at) { out.append(contentsOf: node) }
            default:
                throw fail("unexpected \(describe(token))", at: token.offset)
            }
        }
    }

    /// The body of a block statement, which must end with one of `ends`.
    mutating func body(_ tag: String, at: Int, ends: Set<String>) throws -> ([TemplateNode], String) {
        let (nodes, end) = try nodes(until: ends)
        guard let end else {
            throw fail("'{% \(tag) %}' is not closed (expected \(ends.sorted().map { "'{% \($0) %}'" }.joined(separator: " or ")))", at: at)
        }
        return (nodes, end)
    }

    mutating func statement(_ tag: String, at: Int) throws -> [TemplateNode]? {
        switch tag {
        case "if":
            var branches: [(TemplateExpr, [TemplateNode])] = []
            var condition = try expression()
            try expectBlockEnd()
            while true {
                let (nodes, end) = try body("if", at: at, ends: ["elif", "else", "endif"])
                branches.append((condition, nodes))
                switch end {
                case "elif":
                    condition = try expression()
                    try expectBlockEnd()
                case "else":
                    try expectBlockEnd()
                    let (otherwise, _) = try body("else", at: at, ends: ["endif"])
                    try expectBlockEnd()
                    return [.ifChain(branches, otherwise: otherwise)]
                default:
                    try expectBlockEnd()
                    return [.ifChain(branches, otherwise: [])]
                }
            }
        case "for":
            var targets = [try expectName()]
            while isOp(",") {
                _ = advance()
                targets.append(try expectName())
            }
            guard isName("in") else { throw fail("expected 'in' in '{% for %}', found \(describe(current))", at: current.offset) }
            _ = advance()
            let sequence = try orExpression()
            var filter: TemplateExpr?
            if isName("if") {
                _ = advance()
                filter = try orExpression()
            }
            if isName("recursive") { throw unsupported("recursive for loops", at: current.offset) }
            try expectBlockEnd()
            let (nodes, end) = try body("for", at: at, ends: ["else", "endfor"])
            var otherwise: [TemplateNode] = []
            try expectBlockEnd()
            if end == "else" {
                (otherwise, _) = try body("for", at: at, ends: ["endfor"])
                try expectBlockEnd()
            }
            return [.forLoop(targets: targets, sequence: sequence, filter: filter, body: nodes, otherwise: otherwise, at: at)]
        case "set":
            let first = try expectName()
            var target = TemplateTarget.name(first)
            if isOp(".") {
                _ = advance()
                target = .attribute(namespace: first, attribute: try expectName())
            } else if isOp(",") {
                var names = [first]
                while isOp(",") {
                    _ = advance()
                    names.append(try expectName())
                }
                target = .names(names)
            }
            if isOp("=") {
                _ = advance()
                var value = try expression()
                if isOp(",") {
                    var items = [value]
                    while isOp(",") {
                        _ = advance()
                        items.append(try expression())
                    }
                    value = .tuple(items)
                }
                try expectBlockEnd()
                return [.set(target, value, at: at)]
            }
            if isOp("|") { throw unsupported("filters on a '{% set %}' block", at: current.offset) }
            try expectBlockEnd()
            let (nodes, _) = try body("set", at: at, ends: ["endset"])
            try expectBlockEnd()
            return [.setBlock(target, nodes, at: at)]
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var parameters: [(String, TemplateExpr?)] = []
            while !isOp(")") {
                if !parameters.isEmpty { try expectOp(",") }
                if isOp(")") { break }
                let p = try expectName()
                var value: TemplateExpr?
                if isOp("=") {
                    _ = advance()
                    value = try expression()
                }
                parameters.append((p, value))
            }
            _ = advance()
            try expectBlockEnd()
            let (nodes, _) = try body("macro", at: at, ends: ["endmacro"])
            if case .name = current.kind { _ = advance() }   // `{% endmacro name %}`
            try expectBlockEnd()
            return [.macro(name: name, parameters: parameters, body: nodes)]
        case "break", "continue":
            try expectBlockEnd()
            return [tag == "break" ? .breakLoop(at: at) : .continueLoop(at: at)]
        case "generation":
            // Hugging Face's marker of the assistant's part (for training masks): renders its body.
            try expectBlockEnd()
            let (nodes, _) = try body("generation", at: at, ends: ["endgeneration"])
            try expectBlockEnd()
            return nodes
        case "filter", "call", "include", "import", "from", "extends", "block", "with", "autoescape", "raw", "do", "trans":
            throw unsupported("'{% \(tag) %}' statements", at: at)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration":
            throw fail("unexpected '{% \(tag) %}'", at: at)
        default:
            throw fail("unknown tag '\(tag)'", at: at)
        }
    }

    // MARK: expressions

    mutating func expression() throws -> TemplateExpr {
        try enter()
        defer { depth -= 1 }
        var e = try orExpression()
        while isName("if") {
            _ = advance()
            let condition = try orExpression()
            var otherwise: TemplateExpr?
            if isName("else") {
                _ = advance()
                otherwise = try expression()
            }
            e = .conditional(condition, then: e, else: otherwise)
        }
        return e
    }

    mutating func orExpression() throws -> TemplateExpr {
        var e = try andExpression()
        while isName("or") {
            _ = advance()
            e = .or(e, try andExpression())
        }
        return e
    }

    mutating func andExpression() throws -> TemplateExpr {
        var e = try notExpression()
        while isName("and") {
            _ = advance()
            e = .and(e, try notExpression())
        }
        return e
    }

    mutating func notExpression() throws -> TemplateExpr {
        if isName("not") {
            _ = advance()
            try enter()
            defer { depth -= 1 }
            return .not(try notExpression())
        }
        return try comparison()
    }

    mutating func comparison() throws -> TemplateExpr {
        let left = try additive()
        var operands = [left]
        var ops: [(String, Int)] = []
        while true {
            let at = current.offset
            if case .op(let o) = current.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                _ = advance()
                ops.append((o, at))
            } else if isName("in") {
                _ = advance()
                ops.append(("in", at))
            } else if isName("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
                _ = advance(); _ = advance()
                ops.append(("not in", at))
            } else {
                break
            }
            operands.append(try additive())
        }
        guard !ops.isEmpty else { return left }
        // a < b < c is a < b and b < c.
        var e: TemplateExpr = .binary(ops[0].0, operands[0], operands[1], at: ops[0].1)
        for k in 1..<ops.count {
            e = .and(e, .binary(ops[k].0, operands[k], operands[k + 1], at: ops[k].1))
        }
        return e
    }

    mutating func additive() throws -> TemplateExpr {
        var e = try concatenation()
        while case .op(let o) = current.kind, o == "+" || o == "-" {
            let at = advance().offset
            e = .binary(o, e, try concatenation(), at: at)
        }
        return e
    }

    mutating func concatenation() throws -> TemplateExpr {
        var e = try multiplicative()
        while isOp("~") {
            let at = advance().offset
            e = .binary("~", e, try multiplicative(), at: at)
        }
        return e
    }

    mutating func multiplicative() throws -> TemplateExpr {
        var e = try power()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            let at = advance().offset
            e = .binary(o, e, try power(), at: at)
        }
        return e
    }

    mutating func power() throws -> TemplateExpr {
        var e = try unary(withFilters: true)
        while isOp("**") {
            let at = advance().offset
            e = .binary("**", e, try unary(withFilters: true), at: at)
        }
        return e
    }

    mutating func unary(withFilters: Bool) throws -> TemplateExpr {
        try enter()
        defer { depth -= 1 }
        var e: TemplateExpr
        if isOp("-") {
            let at = advance().offset
            e = .negate(try unary(withFilters: false), at: at)
        } else if isOp("+") {
            _ = advance()
            e = try unary(withFilters: false)
        } else {
            e = try primary()
        }
        e = try postfix(e)
        if withFilters { e = try filters(e) }
        return e
    }

    mutating func primary() throws -> TemplateExpr {
        let token = advance()
        switch token.kind {
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n, at: token.offset)
            }
        case .string(var s):
            while case .string(let more) = current.kind {
                s += more
                _ = advance()
            }
            return .literal(.string(s))
        case .int(let n): return .literal(.int(n))
        case .float(let d): return .literal(.double(d))
        case .op("("):
            var items: [TemplateExpr] = []
            var sawComma = false
            while !isOp(")") {
                if !items.isEmpty {
                    try expectOp(",")
                    sawComma = true
                    if isOp(")") { break }
                }
                items.append(try expression())
            }
            _ = advance()
            return items.count == 1 && !sawComma ? items[0] : .tuple(items)
        case .op("["):
            var items: [TemplateExpr] = []
            while !isOp("]") {
                if !items.isEmpty {
                    try expectOp(",")
                    if isOp("]") { break }
                }
                items.append(try expression())
            }
            _ = advance()
            return .list(items)
        case .op("{"):
            var pairs: [(TemplateExpr, TemplateExpr)] = []
            while !isOp("}") {
                if !pairs.isEmpty {
                    try expectOp(",")
                    if isOp("}") { break }
                }
                let key = try expression()
                try expectOp(":")
                pairs.append((key, try expression()))
            }
            _ = advance()
            return .dict(pairs, at: token.offset)
        default:
            throw fail("expected a value, found \(describe(token))", at: token.offset)
        }
    }

    mutating func postfix(_ base: TemplateExpr) throws -> TemplateExpr {
        var e = base
        while true {
            if isOp(".") {
                let at = advance().offset
                switch current.kind {
                case .name(let n): _ = advance(); e = .attribute(e, n, at: at)
                case .int(let n): _ = advance(); e = .item(e, .literal(.int(n)), at: at)
                default: throw fail("expected an attribute name after '.', found \(describe(current))", at: current.offset)
                }
            } else if isOp("[") {
                let at = advance().offset
                e = try subscriptExpression(e, at: at)
            } else if isOp("(") {
                e = try call(e)
            } else {
                return e
            }
        }
    }

    mutating func subscriptExpression(_ base: TemplateExpr, at: Int) throws -> TemplateExpr {
        var parts: [TemplateExpr?] = []
        var isSlice = false
        var currentPart: TemplateExpr?
        while !isOp("]") {
            if isOp(":") {
                _ = advance()
                parts.append(currentPart)
                currentPart = nil
                isSlice = true
                continue
            }
            if isOp(",") { throw unsupported("tuple subscripts", at: current.offset) }
            currentPart = try expression()
        }
        _ = advance()
        parts.append(currentPart)
        if !isSlice {
            guard let key = parts[0] else { throw fail("empty subscript", at: at) }
            return .item(base, key, at: at)
        }
        guard parts.count <= 3 else { throw fail("a slice has at most three parts", at: at) }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, parts[0], parts[1], parts[2], at: at)
    }

    mutating func arguments() throws -> ([TemplateExpr], [(String, TemplateExpr)]) {
        try expectOp("(")
        var positional: [TemplateExpr] = []
        var keyword: [(String, TemplateExpr)] = []
        while !isOp(")") {
            if !positional.isEmpty || !keyword.isEmpty {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") || isOp("**") { throw unsupported("*args / **kwargs in calls", at: current.offset) }
            if case .name(let n) = current.kind, index + 1 < tokens.count, tokens[index + 1].kind == .op("=") {
                _ = advance(); _ = advance()
                keyword.append((n, try expression()))
            } else {
                guard keyword.isEmpty else { throw fail("a positional argument after keyword arguments", at: current.offset) }
                positional.append(try expression())
            }
        }
        _ = advance()
        return (positional, keyword)
    }

    mutating func call(_ callee: TemplateExpr) throws -> TemplateExpr {
        let at = current.offset
        let (positional, keyword) = try arguments()
        return .call(callee, positional, keyword, at: at)
    }

    mutating func filters(_ base: TemplateExpr) throws -> TemplateExpr {
        var e = base
        while true {
            if isOp("|") {
                _ = advance()
                let at = current.offset
                var name = try expectName()
                while isOp(".") {
                    _ = advance()
                    name += "." + (try expectName())
                }
                var positional: [TemplateExpr] = [], keyword: [(String, TemplateExpr)] = []
                if isOp("(") { (positional, keyword) = try arguments() }
                e = .filter(e, name, positional, keyword, at: at)
            } else if isName("is") {
                _ = advance()
                var negated = false
                if isName("not") {
                    _ = advance()
                    negated = true
                }
                let at = current.offset
                let name = try expectName()
                var args: [TemplateExpr] = []
                if isOp("(") {
                    let (positional, keyword) = try arguments()
                    guard keyword.isEmpty else { throw unsupported("keyword arguments to tests", at: at) }
                    args = positional
                } else if startsArgument, !isName("else"), !isName("or"), !isName("and") {
                    if isName("is") { throw fail("tests cannot be chained with 'is'", at: current.offset) }
                    args = [try postfix(try primary())]
                }
                e = .test(e, name, args, negated: negated, at: at)
            } else if isOp("(") {
                e = try call(e)
            } else {
                return e
            }
        }
    }

    var startsArgument: Bool {
        switch current.kind {
        case .name, .string, .int, .float: return true
        case .op(let o): return o == "(" || o == "[" || o == "{"
        default: return false
        }
    }
}
