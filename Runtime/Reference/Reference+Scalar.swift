import Foundation
import MLXCIR

/// Scalars (`Vid`s) are rank-0 tensors: i64 for ints, f64 for floats, bool for bools.
enum ScalarMath {
    static func int(_ n: Int64) -> HostTensor { .scalar(Double(n), .i64) }
    static func float(_ x: Double) -> HostTensor { .scalar(x, .f64) }
    static func bool(_ b: Bool) -> HostTensor { .scalar(b ? 1 : 0, .bool) }

    /// `a op b` on Int64, or an error naming `name` and both operands if it overflows
    /// (SymInts are Python ints: they never wrap).
    static func checked(_ name: String, _ a: Int64, _ b: Int64,
                        _ op: (Int64, Int64) -> (partialValue: Int64, overflow: Bool)) throws -> Int64 {
        let (r, overflow) = op(a, b)
        guard !overflow else { throw ReferenceError("\(name): \(a) and \(b) overflow int64") }
        return r
    }

    /// Python's float floor division as ExecuTorch's prim op computes it: (a - fmod(a, b)) / b,
    /// corrected toward negative infinity; division by zero gives ±inf by the sign of a.
    static func floorDivide(_ a: Double, _ b: Double) -> Double {
        if b == 0 { return a.sign == .minus ? -.infinity : .infinity }
        let mod = fmod(a, b)
        let div = (a - mod) / b
        return mod != 0 && (b.sign == .minus) != (mod.sign == .minus) ? div - 1 : div
    }
}

extension Environment {
    /// Reference kernels: Scalar ops. Returns false for ops of other families.
    mutating func executeScalar(_ op: Op) throws -> Bool {
        typealias S = ScalarMath
        switch op {
        case .addInt(let o): set(o.out, S.int(try S.checked("add_int", try int64(o.a), try int64(o.b)) { $0.addingReportingOverflow($1) }))
        case .subtractInt(let o):
            set(o.out, S.int(try S.checked("subtract_int", try int64(o.a), try int64(o.b)) { $0.subtractingReportingOverflow($1) }))
        case .multiplyInt(let o):
            set(o.out, S.int(try S.checked("multiply_int", try int64(o.a), try int64(o.b)) { $0.multipliedReportingOverflow(by: $1) }))
        case .floorDivideInt(let o):
            set(o.out, S.int(try ElementwiseMath.floorDivide(try int64(o.a), try int64(o.b), "floor_divide_int")))
        case .modInt(let o):
            set(o.out, S.int(try ElementwiseMath.remainder(try int64(o.a), try int64(o.b), "mod_int")))
        case .symSize(let o):
            let x = try tensor(o.a)
            let d = o.dim < 0 ? o.dim + x.rank : o.dim
            guard d >= 0 && d < x.rank else { throw ReferenceError("sym_size: dim \(o.dim) is out of range for shape \(x.shape)") }
            set(o.out, S.int(Int64(x.shape[d])))
        case .itemInt(let o):
            let x = try tensor(o.x)
            guard x.count == 1 else { throw ReferenceError("item_int: needs a one-element tensor, got shape \(x.shape)") }
            set(o.out, S.int(Int64(clampingToInt: x.storage[0])))
        case .item(let o):
            let x = try tensor(o.x)
            guard x.count == 1 else { throw ReferenceError("item: needs a one-element tensor, got shape \(x.shape)") }
            set(o.out, S.float(x.storage[0]))
        case .scalarMath(let o): set(o.out, try scalarMath(o))
        default: return false
        }
        return true
    }

    private func int64(_ x: IntOrValue) throws -> Int64 {
        switch x {
        case .literal(let n): return n
        case .value(let v): return Int64(clampingToInt: try tensor(v).item())
        }
    }

    /// ExecuTorch's prim ops (`executorch_prim::*.Scalar`) on int, float and bool scalars.
    private func scalarMath(_ o: ScalarMathOp) throws -> HostTensor {
        typealias S = ScalarMath
        let name = "scalar_math \(o.kind)"
        let arity: Int
        switch o.kind {
        case "neg", "ceil", "round", "trunc", "sym_float", "sym_int", "sym_not", "numel": arity = 1
        case "sym_ite": arity = 3
        case "truediv", "eq", "gt", "ge", "lt", "le", "sym_max", "sym_min", "add", "sub", "mul", "floordiv", "mod": arity = 2
        default: throw ReferenceError("scalar_math: unknown kind \"\(o.kind)\"")
        }
        guard o.args.count == arity else { throw ReferenceError("\(name): takes \(arity) arguments, got \(o.args.count)") }
        let ts = try o.args.map { try tensor($0) }
        if o.kind == "numel" { return S.int(Int64(ts[0].count)) }
        for t in ts where t.count != 1 {
            throw ReferenceError("\(name): arguments must be scalars, got shape \(t.shape)")
        }
        let xs = ts.map { $0.storage[0] }
        let isFloat = ts.map { ReferenceDTypes.isFloat($0.dtype) }
        let anyFloat = isFloat.contains(true)
        let ints = xs.map { Int64(clampingToInt: $0) }

        switch o.kind {
        case "truediv": return S.float(xs[0] / xs[1])
        case "eq": return S.bool(xs[0] == xs[1])
        case "gt": return S.bool(xs[0] > xs[1])
        case "ge": return S.bool(xs[0] >= xs[1])
        case "lt": return S.bool(xs[0] < xs[1])
        case "le": return S.bool(xs[0] <= xs[1])
        case "neg":
            guard ts[0].dtype != .bool else { throw ReferenceError("\(name): not defined for bool") }
            return anyFloat ? S.float(-xs[0]) : S.int(try S.checked(name, 0, ints[0]) { $0.subtractingReportingOverflow($1) })
        // ceil/round/trunc return ints (Python's math.ceil, round, math.trunc); round is half to even.
        case "ceil": return S.int(Int64(clampingToInt: xs[0].rounded(.up)))
        case "round": return S.int(Int64(clampingToInt: xs[0].rounded(.toNearestOrEven)))
        case "trunc": return S.int(Int64(clampingToInt: xs[0].rounded(.towardZero)))
        case "sym_float": return S.float(xs[0])
        case "sym_int": return S.int(ints[0])
        case "sym_not": return S.bool(xs[0] == 0)
        case "sym_ite": return xs[0] != 0 ? ts[1] : ts[2]
        case "sym_max", "sym_min":
            let pickFirst = o.kind == "sym_max" ? xs[0] >= xs[1] : xs[0] <= xs[1]
            if anyFloat {
                if xs[0].isNaN || xs[1].isNaN { return S.float(.nan) }
                return S.float(pickFirst ? xs[0] : xs[1])
            }
            return S.int(pickFirst ? ints[0] : ints[1])
        case "add":
            return anyFloat ? S.float(xs[0] + xs[1]) : S.int(try S.checked(name, ints[0], ints[1]) { $0.addingReportingOverflow($1) })
        case "sub":
            return anyFloat ? S.float(xs[0] - xs[1]) : S.int(try S.checked(name, ints[0], ints[1]) { $0.subtractingReportingOverflow($1) })
        case "mul":
            return anyFloat ? S.float(xs[0] * xs[1])
                : S.int(try S.checked(name, ints[0], ints[1]) { $0.multipliedReportingOverflow(by: $1) })
        case "floordiv":
            return anyFloat ? S.float(S.floorDivide(xs[0], xs[1])) : S.int(try ElementwiseMath.floorDivide(ints[0], ints[1], name))
        case "mod":
            // Python's sign convention (the divisor's), for ints and floats alike.
            return anyFloat ? S.float(ElementwiseMath.remainder(xs[0], xs[1])) : S.int(try ElementwiseMath.remainder(ints[0], ints[1], name))
        default: throw ReferenceError("scalar_math: unknown kind \"\(o.kind)\"")
        }
    }
}
