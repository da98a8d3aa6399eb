import Foundation
import XCTest

/// `mlxc transcribe` on a Parakeet TDT folder (the committed zoo fixture: export_parakeet_tdt.py's model.pte +
/// tokenizer.model + the clip) as a user runs it: the JSON tokens, frames and durations are eager PyTorch's greedy
/// TDT (the script's loop on the eager modules, = NeMo's), the words NeMo's with times = frame × 80 ms; SRT has one
/// cue per word, in order; bad input is one line on stderr and exit code 1.
final class ParakeetTranscribeCLITests: XCTestCase {
    let cli = MLXCBinary()
    static let model = MLXCBinary.fixtures.appendingPathComponent("zoo/parakeet_portable_fp32").path
    static let clip = model + "/audio.wav"

    func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/parakeet_reference.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(json["decode"] as? [String: Any])
    }

    func testJSONIsEagerGreedyTDTAndSRTIsOneCuePerWord() throws {
        let ref = try reference()
        let eager = try XCTUnwrap(ref["script_loop"] as? [String: Any]), nemo = try XCTUnwrap(ref["nemo"] as? [String: Any])
        let run = try cli.mlxc(["transcribe", Self.model, Self.clip, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["tokens"] as? [Int], eager["tokens"] as? [Int])
        XCTAssertEqual(json["frames"] as? [Int], eager["frames"] as? [Int])
        XCTAssertEqual(json["durations"] as? [Int], eager["durations"] as? [Int])
        XCTAssertEqual(json["text"] as? String, nemo["text"] as? String)
        let words = try XCTUnwrap(json["words"] as? [[String: Any]]), want = try XCTUnwrap(nemo["words"] as? [[String: Any]])
        XCTAssertEqual(words.count, want.count)
        for (w, n) in zip(words, want) {
            XCTAssertEqual(w["word"] as? String, n["word"] as? String)
            let s = try XCTUnwrap(w["start"] as? Double), ns = Double(try XCTUnwrap(n["start_offset"] as? Int)) * 0.08
            XCTAssertLessThanOrEqual(abs(s - ns), 0.08 + 1e-9, "\(w) vs \(n)")
        }
        XCTAssertTrue(run.stderr.contains("real-time factor"), run.stderr)

        let srt = try cli.mlxc(["transcribe", Self.model, Self.clip, "--format", "srt"])
        XCTAssertEqual(srt.status, 0, srt.stderr)
        let cues = srt.stdout.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        XCTAssertEqual(cues.count, words.count)
        var last = -1.0
        for cue in cues {
            let lines = cue.split(separator: "\n")
            XCTAssertEqual(lines.count, 3, cue)
            let times = lines[1].components(separatedBy: " --> ").map { t -> Double in
                let p = t.replacingOccurrences(of: ",", with: ":").split(separator: ":").compactMap { Double($0) }
                return p.count == 4 ? p[0] * 3600 + p[1] * 60 + p[2] + p[3] / 1000 : -1
            }
            XCTAssertEqual(times.count, 2, cue)
            XCTAssertGreaterThanOrEqual(times[0], last, "cue starts go back: \(cue)")
            XCTAssertLessThanOrEqual(times[0], times[1], cue)
            last = times[0]
        }
        let text = try cli.mlxc(["transcribe", Self.model, Self.clip])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stdout, (json["text"] as? String ?? "?") + "\n")
    }

    func testBadInputGivesOneLineAndExitCode1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parakeet-cli-\(getpid())")
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let noTokenizer = dir.appendingPathComponent("no-tokenizer")
        try fm.createDirectory(at: noTokenizer, withIntermediateDirectories: true)
        try fm.copyItem(atPath: Self.model + "/model.pte", toPath: noTokenizer.appendingPathComponent("model.pte").path)
        let notAudio = dir.appendingPathComponent("not-audio.wav"), short = dir.appendingPathComponent("short.raw")
        try Data("this is not a wave file".utf8).write(to: notAudio)
        try Data(count: 200).write(to: short)   // 100 samples of 16-bit silence
        let badTokenizer = dir.appendingPathComponent("bad.model")
        try Data([0x0a, 0x7f, 0x01]).write(to: badTokenizer)   // a piece field longer than the file
        let cases: [([String], String)] = [
            ([noTokenizer.path, Self.clip], "no tokenizer.model"),
            ([Self.model, Self.clip, "--task", "translate"], "only transcribes"),
            ([Self.model, Self.clip, "--language", "fr"], "takes no language"),
            ([Self.model, notAudio.path], "not-audio.wav"),
            ([Self.model, short.path, "--sample-rate", "16000"], "too short"),
            ([Self.model, dir.appendingPathComponent("missing.wav").path], "missing.wav: no such file"),
            ([Self.model, Self.clip, "--tokenizer", badTokenizer.path], "bad.model"),
        ]
        for (args, message) in cases {
            let run = try cli.mlxc(["transcribe"] + args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), "\(args): expected \"\(message)\" in \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(args): \(run.stderr)")
        }
    }
}
