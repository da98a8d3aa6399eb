import MLXCIR

/// f32 weights whose every value is exactly an f16 (checkpoints published in half precision and exported
/// in f32, as Whisper base is): kept once more as f16 for one-token linears, which are bound by reading
/// their weights, so they read half the bytes. Exact: an f16 widened back to f32 is the stored f32 bit for
/// bit, so every product, and so every result, is what the f32 kernel computes. A weight holding any other
/// value (almost every weight trained in f32) has no copy and keeps its f32 kernel.
final class ExactHalfWeights {
    /// Smaller weights are not worth a second copy (their reads are not what a step waits for).
    static let minimumElements = 1 << 16

    private var copies: [ValueID: NativeTensor?] = [:]
    private var owned: [UnsafeMutableRawPointer] = []

    deinit { for p in owned { p.deallocate() } }

    /// The f16 copy of constant `v` (the f32 tensor `t`), made on first request; nil when some value is
    /// not an f16 (a NaN, a magnitude past 65504, more than 11 significant bits, below f16's subnormals).
    func copy(_ v: ValueID, _ t: NativeTensor) -> NativeTensor? {
        if let known = copies[v] { return known }
        var result: NativeTensor? = nil
        if t.dtype == .f32, t.count >= Self.minimumElements {
            let n = t.count
            let p = UnsafeMutableRawPointer.allocate(byteCount: n * 2, alignment: 64)
            let exact = Self.halfBits(t.data.bindMemory(to: UInt32.self, capacity: n), into: p.bindMemory(to: UInt16.self, capacity: n), count: n)
            if exact {
                owned.append(p)
                result = NativeTensor(dtype: .f16, shape: t.shape, data: p)
            } else {
                p.deallocate()
            }
        }
        copies[v] = result
        return result
    }

    /// Writes the f16 bits of `n` f32 values and says whether every one was exactly an f16 (±0, ±inf, normal f16s,
    /// f16 subnormals; not NaN). Integer arithmetic only, branch-free per element: Swift's Float16 conversions are
    /// library calls on x86-64's baseline (two per value, ~3 s over Whisper base's weights at every load), this loop
    /// vectorises. Equal, for every non-NaN bit pattern, to `Float(Float16(x)).bitPattern == x.bitPattern` and
    /// `Float16(x).bitPattern` (JITKernelTests.testExactHalfBitsMatchFloat16).
    static func halfBits(_ source: UnsafePointer<UInt32>, into half: UnsafeMutablePointer<UInt16>, count n: Int) -> Bool {
        var bad: UInt32 = 0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)   // stop early on weights that are not f16 (most f32 checkpoints)
            while i < end {
                let x = source[i]
                let sign = (x >> 16) & 0x8000
                let exp = (x >> 23) & 0xFF
                let mant = x & 0x7F_FFFF
                // Low mantissa bits an f16 cannot hold: 13 for f16 normals, more for its subnormals (exp 103…112).
                let normal = exp &- 113 <= 29                       // exp 113…142: f16 exponents −14…15
                let subnormal = exp &- 103 <= 9                     // exp 103…112: 2^-24 … 2^-15
                let shift: UInt32 = normal ? 13 : (subnormal ? 126 &- exp : 0)
                let lost = mant & ((1 << shift) &- 1)
                let zeroOrInf = (exp == 0 || exp == 255) && mant == 0
                let ok = (normal || subnormal) ? lost == 0 : zeroOrInf
                bad |= ok ? 0 : 1
                let normalBits = ((exp &- 112) << 10) | (mant >> 13)
                let subnormalBits = (mant | 0x80_0000) >> (subnormal ? 126 &- exp : 0)
                let bits = normal ? normalBits : (subnormal ? subnormalBits : (exp == 255 ? 0x7C00 : 0))
                half[i] = UInt16(truncatingIfNeeded: sign | bits)
                i += 1
            }
            if bad != 0 { return false }
        }
        return true
    }
}
