import Foundation

/// Whisper's audio front end, as transformers' `WhisperFeatureExtractor` (and OpenAI's `log_mel_spectrogram`)
/// computes it from 16 kHz mono samples:
/// frames every 160 samples, each 400 samples centred on its hop with reflect padding at the ends
/// (`torch.stft(center=True)`), a periodic Hann window, |X|² of the 201 bins, Slaney mel filters (80 or 128),
/// log10 of max(·, 1e-10), everything below (global max − 8) raised to it, then (x + 4) / 4.
/// The stft's last frame is dropped, so n samples give n / 160 frames.
public struct LogMelSpectrogram {
    public static let sampleRate = 16_000
    public static let fftSize = 400
    public static let hop = 160
    /// One Whisper window: 30 s = 480 000 samples = 3000 frames.
    public static let windowSamples = 480_000
    public static let windowFrames = 3000
    public static let secondsPerFrame = 0.01

    public let melCount: Int
    let filters: MelFilterBank
    let fft = RealPowerSpectrum(count: fftSize)
    let window: [Float]

    public init(melCount: Int) {
        self.melCount = melCount
        filters = MelFilterBank(melCount: melCount, fftSize: Self.fftSize, sampleRate: Self.sampleRate, maxHz: 8000)
        window = (0..<Self.fftSize).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(Self.fftSize))) }
    }

    /// Features [melCount, frames] row-major for `samples` as given (callers pad to 30 s first, as
    /// the feature extractor does, or pass long audio whole for long-form decoding).
    /// Needs at least 201 samples (reflect padding reads 200 past each end).
    public func features(_ samples: [Float]) -> (values: [Float], frames: Int) {
        precondition(samples.count > Self.fftSize / 2, "log-mel needs more than \(Self.fftSize / 2) samples")
        let frames = samples.count / Self.hop
        let bins = Self.fftSize / 2 + 1
        var mel = [Float](repeating: 0, count: melCount * frames)
        let n = samples.count, half = Self.fftSize / 2
        // Flat filter weights (row m at offsets[m]..<offsets[m + 1]) for pointer access in the hot loop.
        let offsets = filters.weights.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let flatWeights = filters.weights.flatMap { $0 }
        let frame = UnsafeMutablePointer<Float>.allocate(capacity: Self.fftSize)
        let power = UnsafeMutablePointer<Float>.allocate(capacity: bins)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * Self.fftSize)
        defer { frame.deallocate(); power.deallocate(); scratch.deallocate() }
        var globalMax = -Float.infinity
        samples.withUnsafeBufferPointer { xb in
            window.withUnsafeBufferPointer { wb in
                flatWeights.withUnsafeBufferPointer { fw in
                    mel.withUnsafeMutableBufferPointer { out in
                        let x = xb.baseAddress!, w = wb.baseAddress!
                        for t in 0..<frames {
                            let start = t * Self.hop - half
                            if start >= 0 && start + Self.fftSize <= n {
                                for j in 0..<Self.fftSize { frame[j] = x[start + j] * w[j] }
                            } else {
                                for j in 0..<Self.fftSize {
                                    var i = start + j
                                    if i < 0 { i = -i } else if i >= n { i = 2 * (n - 1) - i }  // reflect, edge not repeated
                                    frame[j] = x[i] * w[j]
                                }
                            }
                            fft.power(frame, into: power, scratch: scratch)
                            for m in 0..<melCount {
                                let b0 = filters.firstBin[m]
                                var acc: Float = 0
                                for k in offsets[m]..<offsets[m + 1] { acc += fw[k] * power[b0 + k - offsets[m]] }
                                let v = log10f(max(acc, 1e-10))
                                out[m * frames + t] = v
                                globalMax = max(globalMax, v)
                            }
                        }
                    }
                }
            }
        }
        let floor = globalMax - 8
        for i in mel.indices { mel[i] = (max(mel[i], floor) + 4) / 4 }
        return (mel, frames)
    }

    /// One 30 s window as the encoder takes it: the samples zero-padded (or cut) to 480 000, 3000 frames.
    public func window30s(_ samples: [Float]) -> [Float] {
        var padded = Array(samples.prefix(Self.windowSamples))
        padded.append(contentsOf: repeatElement(0, count: Self.windowSamples - padded.count))
        return features(padded).values
    }
}
