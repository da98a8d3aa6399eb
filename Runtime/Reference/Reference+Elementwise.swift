import Foundation
import MLXCIR

/// Result-dtype rules of the reference kernels (MLX's, with PyTorch's treatment of rank-0 operands).
/// The dtype rules of the reference kernels. They live in `ShapeRules` (MLXCIR), below the runtime,
/// so the reference, shape inference and compiled kernels cannot drift apart; these are forwards.
enum ReferenceDTypes {
    /// The category of a dtype: bool < integer < floating point.
    typealias Kind = ShapeRules.Kind

    static func kind(_ d: DType) -> Kind { ShapeRules.kind(d) }
    static func isFloat(_ d: DType) -> Bool { kind(d) == .float }
    static func isInteger(_ d: DType) -> Bool { kind(d) == .integer }

    /// MLX `at_least_float`: floats stay, bools and ints become f32.
    static func atLeastFloat(_ d: DType) -> DType { ShapeRules.atLeastFloat(d) }

    /// The dtype of a binary op on `a` and `b` (both cast to it before the op); see `ShapeRules.binary`.
    static func binary(_ a: HostTensor, _ b: HostTensor) -> DType { binary([a, b]) }

    /// `binary` over several operands (`where`, `clip`): the rule applied left to right.
    static func binary(_ ts: [HostTensor]) -> DType {
        guard let first = ts.first else { return .f32 }
        var dtype = first.dtype, rank = first.rank
        for t in ts.dropFirst() {
            dtype = binary(dtype, rank: rank, t.dtype, rank: t.rank)
            rank = Swift.max(rank, t.rank)
        }
        return dtype
    }

    static func binary(_ a: DType, rank ra: Int, _ b: DType, rank rb: Int) -> DType {
        ShapeRules.binary(a, rank: ra, b, rank: rb)
    }
}

/// Elementwise helpers of the reference kernels: broadcasting with op-named errors, Python-style
/// integer division and remainder, and the scalar math that Foundation lacks.
enum ElementwiseMath {
    /// Applies `f` over `operands` broadcast together (NumPy rules); the result has `dtype`.
    static func map(_ name: String, _ operands: [HostTensor], dtype: DType,
                    _ f: ([Double]) throws -> Double) throws -> HostTensor {
        let target: [Int]
        do { target = try Broadcast.shape(operands.map(\.shape)) } catch {
            throw ReferenceError("\(name): shapes \(operands.map { "\($0.shape)" }.joined(separator: " and ")) do not broadcast")
        }
        let expanded = try operands.map { try Broadcast.expand($0, to: target) }
        let count = target.reduce(1, *)
        var out = [Double](repeating: 0, count: count)
        var args = [Double](repeating: 0, count: operands.count)
        for i in 0..<count {
            for k in 0..<expanded.count { args[k] = expanded[k].storage[i] }
            out[i] = try f(args)
        }
        return HostTensor(dtype: dtype, shape: target, storage: out)
    }

    /// A binary `map` with both operands first cast to `compute` (MLX casts to the common dtype).
    static func map2(_ name: String, _ a: HostTensor, _ b: HostTensor, compute: DType, dtype: DType,
                     _ f: (Double, Double) throws -> Double) throws -> HostTensor {
        let x = a.dtype == compute ? a : a.converted(to: compute)
        let y = b.dtype == compute ? b : b.converted(to: compute)
        return try map(name, [x, y], dtype: dtype) { try f($0[0], $0[1]) }
    }

    /// The element count of `shape`, or an error naming `name` if a dimension is negative or it is too large.
    static func checkedCount(_ shape: [Int], _ name: String) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw ReferenceError("\(name): negative dimension in shape \(shape)") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 40 else { throw ReferenceError("\(name): shape \(shape) is too large") }
            n = p
        }
        return n
    }

    /// Floor division on ints (rounds toward negative infinity, like Python and PyTorch).
    static func floorDivide(_ a: Int64, _ b: Int64, _ name: String) throws -> Int64 {
        guard b != 0 else { throw ReferenceError("\(name): integer division by zero") }
        if a == .min && b == -1 { return .min }  // wraps, as the two's-complement quotient does
        let q = a / b
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Remainder on ints with the sign of the divisor (Python/NumPy).
    static func remainder(_ a: Int64, _ b: Int64, _ name: String) throws -> Int64 {
        guard b != 0 else { throw ReferenceError("\(name): integer remainder by zero") }
        if b == -1 { return 0 }
        let r = a % b
        return r != 0 && ((r < 0) != (b < 0)) ? r + b : r
    }

    /// Remainder on floats with the sign of the divisor (Python/NumPy; x % 0 is NaN).
    static func remainder(_ a: Double, _ b: Double) -> Double {
        let r = fmod(a, b)
        return r != 0 && ((r < 0) != (b < 0)) ? r + b : r
    }

    /// Integer power by repeated squaring, wrapping on overflow; a negative exponent gives 0 (as MLX).
    static func power(_ base: Int64, _ exponent: Int64) -> Int64 {
        if exponent < 0 { return 0 }
        var result: Int64 = 1, b = base, e = exponent
        while e != 0 {
            if e & 1 != 0 { result = result &* b }
            b = b &* b
            e >>= 1
        }
        return result
    }

    static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }

    /// `maximum`/`minimum` that propagate NaN from either side (MLX and PyTorch).
    static func maximum(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
    static func minimum(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }

    /// log(exp(a) + exp(b)) without overflow.
    static func logAddExp(_ a: Double, _ b: Double) -> Double {
        if a.isNaN || b.isNaN { return .nan }
        let hi = Swift.max(a, b), lo = Swift.min(a, b)
        if lo == -.infinity || hi == .infinity { return hi }
        return hi + log1p(exp(lo - hi))
    }

    /// Rounds half to even at `decimals` places (NumPy `around`; negative decimals round to tens, hundreds…).
    static func round(_ x: Double, decimals: Int) -> Double {
        if decimals == 0 { return x.rounded(.toNearestOrEven) }
        if decimals > 0 {
            let s = pow(10, Double(decimals))
            return (x * s).rounded(.toNearestOrEven) / s
        }
        let s = pow(10, Double(-decimals))
        return (x / s).rounded(.toNearestOrEven) * s
    }

    static func sign(_ x: Double) -> Double { x.isNaN ? .nan : (x > 0 ? 1 : (x < 0 ? -1 : 0)) }

    static func gelu(_ x: Double, approximate: String) -> Double {
        if approximate == "tanh" {
            let inner = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + tanh(inner))
        }
        return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
    }
}

extension Environment {
    /// Reference kernels: Elementwise ops. Returns false for ops of other families.
    mutating func executeElementwise(_ op: Op) throws -> Bool {
        typealias M = ElementwiseMath
        switch op {
        // Copies.
        case .idCopy(let o):
            // A copy of a value that was never computed (a phi input from an `if` path not taken)
            // leaves the result undefined too; reading it later is the error.
            let isConstant: Bool = { if case .constant = executor.graph[o.x].kind { return true } else { return false } }()
            guard values[o.x] != nil || executor.state[o.x] != nil || isConstant else { return true }
            set(o.out, try tensor(o.x))
        case .contiguous(let o): set(o.out, try tensor(o.x))

        // Arithmetic: operands cast to the common dtype; ints compute in Int64 and wrap to the dtype.
        case .add(let o): try arithmetic("add", o.a, o.b, o.out, float: { $0 + $1 }, int: { $0 &+ $1 })
        case .subtract(let o): try arithmetic("subtract", o.a, o.b, o.out, float: { $0 - $1 }, int: { $0 &- $1 })
        case .multiply(let o): try arithmetic("multiply", o.a, o.b, o.out, float: { $0 * $1 }, int: { $0 &* $1 })
        case .maximum(let o): try arithmetic("maximum", o.a, o.b, o.out, float: M.maximum, int: { Swift.max($0, $1) })
        case .minimum(let o): try arithmetic("minimum", o.a, o.b, o.out, float: M.minimum, int: { Swift.min($0, $1) })
        case .power(let o): try arithmetic("power", o.a, o.b, o.out, float: { pow($0, $1) }, int: M.power)
        case .remainder(let o):
            try arithmetic("remainder", o.a, o.b, o.out, float: M.remainder, int: { try M.remainder($0, $1, "remainder") })
        case .floorDivide(let o):
            // Floats: floor of the quotient rounded to the dtype, as MLX composes floor(divide(a, b)).
            let x = try tensor(o.a), y = try tensor(o.b)
            let dt = ReferenceDTypes.binary(x, y)
            let r = try M.map2("floor_divide", x, y, compute: dt, dtype: dt) { p, q in
                if ReferenceDTypes.isInteger(dt) {
                    return Double(try M.floorDivide(Int64(clampingToInt: p), Int64(clampingToInt: q), "floor_divide"))
                }
                return DTypeCodec.round(p / q, to: dt).rounded(.down)
            }
            set(o.out, r)
        case .divide(let o): try floatBinary("divide", o.a, o.b, o.out) { $0 / $1 }
        case .atan2(let o): try floatBinary("atan2", o.a, o.b, o.out) { atan2($0, $1) }
        case .logAddExp(let o): try floatBinary("log_add_exp", o.a, o.b, o.out, M.logAddExp)

        // Unary math that returns floats (ints and bools are computed as f32, as MLX does).
        case .exp(let o): try unary(o.x, o.out, toFloat: true) { exp($0) }
        case .expm1(let o): try unary(o.x, o.out, toFloat: true) { expm1($0) }
        case .log(let o): try unary(o.x, o.out, toFloat: true) { log($0) }
        case .log2(let o): try unary(o.x, o.out, toFloat: true) { log2($0) }
        case .log10(let o): try unary(o.x, o.out, toFloat: true) { log10($0) }
        case .log1p(let o): try unary(o.x, o.out, toFloat: true) { log1p($0) }
        case .sin(let o): try unary(o.x, o.out, toFloat: true) { sin($0) }
        case .cos(let o): try unary(o.x, o.out, toFloat: true) { cos($0) }
        case .tan(let o): try unary(o.x, o.out, toFloat: true) { tan($0) }
        case .arcsin(let o): try unary(o.x, o.out, toFloat: true) { asin($0) }
        case .arccos(let o): try unary(o.x, o.out, toFloat: true) { acos($0) }
        case .arctan(let o): try unary(o.x, o.out, toFloat: true) { atan($0) }
        case .sinh(let o): try unary(o.x, o.out, toFloat: true) { sinh($0) }
        case .cosh(let o): try unary(o.x, o.out, toFloat: true) { cosh($0) }
        case .tanh(let o): try unary(o.x, o.out, toFloat: true) { tanh($0) }
        case .arcsinh(let o): try unary(o.x, o.out, toFloat: true) { asinh($0) }
        case .arccosh(let o): try unary(o.x, o.out, toFloat: true) { acosh($0) }
        case .arctanh(let o): try unary(o.x, o.out, toFloat: true) { atanh($0) }
        case .erf(let o): try unary(o.x, o.out, toFloat: true) { erf($0) }
        case .sqrt(let o): try unary(o.x, o.out, toFloat: true) { $0.squareRoot() }
        case .rsqrt(let o): try unary(o.x, o.out, toFloat: true) { 1 / $0.squareRoot() }
        case .reciprocal(let o): try unary(o.x, o.out, toFloat: true) { 1 / $0 }
        case .sigmoid(let o): try unary(o.x, o.out, toFloat: true, M.sigmoid)
        case .silu(let o): try unary(o.x, o.out, toFloat: true) { $0 * M.sigmoid($0) }
        case .gelu(let o):
            guard o.approximate == "none" || o.approximate == "tanh" || o.approximate.isEmpty else {
                throw ReferenceError("gelu: approximate must be \"none\" or \"tanh\", got \"\(o.approximate)\"")
            }
            try unary(o.x, o.out, toFloat: true) { M.gelu($0, approximate: o.approximate) }

        // Unary ops that keep the dtype (identities on ints where rounding is concerned).
        case .floor(let o): try unary(o.x, o.out, toFloat: false) { $0.rounded(.down) }
        case .ceil(let o): try unary(o.x, o.out, toFloat: false) { $0.rounded(.up) }
        case .trunc(let o): try unary(o.x, o.out, toFloat: false) { $0.rounded(.towardZero) }
        case .round(let o): try unary(o.x, o.out, toFloat: false) { M.round($0, decimals: o.decimals) }
        case .abs(let o): try unary(o.x, o.out, toFloat: false) { Swift.abs($0) }
        case .sign(let o): try unary(o.x, o.out, toFloat: false, M.sign)
        case .square(let o):
            let x = try tensor(o.x)
            if ReferenceDTypes.isInteger(x.dtype) {
                try unary(o.x, o.out, toFloat: false) { let n = Int64(clampingToInt: $0); return Double(n &* n) }
            } else {
                try unary(o.x, o.out, toFloat: false) { $0 * $0 }
            }
        case .neg(let o):
            let x = try tensor(o.x)
            guard x.dtype != .bool else { throw ReferenceError("neg: not supported for bool \(x.shape) (use logical_not)") }
            try unary(o.x, o.out, toFloat: false) { -$0 }

        // Comparisons: operands cast to their common dtype, then compared; NaN compares unequal.
        case .less(let o): try compare("less", o.a, o.b, o.out) { $0 < $1 }
        case .lessEqual(let o): try compare("less_equal", o.a, o.b, o.out) { $0 <= $1 }
        case .greater(let o): try compare("greater", o.a, o.b, o.out) { $0 > $1 }
        case .greaterEqual(let o): try compare("greater_equal", o.a, o.b, o.out) { $0 >= $1 }
        case .equal(let o): try compare("equal", o.a, o.b, o.out) { $0 == $1 }
        case .notEqual(let o): try compare("not_equal", o.a, o.b, o.out) { $0 != $1 }

        // Logic: every operand is read as bool (nonzero, NaN included, is true).
        case .logicalNot(let o):
            let x = try tensor(o.x)
            set(o.out, HostTensor(dtype: .bool, shape: x.shape, storage: x.storage.map { $0 != 0 ? 0 : 1 }))
        case .logicalAnd(let o):
            set(o.out, try M.map2("logical_and", try tensor(o.a), try tensor(o.b), compute: .bool, dtype: .bool) { $0 != 0 && $1 != 0 ? 1 : 0 })
        case .logicalOr(let o):
            set(o.out, try M.map2("logical_or", try tensor(o.a), try tensor(o.b), compute: .bool, dtype: .bool) { $0 != 0 || $1 != 0 ? 1 : 0 })

        // Bitwise: on ints (two's complement, wrapped to the dtype); on bools they are logical.
        case .bitwiseInvert(let o):
            let x = try tensor(o.x)
            switch ReferenceDTypes.kind(x.dtype) {
            case .bool: set(o.out, HostTensor(dtype: .bool, shape: x.shape, storage: x.storage.map { $0 != 0 ? 0 : 1 }))
            case .integer:
                set(o.out, HostTensor(dtype: x.dtype, shape: x.shape, storage: x.storage.map { Double(~Int64(clampingToInt: $0)) }))
            case .float: throw ReferenceError("bitwise_invert: needs an integer or bool tensor, got \(x.dtype.name) \(x.shape)")
            }
        case .bitwiseAnd(let o): try bitwise("bitwise_and", o.a, o.b, o.out) { $0 & $1 }
        case .bitwiseOr(let o): try bitwise("bitwise_or", o.a, o.b, o.out) { $0 | $1 }
        case .bitwiseXor(let o): try bitwise("bitwise_xor", o.a, o.b, o.out) { $0 ^ $1 }

        // Selection.
        case .`where`(let o):
            let c = try tensor(o.condition), x = try tensor(o.x), y = try tensor(o.y)
            let dt = ReferenceDTypes.binary(x, y)
            let r = try M.map("where", [c, x.converted(to: dt), y.converted(to: dt)], dtype: dt) { $0[0] != 0 ? $0[1] : $0[2] }
            set(o.out, r)
        case .clip(let o):
            let x = try tensor(o.x)
            let lo = try optional(o.aMin), hi = try optional(o.aMax)
            guard lo != nil || hi != nil else { throw ReferenceError("clip: needs a_min or a_max (both are missing) for \(x.shape)") }
            let dt = ReferenceDTypes.binary([x] + [lo, hi].compactMap { $0 })
            var r = x.converted(to: dt)
            if let lo { r = try M.map2("clip", r, lo, compute: dt, dtype: dt, M.maximum) }
            if let hi { r = try M.map2("clip", r, hi, compute: dt, dtype: dt, M.minimum) }
            set(o.out, r)

        // Conversion and creation.
        case .asType(let o): set(o.out, try tensor(o.x).converted(to: o.scalarType))
        case .full(let o):
            let shape = try o.shape.map { try int($0) }
            _ = try M.checkedCount(shape, "full")
            set(o.out, HostTensor(dtype: o.scalarType, shape: shape, repeating: try double(o.v)))
        case .fullLike(let o):
            let x = try tensor(o.x)
            set(o.out, HostTensor(dtype: o.scalarType ?? x.dtype, shape: x.shape, repeating: try double(o.v)))
        case .arange(let o):
            let start = try int(o.start), stop = try int(o.stop), step = try int(o.step)
            guard step != 0 else { throw ReferenceError("arange: step must not be zero (start \(start), stop \(stop))") }
            // No dtype: the graph's declared type of the result, else MLX's int32 for int bounds.
            let dt = o.scalarType ?? executor.graph[o.out].type?.dtype ?? .i32
            guard dt != .bool else { throw ReferenceError("arange: bool is not supported") }
            let length = ((Double(stop) - Double(start)) / Double(step)).rounded(.up)
            guard length <= Double(1 << 40) else { throw ReferenceError("arange: \(start)..<\(stop) step \(step) is too long") }
            let n = Swift.max(0, Int(length))
            set(o.out, HostTensor(dtype: dt, shape: [n], storage: (0..<n).map { Double(start + $0 * step) }))
        case .tri(let o):
            let n = try int(o.n), m = try int(o.m)
            var storage = [Double](repeating: 0, count: try M.checkedCount([n, m], "tri"))
            for i in 0..<n { for j in 0..<m where j - i <= o.k { storage[i * m + j] = 1 } }
            set(o.out, HostTensor(dtype: o.scalarType, shape: [n, m], storage: storage))

        default: return false
        }
        return true
    }

    /// A binary op in the operands' common dtype: `int` (wrapping Int64 arithmetic) for integer dtypes, `float` otherwise.
    private mutating func arithmetic(_ name: String, _ a: ValueID, _ b: ValueID, _ out: ValueID,
                                     float: @escaping (Double, Double) -> Double,
                                     int: @escaping (Int64, Int64) throws -> Int64) throws {
        let x = try tensor(a), y = try tensor(b)
        let dt = ReferenceDTypes.binary(x, y)
        let isInt = ReferenceDTypes.isInteger(dt)
        let r = try ElementwiseMath.map2(name, x, y, compute: dt, dtype: dt) { p, q in
            isInt ? Double(try int(Int64(clampingToInt: p), Int64(clampingToInt: q))) : float(p, q)
        }
        set(out, r)
    }

    /// A binary op whose result is floating point even for int inputs (MLX `at_least_float`).
    private mutating func floatBinary(_ name: String, _ a: ValueID, _ b: ValueID, _ out: ValueID,
                                      _ f: (Double, Double) -> Double) throws {
        let x = try tensor(a), y = try tensor(b)
        let dt = ReferenceDTypes.atLeastFloat(ReferenceDTypes.binary(x, y))
        set(out, try ElementwiseMath.map2(name, x, y, compute: dt, dtype: dt, f))
    }

    private mutating func compare(_ name: String, _ a: ValueID, _ b: ValueID, _ out: ValueID,
                                  _ f: (Double, Double) -> Bool) throws {
        let x = try tensor(a), y = try tensor(b)
        let dt = ReferenceDTypes.binary(x, y)
        set(out, try ElementwiseMath.map2(name, x, y, compute: dt, dtype: .bool) { f($0, $1) ? 1 : 0 })
    }

    private mutating func bitwise(_ name: String, _ a: ValueID, _ b: ValueID, _ out: ValueID,
                                  _ f: @escaping (Int64, Int64) -> Int64) throws {
        let x = try tensor(a), y = try tensor(b)
        guard !ReferenceDTypes.isFloat(x.dtype) && !ReferenceDTypes.isFloat(y.dtype) else {
            throw ReferenceError("\(name): needs integer or bool tensors, got \(x.dtype.name) \(x.shape) and \(y.dtype.name) \(y.shape)")
        }
        let dt = ReferenceDTypes.binary(x, y)
        set(out, try ElementwiseMath.map2(name, x, y, compute: dt, dtype: dt) {
            Double(f(Int64(clampingToInt: $0), Int64(clampingToInt: $1)))
        })
    }

    /// `f` on every element; `toFloat` gives int and bool inputs an f32 result (computed on the f32 values).
    private mutating func unary(_ v: ValueID, _ out: ValueID, toFloat: Bool, _ f: (Double) -> Double) throws {
        let x = try tensor(v)
        let dt = toFloat ? ReferenceDTypes.atLeastFloat(x.dtype) : x.dtype
        let input = x.dtype == dt ? x : x.converted(to: dt)
        set(out, HostTensor(dtype: dt, shape: x.shape, storage: input.storage.map(f)))
    }
}
