import Foundation
import XCTest

/// `mlxc run MODEL --chat` on programs ExecuTorch's export scripts wrote (the zoo), against
/// transformers' eager chat on the same float32 checkpoint (chat_reference.json, written by
/// tools/python/chat_reference.py): each stdin line is a user message rendered in the model's own
/// chat template, and the replies are eager's greedy tokens. Entries come from the committed zoo
/// fixtures (Fixtures/zoo), else from a local `zoo build` (tools/.work/zoo/out).
final class ChatCLITests: XCTestCase {
    let cli = MLXCBinary()

    struct Step: Decodable { var argmax: Int; var top2_margin: Double }
    struct Turn: Decodable { var user: String; var prompt_ids: [Int]; var reply: [Int]; var stop: Int?; var steps: [Step] }
    struct Reference: Decodable { var system: String?; var max_new_tokens: Int; var turns: [Turn] }

    /// One export per family (the default MLX path), a chunked sliding-window one and the off-graph cache.
    static func entries() -> [URL] {
        for root in ["Tests/Fixtures/zoo", "tools/.work/zoo/out"] {
            let dir = MLXCBinary.repo.appendingPathComponent(root)
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
                .filter { $0.hasSuffix("_mlx_fp32") || $0 == "gemma3_mlx_custom_chunk4" || $0 == "llama_mlx_offgraph_fp32" }
                .map { dir.appendingPathComponent($0) }
                .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("chat_reference.json").path)
                    && FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.pte").path) }
            if !found.isEmpty { return found }
        }
        return []
    }

    /// "turn K: … (P tokens); decode …; ended by X;" per turn on stderr.
    func turnStats(_ stderr: String) -> [(prefill: Int, stop: String)] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("turn ") }.compactMap { line in
            guard let open = line.range(of: " tok/s ("), let close = line[open.upperBound...].firstIndex(of: " "),
                  let prefill = Int(line[open.upperBound..<close]),
                  let ended = line.range(of: "ended by "), let semi = line[ended.upperBound...].firstIndex(of: ";") else { return nil }
            return (prefill, String(line[ended.upperBound..<semi]))
        }
    }

    func testChatRepliesMatchTransformersEagerChat() throws {
        let entries = Self.entries()
        if entries.isEmpty { throw XCTSkip("no zoo entry with chat_reference.json (tools/python/chat_reference.py after `zoo build`)") }
        for dir in entries {
            let name = dir.lastPathComponent
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("chat_reference.json")))
            var args = ["run", "--jit", dir.appendingPathComponent("model.pte").path, "--chat", "--temperature", "0",
                        "--max-new-tokens", "\(ref.max_new_tokens)", "--print-token-ids"]
            if let system = ref.system { args += ["--system", system] }
            let run = try cli.mlxc(args, stdin: ref.turns.map(\.user).joined(separator: "\n") + "\n")
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let replies = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                .map { $0.split(separator: " ").compactMap { Int($0) } }
            let stats = turnStats(run.stderr)
            XCTAssertEqual(replies.count, ref.turns.count, "\(name): \(run.stdout)")
            XCTAssertEqual(stats.count, ref.turns.count, "\(name): \(run.stderr)")
            guard replies.count == ref.turns.count, stats.count == ref.turns.count else { continue }
            var held: [Int] = []   // the conversation's tokens after each turn, as the cache holds them
            for (k, turn) in ref.turns.enumerated() {
                // Only the tokens the cache has not seen are prefilled: the rendered prompt past the
                // longest prefix shared with the conversation so far (its last token is sampled, not fed).
                let shared = zip(held, turn.prompt_ids).prefix { $0 == $1 }.count
                let expectedPrefill = turn.prompt_ids.count - min(shared, max(held.count - 1, 0))
                XCTAssertTrue(stats[k].prefill == expectedPrefill || stats[k].prefill == turn.prompt_ids.count,
                              "\(name) turn \(k + 1): prefilled \(stats[k].prefill) tokens, expected \(expectedPrefill) of \(turn.prompt_ids.count)")
                if k > 0 && shared == held.count && !name.hasPrefix("gemma") {
                    XCTAssertEqual(stats[k].prefill, expectedPrefill, "\(name) turn \(k + 1): the cache did not continue")
                }
                let got = replies[k]
                let agree = zip(got, turn.reply).prefix { $0 == $1 }.count
                if agree < turn.reply.count || got.count != turn.reply.count {
                    // A near-tie of eager's two best logits may part the two; later turns then differ too.
                    let margin = agree < turn.steps.count ? turn.steps[agree].top2_margin : 0
                    XCTAssertLessThan(margin, 1e-3, "\(name) turn \(k + 1): replied \(got), eager \(turn.reply)")
                    break
                }
                XCTAssertEqual(stats[k].stop, turn.stop.map { "stop token \($0)" } ?? "max new tokens", "\(name) turn \(k + 1)")
                held = turn.prompt_ids + turn.reply + (turn.stop.map { [$0] } ?? [])
            }
        }
    }

    /// Bad chat input: one line naming what and where, exit 1.
    func testChatInputErrors() throws {
        guard let dir = Self.entries().first(where: { $0.lastPathComponent.hasPrefix("qwen3") }) ?? Self.entries().first else {
            throw XCTSkip("no zoo entry with a chat template")
        }
        let model = dir.appendingPathComponent("model.pte").path
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-chat-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let bad = tmp.appendingPathComponent("bad.jinja")
        try "{% for m in messages %}\n  {{ m.content | shout }}\n{% endfor %}".write(to: bad, atomically: true, encoding: .utf8)
        let unsupported = try cli.mlxc(["run", model, "--chat", "--chat-template", bad.path], stdin: "hi\n")
        XCTAssertEqual(unsupported.status, 1)
        XCTAssertTrue(unsupported.stderr.contains("bad.jinja 2:18: unsupported Jinja: filter 'shout'"), unsupported.stderr)
        XCTAssertEqual(unsupported.stderr.split(separator: "\n").count, 1, unsupported.stderr)

        // A template that refuses a conversation refuses that line only.
        let strict = tmp.appendingPathComponent("strict.jinja")
        try "{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}{{ messages[0].content }}"
            .write(to: strict, atomically: true, encoding: .utf8)
        let refused = try cli.mlxc(["run", model, "--chat", "--chat-template", strict.path, "--max-new-tokens", "2"], stdin: "a\nb\n")
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("line 2: \(strict.path) 1:47: the template refused the conversation: one message only"), refused.stderr)

        // --system needs a template.
        let noTemplate = try cli.mlxc(["run", model, "--chat", "--no-chat-template", "--system", "x"], stdin: "")
        XCTAssertEqual(noTemplate.status, 1)
        XCTAssertTrue(noTemplate.stderr.contains("--system needs"), noTemplate.stderr)

        // A tokenizer of another vocabulary: named, not fed.
        try FileManager.default.copyItem(at: URL(fileURLWithPath: model), to: tmp.appendingPathComponent("model.pte"))
        let demoTokenizer = MLXCBinary.repo.appendingPathComponent("models/demo/tokenizer.json")
        let foreign = try cli.mlxc(["run", tmp.appendingPathComponent("model.pte").path, "--tokenizer", demoTokenizer.path,
                                    "--prompt", "the quick brown fox jumps over the lazy dog", "--max-new-tokens", "1"])
        XCTAssertEqual(foreign.status, 1, foreign.stdout)
        XCTAssertTrue(foreign.stderr.contains("outside the model's vocabulary of 512: the tokenizer does not belong to this model"), foreign.stderr)
    }
}
