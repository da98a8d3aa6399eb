import CLLVM
import LLVMKit

/// One token's 4-bit affine rows (decode's GEMV) on x rounded to int16 per quantization group, on x86
/// (AVX2 `vpmaddwd`; AVX-512 VNNI `vpdpwssd`): `Σ x·(s·q + b) = s·Σ q·x + b·Σ x` with the first sum over
/// integers — per 32 codes, 16 bytes zero-extended to 16 i16 words (one ymm): the low nibbles (even elements)
/// and the high ones (odd elements) each multiplied with x's int16 codes in pairs into 8 i32 lanes, summed
/// exactly in i32 over the group, converted once and FMA'd with s·dx. About half the vector operations per
/// weight of the f32 path (zero-extend to i32, two converts, two FMAs per 32 codes on 16 lanes).
///
/// Numerics: x_k is replaced by dx·round(x_k/dx) with dx = max|x| over its group / 32767, so each product's x
/// is off by at most max|x_group| / 65534 (relative 7.6e-6 of the group's largest activation); Σx (the bias
/// term) stays the exact f32 sum. The codes' integer sums are exact (|Σ| ≤ G·15·32767 < 2^31 for G ≤ 4096).
struct AffineInt16Rows {
    let b: Builder
    let k: Int, groupSize: Int, groups: Int
    let params: QuantizedLinearKernels.ParamType
    /// `vpdpwssd` (AVX-512 VNNI with VL) instead of `vpmaddwd` + `vpaddd`.
    let vnni: Bool
    let rows: AffineQuantizedRows

    static let chunk = 32

    static func supports(bits: Int, groupSize: Int, dot: DynamicQuantLinearKernels.WordDot) -> Bool {
        bits == 4 && groupSize % chunk == 0 && [.avx2, .avxvnni, .avx512bw, .avx512vnni].contains(dot)
    }

    init(_ b: Builder, k: Int, groupSize: Int, params: QuantizedLinearKernels.ParamType, dot: DynamicQuantLinearKernels.WordDot,
         rows: AffineQuantizedRows) {
        self.b = b
        (self.k, self.groupSize, self.params, self.rows) = (k, groupSize, params, rows)
        groups = k / groupSize
        vnni = dot == .avx512vnni
    }

    /// x row (f32, k elements) → xq (k i16: per 32 elements their 16 even ones, then their 16 odd ones) and dx per group.
    func prepare(x: IRValue, xq: IRValue, dx: IRValue) {
        let f8 = b.vector(b.f32, 8)
        b.loop(b.i64(0), b.i64(groups), "q16") { g in
            let g0 = b.mul(g, b.i64(groupSize))
            var m: IRValue = b.zero(f8)
            for v in 0..<(groupSize / 8) {
                let xv = b.load(f8, b.gep(b.f32, x, b.add(g0, b.i64(8 * v))), align: 4)
                let a = b.intrinsic("llvm.fabs", overloads: [f8], [xv])
                m = b.select(b.fcmp(LLVMRealOGT, a, m), a, m)
            }
            let mx = b.reduceMax(m)
            let positive = b.fcmp(LLVMRealOGT, mx, LLVMConstReal(b.f32, 0))
            b.store(b.fdiv(mx, LLVMConstReal(b.f32, 32767)), b.gep(b.f32, dx, g))
            let inv = b.splat(b.select(positive, b.fdiv(LLVMConstReal(b.f32, 32767), mx), LLVMConstReal(b.f32, 0)), 8)
            for c in 0..<(groupSize / Self.chunk) {
                let base = b.add(g0, b.i64(c * Self.chunk))
                let parts = (0..<4).map { p -> IRValue in
                    let xv = b.load(f8, b.gep(b.f32, x, b.add(base, b.i64(8 * p))), align: 4)
                    let r = b.intrinsic("llvm.rint", overloads: [f8], [b.fmul(xv, inv)])
                    return b.fptosi(r, b.vector(b.i32, 8))
                }
                let lo = b.shuffle(parts[0], parts[1], Array(0..<16)), hi = b.shuffle(parts[2], parts[3], Array(0..<16))
                let all = b.shuffle(lo, hi, Array(0..<32))
                let even = b.trunc(b.shuffle(all, all, (0..<16).map { 2 * $0 }), b.vector(b.i16, 16))
                let odd = b.trunc(b.shuffle(all, all, (0..<16).map { 2 * $0 + 1 }), b.vector(b.i16, 16))
                b.store(even, b.gep(b.i16, xq, base), align: 2)
                b.store(odd, b.gep(b.i16, xq, b.add(base, b.i64(16))), align: 2)
            }
        }
    }

    /// Row dot product: codes at `rowCodes` (k/2 bytes), its params from `paramIndex`, xq/dx prepared, Σx per group in `sums`.
    func dot(rowCodes: IRValue, scales: IRValue, biases: IRValue, paramIndex: IRValue, xq: IRValue, dx: IRValue, sums: IRValue) -> IRValue {
        let i16x16 = b.vector(b.i16, 16), i32x8 = b.vector(b.i32, 8), f32x8 = b.vector(b.f32, 8)
        let nibble = b.splat(LLVMConstInt(b.i16, 15, 0), 16), four = b.splat(LLVMConstInt(b.i16, 4, 0), 16)
        let unroll = rows.groupUnroll
        func madd(_ a: IRValue, _ c: IRValue) -> IRValue { Support.intrinsicCasting(b, "llvm.x86.avx2.pmadd.wd", [a, c], returns: i32x8) }
        /// Groups g0 ..< g0 + width: (acc0, acc1, biasAcc) updated.
        func block(_ g0: IRValue, width: Int, _ state: [IRValue]) -> [IRValue] {
            var acc = [state[0], state[1]], biasAcc = state[2]
            let sv = rows.loadParams(scales, b.add(paramIndex, g0), width), bv = rows.loadParams(biases, b.add(paramIndex, g0), width)
            let dxv = b.load(width == 1 ? b.f32 : b.vector(b.f32, width), b.gep(b.f32, dx, g0))
            let scaled = b.fmul(sv, dxv)
            for gi in 0..<width {
                let g = b.add(g0, b.i64(gi))
                var total: IRValue? = nil
                for c in 0..<(groupSize / Self.chunk) {
                    let element = b.add(b.mul(g, b.i64(groupSize)), b.i64(c * Self.chunk))
                    let bytes = b.load(b.vector(b.i8, 16), b.gep(b.i8, rowCodes, b.sdiv(element, b.i64(2))), align: 1)
                    let w = b.zext(bytes, i16x16)
                    let lo = b.and(w, nibble), hi = b.lshr(w, four)
                    let xl = b.load(i16x16, b.gep(b.i16, xq, element), align: 2)
                    let xh = b.load(i16x16, b.gep(b.i16, xq, b.add(element, b.i64(16))), align: 2)
                    let base = total.map { b.add($0, madd(lo, xl)) } ?? madd(lo, xl)
                    total = vnni ? Support.intrinsicCasting(b, "llvm.x86.avx512.vpdpwssd.256", [base, hi, xh], returns: i32x8)
                        : b.add(base, madd(hi, xh))
                }
                let s = width == 1 ? b.splat(scaled, 8) : b.shuffle(scaled, scaled, [Int](repeating: gi, count: 8))
                acc[gi % 2] = b.fma(b.sitofp(total!, f32x8), s, acc[gi % 2])
            }
            let groupSums = b.load(width == 1 ? b.f32 : b.vector(b.f32, width), b.gep(b.f32, sums, g0))
            if width == unroll {
                biasAcc = b.fma(bv, groupSums, biasAcc)
            } else {
                let d = width == 1 ? b.fmul(bv, groupSums) : b.reduceAdd(b.fmul(bv, groupSums))
                biasAcc = b.fadd(biasAcc, b.insert(b.zero(rows.biasType), d, 0))
            }
            return [acc[0], acc[1], biasAcc]
        }
        let fullBlocks = groups / unroll
        var state = b.loop(b.i64(0), b.i64(fullBlocks), carrying: [b.zero(f32x8), b.zero(f32x8), b.zero(rows.biasType)], "g16") { blk, s in
            block(b.mul(blk, b.i64(unroll)), width: unroll, s)
        }
        var g0 = fullBlocks * unroll, left = groups - g0, piece = unroll / 2
        while left > 0 {
            if piece <= left { state = block(b.i64(g0), width: piece, state); g0 += piece; left -= piece } else { piece /= 2 }
        }
        return b.fadd(b.reduceAdd(b.fadd(state[0], state[1])), b.reduceAdd(state[2]))
    }
}
