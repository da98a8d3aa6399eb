import Foundation

/// A mixed-radix complex FFT (recursive Cooley–Tukey, decimation in time) for any size whose
/// factors are small: each stage is one radix-p butterfly over p sub-transforms, twiddles from one
/// table of the n-th roots of unity. Whisper needs n = 200 (= 4·2·5·5), the complex half of its
/// 400-point real transform.
public struct ComplexFFT {
    public let count: Int
    let factors: [(radix: Int, remaining: Int)]
    let cosTable: [Float]
    let sinTable: [Float]  // sin of the forward (negative) angle: W^k = cos + i·sin

    public init(count: Int) {
        precondition(count >= 1)
        self.count = count
        var n = count, f: [(Int, Int)] = []
        for p in [4, 2, 3, 5] {
            while n % p == 0 { n /= p; f.append((p, n)) }
        }
        var p = 7
        while n > 1 {  // any other prime factor: a generic butterfly of that size
            while n % p == 0 { n /= p; f.append((p, n)) }
            p += 2
        }
        factors = f
        cosTable = (0..<count).map { Float(cos(-2 * Double.pi * Double($0) / Double(count))) }
        sinTable = (0..<count).map { Float(sin(-2 * Double.pi * Double($0) / Double(count))) }
    }

    /// Forward transform: out[k] = Σ in[j]·exp(-2πi·jk/n). `inRe/inIm` and `outRe/outIm` must not overlap.
    public func forward(inRe: UnsafePointer<Float>, inIm: UnsafePointer<Float>,
                        outRe: UnsafeMutablePointer<Float>, outIm: UnsafeMutablePointer<Float>) {
        if factors.isEmpty { outRe[0] = inRe[0]; outIm[0] = inIm[0]; return }
        cosTable.withUnsafeBufferPointer { c in
            sinTable.withUnsafeBufferPointer { s in
                work(outRe, outIm, inRe, inIm, 0, 1, 0, c.baseAddress!, s.baseAddress!)
            }
        }
    }

    private func work(_ oRe: UnsafeMutablePointer<Float>, _ oIm: UnsafeMutablePointer<Float>,
                      _ iRe: UnsafePointer<Float>, _ iIm: UnsafePointer<Float>, _ inOffset: Int, _ stride: Int,
                      _ stage: Int, _ cosT: UnsafePointer<Float>, _ sinT: UnsafePointer<Float>) {
        let (p, m) = factors[stage]
        // The p decimated sub-sequences (offset r, stride·p) transformed into consecutive blocks of m.
        for r in 0..<p {
            let src = inOffset + r * stride
            if m == 1 {
                oRe[r] = iRe[src]; oIm[r] = iIm[src]
            } else {
                work(oRe + r * m, oIm + r * m, iRe, iIm, src, stride * p, stage + 1, cosT, sinT)
            }
        }
        // Butterflies: out[u + q·m] = Σ_r block_r[u] · W_n^{stride·(u + q·m)·r}.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * p) { tmp in
            let sRe = tmp.baseAddress!, sIm = sRe + p, yRe = sRe + 2 * p, yIm = sRe + 3 * p
            for u in 0..<m {
                for r in 0..<p { sRe[r] = oRe[u + r * m]; sIm[r] = oIm[u + r * m] }
                for q in 0..<p {
                    let k = u + q * m
                    var accRe = sRe[0], accIm = sIm[0]
                    var tw = 0
                    let step = (stride * k) % count
                    for r in 1..<p {
                        tw += step
                        if tw >= count { tw -= count }
                        let c = cosT[tw], s = sinT[tw]
                        accRe += sRe[r] * c - sIm[r] * s
                        accIm += sRe[r] * s + sIm[r] * c
                    }
                    yRe[q] = accRe; yIm[q] = accIm
                }
                for q in 0..<p { oRe[u + q * m] = yRe[q]; oIm[u + q * m] = yIm[q] }
            }
        }
    }
}

/// The power spectrum |X[k]|², k = 0…n/2, of a real sequence of even length n, from one complex FFT
/// of n/2 points: z[j] = x[2j] + i·x[2j+1], then X[k] = E[k] + W_n^k·O[k] with E and O split from Z.
public struct RealPowerSpectrum {
    public let count: Int
    let half: ComplexFFT
    let wRe: [Float], wIm: [Float]

    public init(count: Int) {
        precondition(count >= 2 && count % 2 == 0, "the real FFT takes an even length")
        self.count = count
        half = ComplexFFT(count: count / 2)
        wRe = (0...count / 2).map { Float(cos(-2 * Double.pi * Double($0) / Double(count))) }
        wIm = (0...count / 2).map { Float(sin(-2 * Double.pi * Double($0) / Double(count))) }
    }

    /// `x` has `count` samples; `power` receives count/2 + 1 bins. `scratch` holds 4·(count/2) floats.
    public func power(_ x: UnsafePointer<Float>, into power: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let h = count / 2
        let zRe = scratch, zIm = scratch + h, fRe = scratch + 2 * h, fIm = scratch + 3 * h
        for j in 0..<h { zRe[j] = x[2 * j]; zIm[j] = x[2 * j + 1] }
        half.forward(inRe: zRe, inIm: zIm, outRe: fRe, outIm: fIm)
        for k in 0...h {
            let a = k % h, b = (h - k) % h
            // E = (Z[k] + conj Z[h-k]) / 2, O = (Z[k] - conj Z[h-k]) / 2i
            let eRe = 0.5 * (fRe[a] + fRe[b]), eIm = 0.5 * (fIm[a] - fIm[b])
            let oRe = 0.5 * (fIm[a] + fIm[b]), oIm = -0.5 * (fRe[a] - fRe[b])
            let xRe = eRe + wRe[k] * oRe - wIm[k] * oIm
            let xIm = eIm + wRe[k] * oIm + wIm[k] * oRe
            power[k] = xRe * xRe + xIm * xIm
        }
    }
}
