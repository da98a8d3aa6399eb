import CLLVM
import LLVMKit

/// f32 transcendental functions emitted inline (vectorized, no libm calls): Cephes-style range
/// reduction plus polynomials. Measured over dense grids against double precision:
/// exp ≤ 1e-7 relative on [-87, 88.7] (exact 0 below -104, inf above 88.73, NaN stays NaN);
/// tanh ≤ 2e-7 relative; erf ≤ 4e-7 absolute; sin/cos ≤ 2e-7 absolute for angles reduced in f64;
/// `sinOrCos` of f32 x ≤ 1 ulp of the correctly rounded result for |x| < 2^30.
public enum VectorMath {
    /// Horner's rule, highest coefficient first: ((c0·x + c1)·x + c2)…
    static func horner(_ l: Lanes, _ x: IRValue, _ coefficients: [Float]) -> IRValue {
        var p = l.f32(coefficients[0])
        for c in coefficients.dropFirst() { p = l.b.fma(p, x, l.f32(c)) }
        return p
    }

    /// e^x (Cephes expf): n = round(x·log2 e), r = x − n·ln 2 in two exact steps, a degree-6
    /// polynomial for e^r, then scaling by 2^n in two halves so that no exponent field over- or underflows.
    public static func exp(_ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let xc = l.fmin(l.fmax(x, l.f32(-104)), l.f32(88.8))
        let n = l.call("llvm.floor", [l.exactFMA(xc, l.f32(1.44269504088896341), l.f32(0.5))])
        var r = l.exactFMA(n, l.f32(-0.693359375), xc)
        r = l.exactFMA(n, l.f32(2.12194440e-4), r)
        let p = horner(l, r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1])
        let y = b.fadd(b.fma(p, b.fmul(r, r), r), l.f32(1))
        let i32 = l.type(b.i32), f32 = l.type(b.f32)
        let ni = b.fptosi(n, i32)
        let n1 = LLVMBuildAShr(b.ref, ni, l.i32(1), "")!
        let n2 = b.sub(ni, n1)
        let e1 = b.bitcast(b.shl(b.add(n1, l.i32(127)), l.i32(23)), f32)
        let e2 = b.bitcast(b.shl(b.add(n2, l.i32(127)), l.i32(23)), f32)
        let result = b.fmul(b.fmul(y, e1), e2)
        return b.select(b.fcmp(LLVMRealUNO, x, x), x, result)
    }

    /// ln x (Cephes logf): x = m·2^e with m in [√½, √2), ln(1 + (m − 1)) by a degree-8 polynomial, plus e·ln 2 in
    /// two parts. Subnormals are scaled by 2^25 first; x = 0 → −inf, x < 0 or NaN → NaN, +inf → +inf.
    public static func log(_ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let i32 = l.type(b.i32), f32 = l.type(b.f32)
        let tiny = b.fcmp(LLVMRealOLT, x, l.f32(1.17549435e-38))
        let xs = b.select(tiny, b.fmul(x, l.f32(33554432)), x)
        let bits = b.bitcast(xs, i32)
        var e = b.sitofp(b.sub(LLVMBuildLShr(b.ref, bits, l.i32(23), "")!, l.i32(126)), f32)
        e = b.select(tiny, b.fsub(e, l.f32(25)), e)
        var m = b.bitcast(b.or(b.and(bits, l.i32(0x007F_FFFF)), l.i32(0x3F00_0000)), f32)   // [0.5, 1)
        let low = b.fcmp(LLVMRealOLT, m, l.f32(0.707106781186547524))
        e = b.select(low, b.fsub(e, l.f32(1)), e)
        m = b.select(low, b.fsub(b.fadd(m, m), l.f32(1)), b.fsub(m, l.f32(1)))
        let z = b.fmul(m, m)
        let p = horner(l, m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                              -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1])
        var y = b.fmul(b.fmul(m, z), p)
        y = b.fma(e, l.f32(-2.12194440e-4), y)
        y = b.fma(z, l.f32(-0.5), y)
        var r = b.fadd(m, y)
        r = b.fma(e, l.f32(0.693359375), r)
        r = b.select(b.fcmp(LLVMRealOEQ, x, l.f32(.infinity)), x, r)
        r = b.select(b.fcmp(LLVMRealOEQ, x, l.f32(0)), l.f32(-.infinity), r)
        return b.select(b.fcmp(LLVMRealULT, x, l.f32(0)), l.f32(.nan), r)   // x < 0 or NaN
    }

    /// 1 / (1 + e^−x).
    public static func sigmoid(_ l: Lanes, _ x: IRValue) -> IRValue {
        l.b.fdiv(l.f32(1), l.b.fadd(l.f32(1), exp(l, l.b.fneg(x))))
    }

    /// tanh (Cephes tanhf): an odd polynomial below |x| = 0.625, else sign(x)·(1 − 2/(e^{2|x|} + 1)).
    public static func tanh(_ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let a = l.call("llvm.fabs", [x])
        let z = b.fmul(x, x)
        let p = horner(l, z, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1])
        let small = b.fma(b.fmul(p, z), x, x)
        let e = exp(l, l.fmin(b.fmul(a, l.f32(2)), l.f32(88)))
        let big = b.fsub(l.f32(1), b.fdiv(l.f32(2), b.fadd(e, l.f32(1))))
        let signed = l.call("llvm.copysign", [big, x])
        return b.select(b.fcmp(LLVMRealOLT, a, l.f32(0.625)), small, signed)
    }

    /// erf: the odd/even rational approximation of Eigen and XLA on x clamped to [−4, 4].
    public static func erf(_ l: Lanes, _ x: IRValue) -> IRValue {
        let b = l.b
        let xc = l.fmin(l.fmax(x, l.f32(-4)), l.f32(4))
        let x2 = b.fmul(xc, xc)
        let p = b.fmul(horner(l, x2, [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                      -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                      -1.60960333262415e-02]), xc)
        let q = horner(l, x2, [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                               -7.37332916720468e-03, -1.42647390514189e-02])
        return b.fdiv(p, q)
    }

    /// x · sigmoid(x).
    public static func silu(_ l: Lanes, _ x: IRValue) -> IRValue { l.b.fmul(x, sigmoid(l, x)) }

    /// 0.5·x·(1 + erf(x/√2)) (approximate: false) or 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    public static func gelu(_ l: Lanes, _ x: IRValue, tanhForm: Bool) -> IRValue {
        let b = l.b
        let inner: IRValue
        if tanhForm {
            let x3 = b.fmul(b.fmul(x, x), x)
            inner = tanh(l, b.fmul(l.f32(Float((2 / Double.pi).squareRoot())), b.fma(l.f32(0.044715), x3, x)))
        } else {
            inner = erf(l, b.fmul(x, l.f32(Float(1 / 2.0.squareRoot()))))
        }
        return b.fmul(b.fmul(l.f32(0.5), x), b.fadd(l.f32(1), inner))
    }

    /// (sin θ, cos θ) in f32 for angles given in f64: θ is reduced by multiples of π/2 in f64
    /// (exact for |θ| up to ~1e9), the remainder in [−π/4, π/4] goes to Cephes' sinf/cosf polynomials.
    public static func sincos(_ l: Lanes, angle: IRValue) -> (sin: IRValue, cos: IRValue) {
        let b = l.b
        let k = l.call("llvm.roundeven", [b.fmul(angle, l.f64(2 / Double.pi))])
        // π/2 = hi + lo with hi exactly representable in 33 bits, so k·hi is exact for |k| < 2^20.
        let hi = 1.5707963267341256, lo = 6.077100506506192e-11
        var r = l.exactFMA(k, l.f64(-hi), angle)
        r = l.exactFMA(k, l.f64(-lo), r)
        let rf = b.fptrunc(r, l.type(b.f32))
        let z = b.fmul(rf, rf)
        let s = b.fma(b.fmul(horner(l, z, [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1]), z), rf, rf)
        let c = b.fadd(b.fsub(b.fmul(b.fmul(horner(l, z, [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2]), z), z),
                              b.fmul(l.f32(0.5), z)), l.f32(1))
        let q = b.and(b.fptosi(k, l.type(b.i64)), l.i64(3))
        let swap = b.icmp(LLVMIntEQ, b.and(q, l.i64(1)), l.i64(1))
        let sinBase = b.select(swap, c, s), cosBase = b.select(swap, s, c)
        // q = 1: (c, −s); q = 2: (−s, −c); q = 3: (−c, s).
        let sinNeg = b.icmp(LLVMIntUGE, q, l.i64(2))
        let cosNeg = b.or(b.icmp(LLVMIntEQ, q, l.i64(1)), b.icmp(LLVMIntEQ, q, l.i64(2)))
        return (b.select(sinNeg, b.fneg(sinBase), sinBase), b.select(cosNeg, b.fneg(cosBase), cosBase))
    }

    /// sin x or cos x of f32 lanes, within 1 ulp of the correctly rounded result for every f32
    /// (measured: `JITSinCosTests`): x − k·π/2 computed in f64, then musl's __sindf / __cosdf
    /// polynomials evaluated in f64 (error < 2^-34 on [−π/4, π/4]) and one rounding to f32.
    /// The reduction: below 2^23, Cody-Waite with π/2 in two parts, each step one fused rounding;
    /// from 2^23 on (x = m·2^e, m a 24-bit integer, e ≥ 0), x·2/π mod 4 = m·((2^e·2/π) mod 4) from a
    /// table of that residue per e in two f64 parts (106 bits of 2/π from bit e − 1 on), so huge
    /// arguments reduce exactly instead of losing every bit. Infinities and NaN give NaN.
    public static func sinOrCos(_ l: Lanes, _ x: IRValue, cosine: Bool) -> IRValue {
        let b = l.b
        let f64 = l.type(b.f64)
        let angle = b.fpext(x, f64)
        let k = l.call("llvm.roundeven", [b.fmul(angle, l.f64(2 / Double.pi))])
        let hi = 1.5707963267341256, lo = 6.077100506506192e-11
        var r = l.exactFMA(k, l.f64(-hi), angle)
        r = l.exactFMA(k, l.f64(-lo), r)
        // Quadrant k mod 4 (exact in f64; k of NaN/∞ saturates to 0, r is NaN anyway).
        let kMod4 = b.fsub(k, b.fmul(l.f64(4), l.call("llvm.floor", [b.fmul(k, l.f64(0.25))])))
        var q = b.intrinsic("llvm.fptosi.sat", overloads: [l.type(b.i64), f64], [kMod4])

        // Large finite |x|: exact reduction from the table.
        let bits = b.bitcast(x, l.type(b.i32))
        let exponentField = b.and(b.lshr(bits, l.i32(23)), l.i32(0xFF))
        let large = b.and(b.icmp(LLVMIntSGE, exponentField, l.i32(150)), b.icmp(LLVMIntSLT, exponentField, l.i32(255)))
        let e = b.zext(b.sub(Support.smin(b, Support.smax(b, exponentField, l.i32(150)), l.i32(254)), l.i32(150)), l.type(b.i64))
        let m = b.sitofp(b.or(b.and(bits, l.i32(0x7FFFFF)), l.i32(0x800000)), f64)
        let sign = b.select(b.icmp(LLVMIntSLT, bits, l.i32(0)), l.f64(-1), l.f64(1))
        let (tableHi, tableLo) = reductionTables(b)
        let fHi = gatherF64(l, tableHi, e), fLo = gatherF64(l, tableLo, e)
        let p = LLVMBuildFMul(b.ref, m, fHi, "")!                       // m·hi < 2^26 …
        let pError = l.exactFMA(m, fHi, b.fneg(p))                      // … and its exact rounding error
        let pMod4 = LLVMBuildFSub(b.ref, p, LLVMBuildFMul(b.ref, l.f64(4), l.call("llvm.floor", [LLVMBuildFMul(b.ref, p, l.f64(0.25), "")!]), "")!, "")!
        let tail = l.exactFMA(m, fLo, pError)
        let kLarge = l.call("llvm.roundeven", [LLVMBuildFAdd(b.ref, pMod4, tail, "")!])
        let fraction = LLVMBuildFAdd(b.ref, LLVMBuildFSub(b.ref, pMod4, kLarge, "")!, tail, "")!   // in [−½, ½]
        let rLarge = LLVMBuildFMul(b.ref, LLVMBuildFMul(b.ref, fraction, l.f64(Double.pi / 2), "")!, sign, "")!
        // Quadrant of |x| is kLarge; of −|x| it is −kLarge.
        var qLarge = b.intrinsic("llvm.fptosi.sat", overloads: [l.type(b.i64), f64], [kLarge])
        qLarge = b.select(b.fcmp(LLVMRealOLT, sign, l.f64(0)), b.sub(l.i64(0), qLarge), qLarge)
        r = b.select(large, rLarge, r)
        q = b.select(large, qLarge, q)

        let z = b.fmul(r, r), w = b.fmul(z, z)
        // __sindf: (r + s·(S1 + z·S2)) + s·w·(S3 + z·S4), s = z·r.
        let s3 = b.fmul(z, r)
        let sinR = b.fadd(b.fma(s3, b.fma(z, l.f64(0.0083333293858894631756), l.f64(-0.166666666416265235595)), r),
                          b.fmul(b.fmul(s3, w), b.fma(z, l.f64(0.0000027183114939898219064), l.f64(-0.000198393348360966317347))))
        // __cosdf: ((1 + z·C0) + w·C1) + w·z·(C2 + z·C3).
        let cosR = b.fadd(b.fma(w, l.f64(0.0416666233237390631894), b.fma(z, l.f64(-0.499999997251031003120), l.f64(1))),
                          b.fmul(b.fmul(w, z), b.fma(z, l.f64(0.0000243904487962774090654), l.f64(-0.00138867637746099294692))))
        // cos x = sin(x + π/2); quadrants count mod 4 in two's complement.
        if cosine { q = b.add(q, l.i64(1)) }
        let odd = b.icmp(LLVMIntEQ, b.and(q, l.i64(1)), l.i64(1))
        let negative = b.icmp(LLVMIntEQ, b.and(q, l.i64(2)), l.i64(2))
        let base = b.select(odd, cosR, sinR)
        return b.fptrunc(b.select(negative, b.fneg(base), base), l.type(b.f32))
    }

    /// 2/π in hex (300 bits; mpmath), enough for the reduction table's bits up to 105 + 106.
    static let twoOverPiHex = "A2F9836E4E441529FC2757D1F534DDC0DB6295993C439041FE5163ABDEBBC561B7246E3A424"

    /// (2^e · 2/π) mod 4 for e = 0…104 (f32 exponents of x = m·2^e) as hi + lo: bits of 2/π from
    /// max(1, e − 1) on, 53 in each part (exact as f64).
    static let reductionResidues: (hi: [Double], lo: [Double]) = {
        let bits = twoOverPiHex.flatMap { c -> [Int] in
            let v = Int(String(c), radix: 16)!
            return [(v >> 3) & 1, (v >> 2) & 1, (v >> 1) & 1, v & 1]
        }
        func chunk(_ e: Int, from: Int) -> Double {
            var n: UInt64 = 0
            for i in from..<(from + 53) { n = n << 1 | UInt64(bits[i - 1]) }   // bit i weighs 2^(e − i)
            return Double(n) * Double(sign: .plus, exponent: e - from - 52, significand: 1)
        }
        let es = Array(0...104)
        return (es.map { chunk($0, from: max(1, $0 - 1)) }, es.map { chunk($0, from: max(1, $0 - 1) + 53) })
    }()

    /// The residue tables as private constant globals of the kernel's module (made once per module).
    static func reductionTables(_ b: Builder) -> (hi: IRValue, lo: IRValue) {
        func table(_ name: String, _ values: [Double]) -> IRValue {
            if let g = LLVMGetNamedGlobal(b.module.ref, name) { return g }
            var elements: [LLVMValueRef?] = values.map { LLVMConstReal(b.f64, $0) }
            let array = elements.withUnsafeMutableBufferPointer { LLVMConstArray2(b.f64, $0.baseAddress, UInt64(values.count)) }
            let g = LLVMAddGlobal(b.module.ref, LLVMArrayType2(b.f64, UInt64(values.count)), name)!
            LLVMSetInitializer(g, array)
            LLVMSetGlobalConstant(g, 1)
            LLVMSetLinkage(g, LLVMPrivateLinkage)
            return g
        }
        return (table("mlxc_two_over_pi_residue_hi", reductionResidues.hi), table("mlxc_two_over_pi_residue_lo", reductionResidues.lo))
    }

    /// table[index] per lane (a gather for vectors).
    static func gatherF64(_ l: Lanes, _ table: IRValue, _ index: IRValue) -> IRValue {
        let b = l.b
        if l.isScalar { return b.load(b.f64, b.gep(b.f64, table, index), align: 8) }
        let pointers = b.gep(b.f64, table, index)
        return Support.intrinsic(b, "llvm.masked.gather", overloads: [l.type(b.f64), LLVMTypeOf(pointers)],
                                 [pointers, b.i32(8), b.splat(LLVMConstInt(b.i1, 1, 0), l.width), l.zero(b.f64)])
    }
}
