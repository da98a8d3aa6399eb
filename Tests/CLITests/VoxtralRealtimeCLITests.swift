import Foundation
import XCTest

/// `mlxc transcribe` on a Voxtral Realtime streaming export (the committed zoo fixture voxtral_rt_mlx_stream_fp32) as a
/// user runs it: a file, and `--stream` with the audio piped to stdin in 80 ms pieces (as fast as possible, and at a
/// limited rate), as a WAV stream or raw s16le — every way the tokens are eager PyTorch's streaming tokens and the
/// text the same. Bad input is one line on stderr and exit code 1, the text of the audio received printed first.
final class VoxtralRealtimeCLITests: XCTestCase {
    let cli = MLXCBinary()
    static let model = MLXCBinary.fixtures.appendingPathComponent("zoo/voxtral_rt_mlx_stream_fp32").path
    static let clip = model + "/audio.wav"

    override func setUp() {
        signal(SIGPIPE, SIG_IGN)   // mlxc may exit (bad input) before the writer is done: EPIPE, not a dead test run
    }

    func eagerTokens() throws -> [Int] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/voxtral_rt_reference.json"))
        return try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["tokens"] as? [Int])
    }

    /// Runs mlxc with `input` written to its stdin in `chunk`-byte pieces, `pause` seconds apart.
    func piped(_ args: [String], _ input: Data, chunk: Int = 2560, pause: Double = 0) throws -> MLXCBinary.Run {
        let process = Process()
        process.executableURL = cli.binary
        process.arguments = args
        let stdin = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let writer = Thread {
            var at = 0
            while at < input.count {
                let n = min(chunk, input.count - at)
                guard (try? stdin.fileHandleForWriting.write(contentsOf: input.subdata(in: at..<(at + n)))) != nil else { break }
                at += n
                if pause > 0 { Thread.sleep(forTimeInterval: pause) }
            }
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()   // stderr is a line or two: no deadlock reading it after
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while writer.isExecuting { Thread.sleep(forTimeInterval: 0.01) }
        return MLXCBinary.Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                              stderr: String(decoding: stderrData, as: UTF8.self))
    }

    func json(_ run: MLXCBinary.Run) throws -> [String: Any] {
        XCTAssertEqual(run.status, 0, run.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
    }

    /// The clip's s16 samples without the WAV header.
    func rawPCM() throws -> Data {
        let wav = try Data(contentsOf: URL(fileURLWithPath: Self.clip))
        let at = try XCTUnwrap(wav.range(of: Data("data".utf8))).lowerBound + 8
        return wav.subdata(in: at..<wav.count)
    }

    func testFileAndStdinGiveEagerTokensAndTheSameText() throws {
        let want = try eagerTokens()
        let file = try json(try cli.mlxc(["transcribe", Self.model, Self.clip, "--format", "json"]))
        XCTAssertEqual(file["tokens"] as? [Int], want)
        XCTAssertEqual(file["steps"] as? Int, 44)
        let text = try XCTUnwrap(file["text"] as? String)

        let wav = try Data(contentsOf: URL(fileURLWithPath: Self.clip))
        let fast = try json(try piped(["transcribe", "--stream", Self.model, "--format", "json"], wav))
        XCTAssertEqual(fast["tokens"] as? [Int], want)
        XCTAssertEqual(fast["text"] as? String, text)
        // At a limited rate (an 80 ms piece every 20 ms: 4x real time, to keep the test short) — same tokens; every
        // word has a latency and audio time.
        let run = try piped(["transcribe", "--stream", Self.model, "--format", "json"], wav, pause: 0.02)
        let limited = try json(run)
        XCTAssertEqual(limited["tokens"] as? [Int], want)
        let words = try XCTUnwrap(limited["words"] as? [[String: Any]])
        XCTAssertFalse(words.isEmpty)
        for w in words {
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(w["latency_s"] as? Double), 0)
            XCTAssertLessThanOrEqual(try XCTUnwrap(w["audio_s"] as? Double), 2.99 + 1e-9)
        }
        XCTAssertTrue(run.stderr.contains("real-time factor"), run.stderr)
        XCTAssertTrue(run.stderr.contains("latency per word"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)

        // Raw s16le (the default without a header) and the text format: the same text, one line.
        let raw = try piped(["transcribe", "--stream", Self.model], try rawPCM(), chunk: 1000)
        XCTAssertEqual(raw.status, 0, raw.stderr)
        XCTAssertEqual(raw.stdout, text + "\n")
        let explicit = try piped(["transcribe", "--stream", Self.model, "--sample-rate", "16000", "--pcm-format", "s16", "--format", "json"],
                                 try rawPCM())
        XCTAssertEqual(try json(explicit)["tokens"] as? [Int], want)
    }

    /// An offline export (audio_encoder): the runner's offline loop, eager's 391 tokens (375 audio positions + 16).
    func testOfflineExportGivesEagerOfflineTokens() throws {
        let offline = MLXCBinary.fixtures.appendingPathComponent("zoo/voxtral_rt_mlx_fp32").path
        let data = try Data(contentsOf: URL(fileURLWithPath: offline + "/voxtral_rt_reference.json"))
        let ref = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let run = try json(try cli.mlxc(["transcribe", offline, offline + "/audio.wav", "--format", "json", "--max-new-tokens",
                                         "\(try XCTUnwrap(ref["max_new_tokens"] as? Int))"]))
        XCTAssertEqual(run["tokens"] as? [Int], try XCTUnwrap(ref["tokens"] as? [Int]))
        XCTAssertEqual(run["audio_positions"] as? Int, 375)
        let stream = try piped(["transcribe", "--stream", offline], try Data(contentsOf: URL(fileURLWithPath: Self.clip)))
        XCTAssertEqual(stream.status, 1)
        XCTAssertTrue(stream.stderr.contains("an offline export (audio_encoder); --stream needs"), stream.stderr)
        XCTAssertEqual(stream.stderr.split(separator: "\n").count, 1, stream.stderr)
    }

    /// Bad input: one line on stderr, exit 1; text already decoded stays printed (stdout).
    func testBadInputGivesOneLineAndExitCode1() throws {
        let raw = try rawPCM()
        let wav = try Data(contentsOf: URL(fileURLWithPath: Self.clip))
        // Stops mid-frame: the samples received are transcribed (flushed) first.
        let cut = raw.prefix(20 * 2560 + 1)
        let midFrame = try piped(["transcribe", "--stream", Self.model], cut)
        XCTAssertEqual(midFrame.status, 1, midFrame.stderr)
        XCTAssertTrue(midFrame.stderr.contains("stopped mid-frame: 1 byte of a 2-byte frame"), midFrame.stderr)
        XCTAssertEqual(midFrame.stderr.split(separator: "\n").count, 1, midFrame.stderr)
        let whole = try piped(["transcribe", "--stream", Self.model], raw.prefix(20 * 2560))
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertFalse(whole.stdout.trimmingCharacters(in: .newlines).isEmpty)
        XCTAssertEqual(midFrame.stdout, whole.stdout, "the text of the whole samples is printed before the error")
        // A WAV stream that ends before its data chunk's declared size: same, text kept.
        let shortWAV = try piped(["transcribe", "--stream", Self.model], wav.prefix(44 + 20 * 2560))
        XCTAssertEqual(shortWAV.status, 1)
        XCTAssertTrue(shortWAV.stderr.contains("WAV data chunk declares"), shortWAV.stderr)
        XCTAssertEqual(shortWAV.stdout, whole.stdout)

        var wav8k = wav
        wav8k.replaceSubrange(24..<28, with: [0x40, 0x1F, 0, 0])   // 8000 Hz in the fmt chunk
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vrt-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [([String], Data, String)] = [
            (["--stream", Self.model], wav8k, "stdin: 8000 Hz audio; a stream is read at 16000 Hz"),
            (["--stream", Self.model, "--sample-rate", "8000"], raw, "stdin: 8000 Hz audio"),
            (["--stream", Self.model], Data(), "stdin: no audio"),
            (["--stream", Self.model], wav.prefix(30), "stopped inside its WAV header"),
            (["--stream", Self.model, Self.clip], wav, "--stream reads stdin: give no audio files"),
            (["--stream", MLXCBinary.fixtures.appendingPathComponent("zoo/voxtral_mlx_fp32").path], wav, "--stream needs a Voxtral Realtime export"),
            (["--stream", Self.model, "--format", "srt"], wav, "--format must be text or json"),
            ([Self.model], Data(), "give at least one audio file, or --stream"),
        ]
        for (args, input, message) in cases {
            let run = try piped(["transcribe"] + args, input)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), "\(args): expected \"\(message)\" in \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(args): \(run.stderr)")
        }
        // A program missing a method: a streaming folder whose model.pte has no encode_audio_chunk/audio_encoder.
        let noMethod = dir.appendingPathComponent("no-method")
        try FileManager.default.createDirectory(at: noMethod, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: MLXCBinary.fixtures.appendingPathComponent("zoo/llama_mlx_fp32/model.pte").path,
                                         toPath: noMethod.appendingPathComponent("model.pte").path)
        try FileManager.default.copyItem(atPath: Self.model + "/tekken.json", toPath: noMethod.appendingPathComponent("tekken.json").path)
        let run = try piped(["transcribe", "--stream", noMethod.path], wav)
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
    }
}
