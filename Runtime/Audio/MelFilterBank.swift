import Foundation

/// Triangular mel filters on the Slaney mel scale with Slaney ("area") normalisation, built as
/// librosa's `filters.mel(htk=False, norm="slaney")` and transformers' `mel_filter_bank(norm="slaney",
/// mel_scale="slaney")` build them (what Whisper's 80- and 128-bin front ends use).
/// Stored sparsely: each filter's first bin and its nonzero weights.
public struct MelFilterBank {
    public let melCount: Int
    public let binCount: Int
    public let firstBin: [Int]
    public let weights: [[Float]]

    public init(melCount: Int, fftSize: Int, sampleRate: Int, minHz: Double = 0, maxHz: Double? = nil) {
        self.melCount = melCount
        let binCount = fftSize / 2 + 1
        self.binCount = binCount
        let maxHz = maxHz ?? Double(sampleRate) / 2
        let lo = Self.hzToMel(minHz), hi = Self.hzToMel(maxHz)
        // melCount + 2 edges equally spaced in mel, back in Hz.
        let edges = (0..<(melCount + 2)).map { Self.melToHz(lo + (hi - lo) * Double($0) / Double(melCount + 1)) }
        let binHz = (0..<binCount).map { Double(sampleRate / 2) * Double($0) / Double(binCount - 1) }
        var first: [Int] = [], all: [[Float]] = []
        for m in 0..<melCount {
            let left = edges[m], centre = edges[m + 1], right = edges[m + 2]
            let norm = 2 / (right - left)
            var row: [Float] = []
            var start = -1
            for (k, f) in binHz.enumerated() {
                let w = max(0, min((f - left) / (centre - left), (right - f) / (right - centre)))
                if w > 0 {
                    if start < 0 { start = k }
                    row.append(Float(w * norm))
                } else if start >= 0 {
                    break
                }
            }
            first.append(max(start, 0))
            all.append(row)
        }
        firstBin = first
        weights = all
    }

    /// Slaney's scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4).
    static func hzToMel(_ hz: Double) -> Double {
        let minLogHz = 1000.0, minLogMel = 15.0, logStep = 27.0 / log(6.4)
        return hz < minLogHz ? 3 * hz / 200 : minLogMel + log(hz / minLogHz) * logStep
    }

    static func melToHz(_ mel: Double) -> Double {
        let minLogHz = 1000.0, minLogMel = 15.0, logStep = log(6.4) / 27.0
        return mel < minLogMel ? 200 * mel / 3 : minLogHz * exp(logStep * (mel - minLogMel))
    }
}
