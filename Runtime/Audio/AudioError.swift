/// A problem with an audio input: one line naming the file (or source) and what is wrong.
public struct AudioError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ source: String, _ problem: String) { message = "\(source): \(problem)" }
    public var description: String { message }
}

/// Decoded audio: samples in [-1, 1] (floats as stored), one channel after mixing down.
public struct AudioClip {
    public var samples: [Float]
    public var sampleRate: Int
    public init(samples: [Float], sampleRate: Int) {
        self.samples = samples
        self.sampleRate = sampleRate
    }
    public var seconds: Double { Double(samples.count) / Double(sampleRate) }
}
