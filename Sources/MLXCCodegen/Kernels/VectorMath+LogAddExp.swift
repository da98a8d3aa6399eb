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
}
