/// How one sample is stored: the encodings WAV files and raw PCM dumps use.
public enum PCMEncoding: String, CaseIterable {
    case u8 = "u8"      // WAV's 8-bit PCM is unsigned, centred on 128
    case s16 = "s16"
    case s24 = "s24"
    case s32 = "s32"
    case f32 = "f32"
    case f64 = "f64"

    public var bytes: Int {
        switch self {
        case .u8: return 1
        case .s16: return 2
        case .s24: return 3
        case .s32, .f32: return 4
        case .f64: return 8
        }
    }
}

/// The layout of interleaved PCM frames.
public struct PCMFormat {
    public var encoding: PCMEncoding
    public var channels: Int
    public var sampleRate: Int
    public var bigEndian: Bool

    public init(encoding: PCMEncoding, channels: Int, sampleRate: Int, bigEndian: Bool = false) {
        self.encoding = encoding
        self.channels = channels
        self.sampleRate = sampleRate
        self.bigEndian = bigEndian
    }

    public var frameBytes: Int { encoding.bytes * channels }

    /// Whisper-family limits on what a sane audio stream looks like.
    static let maxChannels = 64
    static let maxSampleRate = 1_536_000
    /// Below 1 kHz nothing is speech, and resampling to 16 kHz would multiply the samples by up to 16 000
    /// (a 64 KB file at 1 Hz became 2 GB of floats).
    static let minSampleRate = 1000

    /// Checks the channel count and sample rate; `source` names the file in the message.
    func validate(_ source: String) throws {
        guard channels >= 1, channels <= Self.maxChannels else {
            throw AudioError(source, "\(channels) channels (expected 1 to \(Self.maxChannels))")
        }
        guard sampleRate >= Self.minSampleRate, sampleRate <= Self.maxSampleRate else {
            throw AudioError(source, "sample rate \(sampleRate) Hz (expected \(Self.minSampleRate) to \(Self.maxSampleRate))")
        }
    }

    /// Decodes whole frames from `bytes` (a trailing partial frame is ignored) and mixes the
    /// channels down to one by averaging, as Whisper's loaders (ffmpeg `-ac 1`) do.
    func decodeMono(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        let frames = bytes.count / frameBytes
        var out = [Float](repeating: 0, count: frames)
        let width = encoding.bytes
        let scale = 1 / Float(channels)
        out.withUnsafeMutableBufferPointer { dst in
            for f in 0..<frames {
                var sum: Float = 0
                var offset = f * frameBytes
                for _ in 0..<channels {
                    sum += sample(bytes, at: offset)
                    offset += width
                }
                dst[f] = channels == 1 ? sum : sum * scale
            }
        }
        return out
    }

    @inline(__always)
    private func sample(_ b: UnsafeRawBufferPointer, at o: Int) -> Float {
        // Bytes assembled explicitly: no alignment assumptions, either byte order.
        @inline(__always) func u(_ i: Int) -> UInt32 { UInt32(b[o + (bigEndian ? encoding.bytes - 1 - i : i)]) }
        switch encoding {
        case .u8:
            return (Float(b[o]) - 128) / 128
        case .s16:
            return Float(Int16(bitPattern: UInt16(u(0) | u(1) << 8))) / 32768
        case .s24:
            let raw = u(0) | u(1) << 8 | u(2) << 16
            return Float(Int32(bitPattern: raw << 8) >> 8) / 8_388_608
        case .s32:
            return Float(Int32(bitPattern: u(0) | u(1) << 8 | u(2) << 16 | u(3) << 24)) / 2_147_483_648
        case .f32:
            return Float(bitPattern: u(0) | u(1) << 8 | u(2) << 16 | u(3) << 24)
        case .f64:
            var bits: UInt64 = 0
            for i in 0..<8 { bits |= UInt64(b[o + (bigEndian ? 7 - i : i)]) << (8 * UInt64(i)) }
            return Float(Double(bitPattern: bits))
        }
    }
}
