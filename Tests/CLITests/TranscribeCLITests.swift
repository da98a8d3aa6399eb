import Foundation
import XCTest

/// `mlxc transcribe` as a user runs it on the tiny Whisper fixture (export_whisper's three programs; optimum's model.pte):
/// JSON tokens equal transformers' generate, SRT well formed, and every kind of bad input one line + exit 1.
final class TranscribeCLITests: XCTestCase {
    let cli = MLXCBinary()
    static let speech = MLXCBinary.fixtures.appendingPathComponent("speech")
    static let model = speech.appendingPathComponent("whisper_tiny_mlx_fp32").path
    static let clip = speech.appendingPathComponent("librivox-0880.wav").path

    func reference(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.model).appendingPathComponent("reference.json"))
        let cases = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        return try XCTUnwrap(cases.first { $0["name"] as? String == name })
    }

    func testJSONTokensMatchTransformers() throws {
        try checkJSONTokens(Self.model)
    }

    /// optimum-executorch's model.pte of the same checkpoint (XNNPACK recipe) through the binary: taken as Whisper (not
    /// Voxtral), the same tokens.
    func testOptimumXNNPACKFolderMatchesTransformers() throws {
        try checkJSONTokens(Self.speech.appendingPathComponent("whisper_tiny_xnnpack_fp32").path)
    }

    func checkJSONTokens(_ model: String) throws {
        let run = try cli.mlxc(["transcribe", model, Self.clip, "--language", "en", "--format", "json", "--max-new-tokens", "24"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let segments = try XCTUnwrap(json["segments"] as? [[String: Any]])
        let expected = try XCTUnwrap(try reference("en_transcribe")["segments"] as? [[String: Any]])
        XCTAssertEqual(segments.map { $0["tokens"] as? [Int] ?? [] }, expected.map { $0["tokens"] as? [Int] ?? [] })
        XCTAssertEqual(json["language"] as? String, "en")
        XCTAssertTrue(run.stderr.contains("real-time factor"), run.stderr)
    }

    func testSRTWithTimestamps() throws {
        let run = try cli.mlxc(["transcribe", Self.model, Self.clip, "--language", "de", "--task", "translate", "--format", "srt",
                                "--max-new-tokens", "24"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let expected = try XCTUnwrap(try reference("de_translate_timestamps")["segments"] as? [[String: Any]])
        // Blocks "index\ntime --> time\ntext\n\n" (a random model's text may be empty): find the timing lines.
        let lines = run.stdout.components(separatedBy: "\n")
        let timing = lines.indices.filter { lines[$0].contains(" --> ") }
        XCTAssertEqual(timing.count, expected.count, run.stdout)
        func srt(_ s: Double) -> String {
            let ms = Int((s * 1000).rounded())
            return String(format: "%02d:%02d:%02d,%03d", ms / 3_600_000, (ms / 60_000) % 60, (ms / 1000) % 60, ms % 1000)
        }
        for (i, (line, segment)) in zip(timing, expected).enumerated() {
            XCTAssertEqual(lines[line - 1], "\(i + 1)")
            XCTAssertEqual(lines[line], "\(srt(segment["start"] as! Double)) --> \(srt(segment["end"] as! Double))")
        }
    }

    func testBadInputGivesOneLineAndExitCode1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("transcribe-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A model folder without its decoder, one without a tokenizer.
        let noDecoder = dir.appendingPathComponent("no-decoder"), noTokenizer = dir.appendingPathComponent("no-tokenizer")
        for (folder, skip) in [(noDecoder, "decoder.pte"), (noTokenizer, "tokenizer.json")] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for name in ["encoder.pte", "cross_kv.pte", "decoder.pte", "tokenizer.json", "generation_config.json"] where name != skip {
                try FileManager.default.copyItem(atPath: Self.model + "/" + name, toPath: folder.appendingPathComponent(name).path)
            }
        }
        let notAudio = dir.appendingPathComponent("notes.wav").path
        FileManager.default.createFile(atPath: notAudio, contents: Data("hello, these are not samples".utf8))
        let truncated = dir.appendingPathComponent("cut.wav").path
        let clipBytes = try Data(contentsOf: URL(fileURLWithPath: Self.clip))
        FileManager.default.createFile(atPath: truncated, contents: clipBytes.prefix(2000))
        let empty = dir.appendingPathComponent("empty.wav").path
        FileManager.default.createFile(atPath: empty, contents: Data())

        let cases: [([String], String)] = [
            ([dir.appendingPathComponent("nowhere").path, Self.clip], "no such model folder"),
            ([noDecoder.path, Self.clip], "no decoder.pte"),
            ([noTokenizer.path, Self.clip], "no tokenizer.json"),
            ([Self.model, notAudio], "notes.wav: not a WAV file"),
            ([Self.model, truncated], "cut.wav: truncated: the data chunk"),
            ([Self.model, empty], "empty.wav: empty file (0 bytes)"),
            ([Self.model, dir.appendingPathComponent("missing.wav").path], "missing.wav: no such file"),
            ([Self.model, Self.clip, "--task", "summarize"], "--task must be transcribe or translate"),
            ([Self.model, Self.clip, "--sample-rate", "16000", "--pcm-format", "s12"], "--pcm-format must be one of"),
            ([Self.model, Self.clip, "--sample-rate", "16000", "--channels", "0"], "0 channels"),
        ]
        for (args, message) in cases {
            let run = try cli.mlxc(["transcribe"] + args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), "\(args): expected \"\(message)\" in \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(args): \(run.stderr)")
        }
        // Options the tokenizer cannot honour are refused before any program is compiled.
        let unknown = try cli.mlxc(["transcribe", Self.model, Self.clip, "--language", "xx"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("unknown language \"xx\""), unknown.stderr)
        XCTAssertEqual(unknown.stderr.split(separator: "\n").count, 1, unknown.stderr)
    }
}
