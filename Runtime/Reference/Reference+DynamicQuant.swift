import MLXCIR

/// The definition of `dynamic_quant_linear` (XNNPACK's QD8 × QC4W/QB4W/QC8W fully connected):
/// each row's int8 codes with XNNPACK's asymmetric parameters, exact int32 sums per group, one f32
/// FMA per group in group order, then the row's scale. Every f32 operation is the one XNNPACK's
/// quantization does (Swift `Float` arithmetic), so the compiled kernels are held to equality.
public enum DynamicQuantDefinition {
    /// One row's parameters: the dequantization scale a, the zero point z, and the conversion's
    /// multiplier 1 / a (xnn_f32_qd8_asymmetric_quantization_params, xnn_compute_f32_qd8_convert).
    public struct RowParams: Equatable {
        public var scale: Float, zeroPoint: Float, multiplier: Float
    }

    public static func rowParams(_ row: ArraySlice<Float>) -> RowParams {
        var lo = Float.infinity, hi = -Float.infinity
        for v in row { if v < lo { lo = v }; if v > hi { hi = v } }
        let lo0 = min(lo, 0), hi0 = max(hi, 0)
        // An all-zero row has no range: any finite scale gives codes equal to the zero point.
        let range = max(hi0 - lo0, Float(1e-30))
        let inv = 255 / range
        let scale = 1 / inv
        let multiplier = 1 / scale   // not always inv: one ulp decides codes on a rounding boundary
        let loScaled = lo0 * inv, hiScaled = hi0 * inv
        // The zero point from whichever end has the smaller error, clamped, then rounded (halves to even).
        let errSum = (-128 + loScaled) + (127 + hiScaled)
        let zRaw = errSum > 0 ? -128 - loScaled : 127 - hiScaled
        let zeroPoint = min(max(zRaw, -128), 127).rounded(.toNearestOrEven)
        return RowParams(scale: scale, zeroPoint: zeroPoint, multiplier: multiplier)
    }

    /// d = clamp(rint(x·m) + z, −128, 127) − z: the code minus the zero point, in [−255, 255].
    public static func centeredCode(_ x: Float, _ p: RowParams) -> Int32 {
        let q = (x * p.multiplier).rounded(.toNearestOrEven) + p.zeroPoint
        return Int32(min(max(q, -128), 127) - p.zeroPoint)
    }

    /// out [M, N] from x [M, K], codes c [N, K] (4-bit: nibble − 8; 8-bit: the int8 value), scales [N, K/group].
    public static func linear(x: [Float], m: Int, k: Int, codes: [Int32], n: Int, scales: [Float], groupSize: Int) -> [Float] {
        let groups = k / groupSize
        var out = [Float](repeating: 0, count: m * n)
        for r in 0..<m {
            let p = rowParams(x[(r * k)..<((r + 1) * k)])
            let d = (0..<k).map { centeredCode(x[r * k + $0], p) }
            for j in 0..<n {
                var acc: Float = 0
                for g in 0..<groups {
                    var s: Int32 = 0
                    for i in (g * groupSize)..<((g + 1) * groupSize) { s &+= d[i] &* codes[j * k + i] }
                    acc = acc.addingProduct(Float(s), scales[j * groups + g])   // one rounding, as an FMA
                }
                out[r * n + j] = acc * p.scale
            }
        }
        return out
    }

    /// The weight codes of a packed 4-bit ([N, K/8] u32 words, nibbles LSB first) or int8 ([N, K]) weight.
    public static func codes(_ w: [Double], bits: Int, n: Int, k: Int) -> [Int32] {
        if bits == 8 { return w.map { Int32($0) } }
        var out = [Int32](repeating: 0, count: n * k)
        for i in 0..<(n * k) {
            let word = UInt32(truncatingIfNeeded: Int64(w[i / 8]))
            out[i] = Int32((word >> UInt32(4 * (i % 8))) & 15) - 8
        }
        return out
    }
}

extension Environment {
    mutating func executeDynamicQuant(_ op: Op) throws -> Bool {
        guard case .dynamicQuantLinear(let o) = op else { return false }
        let x = try tensor(o.x), w = try tensor(o.w), s = try tensor(o.scales)
        guard o.bits == 4 || o.bits == 8, w.rank == 2, let k = x.shape.last else {
            throw ReferenceError("dynamic_quant_linear: \(o.bits)-bit weight \(w.shape) with x \(x.shape)")
        }
        let n = w.shape[0], wk = o.bits == 4 ? w.shape[1] * 8 : w.shape[1]
        guard wk == k, o.groupSize > 0, k % o.groupSize == 0, s.count == n * (k / o.groupSize) else {
            throw ReferenceError("dynamic_quant_linear: x \(x.shape), weight \(w.shape), scales \(s.shape), group \(o.groupSize) do not agree")
        }
        let m = x.count / max(k, 1)
        let out = DynamicQuantDefinition.linear(x: x.storage.map { Float($0) }, m: m, k: k,
                                                codes: DynamicQuantDefinition.codes(w.storage, bits: o.bits, n: n, k: k), n: n,
                                                scales: s.storage.map { Float($0) }, groupSize: o.groupSize)
        set(o.out, HostTensor(dtype: .f32, shape: Array(x.shape.dropLast()) + [n], storage: out.map(Double.init)))
        return true
    }
}
