/// Checks a parsed Metal kernel body against the names MLX's `metal_kernel` declares around it and types it:
/// `<input>` / `<output>` (buffers, indexed), `<input>_shape` / `<input>_strides` (indexed), `<input>_ndim`,
/// the grid builtins, template parameters (int and bool constants, dtype names); locals in nested scopes.
/// Errors name the construct (the caller adds the kernel's name and fingerprint).
public struct MetalChecker {
    public struct Interface {
        public var inputNames: [String]
        public var inputTypes: [MetalScalar]
        public var inputRanks: [Int]
        public var outputNames: [String]
        public var outputTypes: [MetalScalar]
        /// Template parameters: int/bool constants and dtype aliases.
        public var constants: [String: MetalValue]
        public var typeAliases: [String: MetalScalar]
        public init(inputNames: [String], inputTypes: [MetalScalar], inputRanks: [Int], outputNames: [String],
                    outputTypes: [MetalScalar], constants: [String: MetalValue] = [:], typeAliases: [String: MetalScalar] = [:]) {
            self.inputNames = inputNames; self.inputTypes = inputTypes; self.inputRanks = inputRanks
            self.outputNames = outputNames; self.outputTypes = outputTypes; self.constants = constants; self.typeAliases = typeAliases
        }
    }

    /// Math builtins: name → arity (metal::, precise:: and fast:: prefixes dropped).
    static let math: [String: Int] = [
        "exp": 1, "exp2": 1, "log": 1, "log2": 1, "sqrt": 1, "rsqrt": 1, "sin": 1, "cos": 1, "tanh": 1, "floor": 1, "ceil": 1,
        "trunc": 1, "round": 1, "rint": 1, "fabs": 1, "abs": 1, "min": 2, "max": 2, "fmin": 2, "fmax": 2, "clamp": 3, "fma": 3,
    ]
    /// Calls named outside the subset (what they are).
    static let refusedCalls: [(prefix: String, what: String)] = [
        ("threadgroup_barrier", "barriers"), ("simdgroup_barrier", "barriers"), ("simd_", "simd-group functions"),
        ("quad_", "quad-group functions"), ("atomic_", "atomics"),
    ]

    let interface: Interface
    var scopes: [[String: Int]] = [[:]]
    var locals: [MetalScalar] = []
    var loopDepth = 0

    public static func check(_ body: [MetalStmt], _ interface: Interface) throws -> MetalProgram {
        var c = MetalChecker(interface: interface)
        let typed = try c.statements(body)
        return MetalProgram(body: typed, locals: c.locals, buffers: interface.inputTypes + interface.outputTypes,
                            inputRanks: interface.inputRanks, outputCount: interface.outputNames.count)
    }

    func fail(_ what: String) -> MetalSubsetError { MetalSubsetError(what) }

    func scalar(_ typeName: String) throws -> MetalScalar {
        if let t = interface.typeAliases[typeName] ?? MetalScalar(typeName: typeName) { return t }
        throw fail("type '\(typeName)' is outside the supported Metal subset")
    }

    mutating func statements(_ body: [MetalStmt]) throws -> [MetalStatement] {
        try body.flatMap { try statement($0) }
    }

    mutating func scoped(_ s: MetalStmt) throws -> [MetalStatement] {
        scopes.append([:])
        defer { scopes.removeLast() }
        return try statement(s)
    }

    mutating func statement(_ s: MetalStmt) throws -> [MetalStatement] {
        switch s {
        case .block(let body):
            scopes.append([:])
            defer { scopes.removeLast() }
            return try statements(body)
        case .declare(let typeName, let names):
            var out: [MetalStatement] = []
            for (name, value) in names {
                guard lookup(name) == nil || scopes.last?[name] == nil else { throw fail("'\(name)' is declared twice in one scope") }
                let typedValue = try value.map { try expression($0) }
                let type: MetalScalar
                if typeName == "auto" {
                    guard let v = typedValue else { throw fail("'auto \(name)' needs an initialiser") }
                    type = v.type
                } else {
                    type = try scalar(typeName)
                }
                let slot = locals.count
                locals.append(type)
                // An uninitialised local reads 0 (a GPU's is undefined).
                out.append(.set(local: slot, typedValue.map { convert($0, type) } ?? zero(type)))
                scopes[scopes.count - 1][name] = slot
            }
            return out
        case .assign(let target, let op, let value):
            var v = try expression(value)
            let (read, write) = try lvalue(target)
            if !op.isEmpty { v = try binary(op, read, v) }
            return [write(convert(v, read.type))]
        case .expression(let e):
            // Only calls could have effects; none of the subset's do, so the statement is checked and dropped.
            _ = try expression(e)
            return []
        case .ifElse(let c, let a, let b):
            return [.ifElse(try condition(c), try scoped(a), try b.map { try scoped($0) } ?? [])]
        case .whileLoop(let c, let body):
            loopDepth += 1
            defer { loopDepth -= 1 }
            return [.loop(condition: try condition(c), body: try scoped(body), step: [])]
        case .forLoop(let initial, let c, let step, let body):
            scopes.append([:])
            defer { scopes.removeLast() }
            let first = try initial.map { try statement($0) } ?? []
            let cond = try c.map { try condition($0) } ?? .int(1, .bool)
            loopDepth += 1
            defer { loopDepth -= 1 }
            let typedBody = try scoped(body)
            let typedStep = try step.map { try statement($0) } ?? []
            return first + [.loop(condition: cond, body: typedBody, step: typedStep)]
        case .returnStmt: return [.returnThread]
        case .breakStmt:
            guard loopDepth > 0 else { throw fail("'break' outside a loop") }
            return [.breakLoop]
        case .continueStmt:
            guard loopDepth > 0 else { throw fail("'continue' outside a loop") }
            return [.continueLoop]
        }
    }

    func lookup(_ name: String) -> Int? {
        for scope in scopes.reversed() { if let slot = scope[name] { return slot } }
        return nil
    }

    /// What a target reads and how to write it: a local, or an output element.
    mutating func lvalue(_ e: MetalExpr) throws -> (MetalValue, (MetalValue) -> MetalStatement) {
        switch e {
        case .name(let n):
            if let slot = lookup(n) { return (.local(slot, locals[slot]), { .set(local: slot, $0) }) }
            if interface.inputNames.contains(n) || interface.outputNames.contains(n) { throw fail("'\(n)' is a buffer: assign to an element of it") }
            if interface.constants[n] != nil { throw fail("'\(n)' is a template constant and cannot be assigned") }
            throw fail("unknown name '\(n)'")
        case .index(.name(let n), let i):
            if interface.inputNames.contains(n) { throw fail("input '\(n)' is read-only (const device)") }
            guard let o = interface.outputNames.firstIndex(of: n), lookup(n) == nil else { throw fail("'\(n)[…]' is not an output element") }
            let buffer = interface.inputNames.count + o
            let index = try self.index(i)
            let type = interface.outputTypes[o]
            return (.load(buffer: buffer, index: index, type), { .store(buffer: buffer, index: index, $0) })
        case .member: throw fail("builtins are read-only")
        default: throw fail("this expression cannot be assigned to")
        }
    }

    mutating func index(_ e: MetalExpr) throws -> MetalValue {
        let i = try expression(e)
        guard !i.type.isFloat, i.type != .bool else { throw fail("an index must be an integer, not \(i.type.rawValue)") }
        return convert(i, .i64)
    }

    mutating func condition(_ e: MetalExpr) throws -> MetalValue { toBool(try expression(e)) }

    func toBool(_ v: MetalValue) -> MetalValue {
        if v.type == .bool { return v }
        return .binary("!=", v, v.type.isFloat ? .float(0, v.type) : .int(0, v.type), .bool)
    }

    func zero(_ t: MetalScalar) -> MetalValue { t.isFloat ? .float(0, t) : .int(0, t) }

    func convert(_ v: MetalValue, _ t: MetalScalar) -> MetalValue {
        if v.type == t { return v }
        if t == .bool { return toBool(v) }
        switch v {
        case .int(let n, _) where !t.isFloat: return .int(MetalArithmetic.wrap(n, t), t)
        case .int(let n, _): return .float(MetalArithmetic.round(Double(n), t), t)
        case .float(let x, _) where t.isFloat: return .float(MetalArithmetic.round(x, t), t)
        default: return .convert(v, t)
        }
    }

    /// Integer promotion: bool and integers narrower than int become int.
    func promoted(_ t: MetalScalar) -> MetalScalar { !t.isFloat && t.bits < 32 ? .i32 : t }

    /// C++'s usual arithmetic conversions (half with bfloat, which Metal does not mix, as float).
    func common(_ a: MetalScalar, _ b: MetalScalar) -> MetalScalar {
        if a.isFloat || b.isFloat {
            if a == b { return a }
            if a == .f32 || b == .f32 { return .f32 }
            if a.isFloat && b.isFloat { return .f32 }
            return a.isFloat ? a : b
        }
        let x = promoted(a), y = promoted(b)
        if x == y { return x }
        if x.isSigned == y.isSigned { return x.bits >= y.bits ? x : y }
        let (s, u) = x.isSigned ? (x, y) : (y, x)
        if u.bits >= s.bits { return u }
        return s   // long holds every uint
    }

    mutating func binary(_ op: String, _ a: MetalValue, _ b: MetalValue) throws -> MetalValue {
        switch op {
        case "&&", "||": return .binary(op, toBool(a), toBool(b), .bool)
        case "<<", ">>":
            guard !a.type.isFloat, !b.type.isFloat else { throw fail("'\(op)' on floating-point operands") }
            let t = promoted(a.type)
            return .binary(op, convert(a, t), convert(b, t), t)
        case "==", "!=", "<", ">", "<=", ">=":
            let t = common(a.type, b.type)
            return .binary(op, convert(a, t), convert(b, t), .bool)
        case "&", "|", "^", "%":
            guard !a.type.isFloat, !b.type.isFloat else {
                throw fail(op == "%" ? "'%' on floating-point operands (Metal's fmod is not in the subset)" : "'\(op)' on floating-point operands")
            }
            let t = common(a.type, b.type)
            return .binary(op, convert(a, t), convert(b, t), t)
        case "+", "-", "*", "/":
            let t = common(a.type, b.type)
            return .binary(op, convert(a, t), convert(b, t), t)
        default: throw fail("operator '\(op)' is outside the supported Metal subset")
        }
    }

    mutating func expression(_ e: MetalExpr) throws -> MetalValue {
        switch e {
        case .int(let n, let unsigned):
            // C++: a decimal literal is int if it fits, else long (u: uint, else ulong).
            if unsigned { return .int(n, n <= Int64(UInt32.max) ? .u32 : .u64) }
            return .int(n, n <= Int64(Int32.max) ? .i32 : .i64)
        case .float(let x, let half): return .float(MetalArithmetic.round(x, half ? .f16 : .f32), half ? .f16 : .f32)
        case .bool(let v): return .int(v ? 1 : 0, .bool)
        case .name(let n):
            if let slot = lookup(n) { return .local(slot, locals[slot]) }
            if let c = interface.constants[n] { return c }
            if let i = interface.inputNames.firstIndex(where: { "\($0)_ndim" == n }) { return .int(Int64(interface.inputRanks[i]), .i32) }
            if let b = MetalBuiltin(rawValue: n) {
                guard !b.isVector else { throw fail("'\(n)' is a uint3: read its .x, .y or .z") }
                return .builtin(b, axis: 0)
            }
            if n.hasPrefix("simdgroup") || n.hasPrefix("thread_index_in_simdgroup") || n.hasPrefix("threads_per_simdgroup")
                || n.hasPrefix("simd") || n.contains("quadgroup") || n == "thread_execution_width" {
                throw fail("simd-group builtins ('\(n)') are outside the supported Metal subset")
            }
            if interface.inputNames.contains(n) || interface.outputNames.contains(n) { throw fail("buffer '\(n)' used without an index (pointers are outside the subset)") }
            throw fail("unknown name '\(n)'")
        case .member(.name(let n), let m):
            guard lookup(n) == nil, let b = MetalBuiltin(rawValue: n), b.isVector else { throw fail("'.\(m)' on '\(n)': only the uint3 builtins have members") }
            guard let axis = ["x": 0, "y": 1, "z": 2][m] else { throw fail("'\(n).\(m)': only .x, .y, .z are supported") }
            return .builtin(b, axis: axis)
        case .member(_, let m): throw fail("member '.\(m)' is outside the supported Metal subset")
        case .index(.name(let n), let i) where lookup(n) == nil:
            if let k = interface.inputNames.firstIndex(of: n) { return .load(buffer: k, index: try index(i), interface.inputTypes[k]) }
            if let k = interface.outputNames.firstIndex(of: n) {
                return .load(buffer: interface.inputNames.count + k, index: try index(i), interface.outputTypes[k])
            }
            if let k = interface.inputNames.firstIndex(where: { "\($0)_shape" == n }) { return .shape(input: k, dim: try index(i)) }
            if let k = interface.inputNames.firstIndex(where: { "\($0)_strides" == n }) { return .stride(input: k, dim: try index(i)) }
            throw fail("'\(n)[…]': '\(n)' is not a buffer, shape or strides array")
        case .index: throw fail("indexing anything but a buffer, shape or strides array is outside the supported Metal subset")
        case .call(let rawName, let args):
            var name = rawName
            for prefix in ["metal::", "precise::", "fast::"] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
            for (prefix, what) in Self.refusedCalls where name.hasPrefix(prefix) {
                throw fail("\(what) ('\(rawName)') are outside the supported Metal subset")
            }
            guard let arity = Self.math[name] else { throw fail("function '\(rawName)' is outside the supported Metal subset") }
            guard args.count == arity else { throw fail("'\(rawName)' takes \(arity) argument\(arity == 1 ? "" : "s"), \(args.count) given") }
            var typed = try args.map { try expression($0) }
            let integerForms: Set<String> = ["abs", "min", "max", "clamp"]
            var t = typed.dropFirst().reduce(typed[0].type) { common($0, $1.type) }
            if !t.isFloat && !integerForms.contains(name) { t = .f32 }
            if t == .bool { t = .i32 }
            typed = typed.map { convert($0, t) }
            return .math(name, typed, t)
        case .cast(let typeName, let x):
            return convert(try expression(x), try scalar(typeName))
        case .unary(let op, let x):
            let v = try expression(x)
            switch op {
            case "!": return .unary("!", toBool(v), .bool)
            case "+": return convert(v, promoted(v.type))
            case "-":
                let t = promoted(v.type)
                if case .int(let n, _) = v, !t.isFloat { return .int(MetalArithmetic.wrap(0 &- n, t), t) }
                if case .float(let f, _) = v { return .float(-f, t) }
                return .unary("-", convert(v, t), t)
            default:
                guard !v.type.isFloat else { throw fail("'~' on a floating-point operand") }
                let t = promoted(v.type)
                return .unary("~", convert(v, t), t)
            }
        case .binary(let op, let a, let b): return try binary(op, try expression(a), try expression(b))
        case .conditional(let c, let a, let b):
            let x = try expression(a), y = try expression(b)
            let t = x.type == y.type ? x.type : common(x.type, y.type)
            return .select(try condition(c), convert(x, t), convert(y, t), t)
        }
    }
}

/// Scalar arithmetic as the subset defines it, shared by the checker's constant folding and the reference
/// interpreter: integers wrap to their width, floats round to their type.
public enum MetalArithmetic {
    public static func wrap(_ n: Int64, _ t: MetalScalar) -> Int64 {
        switch t {
        case .bool: return n != 0 ? 1 : 0
        case .i8: return Int64(Int8(truncatingIfNeeded: n))
        case .u8: return Int64(UInt8(truncatingIfNeeded: n))
        case .i16: return Int64(Int16(truncatingIfNeeded: n))
        case .u16: return Int64(UInt16(truncatingIfNeeded: n))
        case .i32: return Int64(Int32(truncatingIfNeeded: n))
        case .u32: return Int64(UInt32(truncatingIfNeeded: n))
        default: return n   // i64; u64 kept as its bit pattern
        }
    }

    public static func round(_ x: Double, _ t: MetalScalar) -> Double {
        switch t {
        case .f32: return Double(Float(x))
        case .f16: return Double(Float16(Float(x)))   // f64 → f32 → f16: innocuous for the subset's single ops
        case .bf16:
            let f = Float(x)
            guard f.isFinite else { return Double(f) }
            let u = f.bitPattern
            return Double(Float(bitPattern: (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000))
        default: return x
        }
    }
}
