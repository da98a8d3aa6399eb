import Foundation

/// Reads WAV files: RIFF (little-endian) or RIFX (big-endian) containers; `fmt ` tags PCM (1),
/// IEEE float (3) and WAVE_FORMAT_EXTENSIBLE (0xFFFE, whose sub-format GUID says PCM or float);
/// 8/16/24/32-bit integer and 32/64-bit float samples; any channel count up to 64, mixed down to mono.
/// Chunks other than `fmt ` and `data` (LIST, fact, cue, …) are skipped.
public enum WAVReader {
    public static func read(path: String) throws -> AudioClip {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AudioError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return try read(data, source: path)
    }

    public static func read(_ data: Data, source: String) throws -> AudioClip {
        try data.withUnsafeBytes { try parse($0, source: source) }
    }

    /// Whether the bytes start like a WAV file (used to pick a reader by content, not by name).
    public static func looksLikeWAV(_ data: Data) -> Bool {
        guard data.count >= 12 else { return false }
        let head = String(decoding: data.prefix(4), as: UTF8.self)
        return (head == "RIFF" || head == "RIFX") && String(decoding: data[data.startIndex + 8 ..< data.startIndex + 12], as: UTF8.self) == "WAVE"
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, source: String) throws -> AudioClip {
        guard bytes.count > 0 else { throw AudioError(source, "empty file (0 bytes)") }
        guard bytes.count >= 12 else { throw AudioError(source, "truncated: \(bytes.count) bytes, too short for a RIFF/WAVE header") }
        let magic = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<4]), as: UTF8.self)
        guard magic == "RIFF" || magic == "RIFX" else {
            throw AudioError(source, "not a WAV file (starts with \(describe(bytes[0..<4])), expected RIFF or RIFX)")
        }
        let bigEndian = magic == "RIFX"
        let form = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[8..<12]), as: UTF8.self)
        guard form == "WAVE" else { throw AudioError(source, "a RIFF file of form \(describe(bytes[8..<12])), not WAVE") }

        func u16(_ o: Int) -> Int { bigEndian ? Int(bytes[o]) << 8 | Int(bytes[o + 1]) : Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { bigEndian ? u16(o) << 16 | u16(o + 2) : u16(o) | u16(o + 2) << 16 }

        var format: PCMFormat?
        var offset = 12
        while offset + 8 <= bytes.count {
            let id = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]), as: UTF8.self)
            let size = u32(offset + 4)
            let body = offset + 8
            switch id {
            case "fmt ":
                guard size >= 16, body + size <= bytes.count else {
                    throw AudioError(source, "truncated: the fmt chunk at byte \(offset) declares \(size) bytes, \(bytes.count - body) remain (needs at least 16)")
                }
                format = try parseFormat(tag: u16(body), channels: u16(body + 2), rate: u32(body + 4), blockAlign: u16(body + 12),
                                         bits: u16(body + 14), extension: size >= 40 ? u16(body + 24) : nil,
                                         bigEndian: bigEndian, source: source)
            case "data":
                guard let format else { throw AudioError(source, "the data chunk at byte \(offset) comes before any fmt chunk") }
                guard body + size <= bytes.count else {
                    throw AudioError(source, "truncated: the data chunk at byte \(offset) declares \(size) bytes, only \(bytes.count - body) remain in the file")
                }
                guard size >= format.frameBytes else { throw AudioError(source, "no samples (the data chunk is \(size) bytes)") }
                let samples = format.decodeMono(UnsafeRawBufferPointer(rebasing: bytes[body..<body + size]))
                if let bad = samples.firstIndex(where: { !$0.isFinite }) {
                    throw AudioError(source, "sample \(bad) is \(samples[bad]) (float audio must be finite)")
                }
                return AudioClip(samples: samples, sampleRate: format.sampleRate)
            default:
                break
            }
            guard size <= bytes.count - body else {
                throw AudioError(source, "truncated: the \(describe(bytes[offset..<offset + 4])) chunk at byte \(offset) declares \(size) bytes, only \(bytes.count - body) remain, and no data chunk came before it")
            }
            offset = body + size + (size & 1)  // chunks are padded to even sizes
        }
        throw AudioError(source, format == nil ? "no fmt chunk" : "no data chunk")
    }

    static func parseFormat(tag: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int, extension subTag: Int?,
                            bigEndian: Bool, source: String) throws -> PCMFormat {
        var effectiveTag = tag
        if tag == 0xFFFE {
            // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes are the real tag.
            guard let subTag else { throw AudioError(source, "WAVE_FORMAT_EXTENSIBLE with a fmt chunk too short for its sub-format") }
            effectiveTag = subTag
        }
        let encoding: PCMEncoding
        switch (effectiveTag, bits) {
        case (1, 8): encoding = .u8
        case (1, 16): encoding = .s16
        case (1, 24): encoding = .s24
        case (1, 32): encoding = .s32
        case (3, 32): encoding = .f32
        case (3, 64): encoding = .f64
        case (1, _), (3, _):
            throw AudioError(source, "unsupported bit depth: \(bits)-bit \(effectiveTag == 1 ? "integer PCM" : "float") (supported: PCM 8/16/24/32, float 32/64)")
        default:
            throw AudioError(source, "unsupported WAV format tag 0x\(String(effectiveTag, radix: 16)) (\(formatName(effectiveTag))); supported: PCM, IEEE float, extensible")
        }
        let format = PCMFormat(encoding: encoding, channels: channels, sampleRate: rate, bigEndian: bigEndian)
        try format.validate(source)
        guard blockAlign == format.frameBytes else {
            throw AudioError(source, "block align \(blockAlign) does not match \(channels) channels × \(bits / 8) bytes")
        }
        return format
    }

    static func formatName(_ tag: Int) -> String {
        switch tag {
        case 2: return "Microsoft ADPCM"
        case 6: return "A-law"
        case 7: return "µ-law"
        case 0x11: return "IMA ADPCM"
        case 0x55: return "MPEG layer 3"
        default: return "compressed or unknown"
        }
    }

    static func describe(_ b: Slice<UnsafeRawBufferPointer>) -> String {
        let printable = b.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        return printable ? "\"\(String(decoding: UnsafeRawBufferPointer(rebasing: b), as: UTF8.self))\""
            : b.map { String(format: "%02x", $0) }.joined(separator: " ")
    }
}
