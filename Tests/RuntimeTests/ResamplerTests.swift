import Foundation
import XCTest
@testable import MLXCRuntime

/// The band-limited resampler: tones in the pass band keep their amplitude and frequency, tones above
/// the new Nyquist frequency are removed rather than aliased (the stop-band attenuation is measured).
final class ResamplerTests: XCTestCase {
    static func tone(_ hz: Double, rate: Int, seconds: Double, amplitude: Double = 0.5) -> [Float] {
        (0..<Int(Double(rate) * seconds)).map { Float(amplitude * sin(2 * Double.pi * hz * Double($0) / Double(rate))) }
    }

    /// Amplitude of the `hz` component in the middle of `x` (edges skipped), by correlation with sin and cos.
    static func amplitude(_ x: [Float], _ hz: Double, rate: Int) -> Double {
        let lo = x.count / 4, hi = 3 * x.count / 4
        var s = 0.0, c = 0.0
        for n in lo..<hi {
            let w = 2 * Double.pi * hz * Double(n) / Double(rate)
            s += Double(x[n]) * sin(w); c += Double(x[n]) * cos(w)
        }
        return 2 * (s * s + c * c).squareRoot() / Double(hi - lo)
    }

    static func rms(_ x: [Float]) -> Double {
        let lo = x.count / 4, hi = 3 * x.count / 4
        return (x[lo..<hi].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(hi - lo)).squareRoot()
    }

    func testDownsamplingKeepsThePassBandAndRemovesAliases() {
        for rate in [48000, 44100, 22050] {
            let r = Resampler(from: rate, to: 16000)
            let pass = r.resample(Self.tone(1000, rate: rate, seconds: 1))
            XCTAssertEqual(pass.count, 16000)
            XCTAssertEqual(Self.amplitude(pass, 1000, rate: 16000), 0.5, accuracy: 5e-4, "\(rate) Hz: 1 kHz amplitude")
            let nearEdge = r.resample(Self.tone(7000, rate: rate, seconds: 1))
            XCTAssertEqual(Self.amplitude(nearEdge, 7000, rate: 16000), 0.5, accuracy: 5e-3, "\(rate) Hz: 7 kHz amplitude")
            if rate > 17200 {
                // 8.6 kHz lies above 16 kHz's Nyquist: what survives (aliased to 7.4 kHz) is noise, measured in dB.
                let stop = r.resample(Self.tone(8600, rate: rate, seconds: 1))
                let attenuation = 20 * log10(Self.rms(stop) / (0.5 / 2.0.squareRoot()))
                XCTAssertLessThan(attenuation, -95, "\(rate) Hz: stop band at \(attenuation) dB")
                print("ResamplerTests: \(rate) Hz → 16 kHz: an 8.6 kHz tone comes out at \(String(format: "%.1f", attenuation)) dB")
            }
        }
    }

    func testUpsamplingAndIdentity() {
        let up = Resampler(from: 8000, to: 16000).resample(Self.tone(440, rate: 8000, seconds: 1))
        XCTAssertEqual(up.count, 16000)
        XCTAssertEqual(Self.amplitude(up, 440, rate: 16000), 0.5, accuracy: 5e-4)
        let constant = Resampler(from: 44100, to: 16000).resample([Float](repeating: 0.25, count: 44100))
        XCTAssertEqual(Double(constant[8000]), 0.25, accuracy: 1e-6)
        let same = AudioClip(samples: [1, 2, 3], sampleRate: 16000).resampled(to: 16000)
        XCTAssertEqual(same.samples, [1, 2, 3])
    }

    /// Fuzzing (issue 17): a rate coprime with 16 kHz (855 051 Hz has L = 16 000 phases of 3 564 taps)
    /// built a 228 MB table of Bessel series, over 10 s under ASan. Past `maxPhases` the table has
    /// 1025 rows and outputs interpolate between them: the same pass band, stop band and DC gain.
    func testRatesCoprimeWithTheOutputStayBoundedAndAccurate() {
        // (855 051 Hz itself takes seconds to tabulate in a debug build; 16 001 Hz has L = 16 000 too.)
        let odd = Resampler(from: 16_001, to: 16000)
        XCTAssertTrue(odd.interpolates)
        XCTAssertEqual(odd.table.count, (Resampler.maxPhases + 1) * odd.taps)
        let input = Self.tone(1000, rate: 16_001, seconds: 1)
        let out = odd.resample(input)
        XCTAssertEqual(out.count, (input.count * 16000 + 16_000) / 16_001)
        XCTAssertEqual(Self.amplitude(out, 1000, rate: 16000), 0.5, accuracy: 5e-4)
        // 44 101 Hz (L = 16 000 too) against the exact 44 100 Hz filter: same tone, same amplitude.
        let near = Resampler(from: 44_101, to: 16000)
        XCTAssertTrue(near.interpolates)
        let a = near.resample(Self.tone(3000, rate: 44_101, seconds: 1))
        XCTAssertEqual(Self.amplitude(a, 3000, rate: 16000), 0.5, accuracy: 5e-4)
        let stop = near.resample(Self.tone(8600, rate: 44_101, seconds: 1))
        XCTAssertLessThan(20 * log10(Self.rms(stop) / (0.5 / 2.0.squareRoot())), -95)
        let constant = near.resample([Float](repeating: 0.25, count: 44_101))
        XCTAssertEqual(Double(constant[8000]), 0.25, accuracy: 1e-6)
        XCTAssertFalse(Resampler(from: 44100, to: 16000).interpolates)
    }

    /// Fuzzing (issue 17): 1 Hz raw PCM made 16 000 floats of every sample; rates below 1 kHz are refused.
    func testRatesBelowOneKilohertzAreRefused() throws {
        let raw = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-low-rate-\(UUID().uuidString).pcm")
        try Data(repeating: 1, count: 64).write(to: raw)
        defer { try? FileManager.default.removeItem(at: raw) }
        XCTAssertThrowsError(try AudioLoader.load(path: raw.path, raw: PCMFormat(encoding: .s16, channels: 1, sampleRate: 999))) {
            XCTAssertTrue("\($0)".contains("sample rate 999 Hz (expected 1000 to 1536000)"), "\($0)")
        }
        XCTAssertNoThrow(try AudioLoader.load(path: raw.path, raw: PCMFormat(encoding: .s16, channels: 1, sampleRate: 1000)))
    }
    /// Clips of one rate share its filter (ResamplerCache): the result is a fresh resampler's bit for
    /// bit, the table is built once (the cached copy's storage is the same array), and at most
    /// `capacity` pairs are kept, least recently used dropped first.
    func testClipsOfOneRateShareTheFilter() {
        let x = Self.tone(440, rate: 44_100, seconds: 0.1)
        let fresh = Resampler(from: 44_100, to: 16000).resample(x)
        let clip = AudioClip(samples: x, sampleRate: 44_100)
        XCTAssertEqual(clip.resampled(to: 16000).samples, fresh)
        XCTAssertEqual(clip.resampled(to: 16000).samples, fresh)
        func storage(_ r: Resampler) -> UnsafeRawPointer? { r.table.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        let first = ResamplerCache.resampler(from: 44_100, to: 16000)
        XCTAssertEqual(storage(first), storage(ResamplerCache.resampler(from: 44_100, to: 16000)))
        // Four other pairs push 44.1 kHz out; it comes back as a new table with the same values.
        for rate in [8000, 11_025, 22_050, 48_000] { _ = ResamplerCache.resampler(from: rate, to: 16000) }
        let rebuilt = ResamplerCache.resampler(from: 44_100, to: 16000)
        XCTAssertNotEqual(storage(first), storage(rebuilt))
        XCTAssertEqual(first.table, rebuilt.table)
    }
}
