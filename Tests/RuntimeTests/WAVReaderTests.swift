import Foundation
import XCTest
@testable import MLXCRuntime

/// WAV and raw PCM decoding: every sample format against values written here, and every kind of
/// bad file giving one line that names the file and the problem.
final class WAVReaderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/speech")

    /// A WAV file: `fmt ` (tag, channels, rate, bits, optional extensible sub-format), optional extra
    /// chunks before the data, then `data`.
    static func wav(tag: Int = 1, channels: Int = 1, rate: Int = 16000, bits: Int = 16, data: [UInt8],
                    extensibleSubTag: Int? = nil, extraChunks: [(String, [UInt8])] = [], bigEndian: Bool = false,
                    dataSizeOverride: Int? = nil) -> Data {
        func le16(_ x: Int) -> [UInt8] { bigEndian ? [UInt8((x >> 8) & 0xFF), UInt8(x & 0xFF)] : [UInt8(x & 0xFF), UInt8((x >> 8) & 0xFF)] }
        func le32(_ x: Int) -> [UInt8] { bigEndian ? le16(x >> 16) + le16(x & 0xFFFF) : le16(x & 0xFFFF) + le16(x >> 16) }
        let block = channels * bits / 8
        var fmt = le16(extensibleSubTag != nil ? 0xFFFE : tag) + le16(channels) + le32(rate) + le32(rate * block) + le16(block) + le16(bits)
        if let sub = extensibleSubTag {
            fmt += le16(22) + le16(bits) + le32(0) + le16(sub) + [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
        }
        var body = Array("WAVE".utf8)
        func chunk(_ id: String, _ bytes: [UInt8], size: Int? = nil) {
            body += Array(id.utf8) + le32(size ?? bytes.count) + bytes
            if bytes.count % 2 == 1 { body.append(0) }
        }
        chunk("fmt ", fmt)
        for (id, bytes) in extraChunks { chunk(id, bytes) }
        chunk("data", data, size: dataSizeOverride)
        return Data(Array((bigEndian ? "RIFX" : "RIFF").utf8) + le32(body.count) + body)
    }

    static func s16(_ values: [Int16]) -> [UInt8] { values.flatMap { [UInt8(UInt16(bitPattern: $0) & 0xFF), UInt8(UInt16(bitPattern: $0) >> 8)] } }

    func read(_ data: Data) throws -> AudioClip { try WAVReader.read(data, source: "x.wav") }

    func failure(_ data: Data, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try read(data)
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("x.wav: "), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
            return text
        }
    }

    func testIntegerAndFloatEncodings() throws {
        let s16 = try read(Self.wav(data: Self.s16([0, 16384, -32768, 32767])))
        XCTAssertEqual(s16.samples, [0, 0.5, -1, Float(32767) / 32768])
        XCTAssertEqual(s16.sampleRate, 16000)

        let u8 = try read(Self.wav(bits: 8, data: [128, 192, 0, 255]))
        XCTAssertEqual(u8.samples, [0, 0.5, -1, Float(127) / 128])

        // 24-bit: 0x400000 = 0.5, 0x800000 = -1, 0xC00000 = -0.5.
        let s24 = try read(Self.wav(bits: 24, data: [0, 0, 0x40, 0, 0, 0x80, 0, 0, 0xC0]))
        XCTAssertEqual(s24.samples, [0.5, -1, -0.5])

        let s32 = try read(Self.wav(bits: 32, data: [0, 0, 0, 0x40, 0, 0, 0, 0x80]))
        XCTAssertEqual(s32.samples, [0.5, -1])

        let floats: [Float] = [0.25, -0.75, 1.5]
        let f32 = try read(Self.wav(tag: 3, bits: 32, data: floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
        XCTAssertEqual(f32.samples, floats)

        let doubles: [Double] = [0.125, -0.5]
        let f64 = try read(Self.wav(tag: 3, bits: 64, data: doubles.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
        XCTAssertEqual(f64.samples, [0.125, -0.5])
    }

    func testExtensibleBigEndianStereoAndExtraChunks() throws {
        let ext = try read(Self.wav(bits: 16, data: Self.s16([8192, -8192]), extensibleSubTag: 1))
        XCTAssertEqual(ext.samples, [0.25, -0.25])
        let extFloat = try read(Self.wav(bits: 32, data: [Float(0.5)].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }, extensibleSubTag: 3))
        XCTAssertEqual(extFloat.samples, [0.5])

        // RIFX: every field and sample big-endian.
        let rifx = try read(Self.wav(data: [0x40, 0x00, 0xC0, 0x00], bigEndian: true))
        XCTAssertEqual(rifx.samples, [0.5, -0.5])

        // Stereo mixed down by averaging; a LIST chunk with an odd size (padded) before the data is skipped.
        let stereo = try read(Self.wav(channels: 2, rate: 44100, data: Self.s16([16384, 0, -32768, -16384]),
                                       extraChunks: [("LIST", Array("INFOabc".utf8))]))
        XCTAssertEqual(stereo.samples, [0.25, -0.75])
        XCTAssertEqual(stereo.sampleRate, 44100)
    }

    func testTheLibriVoxClip() throws {
        let clip = try WAVReader.read(path: Self.fixtures.appendingPathComponent("librivox-0880.wav").path)
        XCTAssertEqual(clip.sampleRate, 16000)
        XCTAssertEqual(clip.samples.count, 47840)  // 2.99 s
        XCTAssertGreaterThan(clip.samples.map(abs).max() ?? 0, 0.1)
    }

    func testBadFilesGiveOneLineNamingTheProblem() {
        XCTAssertEqual(failure(Data()), "x.wav: empty file (0 bytes)")
        XCTAssertTrue(failure(Data("RIFF".utf8)).contains("truncated"))
        XCTAssertTrue(failure(Data("ID3\u{3}hello, this is an mp3".utf8)).contains("not a WAV file"))
        XCTAssertTrue(failure(Data(Array("RIFF".utf8) + [4, 0, 0, 0] + Array("AVI ".utf8))).contains("not WAVE"))
        // The data chunk declares more bytes than the file has.
        XCTAssertTrue(failure(Self.wav(data: Self.s16([1, 2]), dataSizeOverride: 4000)).contains("data chunk at byte 36 declares 4000 bytes, only 4 remain"))
        // A file cut off in the middle of its fmt chunk.
        XCTAssertTrue(failure(Self.wav(data: Self.s16([1])).prefix(30)).contains("truncated"))
        XCTAssertTrue(failure(Self.wav(data: [])).contains("no samples"))
        XCTAssertTrue(failure(Self.wav(tag: 2, bits: 4, data: [1, 2])).contains("unsupported WAV format tag 0x2 (Microsoft ADPCM)"))
        XCTAssertTrue(failure(Self.wav(bits: 12, data: [1, 2])).contains("unsupported bit depth: 12-bit integer PCM"))
        XCTAssertTrue(failure(Self.wav(tag: 3, bits: 16, data: [1, 2])).contains("unsupported bit depth: 16-bit float"))
        XCTAssertTrue(failure(Self.wav(channels: 0, data: [1, 2])).contains("0 channels"))
        XCTAssertTrue(failure(Self.wav(channels: 100, data: [UInt8](repeating: 0, count: 200))).contains("100 channels"))
        XCTAssertTrue(failure(Self.wav(rate: 0, data: [1, 2])).contains("sample rate 0 Hz"))
        let nan = [Float.nan].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        XCTAssertTrue(failure(Self.wav(tag: 3, bits: 32, data: nan)).contains("sample 0 is nan"))
        // No data chunk at all.
        let noData = Data(Self.wav(data: Self.s16([1])).prefix(36))
        XCTAssertTrue(failure(noData).contains("no data chunk"), failure(noData))
    }

    func testLoaderPicksByContentAndReadsRawPCM() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wav-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = dir.appendingPathComponent("a.raw").path
        FileManager.default.createFile(atPath: raw, contents: Data(Self.s16([16384, -16384, 0, 8192])))
        let mono = try AudioLoader.load(path: raw, raw: PCMFormat(encoding: .s16, channels: 1, sampleRate: 8000))
        XCTAssertEqual(mono.samples, [0.5, -0.5, 0, 0.25])
        XCTAssertEqual(mono.sampleRate, 8000)
        let stereo = try AudioLoader.load(path: raw, raw: PCMFormat(encoding: .s16, channels: 2, sampleRate: 8000))
        XCTAssertEqual(stereo.samples, [0, 0.125])

        func loadError(_ path: String, _ raw: PCMFormat? = nil) -> String {
            do { _ = try AudioLoader.load(path: path, raw: raw); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(loadError(dir.appendingPathComponent("missing.wav").path), "\(dir.path)/missing.wav: no such file")
        XCTAssertTrue(loadError(raw).contains("not a WAV file"), loadError(raw))
        XCTAssertTrue(loadError(dir.path).contains("is a directory"))
        let flac = dir.appendingPathComponent("a.flac").path
        FileManager.default.createFile(atPath: flac, contents: Data("fLaC\0\0\0\"".utf8))
        XCTAssertTrue(loadError(flac).contains("FLAC is not supported"))
        let empty = dir.appendingPathComponent("empty.raw").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertEqual(loadError(empty, PCMFormat(encoding: .s16, channels: 1, sampleRate: 16000)), "\(empty): empty file (0 bytes)")
        XCTAssertTrue(loadError(raw, PCMFormat(encoding: .s16, channels: 65, sampleRate: 16000)).contains("65 channels"))
    }
}
