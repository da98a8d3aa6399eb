import Foundation
import XCTest
@testable import MLXCRuntime

/// Whisper's log-mel front end against transformers' `WhisperFeatureExtractor` (fixtures written by
/// tools/speech/logmel_reference.py): a LibriVox clip at 80 bins and a synthetic two-tone signal at 128.
/// The features are log10 values scaled by 1/4; transformers computes in float32 (torch.stft), mlxc in
/// float32 with a different FFT, so the bound is absolute: 1e-4 (measured 2.4e-5 on the clip, 2.3e-5 on the tone).
final class LogMelTests: XCTestCase {
    static let fixtures = WAVReaderTests.fixtures
    static let tolerance: Float = 1e-4

    func compare(_ mine: [Float], frames: Int, fixture: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try TensorFiles.readNPY(Self.fixtures.appendingPathComponent(fixture).path)
        let (mels, kept) = (expected.shape[0], expected.shape[1])
        XCTAssertEqual(mine.count, mels * frames, file: file, line: line)
        var worst: Float = 0
        for m in 0..<mels {
            for t in 0..<kept { worst = max(worst, abs(mine[m * frames + t] - Float(expected.storage[m * kept + t]))) }
        }
        XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(fixture): max |mlxc − transformers| = \(worst)", file: file, line: line)
        print("LogMelTests: \(fixture): max |mlxc − transformers| = \(worst)")
    }

    func testLibriVoxClipMatchesTransformers() throws {
        let clip = try WAVReader.read(path: Self.fixtures.appendingPathComponent("librivox-0880.wav").path)
        let features = LogMelSpectrogram(melCount: 80).window30s(clip.samples)
        try compare(features, frames: 3000, fixture: "logmel_librivox0880_80.npy")
    }

    func testToneAt128BinsMatchesTransformers() throws {
        let tone = (0..<16000).map { n -> Float in
            let t = Double(n) / 16000.0
            return Float(0.5 * sin(2 * Double.pi * 440 * t) + 0.25 * sin(2 * Double.pi * 3000 * t))
        }
        try compare(LogMelSpectrogram(melCount: 128).window30s(tone), frames: 3000, fixture: "logmel_tone_128.npy")
    }

    func testFFTMatchesTheDirectDFT() {
        for n in [8, 10, 200, 400, 22, 49] where n % 2 == 0 {
            var rng = SystemRandomNumberGenerator()
            let x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            var power = [Float](repeating: 0, count: n / 2 + 1)
            var scratch = [Float](repeating: 0, count: 2 * n)
            RealPowerSpectrum(count: n).power(x, into: &power, scratch: &scratch)
            for k in 0...(n / 2) {
                var re = 0.0, im = 0.0
                for j in 0..<n {
                    re += Double(x[j]) * cos(-2 * Double.pi * Double(j * k) / Double(n))
                    im += Double(x[j]) * sin(-2 * Double.pi * Double(j * k) / Double(n))
                }
                XCTAssertEqual(Double(power[k]), re * re + im * im, accuracy: 1e-4 * max(1, re * re + im * im), "n \(n) bin \(k)")
            }
        }
    }

    func testMelFiltersAreSlaneyNormalisedTriangles() {
        let bank = MelFilterBank(melCount: 80, fftSize: 400, sampleRate: 16000, maxHz: 8000)
        XCTAssertEqual(bank.weights.count, 80)
        // Slaney normalisation: each filter's area (in Hz) is 1, so weights × bin spacing (40 Hz) sum to ≈ 1
        // for the wide filters that span many bins.
        let area = Double(bank.weights[79].reduce(0, +)) * 40
        XCTAssertEqual(area, 1, accuracy: 0.05)
        XCTAssertTrue(bank.weights.allSatisfy { !$0.isEmpty })
    }

    /// 30 s of audio: a few tens of ms at most (printed; the bound is loose for busy CI machines).
    func testThirtySecondsIsFast() {
        let samples = (0..<480_000).map { Float(sin(Double($0) * 0.05)) * 0.3 }
        let front = LogMelSpectrogram(melCount: 80)
        let start = Date()
        _ = front.window30s(samples)
        let seconds = Date().timeIntervalSince(start)
        print("LogMelTests: 30 s of audio → 80 × 3000 log-mel in \(String(format: "%.1f", seconds * 1000)) ms")
        XCTAssertLessThan(seconds, 2.0)
    }
}
