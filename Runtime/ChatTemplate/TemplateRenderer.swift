import Foundation

/// Variables visible at one point of a template. A `for` iteration and a macro call open a scope,
/// so a `set` inside them is not seen after (Jinja's rule; `namespace()` is the way out); `if`
/// does not.
final class TemplateScope {
    var variables: [String: TemplateValue] = [:]
    let parent: TemplateScope?

    init(parent: TemplateScope?) { self.parent = parent }

    func lookup(_ name: String) -> TemplateValue? {
        var scope: TemplateScope? = self
        while let s = scope {
            if let v = s.variables[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

/// A failure inside a filter, test, method or operator, located by the renderer.
struct TemplateFailure: Error {
    var kind: TemplateError.Kind = .render
    var message: String
    init(_ message: String, kind: TemplateError.Kind = .render) {
        self.message = message
        self.kind = kind
    }
}

/// Evaluates a parsed template against its variables, producing text.
struct TemplateRenderer {
    let locator: SourceLocator
    /// What one render may spend (see `RenderBudget`), shared by nested loops and macro calls.
    let budget = RenderBudget()

    enum Flow { case normal, breakLoop, continueLoop }

    func located<T>(_ at: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let f as TemplateFailure {
            throw locator.error(f.kind, f.message, at: at)
        }
    }

    func render(_ nodes: [TemplateNode], _ scope: TemplateScope, _ out: inout String) throws -> Flow {
        for node in nodes {
            switch node {
            case .text(let s):
                out += s
                try budget.check(output: out)
            case .output(let e):
                out += try eval(e, scope).text
                try budget.check(output: out)
            case .ifChain(let branches, let otherwise):
                var taken = false
                for (condition, body) in branches where try eval(condition, scope).truthy {
                    taken = true
                    let flow = try render(body, scope, &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try render(otherwise, scope, &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let targets, let sequence, let filter, let body, let otherwise, let at):
                let flow = try forLoop(targets, sequence, filter, body, otherwise, at: at, scope, &out)
                if flow != .normal { return flow }
            case .set(let target, let e, let at):
                try assign(target, try eval(e, scope), scope, at: at)
            case .setBlock(let target, let body, let at):
                var text = ""
                _ = try render(body, scope, &text)
                try assign(target, .string(text), scope, at: at)
            case .macro(let name, let parameters, let body):
                scope.variables[name] = .function(macro(name, parameters, body, scope))
            case .breakLoop(let at), .continueLoop(let at):
                // Only reached outside a loop body (a loop handles its own).
                guard loopDepth(scope) > 0 else { throw locator.error(.syntax, "'break'/'continue' outside a loop", at: at) }
                if case .breakLoop = node { return .breakLoop }
                return .continueLoop
            }
        }
        return .normal
    }

    func loopDepth(_ scope: TemplateScope) -> Int { scope.lookup("loop") == nil ? 0 : 1 }

    func assign(_ target: TemplateTarget, _ value: TemplateValue, _ scope: TemplateScope, at: Int) throws {
        try located(at) { try TemplateBuiltins.checkNesting(value) }
        switch target {
        case .name(let n):
            scope.variables[n] = value
        case .names(let names):
            let items = try located(at) { try TemplateBuiltins.iterate(value) }
            guard items.count == names.count else {
                throw locator.error(.render, "cannot unpack \(items.count) values into \(names.count) names", at: at)
            }
            for (n, v) in zip(names, items) { scope.variables[n] = v }
        case .attribute(let ns, let attribute):
            guard case .namespace(let namespace)? = scope.lookup(ns) else {
                throw locator.error(.render, "cannot set '\(ns).\(attribute)': '\(ns)' is not a namespace()", at: at)
            }
            // Checked once stored: `{% set ns.me = ns %}` nests only afterwards (then it is undone).
            let previous = namespace.values.values[attribute]
            namespace.values[attribute] = value
            do {
                try located(at) { try TemplateBuiltins.checkNesting(.namespace(namespace)) }
            } catch {
                namespace.values[attribute] = previous
                throw error
            }
        }
    }

    func forLoop(_ targets: [String], _ sequence: TemplateExpr, _ filter: TemplateExpr?, _ body: [TemplateNode],
                 _ otherwise: [TemplateNode], at: Int, _ scope: TemplateScope, _ out: inout String) throws -> Flow {
        let all = try located(at) { try TemplateBuiltins.iterate(try eval(sequence, scope)) }
        func bind(_ item: TemplateValue, _ s: TemplateScope) throws {
            if targets.count == 1 {
                s.variables[targets[0]] = item
            } else {
                try assign(.names(targets), item, s, at: at)
            }
        }
        var items: [TemplateValue] = []
        for item in all {
            if let filter {
                let s = TemplateScope(parent: scope)
                try bind(item, s)
                guard try eval(filter, s).truthy else { continue }
            }
            items.append(item)
        }
        if items.isEmpty { return try render(otherwise, scope, &out) }
        for (i, item) in items.enumerated() {
            try located(at) { try budget.countIteration() }
            let s = TemplateScope(parent: scope)
            try bind(item, s)
            let n = items.count
            var loop = TemplateDict()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined("loop.previtem")
            loop["nextitem"] = i < n - 1 ? items[i + 1] : .undefined("loop.nextitem")
            loop["cycle"] = .function(TemplateFunction("loop.cycle") { args in
                guard !args.positional.isEmpty else { throw TemplateFailure("loop.cycle needs at least one value") }
                return args.positional[i % args.positional.count]
            })
            s.variables["loop"] = .dict(loop)
            let flow = try render(body, s, &out)
            if flow == .breakLoop { break }
        }
        return .normal
    }

    func macro(_ name: String, _ parameters: [(String, TemplateExpr?)], _ body: [TemplateNode], _ defining: TemplateScope) -> TemplateFunction {
        TemplateFunction(name) { args in
            let s = TemplateScope(parent: defining)
            for (i, (p, defaultValue)) in parameters.enumerated() {
                if let v = args.value(i, p) {
                    s.variables[p] = v
                } else if let defaultValue {
                    s.variables[p] = try eval(defaultValue, s)
                } else {
                    s.variables[p] = .undefined(p)
                }
            }
            guard args.positional.count <= parameters.count else {
                throw TemplateFailure("macro '\(name)' takes \(parameters.count) arguments, \(args.positional.count) given")
            }
            try budget.enterMacro(name)
            defer { budget.macroDepth -= 1 }
            var text = ""
            _ = try render(body, s, &text)
            return .string(text)
        }
    }

    // MARK: expressions

    func eval(_ e: TemplateExpr, _ scope: TemplateScope) throws -> TemplateValue {
        switch e {
        case .literal(let v):
            return v
        case .name(let n, _):
            return scope.lookup(n) ?? .undefined(n)
        case .list(let items):
            return .list(try items.map { try eval($0, scope) })
        case .tuple(let items):
            return .list(try items.map { try eval($0, scope) })
        case .dict(let pairs, let at):
            var d = TemplateDict()
            for (k, v) in pairs {
                guard case .string(let key) = try eval(k, scope) else { throw locator.error(.unsupported, "dict keys other than strings", at: at) }
                d[key] = try eval(v, scope)
            }
            return .dict(d)
        case .attribute(let base, let name, let at):
            let v = try eval(base, scope)
            return try located(at) { try TemplateBuiltins.attribute(v, name) }
        case .item(let base, let key, let at):
            let v = try eval(base, scope), k = try eval(key, scope)
            return try located(at) { try TemplateBuiltins.item(v, k) }
        case .slice(let base, let lo, let hi, let step, let at):
            let v = try eval(base, scope)
            let bounds = try [lo, hi, step].map { try $0.map { try eval($0, scope) } }
            return try located(at) { try TemplateBuiltins.slice(v, bounds[0], bounds[1], bounds[2]) }
        case .call(let callee, let positional, let keyword, let at):
            let f = try eval(callee, scope)
            let args = TemplateArguments(positional: try positional.map { try eval($0, scope) },
                                         keyword: try keyword.map { ($0.0, try eval($0.1, scope)) })
            return try located(at) {
                guard case .function(let function) = f else {
                    if case .undefined(let n) = f { throw TemplateFailure("'\(n)' is undefined") }
                    throw TemplateFailure("a \(f.typeName) is not callable")
                }
                return try function.body(args)
            }
        case .filter(let base, let name, let positional, let keyword, let at):
            let v = try eval(base, scope)
            let args = TemplateArguments(positional: try positional.map { try eval($0, scope) },
                                         keyword: try keyword.map { ($0.0, try eval($0.1, scope)) })
            return try located(at) { try TemplateBuiltins.filter(name, v, args) }
        case .test(let base, let name, let args, let negated, let at):
            let v = try eval(base, scope)
            let values = try args.map { try eval($0, scope) }
            let result = try located(at) { try TemplateBuiltins.test(name, v, values) }
            return .bool(result != negated)
        case .not(let x):
            return .bool(!(try eval(x, scope).truthy))
        case .negate(let x, let at):
            let v = try eval(x, scope)
            return try located(at) {
                switch v {
                case .int(let n): return n == .min ? .double(-Double(n)) : .int(-n)  // -Int.min trapped
                case .double(let d): return .double(-d)
                case .bool(let b): return .int(b ? -1 : 0)
                default: throw TemplateFailure("cannot negate a \(v.typeName)")
                }
            }
        case .binary(let op, let l, let r, let at):
            let a = try eval(l, scope), b = try eval(r, scope)
            return try located(at) { try TemplateBuiltins.binary(op, a, b) }
        case .and(let l, let r):
            let a = try eval(l, scope)
            return a.truthy ? try eval(r, scope) : a
        case .or(let l, let r):
            let a = try eval(l, scope)
            return a.truthy ? a : try eval(r, scope)
        case .conditional(let condition, let then, let otherwise):
            if try eval(condition, scope).truthy { return try eval(then, scope) }
            return try otherwise.map { try eval($0, scope) } ?? .undefined("conditional")
        }
    }
}

/// Bounds on one render, so a hostile or broken template (they come with model downloads) ends in
/// an error instead of a hang, an exhausted machine or a stack overflow: loop iterations in total,
/// macro calls in progress (recursion), and the length of the text produced.
final class RenderBudget {
    /// A variable only so a test can check the bound without a million iterations of a debug build.
    nonisolated(unsafe) static var maxIterations = 1 << 20
    static let maxMacroDepth = 200
    var iterations = 0
    var macroDepth = 0

    func countIteration() throws {
        iterations += 1
        guard iterations <= Self.maxIterations else {
            throw TemplateFailure("more than \(Self.maxIterations) loop iterations in one render")
        }
    }

    func enterMacro(_ name: String) throws {
        guard macroDepth < Self.maxMacroDepth else {
            throw TemplateFailure("macro '\(name)' nested more than \(Self.maxMacroDepth) calls deep (unbounded recursion?)")
        }
        macroDepth += 1
    }

    func check(output: String) throws {
        guard output.utf8.count <= TemplateBuiltins.maxGeneratedLength else {
            throw TemplateFailure("the rendered text passed \(TemplateBuiltins.maxGeneratedLength) bytes")
        }
    }
}
