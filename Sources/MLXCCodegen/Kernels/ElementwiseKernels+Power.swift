import CLLVM
import Foundation
import LLVMKit

/// `base ** y` for a constant positive base and a tensor exponent — RoPE's inv_freq
/// (`theta ** (arange(0, d, 2) / d)`) when a program computes it in the graph, as Hugging Face's
/// longrope (Phi-4) does: e^(y · ln base), ln base rounded to f32 once (≤ 1e-6 relative for
/// |y · ln base| ≤ 20).
extension ElementwiseKernels {
    public static func powerOfConstantBase(_ base: Double, _ t: ElementType, lanes: Int) -> KernelDefinition? {
        guard base > 0, base.isFinite, ElementType.activations.contains(t) else { return nil }
        let lnBase = Float(Foundation.log(base))
        return StridedMapKernels.map(name: "pow_base\(lnBase.bitPattern)_\(t.rawValue)_v\(lanes)", inputs: [t], output: t,
                                     access: [[.contiguous, .broadcast]], lanes: lanes) { l, v in
            let y = t.isHalf ? l.widenF32(v[0], t) : v[0]
            let r = VectorMath.exp(l, l.b.fmul(y, l.f32(lnBase)))
            return t.isHalf ? l.narrowF32(r, t) : r
        }
    }
}
