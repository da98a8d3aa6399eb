import CLLVM
import LLVMKit

/// XNNPACK's asymmetric int8 quantization of one f32 row (xnn_f32_qd8_asymmetric_quantization_params,
/// then xnn_compute_f32_qd8_convert's codes), emitted with plain f32 operations: no fast-math flags,
/// no contraction or reassociation, so every rounding is the definition's (`DynamicQuantDefinition`)
/// and the kernels that read these codes can be held to it bit for bit.
struct QD8RowQuantization {
    let b: Builder
    /// The dequantization scale a, the zero point z (an integer-valued f32) and the multiplier 1 / a.
    let scale: IRValue, zeroPoint: IRValue, multiplier: IRValue

    /// Parameters of the row of `k` f32 at `row`.
    init(_ b: Builder, row: IRValue, k: Int) {
        self.b = b
        let v = 8, vt = b.vector(b.f32, v)
        let body = k / v * v
        var (lo, hi) = (b.f32(.infinity), b.f32(-.infinity))
        if body > 0 {
            let mm = b.loop(b.i64(0), b.i64(body), step: v, carrying: [b.splat(b.f32(.infinity), v), b.splat(b.f32(-.infinity), v)], "mm") { i, acc in
                let xv = b.load(vt, b.gep(b.f32, row, i))
                return [Self.fmin(b, acc[0], xv), Self.fmax(b, acc[1], xv)]
            }
            for j in 0..<v { lo = Self.fmin(b, lo, b.extract(mm[0], j)); hi = Self.fmax(b, hi, b.extract(mm[1], j)) }
        }
        for i in body..<k {
            let xv = b.load(b.f32, b.gep(b.f32, row, b.i64(i)))
            lo = Self.fmin(b, lo, xv); hi = Self.fmax(b, hi, xv)
        }
        let fmul = { (x: IRValue, y: IRValue) in LLVMBuildFMul(b.ref, x, y, "")! }
        let fdiv = { (x: IRValue, y: IRValue) in LLVMBuildFDiv(b.ref, x, y, "")! }
        let fadd = { (x: IRValue, y: IRValue) in LLVMBuildFAdd(b.ref, x, y, "")! }
        let fsub = { (x: IRValue, y: IRValue) in LLVMBuildFSub(b.ref, x, y, "")! }
        let lo0 = Self.fmin(b, lo, b.f32(0)), hi0 = Self.fmax(b, hi, b.f32(0))
        let range = Self.fmax(b, fsub(hi0, lo0), b.f32(1e-30))
        let inv = fdiv(b.f32(255), range)
        scale = fdiv(b.f32(1), inv)
        multiplier = fdiv(b.f32(1), scale)   // not always inv: one ulp decides codes on a rounding boundary
        let loScaled = fmul(lo0, inv), hiScaled = fmul(hi0, inv)
        // The zero point from whichever end has the smaller error, clamped, then rounded (halves to even).
        let errSum = fadd(fadd(b.f32(-128), loScaled), fadd(b.f32(127), hiScaled))
        let zRaw = b.select(b.fcmp(LLVMRealOGT, errSum, b.f32(0)), fsub(b.f32(-128), loScaled), fsub(b.f32(127), hiScaled))
        zeroPoint = Self.exact(b, "llvm.roundeven", [Self.fmin(b, Self.fmax(b, zRaw, b.f32(-128)), b.f32(127))])
    }

    /// q = clamp(rint(x·m) + z, −128, 127) for `lanes` f32 (1: a scalar), as f32.
    func code(_ xv: IRValue, lanes: Int) -> IRValue {
        let splat = { (v: IRValue) in lanes == 1 ? v : b.splat(v, lanes) }
        let q = LLVMBuildFAdd(b.ref, Self.exact(b, "llvm.roundeven", [LLVMBuildFMul(b.ref, xv, splat(multiplier), "")]), splat(zeroPoint), "")!
        return Self.fmin(b, Self.fmax(b, q, splat(b.f32(-128))), splat(b.f32(127)))
    }

    /// An intrinsic call without fast-math flags.
    static func exact(_ b: Builder, _ name: String, _ args: [IRValue]) -> IRValue {
        let v = b.intrinsic(name, overloads: [LLVMTypeOf(args[0])], args)
        LLVMSetFastMathFlags(v, 0)
        return v
    }

    static func fmin(_ b: Builder, _ a: IRValue, _ c: IRValue) -> IRValue { b.select(b.fcmp(LLVMRealOLT, c, a), c, a) }
    static func fmax(_ b: Builder, _ a: IRValue, _ c: IRValue) -> IRValue { b.select(b.fcmp(LLVMRealOGT, c, a), c, a) }
}
