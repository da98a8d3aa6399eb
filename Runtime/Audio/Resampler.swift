import Foundation

/// Band-limited sample-rate conversion by a rational factor L/M (polyphase windowed sinc).
///
/// Output sample n sits at input time n·M/L; it is the sum of the inputs around that time weighted by a
/// sinc low-pass at `cutoff` × the lower Nyquist frequency, shaped by a Kaiser window (β = 10) spanning
/// `zeroCrossings` sinc lobes on each side. One filter per phase (n·M mod L) is precomputed — up to
/// `maxPhases` of them: a rate coprime with the output's (855 051 Hz → 16 kHz has L = 16 000) would
/// otherwise ask for L rows of thousands of taps (228 MB); there the filter is tabulated at `maxPhases`
/// evenly spaced phases and each output interpolates linearly between the two rows around its own.
/// Measured (ResamplerTests): 48 kHz → 16 kHz passes 1 kHz at 1 ± 1e-3 and leaves an 8.6 kHz tone
/// (above the new Nyquist, would alias to 7.4 kHz) at -101.5 dB (from 48, 44.1 and 22.05 kHz).
public struct Resampler {
    public let inputRate: Int
    public let outputRate: Int
    let up: Int     // L
    let down: Int   // M
    let taps: Int   // per phase: inputs from base - (taps/2 - 1) to base + taps/2
    let phases: Int // rows tabulated at fractions 0, 1/phases, …: L, or maxPhases (+ a row at 1) when L is larger
    let interpolates: Bool
    let table: [Float]

    /// 1024 rows of the filter at most; between rows the interpolation error is below 1e-6 of full scale.
    public static let maxPhases = 1024

    public static let zeroCrossings = 32
    public static let cutoff = 0.96
    static let beta = 10.0

    public init(from inputRate: Int, to outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0)
        self.inputRate = inputRate
        self.outputRate = outputRate
        let g = Self.gcd(inputRate, outputRate)
        up = outputRate / g
        down = inputRate / g
        // In input samples: the filter's bandwidth relative to the input Nyquist, and its half-width.
        let scale = min(1.0, Double(up) / Double(down)) * Self.cutoff
        let halfWidth = Double(Self.zeroCrossings) / scale
        let half = Int(halfWidth.rounded(.up))
        taps = 2 * half
        interpolates = up > Self.maxPhases
        phases = interpolates ? Self.maxPhases : up
        let rows = interpolates ? phases + 1 : phases
        var table = [Float](repeating: 0, count: rows * taps)
        let i0 = Self.besselI0(Self.beta)
        for p in 0..<rows {
            let frac = Double(p) / Double(phases)  // the output's position past its base input sample
            var sum = 0.0
            var row = [Double](repeating: 0, count: taps)
            for k in 0..<taps {
                let d = Double(k - (half - 1)) - frac  // input sample's distance from the output time
                guard abs(d) < halfWidth else { continue }
                let x = scale * d
                let sinc = x == 0 ? 1.0 : sin(Double.pi * x) / (Double.pi * x)
                let r = d / halfWidth
                let window = Self.besselI0(Self.beta * (1 - r * r).squareRoot()) / i0
                row[k] = scale * sinc * window
                sum += row[k]
            }
            // Unit DC gain per phase, so a constant stays exactly constant whatever the ratio.
            for k in 0..<taps { table[p * taps + k] = Float(row[k] / sum) }
        }
        self.table = table
    }

    /// Samples outside the input are zeros; the output has ⌈count · L / M⌉ samples.
    public func resample(_ input: [Float]) -> [Float] {
        if up == down { return input }
        let count = (input.count * up + down - 1) / down
        var out = [Float](repeating: 0, count: count)
        let half = taps / 2
        input.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { h in
                out.withUnsafeMutableBufferPointer { y in
                    for n in 0..<count {
                        let t = n * down
                        let base = t / up
                        let phase = t - base * up
                        let first = base - (half - 1)
                        let lo = max(0, -first), hi = min(taps, x.count - first)
                        var acc: Float = 0
                        if lo < hi, !interpolates {
                            let row = phase * taps
                            for k in lo..<hi { acc += h[row + k] * x[first + k] }
                        } else if lo < hi {
                            // Between the tabulated rows j and j + 1 around this output's phase.
                            let position = Double(phase) * Double(phases) / Double(up)
                            let j = min(Int(position), phases - 1)
                            let w = Float(position - Double(j))
                            let row0 = j * taps, row1 = row0 + taps
                            for k in lo..<hi { acc += (h[row0 + k] + w * (h[row1 + k] - h[row0 + k])) * x[first + k] }
                        }
                        y[n] = acc
                    }
                }
            }
        }
        return out
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// The modified Bessel function of the first kind, order 0 (its power series converges fast for β ≤ 20).
    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0
        let q = x * x / 4
        for k in 1..<64 {
            term *= q / Double(k * k)
            sum += term
            if term < sum * 1e-17 { break }
        }
        return sum
    }
}

extension AudioClip {
    /// The clip at `rate` (itself when it already is); the filter for the pair of rates is shared
    /// with earlier clips (`ResamplerCache`).
    public func resampled(to rate: Int) -> AudioClip {
        sampleRate == rate ? self
            : AudioClip(samples: ResamplerCache.resampler(from: sampleRate, to: rate).resample(samples), sampleRate: rate)
    }
}
