import Foundation
import XCTest

extension MLXCBinary {
    /// Runs mlxc with `input` on stdin (written, then closed, while stdout and stderr are drained,
    /// so no pipe can fill up and stall either side).
    func mlxc(_ args: [String], stdin input: String) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = args
        let inPipe = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = inPipe
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let writer = DispatchQueue(label: "stdin")
        writer.async {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        var stderr = Data()
        let drain = DispatchGroup()
        DispatchQueue.global().async(group: drain) { stderr = err.fileHandleForReading.readDataToEndOfFile() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        drain.wait()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// `mlxc run --interactive`: multi-turn generation on the KV cache, checked against single-shot
/// runs of the same token stream.
final class InteractiveTests: XCTestCase {
    let cli = MLXCBinary()
    let demo = MLXCBinary.repo.appendingPathComponent("models/demo/demo_mlx_4bit.pte").path

    /// What each turn reported on stderr ("turn K: … ended by X; context U/C tokens").
    struct TurnStats { var stop: String; var used: Int; var capacity: Int }

    func turnStats(_ stderr: String) -> [TurnStats] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("turn ") }.compactMap { line in
            guard let ended = line.range(of: "ended by "), let semi = line[ended.upperBound...].firstIndex(of: ";"),
                  let ctx = line.range(of: "; context "), let slash = line[ctx.upperBound...].firstIndex(of: "/"),
                  let used = Int(line[ctx.upperBound..<slash]),
                  let capacity = Int(line[line.index(after: slash)...].prefix { $0.isNumber }) else { return nil }
            return TurnStats(stop: String(line[ended.upperBound..<semi]), used: used, capacity: capacity)
        }
    }

    func ids(_ line: Substring) -> [Int] { line.split(separator: " ").compactMap { Int($0) } }
    func csv(_ ids: [Int]) -> String { ids.map(String.init).joined(separator: ",") }

    /// The stop token that ended a reply belongs to the conversation; a single-shot run must see it too.
    func stopToken(_ stats: TurnStats) -> [Int] {
        stats.stop.hasPrefix("stop token ") ? [Int(stats.stop.dropFirst("stop token ".count))!] : []
    }

    /// The single-shot reply (token ids) to `prompt`.
    func singleShot(_ model: String, _ prompt: [Int], _ extra: [String] = []) throws -> [Int] {
        let run = try cli.mlxc(["run", model, "--prompt-tokens", csv(prompt), "--print-token-ids"] + extra)
        XCTAssertEqual(run.status, 0, run.stderr)
        return ids(run.stdout.split(separator: "\n").first ?? "")
    }

    func testTwoTurnsEqualOneShotOfTheConcatenation() throws {
        for (model, first, second) in [
            (cli.fixture("llama_mlx_fp32"), [134, 45, 175, 240], [17, 99, 3]),
            (demo, [0, 320, 1022, 77], [501, 12, 1300, 9, 44]),
        ] {
            let session = try cli.mlxc(["run", model, "--interactive", "--print-token-ids", "--max-new-tokens", "8"],
                                       stdin: "\(csv(first))\n\(second.map(String.init).joined(separator: " "))\n")
            XCTAssertEqual(session.status, 0, session.stderr)
            let replies = session.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(ids)
            let stats = turnStats(session.stderr)
            XCTAssertEqual(replies.count, 2, session.stdout)
            XCTAssertEqual(stats.count, 2, session.stderr)
            guard replies.count == 2, stats.count == 2 else { continue }
            XCTAssertFalse(replies[0].isEmpty)
            XCTAssertEqual(replies[0], try singleShot(model, first, ["--max-new-tokens", "8"]), model)
            let concatenated = first + replies[0] + stopToken(stats[0]) + second
            XCTAssertEqual(stats[1].used, concatenated.count + replies[1].count + stopToken(stats[1]).count, session.stderr)
            XCTAssertEqual(replies[1], try singleShot(model, concatenated, ["--max-new-tokens", "8"]), "\(model): turn 2 differs from one shot")
        }
    }

    func testResetAndUndo() throws {
        let model = cli.fixture("llama_mlx_fp32")
        let (a, b, c) = ([134, 45, 175, 240], [17, 99, 3], [200, 5, 61, 8])
        // Sampling: after /reset the reply must be the fresh run's, sampler reseeded.
        let sampling = ["--temperature", "0.9", "--top-k", "40", "--seed", "11", "--max-new-tokens", "10"]
        let reset = try cli.mlxc(["run", model, "--chat", "--print-token-ids"] + sampling,
                                 stdin: "\(csv(a))\n\(csv(b))\n/reset\n\(csv(a))\n")
        XCTAssertEqual(reset.status, 0, reset.stderr)
        let r = reset.stdout.split(separator: "\n").map(ids)
        XCTAssertEqual(r.count, 3, reset.stdout)
        XCTAssertTrue(reset.stderr.contains("new conversation"), reset.stderr)
        XCTAssertEqual(r.first, r.last, "reply after /reset differs from the first")
        XCTAssertEqual(r.first, try singleShot(model, a, sampling))

        // Greedy: /undo drops turn 2; turn 3 continues from turn 1 as if turn 2 never happened.
        let undo = try cli.mlxc(["run", model, "--interactive", "--print-token-ids", "--max-new-tokens", "6"],
                                stdin: "\(csv(a))\n\(csv(b))\n/undo\n\(csv(c))\n/undo\n/undo\n\(csv(b))\n")
        XCTAssertEqual(undo.status, 0, undo.stderr)
        let u = undo.stdout.split(separator: "\n").map(ids)
        let stats = turnStats(undo.stderr)
        XCTAssertEqual(u.count, 4, undo.stdout)
        XCTAssertEqual(stats.count, 4, undo.stderr)
        guard u.count == 4, stats.count == 4 else { return }
        XCTAssertEqual(u[1], try singleShot(model, a + u[0] + stopToken(stats[0]) + b, ["--max-new-tokens", "6"]))
        XCTAssertEqual(u[2], try singleShot(model, a + u[0] + stopToken(stats[0]) + c, ["--max-new-tokens", "6"]))
        // After undoing both turns the conversation is empty: b as a first turn is b's one-shot reply.
        XCTAssertEqual(stats[3].used, b.count + u[3].count + stopToken(stats[3]).count)
        XCTAssertEqual(u[3], try singleShot(model, b, ["--max-new-tokens", "6"]))
    }

    func testContextOverflowIsRefusedClearly() throws {
        let model = cli.fixture("llama_mlx_fp32")
        let a = [134, 45, 175, 240]
        let args = ["run", model, "--interactive", "--print-token-ids", "--max-new-tokens", "4"]
        let probe = try cli.mlxc(args, stdin: "\(csv(a))\n")
        XCTAssertEqual(probe.status, 0, probe.stderr)
        let first = try XCTUnwrap(turnStats(probe.stderr).first, probe.stderr)
        let room = first.capacity - first.used
        XCTAssertGreaterThan(room, 1)
        // One token too many is refused with the numbers; the conversation survives, /reset works.
        let tooLong = csv(Array(repeating: 7, count: room + 1))
        let over = try cli.mlxc(args, stdin: "\(csv(a))\n\(tooLong)\n/reset\n\(csv(a))\n")
        XCTAssertEqual(over.status, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("line 2: turn refused: the conversation would grow to \(first.capacity + 1) tokens"), over.stderr)
        XCTAssertTrue(over.stderr.contains("context holds \(first.capacity)"), over.stderr)
        XCTAssertTrue(over.stderr.contains("1 input line was refused"), over.stderr)
        let replies = over.stdout.split(separator: "\n").map(ids)
        XCTAssertEqual(replies.count, 2, over.stdout)
        XCTAssertEqual(replies.first, replies.last)
        // Exactly filling the window: the turn runs, its reply stops at the full context, and the
        // next turn is refused rather than written past the cache.
        let exact = try cli.mlxc(args, stdin: "\(csv(a))\n\(csv(Array(repeating: 7, count: room)))\n\(csv([5]))\n")
        XCTAssertEqual(exact.status, 1, exact.stderr)
        let stats = turnStats(exact.stderr)
        XCTAssertEqual(stats.count, 2, exact.stderr)
        XCTAssertEqual(stats.last?.stop, "context full", exact.stderr)
        XCTAssertTrue(exact.stderr.contains("the context window is full"), exact.stderr)
        XCTAssertTrue(exact.stderr.contains("line 3: turn refused"), exact.stderr)
        XCTAssertEqual(exact.stdout.split(separator: "\n").last.map(ids)?.count, 1, exact.stdout)
    }

    func testBadLinesAreNamedAndSkipped() throws {
        let model = cli.fixture("llama_mlx_fp32")
        let run = try cli.mlxc(["run", model, "--interactive", "--print-token-ids", "--max-new-tokens", "3"],
                               stdin: "/undo\n12, x, 4\n1,256\n\n/frobnicate\n-3\n134,45\n")
        XCTAssertEqual(run.status, 1, run.stderr)
        for expected in ["line 1: /undo: no turn to drop", "line 2: 'x' is not a token id",
                         "line 3: token id 256 is outside the model's vocabulary of 256", "line 5: unknown command '/frobnicate'",
                         "line 6: '-3' is not a token id", "5 input lines were refused"] {
            XCTAssertTrue(run.stderr.contains(expected), "missing \"\(expected)\" in:\n\(run.stderr)")
        }
        XCTAssertEqual(run.stdout.split(separator: "\n").count, 1, run.stdout)
        XCTAssertEqual(run.stdout.split(separator: "\n").first.map(ids), try singleShot(model, [134, 45], ["--max-new-tokens", "3"]))
    }

    func testTextTurnsOnTheDemoModel() throws {
        let single = try cli.mlxc(["run", demo, "--prompt", "You will", "--max-new-tokens", "12"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let chat = try cli.mlxc(["run", demo, "--chat", "--max-new-tokens", "12"], stdin: "You will\nA programmer\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertFalse(single.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        XCTAssertTrue(chat.stdout.hasPrefix(single.stdout), "first turn:\n\(chat.stdout)\nsingle shot:\n\(single.stdout)")
        XCTAssertGreaterThan(chat.stdout.count, single.stdout.count)
        XCTAssertEqual(turnStats(chat.stderr).count, 2, chat.stderr)
        // Without a tokenizer, a text session is refused up front.
        let none = try cli.mlxc(["run", cli.fixture("llama_mlx_fp32"), "--chat"], stdin: "hello\n")
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("no tokenizer"), none.stderr)
    }
}
