import CLLVM
import LLVMKit

/// Loads and stores of float tensors in their stored dtype with f32 arithmetic in between: the
/// kernels that serve f32, bf16 and f16 activations read every operand as f32 (bf16 widened by a
/// shift, f16 by `fpext`, both exact) and round each result once on the store (to nearest even;
/// NaN stays NaN), which is what the reference executor does per op.
extension ElementType {
    /// The float activation dtypes the arithmetic kernels take.
    public static let activations: Set<ElementType> = [.f32, .bf16, .f16]

    /// Whether values are rounded on store (not f32).
    public var isHalf: Bool { self == .bf16 || self == .f16 }

    /// A kernel-name tag (`f32`, `bf16`, `f16`).
    public var tag: String { rawValue }
}

extension Lanes {
    /// `width` elements of `t` at `base[index]`, as f32 (absent lanes read `passthru`, given as f32).
    public func loadF32(_ t: ElementType, _ base: IRValue, _ index: IRValue, passthru: IRValue? = nil) -> IRValue {
        if t == .f32 { return load(b.f32, base, index, passthru: passthru) }
        // The passthru only matters for masked lanes; narrow it so it widens back to itself.
        let raw = load(t.storage(b), base, index, passthru: passthru.map { narrowF32($0, t) })
        return widenF32(raw, t)
    }

    /// Rounds f32 `value` to `t` and stores it at `base[index]`.
    public func storeF32(_ value: IRValue, _ t: ElementType, _ base: IRValue, _ index: IRValue) {
        store(narrowF32(value, t), t.storage(b), base, index)
    }

    /// A stored float of dtype `t` as f32 (exact).
    public func widenF32(_ v: IRValue, _ t: ElementType) -> IRValue { ElementwiseKernels.widen(self, v, t) }

    /// f32 rounded to the stored form of `t` (nearest even; NaN stays NaN).
    public func narrowF32(_ v: IRValue, _ t: ElementType) -> IRValue { ElementwiseKernels.narrow(self, v, t) }
}
