import CLLVM
import LLVMKit

extension VectorMath {
    /// log(e^x + e^y) = max + log1p(e^−|x − y|) (MLX `logaddexp`; GatedDeltaNet's softplus as logaddexp(a, 0)).
    /// log1p(u) for u = e^−|d| ∈ (0, 1] is 2·atanh(s) with s = u / (2 + u) ∈ (0, 1/3], a series of odd powers
    /// (exact for tiny u, no cancellation; 9 terms leave < 1e-9). Equal arguments (infinities included) give
    /// max + log 2; a NaN argument gives NaN.
    public static func logAddExp(_ l: Lanes, _ x: IRValue, _ y: IRValue) -> IRValue {
        let b = l.b
        let hi = l.call("llvm.maximum", [x, y])
        let same = b.fcmp(LLVMRealOEQ, x, y)
        let gap = b.select(same, l.f32(0), l.call("llvm.fabs", [b.fsub(x, y)]))
        let u = exp(l, b.fneg(gap))
        let s = b.fdiv(u, b.fadd(l.f32(2), u))
        let s2 = b.fmul(s, s)
        let series = horner(l, s2, [1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1])
        return b.fadd(hi, b.fmul(l.f32(2), b.fmul(s, series)))
    }

    /// log(1 + x) (PyTorch's softplus decomposes to log1p(exp(x)) below its threshold: GatedDeltaNet's decay rate).
    /// u = 1 + x rounds away the low bits of a small x; log(u) − ((u − 1) − x) / u puts them back (the first-order
    /// correction, exact to a few ulps), and u = 1 gives x itself. −1 → −inf, +inf → +inf, below −1 or NaN → NaN.
    public static func log1p(_ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let u = b.fadd(l.f32(1), x)
        let corrected = b.fsub(log(l, u), b.fdiv(b.fsub(b.fsub(u, l.f32(1)), x), u))
        var r = b.select(b.fcmp(LLVMRealOEQ, u, l.f32(1)), x, corrected)
        r = b.select(b.fcmp(LLVMRealOEQ, u, l.f32(.infinity)), u, r)
        return b.select(b.fcmp(LLVMRealOEQ, u, l.f32(0)), l.f32(-.infinity), r)
    }
}
