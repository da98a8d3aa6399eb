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
            let source = t.data.bindMemory(to: Float.self, capacity: n)
            let p = UnsafeMutableRawPointer.allocate(byteCount: n * 2, alignment: 64)
            let half = p.bindMemory(to: UInt16.self, capacity: n)
            var exact = true
            for i in 0..<n {
                let x = source[i]
                let h = Float16(x)
                if Float(h).bitPattern != x.bitPattern { exact = false; break }
                half[i] = h.bitPattern
            }
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
}
