import Foundation

/// Latency from audio to text in a live transcription: when each sample arrived, and for each word the wall time
/// its first piece was printed. A word's latency is that time minus the arrival of the last sample the step that
/// produced it needed (at a real-time rate the arrival is when the audio was spoken; fed faster, it is the time
/// the audio was available). Words start at a piece beginning with whitespace (or the first text).
public struct StreamLatency {
    public struct Word {
        public var text: String
        /// Audio time (s) of the step's end: what the step had heard.
        public var audioSeconds: Double
        /// Wall time (s since the stream's first byte) the word's first piece was printed.
        public var printedSeconds: Double
        public var latency: Double
        /// Wall time (s since the first byte) the step's last needed sample arrived.
        public var arrivedSeconds: Double
    }

    public let start: Date
    var arrivals: [(samples: Int, at: Date)] = []
    public private(set) var words: [Word] = []
    /// Every decoded token (text or not): (arrival of its step's audio, latency), seconds — more samples than the
    /// words give, and the same measure.
    public private(set) var tokens: [(arrived: Double, latency: Double)] = []

    public init(start: Date) { self.start = start }

    /// `total` samples had arrived by `at`.
    public mutating func arrived(total: Int, at: Date) {
        if let last = arrivals.last, last.samples >= total { return }
        arrivals.append((total, at))
    }

    /// When sample `n` (1-based count) had arrived.
    func arrival(of n: Int) -> Date {
        var lo = 0, hi = arrivals.count - 1
        guard hi >= 0 else { return start }
        if arrivals[hi].samples < n { return arrivals[hi].at }
        while lo < hi {
            let mid = (lo + hi) / 2
            if arrivals[mid].samples >= n { hi = mid } else { lo = mid + 1 }
        }
        return arrivals[lo].at
    }

    /// A piece of text printed at `printed` from a step that needed the stream's first `heardSamples` samples;
    /// every whitespace-led part of it starts a word.
    public mutating func printed(_ text: String, heardSamples: Int, sampleRate: Int, at printed: Date) {
        var part = ""
        func close() {
            guard !part.isEmpty else { return }
            if words.isEmpty || part.first!.isWhitespace {
                let arrived = arrival(of: heardSamples)
                words.append(Word(text: part.trimmingCharacters(in: .whitespaces), audioSeconds: Double(heardSamples) / Double(sampleRate),
                                  printedSeconds: printed.timeIntervalSince(start), latency: printed.timeIntervalSince(arrived),
                                  arrivedSeconds: arrived.timeIntervalSince(start)))
            } else {
                words[words.count - 1].text += part
            }
            part = ""
        }
        for ch in text {
            if ch.isWhitespace, let last = part.last, !last.isWhitespace { close() }
            part.append(ch)
        }
        close()
    }

    /// A token decoded at `at` by a step that needed the stream's first `heardSamples` samples.
    public mutating func decoded(heardSamples: Int, at: Date) {
        let arrived = arrival(of: heardSamples)
        tokens.append((arrived.timeIntervalSince(start), at.timeIntervalSince(arrived)))
    }

    /// mean, median, 90th percentile and max of the word latencies (s).
    public var summary: (mean: Double, median: Double, p90: Double, max: Double)? { Self.summary(words.map(\.latency)) }

    public static func summary(_ latencies: [Double]) -> (mean: Double, median: Double, p90: Double, max: Double)? {
        let l = latencies.sorted()
        guard !l.isEmpty else { return nil }
        func q(_ f: Double) -> Double { l[min(l.count - 1, Int((f * Double(l.count - 1)).rounded()))] }
        return (l.reduce(0, +) / Double(l.count), q(0.5), q(0.9), l.last!)
    }
}
