import Foundation

/// Jinja's operators, filters, tests and the Python methods templates call on strings and dicts,
/// with Python's semantics (strings by Unicode scalar, `/` always a float, `//` flooring), as
/// Hugging Face's sandboxed environment provides them. Anything else is named as unsupported.
enum TemplateBuiltins {
    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }
    static func string(_ xs: some Sequence<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(xs)) }

    static func iterate(_ v: TemplateValue) throws -> [TemplateValue] {
        switch v {
        case .list(let xs): return xs
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return scalars(s).map { .string(String($0)) }
        case .undefined: return []
        default: throw TemplateFailure("a \(v.typeName) is not iterable")
        }
    }

    static func length(_ v: TemplateValue) throws -> Int {
        switch v {
        case .list(let xs): return xs.count
        case .dict(let d): return d.keys.count
        case .string(let s): return s.unicodeScalars.count
        case .undefined: return 0
        default: throw TemplateFailure("a \(v.typeName) has no length")
        }
    }

    // MARK: access

    static func attribute(_ v: TemplateValue, _ name: String) throws -> TemplateValue {
        switch v {
        case .undefined(let n): throw TemplateFailure("'\(n)' is undefined (reading .\(name))")
        case .dict(let d):
            if let m = try method(v, name) { return m }
            return d[name] ?? .undefined(name)
        case .namespace(let ns): return ns.values[name] ?? .undefined(name)
        default: return try method(v, name) ?? .undefined(name)
        }
    }

    static func item(_ v: TemplateValue, _ key: TemplateValue) throws -> TemplateValue {
        switch (v, key) {
        case (.undefined(let n), _): throw TemplateFailure("'\(n)' is undefined (reading [\(key.repr)])")
        case (.dict(let d), .string(let k)): return try d[k] ?? method(v, k) ?? .undefined(k)
        case (.namespace(let ns), .string(let k)): return ns.values[k] ?? .undefined(k)
        case (.list(let xs), _):
            guard let i = index(key) else { throw TemplateFailure("list indices must be integers, not \(key.typeName)") }
            let j = i < 0 ? i + xs.count : i
            return xs.indices.contains(j) ? xs[j] : .undefined("[\(i)]")
        case (.string(let s), _):
            guard let i = index(key) else { throw TemplateFailure("string indices must be integers, not \(key.typeName)") }
            let cs = scalars(s)
            let j = i < 0 ? i + cs.count : i
            return cs.indices.contains(j) ? .string(String(cs[j])) : .undefined("[\(i)]")
        case (_, .string(let k)): return try attribute(v, k)
        default: return .undefined("[\(key.repr)]")
        }
    }

    /// The most characters (or list items) one operation may produce: templates come with model
    /// downloads, and `"x" * 10**12` or `center(10**12)` must be an error, not an allocation that
    /// takes the machine down. Chat prompts are many orders of magnitude smaller.
    static let maxGeneratedLength = 1 << 24
    /// Lists, dicts and namespaces nested deeper than this cannot be stored by `set`: a loop wrapping a
    /// namespace value (`{% set ns.x = [ns.x] %}`) 10^6 times overflowed the stack when the value was
    /// printed or freed, and `{% set ns.me = ns %}` made printing recurse without end.
    static let maxValueNesting = 256

    /// Throws if `v` nests containers deeper than `maxValueNesting` (a namespace holding itself does).
    static func checkNesting(_ v: TemplateValue, depth: Int = 0) throws {
        func deeper() throws -> Int {
            guard depth < maxValueNesting else {
                throw TemplateFailure("value nested more than \(maxValueNesting) deep (or a namespace that contains itself)")
            }
            return depth + 1
        }
        switch v {
        case .list(let xs):
            let d = try deeper()
            for x in xs { try checkNesting(x, depth: d) }
        case .dict(let dict):
            let d = try deeper()
            for k in dict.keys { try checkNesting(dict.values[k]!, depth: d) }
        case .namespace(let ns):
            let d = try deeper()
            for k in ns.values.keys { try checkNesting(ns.values.values[k]!, depth: d) }
        default:
            return
        }
    }

    /// `tojson(indent=…)` beyond this is refused (the indent is repeated per nesting level).
    static let maxJSONIndent = 1024

    /// `n` (negative counts as 0, as in Python) if `n` copies of `size` units stay within `limit`.
    static func repetitions(_ n: Int, of size: Int, _ what: String, limit: Int = maxGeneratedLength) throws -> Int {
        let count = max(n, 0)
        let (total, overflow) = count.multipliedReportingOverflow(by: max(size, 1))
        guard !overflow, total <= limit else {
            throw TemplateFailure("\(what) of \(n) would produce more than \(limit) characters or items")
        }
        return count
    }

    /// `total` characters or items, if within `maxGeneratedLength` (concatenations, joins, replacements:
    /// a loop doubling a string through `+` or `~` must stop at an error, not at the machine's memory).
    static func bounded(_ total: Int, _ what: String) throws -> Int {
        guard total <= maxGeneratedLength else {
            throw TemplateFailure("\(what) would produce more than \(maxGeneratedLength) characters or items")
        }
        return total
    }

    /// Jinja's `int` of a float: NaN and infinities give 0 (its default for values `int()` refuses);
    /// a finite value past the 64-bit range is an error here (Python would make a big integer).
    static func integer(_ d: Double) throws -> Int {
        guard d.isFinite else { return 0 }
        guard let n = Int(exactly: d.rounded(.towardZero)) else {
            throw TemplateFailure("int: \(d) is outside the 64-bit integer range")
        }
        return n
    }

    static func index(_ v: TemplateValue) -> Int? {
        switch v {
        case .int(let n): return n
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python slicing `[lo:hi:step]`.
    static func slice(_ v: TemplateValue, _ lo: TemplateValue?, _ hi: TemplateValue?, _ step: TemplateValue?) throws -> TemplateValue {
        func bound(_ x: TemplateValue?) throws -> Int? {
            switch x {
            case nil, .none?, .undefined?: return nil
            case let x?:
                guard let n = index(x) else { throw TemplateFailure("slice indices must be integers, not \(x.typeName)") }
                return n
            }
        }
        let step = try bound(step) ?? 1
        guard step != 0 else { throw TemplateFailure("slice step cannot be zero") }
        func indices(_ count: Int) throws -> [Int] {
            func clamp(_ i: Int?, _ fallback: Int) -> Int {
                guard var i else { return fallback }
                if i < 0 { i += count }
                return step > 0 ? min(max(i, 0), count) : min(max(i, -1), count - 1)
            }
            let start = clamp(try bound(lo), step > 0 ? 0 : count - 1)
            let stop = clamp(try bound(hi), step > 0 ? count : -1)
            return Array(stride(from: start, to: stop, by: step))
        }
        switch v {
        case .list(let xs): return .list(try indices(xs.count).map { xs[$0] })
        case .string(let s):
            let cs = scalars(s)
            return .string(string(try indices(cs.count).map { cs[$0] }))
        case .undefined(let n): throw TemplateFailure("'\(n)' is undefined (slicing)")
        default: throw TemplateFailure("a \(v.typeName) cannot be sliced")
        }
    }

    // MARK: operators

    static func binary(_ op: String, _ a: TemplateValue, _ b: TemplateValue) throws -> TemplateValue {
        func fail() -> TemplateFailure {
            if case .undefined(let n) = a { return TemplateFailure("'\(n)' is undefined (in '\(op)')") }
            if case .undefined(let n) = b { return TemplateFailure("'\(n)' is undefined (in '\(op)')") }
            return TemplateFailure("'\(op)' is not supported between a \(a.typeName) and a \(b.typeName)")
        }
        func arithmetic(_ ints: (Int, Int) -> Int?, _ doubles: (Double, Double) -> Double) throws -> TemplateValue {
            if let x = index(a), let y = index(b), let r = ints(x, y) { return .int(r) }
            guard let x = a.number, let y = b.number else { throw fail() }
            return .double(doubles(x, y))
        }
        switch op {
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)):
                _ = try bounded(x.utf8.count + y.utf8.count, "'+'")
                return .string(x + y)
            case (.list(let x), .list(let y)):
                _ = try bounded(x.count + y.count, "'+'")
                return .list(x + y)
            default: return try arithmetic({ $0.addingReportingOverflow($1).overflow ? nil : $0 + $1 }, +)
            }
        case "-": return try arithmetic({ $0.subtractingReportingOverflow($1).overflow ? nil : $0 - $1 }, -)
        case "*":
            switch (a, b) {
            case (.string(let s), .int(let n)), (.int(let n), .string(let s)):
                return .string(String(repeating: s, count: try repetitions(n, of: s.utf8.count, "'*'")))
            case (.list(let xs), .int(let n)), (.int(let n), .list(let xs)):
                return .list(Array([[TemplateValue]](repeating: xs, count: try repetitions(n, of: xs.count, "'*'")).joined()))
            default: return try arithmetic({ $0.multipliedReportingOverflow(by: $1).overflow ? nil : $0 * $1 }, *)
            }
        case "/":
            guard let x = a.number, let y = b.number else { throw fail() }
            guard y != 0 else { throw TemplateFailure("division by zero") }
            return .double(x / y)
        case "//":
            guard let y = b.number, y != 0 else { throw b.number == nil ? fail() : TemplateFailure("division by zero") }
            // Integer floor division (through Double it lost precision past 2^53, and Int.min // -1 trapped).
            return try arithmetic({ x, y in
                if x == .min && y == -1 { return nil }
                let q = x / y
                return x % y != 0 && (x < 0) != (y < 0) ? q - 1 : q
            }, { ($0 / $1).rounded(.down) })
        case "%":
            if case .string = a { throw TemplateFailure("'%' string formatting (use the format filter)", kind: .unsupported) }
            guard let y = b.number, y != 0 else { throw b.number == nil ? fail() : TemplateFailure("modulo by zero") }
            // Python's sign (the divisor's); `(x % y) + y` overflowed near Int.max and Int.min % -1 trapped.
            return try arithmetic({ x, y in
                let r = y == -1 ? 0 : x % y
                return r != 0 && (r < 0) != (y < 0) ? r + y : r
            }, { x, y in x - y * (x / y).rounded(.down) })
        case "**":
            return try arithmetic({ x, y in y >= 0 ? Int(exactly: pow(Double(x), Double(y))) : nil }, { pow($0, $1) })
        case "~":
            let x = a.text, y = b.text
            _ = try bounded(x.utf8.count + y.utf8.count, "'~'")
            return .string(x + y)
        case "==": return .bool(TemplateValue.equal(a, b))
        case "!=": return .bool(!TemplateValue.equal(a, b))
        case "<", ">", "<=", ">=":
            let order: Int
            switch (a, b) {
            case (.string(let x), .string(let y)): order = x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars) ? -1 : x == y ? 0 : 1
            default:
                guard let x = a.number, let y = b.number else { throw fail() }
                order = x < y ? -1 : x == y ? 0 : 1
            }
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "in", "not in":
            let found: Bool
            switch b {
            case .string(let s):
                guard case .string(let x) = a else { throw TemplateFailure("'in <string>' needs a string on the left, not a \(a.typeName)") }
                found = x.isEmpty || s.contains(x)
            case .list(let xs): found = xs.contains { TemplateValue.equal($0, a) }
            case .dict(let d):
                guard case .string(let k) = a else { found = false; break }
                found = d[k] != nil
            case .undefined: found = false
            default: throw TemplateFailure("'in' needs a string, list or dict on the right, not a \(b.typeName)")
            }
            return .bool(found == (op == "in"))
        default:
            throw TemplateFailure("operator '\(op)'", kind: .unsupported)
        }
    }

    // MARK: tests

    static func test(_ name: String, _ v: TemplateValue, _ args: [TemplateValue]) throws -> Bool {
        func arg(_ i: Int) throws -> TemplateValue {
            guard i < args.count else { throw TemplateFailure("test '\(name)' needs an argument") }
            return args[i]
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": if case .int = v { return true } else if case .double = v { return true } else { return false }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "sequence", "iterable":
            switch v {
            case .list, .string, .dict: return true
            default: return false
            }
        case "callable": if case .function = v { return true } else { return false }
        case "odd", "even":
            guard let n = index(v) else { throw TemplateFailure("test '\(name)' needs an integer, not a \(v.typeName)") }
            return (n % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let n = index(v), let d = index(try arg(0)), d != 0 else { throw TemplateFailure("test 'divisibleby' needs integers") }
            return n % d == 0
        case "eq", "equalto", "==": return TemplateValue.equal(v, try arg(0))
        case "ne", "!=": return !TemplateValue.equal(v, try arg(0))
        case "lt", "<", "gt", ">", "le", "<=", "ge", ">=":
            let op = ["lt": "<", "gt": ">", "le": "<=", "ge": ">="][name] ?? name
            return try binary(op, v, try arg(0)).truthy
        case "in": return try binary("in", v, try arg(0)).truthy
        case "sameas":
            let other = try arg(0)
            switch (v, other) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            default: return false
            }
        case "lower", "upper":
            guard case .string(let s) = v else { return false }
            return name == "lower" ? s == s.lowercased() : s == s.uppercased()
        default:
            throw TemplateFailure("test '\(name)'", kind: .unsupported)
        }
    }

    // MARK: filters

    static func filter(_ name: String, _ v: TemplateValue, _ args: TemplateArguments) throws -> TemplateValue {
        func str(_ i: Int, _ key: String, _ fallback: String? = nil) throws -> String {
            switch args.value(i, key) {
            case .string(let s)?: return s
            case nil: if let fallback { return fallback }
            case let other?: throw TemplateFailure("filter '\(name)': \(key) must be a string, not a \(other.typeName)")
            }
            throw TemplateFailure("filter '\(name)' needs its \(key) argument")
        }
        func requireString() throws -> String {
            switch v {
            case .string(let s): return s
            case .undefined(let n): throw TemplateFailure("'\(n)' is undefined (filter '\(name)')")
            default: return v.text
            }
        }
        switch name {
        case "trim":
            let s = try requireString()
            if case .string(let chars)? = args.value(0, "chars") { return .string(strip(s, chars, left: true, right: true)) }
            return .string(strip(s, nil, left: true, right: true))
        case "length", "count":
            return .int(try length(v))
        case "tojson":
            var indent: Int?
            if let i = args.value(0, "indent"), case .int(let n) = i { indent = try repetitions(n, of: 1, "tojson indent", limit: maxJSONIndent) }
            let sortKeys = args.value(99, "sort_keys")?.truthy ?? false
            return .string(try TemplateJSON.encode(v, indent: indent, sortKeys: sortKeys))
        case "default", "d":
            let fallback = args.value(0, "default_value") ?? .string("")
            let boolean = args.value(1, "boolean")?.truthy ?? false
            return v.isUndefined || (boolean && !v.truthy) ? fallback : v
        case "upper": return .string(try requireString().uppercased())
        case "lower": return .string(try requireString().lowercased())
        case "capitalize":
            let s = try requireString().lowercased()
            return .string(s.prefix(1).uppercased() + s.dropFirst())
        case "title": return .string(title(try requireString()))
        case "string": return .string(v.text)
        case "safe": return v
        case "escape", "e":
            let s = try requireString()
            return .string(s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&#34;").replacingOccurrences(of: "'", with: "&#39;"))
        case "first":
            return try iterate(v).first ?? .undefined("first")
        case "last":
            return try iterate(v).last ?? .undefined("last")
        case "list":
            return .list(try iterate(v))
        case "reverse":
            if case .string(let s) = v { return .string(string(scalars(s).reversed())) }
            return .list(try iterate(v).reversed())
        case "join":
            var items = try iterate(v)
            if case .string(let attr)? = args.value(1, "attribute") { items = try items.map { try attribute($0, attr) } }
            return .string(try joined(items.map(\.text), try str(0, "d", "")))
        case "replace":
            // Over Unicode scalars, in Swift: Foundation's replaceOccurrences crashed (SIGILL) on a search
            // string with NUL characters (tools/fuzz chat-template, 320 791 executions).
            let s = try requireString(), old = try str(0, "old"), new = try str(1, "new")
            var limit = Int.max
            if case .int(let count)? = args.value(2, "count") { limit = max(count, 0) }
            let hay = Array(s.unicodeScalars), needle = Array(old.unicodeScalars)
            guard !needle.isEmpty, needle.count <= hay.count else { return .string(s) }
            func matches(at i: Int) -> Bool { i + needle.count <= hay.count && hay[i] == needle[0] && hay[i..<i + needle.count].elementsEqual(needle) }
            if new.unicodeScalars.count > needle.count {
                var found = 0, i = 0
                while i < hay.count, found < limit { if matches(at: i) { found += 1; i += needle.count } else { i += 1 } }
                _ = try bounded(s.utf8.count + found * (new.utf8.count - old.utf8.count), "replace")
            }
            var out = String.UnicodeScalarView()
            var i = 0, done = 0
            while i < hay.count {
                if done < limit, matches(at: i) {
                    out.append(contentsOf: new.unicodeScalars)
                    i += needle.count
                    done += 1
                } else {
                    out.append(hay[i])
                    i += 1
                }
            }
            return .string(String(out))
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return .int(try integer(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s): return .int(try Int(s.trimmingCharacters(in: .whitespaces)) ?? Double(s).map(integer) ?? 0)
            default: return .int(0)
            }
        case "float":
            switch v {
            case .string(let s): return .double(Double(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            default: return .double(v.number ?? 0)
            }
        case "abs":
            switch v {
            case .int(let n): return n == .min ? .double(-Double(n)) : .int(abs(n))
            case .double(let d): return .double(abs(d))
            default: throw TemplateFailure("filter 'abs' needs a number, not a \(v.typeName)")
            }
        case "round":
            guard let d = v.number else { throw TemplateFailure("filter 'round' needs a number") }
            let precision = args.value(0, "precision").flatMap(index) ?? 0
            let scale = pow(10, Double(precision))
            return .double((d * scale).rounded(.toNearestOrEven) / scale)
        case "items":
            guard case .dict(let d) = v else { throw TemplateFailure("filter 'items' needs a dict, not a \(v.typeName)") }
            return .list(d.keys.map { .list([.string($0), d[$0]!]) })
        case "dictsort":
            guard case .dict(let d) = v else { throw TemplateFailure("filter 'dictsort' needs a dict, not a \(v.typeName)") }
            return .list(d.keys.sorted().map { .list([.string($0), d[$0]!]) })
        case "unique":
            var seen: [TemplateValue] = []
            for x in try iterate(v) where !seen.contains(where: { TemplateValue.equal($0, x) }) { seen.append(x) }
            return .list(seen)
        case "sort":
            var items = try iterate(v)
            let attr: String? = { if case .string(let a)? = args.value(2, "attribute") { return a } else { return nil } }()
            let keys = try items.map { x in try attr.map { try attribute(x, $0) } ?? x }
            var order = Array(items.indices)
            var failure: Error?
            order.sort { i, j in
                do { return try binary("<", keys[i], keys[j]).truthy } catch { failure = error; return false }
            }
            if let failure { throw failure }
            if args.value(0, "reverse")?.truthy ?? false { order.reverse() }
            items = order.map { items[$0] }
            return .list(items)
        case "map":
            let items = try iterate(v)
            if case .string(let attr)? = args.keyword.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = args.keyword.first { $0.0 == "default" }?.1
                return .list(try items.map { x in
                    let y = try attribute(x, attr)
                    return y.isUndefined ? (fallback ?? y) : y
                })
            }
            guard case .string(let f)? = args.positional.first else { throw TemplateFailure("filter 'map' needs a filter name or attribute=") }
            let rest = TemplateArguments(positional: Array(args.positional.dropFirst()), keyword: args.keyword)
            return .list(try items.map { try filter(f, $0, rest) })
        case "select", "reject":
            let items = try iterate(v)
            let testName: String? = { if case .string(let t)? = args.positional.first { return t } else { return nil } }()
            let testArgs = Array(args.positional.dropFirst())
            return .list(try items.filter { x in
                let ok = try testName.map { try test($0, x, testArgs) } ?? x.truthy
                return ok == (name == "select")
            })
        case "selectattr", "rejectattr":
            let items = try iterate(v)
            guard case .string(let attr)? = args.positional.first else { throw TemplateFailure("filter '\(name)' needs an attribute name") }
            let testName: String? = { if args.positional.count > 1, case .string(let t) = args.positional[1] { return t } else { return nil } }()
            let testArgs = Array(args.positional.dropFirst(2))
            return .list(try items.filter { x in
                let a = try attribute(x, attr)
                let ok = try testName.map { try test($0, a, testArgs) } ?? a.truthy
                return ok == (name == "selectattr")
            })
        case "indent":
            let s = try requireString()
            let width: String
            switch args.value(0, "width") {
            case .int(let n)?: width = String(repeating: " ", count: try repetitions(n, of: 1, "indent width"))
            case .string(let w)?: width = w
            default: width = "    "
            }
            let first = args.value(1, "first")?.truthy ?? false
            let blank = args.value(2, "blank")?.truthy ?? false
            let lines = s.components(separatedBy: "\n")
            _ = try bounded(s.utf8.count + lines.count * width.utf8.count, "indent")
            return .string(lines.enumerated().map { i, line in
                (i == 0 && !first) || (!blank && line.trimmingCharacters(in: .whitespaces).isEmpty) ? line : width + line
            }.joined(separator: "\n"))
        case "wordcount":
            return .int(try requireString().split(whereSeparator: { $0.isWhitespace }).count)
        case "center":
            let s = try requireString()
            let width = try repetitions(args.value(0, "width").flatMap(index) ?? 80, of: 1, "center width")
            let pad = max(width - s.count, 0)
            return .string(String(repeating: " ", count: pad / 2) + s + String(repeating: " ", count: pad - pad / 2))
        case "format":
            return .string(try percentFormat(try requireString(), args.positional))
        default:
            throw TemplateFailure("filter '\(name)'", kind: .unsupported)
        }
    }

    /// `parts` joined by `separator`, once their total length is known to be within bounds.
    static func joined(_ parts: [String], _ separator: String) throws -> String {
        let total = parts.reduce(max(parts.count - 1, 0) * separator.utf8.count) { $0 + $1.utf8.count }
        _ = try bounded(total, "join")
        return parts.joined(separator: separator)
    }

    static func title(_ s: String) -> String {
        var out = ""
        var previousIsLetter = false
        for c in s {
            out += previousIsLetter ? c.lowercased() : c.uppercased()
            previousIsLetter = c.isLetter
        }
        return out
    }

    /// `"%s and %d" | format(a, b)`: the conversions templates use.
    static func percentFormat(_ format: String, _ values: [TemplateValue]) throws -> String {
        var out = ""
        var k = 0
        var chars = Array(format)[...]
        while let c = chars.popFirst() {
            guard c == "%" else { out.append(c); continue }
            guard let spec = chars.popFirst() else { throw TemplateFailure("format: a lone '%' at the end") }
            if spec == "%" { out.append("%"); continue }
            guard k < values.count else { throw TemplateFailure("format: not enough arguments") }
            let v = values[k]
            k += 1
            switch spec {
            case "s": out += v.text
            case "r": out += v.repr
            case "d", "i": out += String(try index(v) ?? integer(v.number ?? 0))
            case "f": out += String(format: "%f", v.number ?? 0)
            default: throw TemplateFailure("format: '%\(spec)' conversions", kind: .unsupported)
            }
        }
        return out
    }

    /// Python's strip/lstrip/rstrip: whitespace, or any of `chars`.
    static func strip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        func drop(_ c: Unicode.Scalar) -> Bool { set?.contains(c) ?? c.properties.isWhitespace }
        var cs = scalars(s)[...]
        if left { while let f = cs.first, drop(f) { cs.removeFirst() } }
        if right { while let l = cs.last, drop(l) { cs.removeLast() } }
        return string(cs)
    }

    // MARK: methods

    /// The Python method `name` of `v`, bound to it; nil when `v` has none by that name.
    static func method(_ v: TemplateValue, _ name: String) throws -> TemplateValue? {
        func bound(_ body: @escaping (TemplateArguments) throws -> TemplateValue) -> TemplateValue {
            .function(TemplateFunction(name, body))
        }
        switch v {
        case .string(let s):
            switch name {
            case "strip", "lstrip", "rstrip":
                return bound { args in
                    let chars: String? = { if case .string(let c)? = args.value(0, "chars") { return c } else { return nil } }()
                    return .string(strip(s, chars, left: name != "rstrip", right: name != "lstrip"))
                }
            case "split", "rsplit":
                return bound { args in
                    let limit = args.value(1, "maxsplit").flatMap(index) ?? -1
                    if case .string(let sep)? = args.value(0, "sep") {
                        guard !sep.isEmpty else { throw TemplateFailure("split: empty separator") }
                        var parts = s.components(separatedBy: sep)
                        if limit >= 0, parts.count - 1 > limit {  // `limit + 1` trapped at Int.max
                            if name == "split" {
                                parts = Array(parts[..<limit]) + [parts[limit...].joined(separator: sep)]
                            } else {
                                let keep = parts.count - limit
                                parts = [parts[..<keep].joined(separator: sep)] + Array(parts[keep...])
                            }
                        }
                        return .list(parts.map { .string($0) })
                    }
                    guard limit < 0 else { throw TemplateFailure("split: maxsplit without a separator", kind: .unsupported) }
                    return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
                }
            case "startswith", "endswith":
                return bound { args in
                    let options: [TemplateValue]
                    switch args.value(0, "prefix") {
                    case .string?: options = [args.value(0, "prefix")!]
                    case .list(let xs)?: options = xs
                    default: throw TemplateFailure("\(name) needs a string or a tuple of strings")
                    }
                    return .bool(options.contains { o in
                        guard case .string(let p) = o else { return false }
                        return name == "startswith" ? s.unicodeScalars.starts(with: p.unicodeScalars)
                            : s.unicodeScalars.reversed().starts(with: p.unicodeScalars.reversed())
                    })
                }
            case "lower": return bound { _ in .string(s.lowercased()) }
            case "upper": return bound { _ in .string(s.uppercased()) }
            case "title": return bound { _ in .string(title(s)) }
            case "capitalize": return bound { _ in .string(s.lowercased().prefix(1).uppercased() + s.lowercased().dropFirst()) }
            case "replace":
                return bound { args in
                    guard case .string(let a)? = args.value(0, "old"), case .string(let b)? = args.value(1, "new") else {
                        throw TemplateFailure("replace needs two strings")
                    }
                    return try filter("replace", v, args.positional.count > 2 ? TemplateArguments(positional: [.string(a), .string(b), args.positional[2]]) : TemplateArguments(positional: [.string(a), .string(b)]))
                }
            case "find":
                return bound { args in
                    guard case .string(let sub)? = args.value(0, "sub") else { throw TemplateFailure("find needs a string") }
                    guard let r = s.range(of: sub) else { return .int(-1) }
                    return .int(s.unicodeScalars.distance(from: s.startIndex, to: r.lowerBound))
                }
            case "count":
                return bound { args in
                    guard case .string(let sub)? = args.value(0, "sub"), !sub.isEmpty else { throw TemplateFailure("count needs a non-empty string") }
                    return .int(s.components(separatedBy: sub).count - 1)
                }
            case "join":
                return bound { args in .string(try joined(try iterate(args.value(0, "iterable") ?? .list([])).map(\.text), s)) }
            case "splitlines":
                return bound { _ in .list(s.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" }).map { .string(String($0)) }
                                        .dropLast(s.hasSuffix("\n") ? 1 : 0)) }
            case "isdigit", "isspace", "isalpha", "isalnum":
                return bound { _ in
                    let cs = s.unicodeScalars
                    guard !cs.isEmpty else { return .bool(false) }
                    switch name {
                    case "isdigit": return .bool(cs.allSatisfy { $0.properties.numericType != nil })
                    case "isspace": return .bool(cs.allSatisfy { $0.properties.isWhitespace })
                    case "isalpha": return .bool(cs.allSatisfy { $0.properties.isAlphabetic })
                    default: return .bool(cs.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
                    }
                }
            case "format": throw TemplateFailure("str.format", kind: .unsupported)
            default: return nil
            }
        case .dict(let d):
            switch name {
            case "items": return bound { _ in .list(d.keys.map { .list([.string($0), d[$0]!]) }) }
            case "keys": return bound { _ in .list(d.keys.map { .string($0) }) }
            case "values": return bound { _ in .list(d.keys.map { d[$0]! }) }
            case "get":
                return bound { args in
                    guard case .string(let k)? = args.value(0, "key") else { return args.value(1, "default") ?? .none }
                    return d[k] ?? args.value(1, "default") ?? .none
                }
            default: return nil
            }
        case .list(let xs):
            switch name {
            case "index":
                return bound { args in
                    guard let x = args.value(0, "value"), let i = xs.firstIndex(where: { TemplateValue.equal($0, x) }) else {
                        throw TemplateFailure("list.index: value not in the list")
                    }
                    return .int(i)
                }
            case "count":
                return bound { args in .int(xs.filter { TemplateValue.equal($0, args.value(0, "value") ?? .none) }.count) }
            case "append", "extend", "pop", "insert", "remove", "clear", "sort", "reverse":
                throw TemplateFailure("list.\(name) (lists are immutable in chat templates)")
            default: return nil
            }
        default:
            return nil
        }
    }
}
