import CLLVM
import LLVMKit

/// Elementwise ops as strided maps (`StridedMapKernels`), with the reference executor's semantics:
/// arithmetic in the operands' common dtype (ints wrap), NaN-propagating maximum/minimum, Python
/// remainder on ints, comparisons giving bools (NaN compares unequal), `where`, and dtype casts
/// (floats round to nearest even, floats to ints truncate and saturate as the reference's
/// Int64 clamp does, then wrap to the width). Float arithmetic on bf16 and f16 operands widens them
/// to f32 (exact), computes in f32 and rounds the result once to the operands' dtype, as the
/// reference rounds each op's result; kernel names carry the dtype (`add_bf16_v16`).
public enum ElementwiseKernels {
    public enum Binary: String, CaseIterable, Sendable {
        case add, subtract, multiply, divide, maximum, minimum, remainder
        case logAddExp = "log_add_exp"
        case bitwiseAnd = "bitwise_and", bitwiseOr = "bitwise_or", bitwiseXor = "bitwise_xor"
        case logicalAnd = "logical_and", logicalOr = "logical_or"
        case less, lessEqual = "less_equal", greater, greaterEqual = "greater_equal", equal, notEqual = "not_equal"

        public var isComparison: Bool { [.less, .lessEqual, .greater, .greaterEqual, .equal, .notEqual].contains(self) }
        public var isLogical: Bool { self == .logicalAnd || self == .logicalOr }
    }

    public enum Unary: String, CaseIterable, Sendable {
        case exp, sigmoid, silu, tanh, erf, sqrt, rsqrt, reciprocal, neg, abs, square, sin, cos, log, log10, log1p
        /// Nearest integer, halves to even (NumPy/MLX `round` with 0 decimals; XNNPACK's int8 conversion).
        case round
        case geluErf = "gelu", geluTanh = "gelu_tanh", logicalNot = "logical_not"

        /// Ops that need a float operand (the reference computes ints as f32; not lowered).
        public var floatOnly: Bool { ![.neg, .abs, .square, .logicalNot].contains(self) }
        /// Rough cost in simple vector ops per element (sets the split grain).
        public var isTranscendental: Bool { [.exp, .sigmoid, .silu, .tanh, .erf, .geluErf, .geluTanh, .sin, .cos, .log, .log10, .log1p].contains(self) }
    }

    /// The result dtype of `op` on two operands of dtype `t`, or nil if there is no kernel.
    public static func binaryResult(_ op: Binary, _ t: ElementType) -> ElementType? {
        if op.isComparison || op.isLogical { return .bool }
        switch op {
        case .divide, .logAddExp: return ElementType.activations.contains(t) ? t : nil
        case .bitwiseAnd, .bitwiseOr, .bitwiseXor: return t.isFloat ? nil : t
        case .remainder: return t.isFloat || t == .bool ? nil : t
        default: return ElementType.activations.contains(t) || (!t.isFloat && t != .bool) ? t : nil
        }
    }

    static func isUnsigned(_ t: ElementType) -> Bool { [.u8, .bool, .u32].contains(t) }

    /// A binary op on two operands of dtype `t` (broadcast or contiguous).
    public static func binary(_ op: Binary, _ t: ElementType, lanes: Int) -> KernelDefinition? {
        guard let result = binaryResult(op, t) else { return nil }
        let access: [StridedMapKernels.Access] = [.contiguous, .broadcast]
        return StridedMapKernels.map(name: "\(op.rawValue)_\(t.rawValue)_v\(lanes)", inputs: [t, t], output: result,
                                     access: [access, access], lanes: lanes) { l, v in
            guard t.isHalf else { return apply(op, t, l, v[0], v[1]) }
            let r = apply(op, .f32, l, l.widenF32(v[0], t), l.widenF32(v[1], t))
            return result == .bool ? r : l.narrowF32(r, t)
        }
    }

    static func apply(_ op: Binary, _ t: ElementType, _ l: Lanes, _ x: IRValue, _ y: IRValue) -> IRValue {
        let b = l.b
        let storage = t.storage(b)
        let boolType = l.type(b.i8)
        func toBool(_ c: IRValue) -> IRValue { b.zext(c, boolType) }
        func nonzero(_ v: IRValue) -> IRValue {
            t.isFloat ? b.fcmp(LLVMRealUNE, v, l.zero(storage)) : b.icmp(LLVMIntNE, v, l.zero(storage))
        }
        if op.isComparison {
            if t.isFloat {
                let p: LLVMRealPredicate
                switch op {
                case .less: p = LLVMRealOLT
                case .lessEqual: p = LLVMRealOLE
                case .greater: p = LLVMRealOGT
                case .greaterEqual: p = LLVMRealOGE
                case .equal: p = LLVMRealOEQ
                default: p = LLVMRealUNE
                }
                return toBool(b.fcmp(p, x, y))
            }
            let unsigned = isUnsigned(t)
            let p: LLVMIntPredicate
            switch op {
            case .less: p = unsigned ? LLVMIntULT : LLVMIntSLT
            case .lessEqual: p = unsigned ? LLVMIntULE : LLVMIntSLE
            case .greater: p = unsigned ? LLVMIntUGT : LLVMIntSGT
            case .greaterEqual: p = unsigned ? LLVMIntUGE : LLVMIntSGE
            case .equal: p = LLVMIntEQ
            default: p = LLVMIntNE
            }
            return toBool(b.icmp(p, x, y))
        }
        switch op {
        case .logicalAnd: return toBool(b.and(nonzero(x), nonzero(y)))
        case .logicalOr: return toBool(b.or(nonzero(x), nonzero(y)))
        case .bitwiseAnd: return b.and(x, y)
        case .bitwiseOr: return b.or(x, y)
        case .bitwiseXor: return LLVMBuildXor(b.ref, x, y, "")
        default: break
        }
        if t.isFloat {
            switch op {
            case .add: return b.fadd(x, y)
            case .subtract: return b.fsub(x, y)
            case .multiply: return b.fmul(x, y)
            case .divide: return b.fdiv(x, y)
            case .maximum: return l.call("llvm.maximum", [x, y])
            case .minimum: return l.call("llvm.minimum", [x, y])
            case .logAddExp: return VectorMath.logAddExp(l, x, y)
            default: fatalError("\(op) has no f32 kernel")
            }
        }
        let unsigned = isUnsigned(t)
        switch op {
        case .add: return b.add(x, y)
        case .subtract: return b.sub(x, y)
        case .multiply: return b.mul(x, y)
        case .maximum: return b.select(b.icmp(unsigned ? LLVMIntUGT : LLVMIntSGT, x, y), x, y)
        case .minimum: return b.select(b.icmp(unsigned ? LLVMIntULT : LLVMIntSLT, x, y), x, y)
        case .remainder:
            // Python remainder (sign of the divisor); x % -1 is 0. The lowering rules out zero divisors.
            let minusOne = l.int(-1, storage), zero = l.zero(storage)
            let trivial = b.or(b.icmp(LLVMIntEQ, y, minusOne), b.icmp(LLVMIntEQ, y, zero))
            let divisor = b.select(trivial, l.int(1, storage), y)
            if unsigned { return LLVMBuildURem(b.ref, x, divisor, "")! }
            let r = b.srem(x, divisor)
            let fix = b.and(b.icmp(LLVMIntNE, r, zero), b.icmp(LLVMIntNE, b.icmp(LLVMIntSLT, r, zero), b.icmp(LLVMIntSLT, divisor, zero)))
            return b.select(fix, b.add(r, divisor), r)
        default: fatalError("\(op) has no integer kernel")
        }
    }

    /// The result dtype of a unary op on `t`, or nil if there is no kernel.
    public static func unaryResult(_ op: Unary, _ t: ElementType) -> ElementType? {
        if op == .logicalNot { return .bool }
        if op.floatOnly { return ElementType.activations.contains(t) ? t : nil }
        return ElementType.activations.contains(t) || (t.isSigned && !t.isFloat) ? t : nil
    }

    public static func unary(_ op: Unary, _ t: ElementType, lanes: Int) -> KernelDefinition? {
        guard unaryResult(op, t) != nil else { return nil }
        let result = unaryResult(op, t)!
        return StridedMapKernels.map(name: "\(op.rawValue)_\(t.rawValue)_v\(lanes)", inputs: [t], output: result,
                                     access: [[.contiguous, .broadcast]], lanes: lanes) { l, v in
            guard t.isHalf else { return apply(op, t, l, v[0]) }
            let r = apply(op, .f32, l, l.widenF32(v[0], t))
            return result == .bool ? r : l.narrowF32(r, t)
        }
    }

    static func apply(_ op: Unary, _ t: ElementType, _ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let storage = t.storage(b)
        if op == .logicalNot {
            let isZero = t.isFloat ? b.fcmp(LLVMRealOEQ, x, l.zero(storage)) : b.icmp(LLVMIntEQ, x, l.zero(storage))
            return b.zext(isZero, l.type(b.i8))
        }
        if !t.isFloat {
            switch op {
            case .neg: return b.sub(l.zero(storage), x)
            case .abs: return b.select(b.icmp(LLVMIntSLT, x, l.zero(storage)), b.sub(l.zero(storage), x), x)
            case .square: return b.mul(x, x)
            default: fatalError("\(op) has no integer kernel")
            }
        }
        switch op {
        case .exp: return VectorMath.exp(l, x)
        case .sigmoid: return VectorMath.sigmoid(l, x)
        case .silu: return VectorMath.silu(l, x)
        case .tanh: return VectorMath.tanh(l, x)
        case .erf: return VectorMath.erf(l, x)
        case .sin: return VectorMath.sinOrCos(l, x, cosine: false)
        case .cos: return VectorMath.sinOrCos(l, x, cosine: true)
        case .geluErf: return VectorMath.gelu(l, x, tanhForm: false)
        case .geluTanh: return VectorMath.gelu(l, x, tanhForm: true)
        case .sqrt: return l.call("llvm.sqrt", [x])
        case .log: return VectorMath.log(l, x)
        case .log10: return b.fmul(VectorMath.log(l, x), l.f32(0.434294481903251827651))
        case .log1p: return VectorMath.log1p(l, x)
        case .rsqrt: return b.fdiv(l.f32(1), l.call("llvm.sqrt", [x]))
        case .reciprocal: return b.fdiv(l.f32(1), x)
        case .neg: return b.fneg(x)
        case .abs: return l.call("llvm.fabs", [x])
        case .square: return b.fmul(x, x)
        case .round: return l.call("llvm.roundeven", [x])
        case .logicalNot: fatalError("handled above")
        }
    }

    /// `clip(x, lo, hi)` (either bound optional): lo where x < lo, hi where x > hi, else x (NaN stays NaN, as torch.clamp).
    public static func clip(_ t: ElementType, hasMin: Bool, hasMax: Bool, lanes: Int) -> KernelDefinition {
        let access: [StridedMapKernels.Access] = [.contiguous, .broadcast]
        let bounds = (hasMin ? 1 : 0) + (hasMax ? 1 : 0)
        return StridedMapKernels.map(name: "clip\(hasMin ? "_lo" : "")\(hasMax ? "_hi" : "")_\(t.rawValue)_v\(lanes)",
                                     inputs: [ElementType](repeating: t, count: 1 + bounds), output: t,
                                     access: [[StridedMapKernels.Access]](repeating: access, count: 1 + bounds), lanes: lanes) { l, v in
            let b = l.b
            let wide = t.isHalf
            func f(_ x: IRValue) -> IRValue { wide ? l.widenF32(x, t) : x }
            var x = f(v[0])
            func below(_ a: IRValue, _ c: IRValue) -> IRValue {
                t.isFloat || wide ? b.fcmp(LLVMRealOLT, a, c) : b.icmp(isUnsigned(t) ? LLVMIntULT : LLVMIntSLT, a, c)
            }
            if hasMin { let lo = f(v[1]); x = b.select(below(x, lo), lo, x) }
            if hasMax { let hi = f(v[hasMin ? 2 : 1]); x = b.select(below(hi, x), hi, x) }
            return wide ? l.narrowF32(x, t) : x
        }
    }

    /// `where(cond, x, y)`: x where cond is nonzero, else y.
    public static func select(condition c: ElementType, _ t: ElementType, lanes: Int) -> KernelDefinition {
        let access: [StridedMapKernels.Access] = [.contiguous, .broadcast]
        return StridedMapKernels.map(name: "where_\(c.rawValue)_\(t.rawValue)_v\(lanes)", inputs: [c, t, t], output: t,
                                     access: [access, access, access], lanes: lanes) { l, v in
            let b = l.b
            let cs = c.storage(b)
            let set = c.isFloat ? b.fcmp(LLVMRealUNE, v[0], l.zero(cs)) : b.icmp(LLVMIntNE, v[0], l.zero(cs))
            return b.select(set, v[1], v[2])
        }
    }

    /// Dtypes `as_type` converts between.
    public static let convertible: Set<ElementType> = [.f32, .f16, .bf16, .i8, .u8, .bool, .i16, .i32, .i64, .u32]

    /// `as_type`: a cast from `source` to `target`.
    public static func convert(from source: ElementType, to target: ElementType, lanes: Int) -> KernelDefinition {
        StridedMapKernels.map(name: "as_type_\(source.rawValue)_to_\(target.rawValue)_v\(lanes)", inputs: [source], output: target,
                              access: [[.contiguous, .broadcast]], lanes: lanes) { l, v in
            cast(l, v[0], from: source, to: target)
        }
    }

    /// An f32 from a stored float.
    static func widen(_ l: Lanes, _ v: IRValue, _ t: ElementType) -> IRValue {
        let b = l.b
        switch t {
        case .f32: return v
        case .f16: return b.fpext(v, l.type(b.f32))
        case .bf16: return b.bitcast(b.shl(b.zext(v, l.type(b.i32)), l.i32(16)), l.type(b.f32))
        default: fatalError("not a float")
        }
    }

    /// An f32 rounded to a stored float (bf16: to nearest even; NaN becomes the quiet NaN 0x7FC0).
    static func narrow(_ l: Lanes, _ v: IRValue, _ t: ElementType) -> IRValue {
        let b = l.b
        switch t {
        case .f32: return v
        case .f16: return b.fptrunc(v, l.type(b.f16))
        case .bf16:
            let bits = b.bitcast(v, l.type(b.i32))
            let rounding = b.add(b.and(b.lshr(bits, l.i32(16)), l.i32(1)), l.i32(0x7FFF))
            let rounded = b.trunc(b.lshr(b.add(bits, rounding), l.i32(16)), l.type(b.i16))
            return b.select(b.fcmp(LLVMRealUNO, v, v), l.int(0x7FC0, b.i16), rounded)
        default: fatalError("not a float")
        }
    }

    static func cast(_ l: Lanes, _ v: IRValue, from s: ElementType, to t: ElementType) -> IRValue {
        let b = l.b
        if s == t { return v }
        let target = t.storage(b)
        if t == .bool {
            let set = s.isFloat ? b.fcmp(LLVMRealUNE, widen(l, v, s), l.f32(0)) : b.icmp(LLVMIntNE, v, l.zero(s.storage(b)))
            return b.zext(set, l.type(b.i8))
        }
        if s.isFloat {
            let f = widen(l, v, s)
            if t.isFloat { return narrow(l, f, t) }
            // Truncate toward zero, saturating at the Int64 range (NaN → 0), then wrap.
            let wide = b.intrinsic("llvm.fptosi.sat", overloads: [l.type(b.i64), l.type(b.f32)], [f])
            return t == .i64 ? wide : b.trunc(wide, l.type(target))
        }
        // Integer source: widen to i64 first (bools and unsigned types zero-extend).
        let wide = isUnsigned(s) ? b.zext(v, l.type(b.i64)) : (s == .i64 ? v : b.sext(v, l.type(b.i64)))
        if t.isFloat { return narrow(l, b.sitofp(wide, l.type(b.f32)), t) }
        return t == .i64 ? wide : b.trunc(wide, l.type(target))
    }
}
