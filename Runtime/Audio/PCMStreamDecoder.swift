/// Audio arriving in pieces (a pipe, a microphone): bytes in, mono samples out as soon as whole frames are there.
/// The stream is a WAV (RIFF/RIFX header, parsed once its data chunk starts; the data chunk's size may be a
/// placeholder, as live writers such as `arecord` or `ffmpeg -f wav pipe:` leave it) when it begins with RIFF/RIFX
/// and no raw format is given, else headerless PCM in `raw` (default: s16 little-endian, mono, 16 kHz).
/// `end()` reports a stream that stopped inside a frame or short of its WAV data chunk's declared size.
public final class PCMStreamDecoder {
    public let source: String
    public private(set) var format: PCMFormat?
    let raw: PCMFormat?
    var header: [UInt8] = []            // bytes before the samples start (WAV header, or the first bytes sniffed)
    var carry: [UInt8] = []             // a partial frame kept for the next push
    var declaredData: Int?              // the WAV data chunk's size when it is a real one
    public private(set) var dataBytes = 0
    public private(set) var samples = 0

    /// Data chunk sizes at or above this are taken as "unknown length" placeholders (0x7FFFF000 from arecord,
    /// 0xFFFFFFFF from ffmpeg's pipe output).
    static let placeholderSize = 0x7FFF_0000

    public init(raw: PCMFormat?, source: String = "stdin") {
        self.raw = raw
        self.source = source
    }

    public static let defaultRaw = PCMFormat(encoding: .s16, channels: 1, sampleRate: 16000)

    /// Mono samples of the whole frames `bytes` completes (the stream's own rate: `format.sampleRate`).
    public func push(_ bytes: [UInt8]) throws -> [Float] {
        var body = bytes
        if format == nil {
            header += bytes
            if let raw {
                try raw.validate(source)
                format = raw
                body = header
            } else {
                guard header.count >= 4 else { return [] }
                let magic = String(decoding: header[0..<4], as: UTF8.self)
                if magic != "RIFF" && magic != "RIFX" {
                    format = Self.defaultRaw
                    body = header
                } else {
                    guard let (f, start, size) = try parseHeader() else { return [] }
                    format = f
                    declaredData = size < Self.placeholderSize ? size : nil
                    body = Array(header[start...])
                }
            }
            header = []
        }
        guard let format else { return [] }
        if let declaredData, dataBytes + body.count > declaredData {
            body = Array(body.prefix(max(0, declaredData - dataBytes)))   // chunks after the data chunk: not audio
        }
        dataBytes += body.count
        let all = carry + body
        let whole = all.count / format.frameBytes * format.frameBytes
        carry = Array(all[whole...])
        let out = all.withUnsafeBytes { format.decodeMono(UnsafeRawBufferPointer(rebasing: $0[0..<whole])) }
        if let bad = out.firstIndex(where: { !$0.isFinite }) {
            throw AudioError(source, "sample \(samples + bad) is \(out[bad]) (float audio must be finite)")
        }
        samples += out.count
        return out
    }

    /// End of stream: one line when it stopped inside a frame, inside the WAV header, or before the data chunk's
    /// declared size (the samples already returned stand).
    public func end() throws {
        if format == nil {
            if header.isEmpty { throw AudioError(source, "no audio (the stream ended before its first byte)") }
            if raw == nil, header.count >= 4, ["RIFF", "RIFX"].contains(String(decoding: header[0..<4], as: UTF8.self)) {
                throw AudioError(source, "the stream stopped inside its WAV header (\(header.count) bytes, no data chunk yet)")
            }
            throw AudioError(source, "the stream ended after \(header.count) byte\(header.count == 1 ? "" : "s"): no audio to transcribe")
        }
        guard let format else { return }
        if !carry.isEmpty {
            throw AudioError(source, "the stream stopped mid-frame: \(carry.count) byte\(carry.count == 1 ? "" : "s") of a \(format.frameBytes)-byte frame (\(format.channels) × \(format.encoding.rawValue)) left over after \(samples) samples")
        }
        if let declaredData, dataBytes < declaredData {
            throw AudioError(source, "the stream stopped after \(dataBytes) bytes of audio; its WAV data chunk declares \(declaredData)")
        }
        if samples == 0 { throw AudioError(source, "no samples") }
    }

    /// (format, offset of the first sample byte, the data chunk's declared size) once the header is complete.
    func parseHeader() throws -> (PCMFormat, Int, Int)? {
        let bytes = header
        guard bytes.count >= 12 else { return nil }
        let bigEndian = bytes[0..<4] == [0x52, 0x49, 0x46, 0x58]   // RIFX
        guard String(decoding: bytes[8..<12], as: UTF8.self) == "WAVE" else { throw AudioError(source, "a RIFF stream of another form than WAVE") }
        func u16(_ o: Int) -> Int { bigEndian ? Int(bytes[o]) << 8 | Int(bytes[o + 1]) : Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { bigEndian ? u16(o) << 16 | u16(o + 2) : u16(o) | u16(o + 2) << 16 }
        var found: PCMFormat?
        var offset = 12
        while offset + 8 <= bytes.count {
            let id = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
            let size = u32(offset + 4), body = offset + 8
            if id == "data" {
                guard let found else { throw AudioError(source, "the data chunk at byte \(offset) comes before any fmt chunk") }
                return (found, body, size)
            }
            if id == "fmt " && size > 1 << 16 { throw AudioError(source, "a fmt chunk of \(size) bytes") }
            guard body + size <= bytes.count else { return nil }   // the chunk is still arriving
            if id == "fmt " {
                guard size >= 16 else { throw AudioError(source, "the fmt chunk at byte \(offset) has \(size) bytes (needs at least 16)") }
                found = try WAVReader.parseFormat(tag: u16(body), channels: u16(body + 2), rate: u32(body + 4), blockAlign: u16(body + 12),
                                                  bits: u16(body + 14), extension: size >= 40 ? u16(body + 24) : nil,
                                                  bigEndian: bigEndian, source: source)
            }
            offset = body + size + (size & 1)
            if offset > 1 << 20 { throw AudioError(source, "no data chunk in the first MB of the WAV header") }
        }
        return nil
    }
}
