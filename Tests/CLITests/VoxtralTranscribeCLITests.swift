import Foundation
import XCTest

/// `mlxc transcribe` on a Voxtral folder (the committed zoo fixture: export_voxtral_hf's model.pte + tekken.json) as a
/// user runs it: the tokens are eager PyTorch's greedy tokens for the same audio and transcription request, the text
/// streamed to stdout is their decoding; bad input (no tokenizer, a program missing a method, options Voxtral has
/// no meaning for) is one line on stderr and exit code 1.
final class VoxtralTranscribeCLITests: XCTestCase {
    let cli = MLXCBinary()
    static let model = MLXCBinary.fixtures.appendingPathComponent("zoo/voxtral_mlx_fp32").path
    static let clip = model + "/audio.wav"

    func reference() throws -> (greedy: [Int], prompt: [Int]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/voxtral_reference.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (try XCTUnwrap(json["greedy"] as? [Int]), try XCTUnwrap(json["prompt"] as? [Int]))
    }

    func testJSONTokensAreEagerGreedyTokens() throws {
        let ref = try reference()
        let run = try cli.mlxc(["transcribe", Self.model, Self.clip, "--language", "en", "--format", "json",
                                "--max-new-tokens", "\(ref.greedy.count)"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let eos = 2   // </s> in the fixture's tekken.json
        XCTAssertEqual(json["tokens"] as? [Int], Array(ref.greedy.prefix { $0 != eos }))
        XCTAssertEqual(json["prompt_tokens"] as? Int, ref.prompt.count)
        XCTAssertTrue(run.stderr.contains("real-time factor"), run.stderr)

        let text = try cli.mlxc(["transcribe", Self.model, Self.clip, "--language", "en", "--max-new-tokens", "\(ref.greedy.count)"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stdout, (json["text"] as? String ?? "?") + "\n")
    }

    /// `mlxc run model.pte --audio X --prompt Q`: the reply's ids are transformers' greedy tokens for the same chat.
    func testAudioChatThroughRun() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/voxtral_reference.json"))
        let chat = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["chat"] as? [String: Any])
        let want = try XCTUnwrap(chat["hf_generate"] as? [Int])
        let run = try cli.mlxc(["run", Self.model + "/model.pte", "--audio", Self.clip, "--prompt", try XCTUnwrap(chat["question"] as? String),
                                "--max-new-tokens", "\(want.count)", "--print-token-ids"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 },
                       Array(want.prefix { $0 != 2 }))
        let bad = try cli.mlxc(["run", Self.model + "/model.pte", "--audio", Self.clip])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--audio needs --prompt"), bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }

    func testBadInputGivesOneLineAndExitCode1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("voxtral-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let noTokenizer = dir.appendingPathComponent("no-tokenizer"), noMethod = dir.appendingPathComponent("no-method")
        try fm.createDirectory(at: noTokenizer, withIntermediateDirectories: true)
        try fm.copyItem(atPath: Self.model + "/model.pte", toPath: noTokenizer.appendingPathComponent("model.pte").path)
        // An LLM program (forward only) beside a Voxtral tokenizer: the methods are named before anything compiles.
        try fm.createDirectory(at: noMethod, withIntermediateDirectories: true)
        try fm.copyItem(atPath: MLXCBinary.fixtures.appendingPathComponent("zoo/llama_mlx_fp32/model.pte").path,
                        toPath: noMethod.appendingPathComponent("model.pte").path)
        try fm.copyItem(atPath: Self.model + "/tekken.json", toPath: noMethod.appendingPathComponent("tekken.json").path)
        let cases: [([String], String)] = [
            ([noTokenizer.path, Self.clip], "no tekken.json (the Tekken tokenizer)"),
            ([noMethod.path, Self.clip], "no method audio_encoder"),
            ([Self.model, Self.clip, "--format", "srt"], "Voxtral gives no timestamps"),
            ([Self.model, Self.clip, "--task", "translate"], "only transcribe"),
            ([Self.model, dir.appendingPathComponent("missing.wav").path], "missing.wav: no such file"),
            ([Self.model, Self.clip, "--tokenizer", dir.appendingPathComponent("none.json").path], "none.json: no such file"),
        ]
        for (args, message) in cases {
            let run = try cli.mlxc(["transcribe"] + args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), "\(args): expected \"\(message)\" in \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(args): \(run.stderr)")
        }
    }
}
