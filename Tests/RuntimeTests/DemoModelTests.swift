import Foundation
import XCTest
import MLXCFrontend
import MLXCPasses
@testable import MLXCRuntime

/// The bundled demo model (models/demo): the Swift tokenizer encodes the reference prompts exactly
/// as the `tokenizers` package did, and greedy generation (64 tokens) gives eager PyTorch's ids —
/// for the 4-bit file up to the first step where PyTorch's top two logits were within 0.01
/// (there dequantize-then-matmul and the fused kernel may legitimately pick differently).
final class DemoModelTests: XCTestCase {
    static let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/demo")

    struct Reference: Decodable {
        struct Prompt: Decodable {
            struct Result: Decodable { var ids: [Int]; var top2_margins: [Double] }
            var text: String
            var prompt_ids: [Int]
            var results: [String: Result]
        }
        var prompts: [Prompt]
    }

    func testGreedyGenerationMatchesEagerPyTorch() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.demo.appendingPathComponent("reference.json")))
        let tokenizer = try Tokenizer(jsonPath: Self.demo.appendingPathComponent("tokenizer.json").path)
        for file in ["demo_fp32.pte", "demo_mlx_4bit.pte"] {
            let loaded = try ProgramLoader.load(Self.demo.appendingPathComponent(file).path, engine: .jit, mlxcVersion: "test",
                                                passes: try PassManager(pipeline: PassRegistry.generationPipeline))
            let model = try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte)
            for prompt in reference.prompts {
                XCTAssertEqual(tokenizer.encode(prompt.text, addSpecialTokens: true), prompt.prompt_ids, prompt.text)
                guard let expected = prompt.results[file] else { continue }
                let checked = file.contains("4bit") ? (expected.top2_margins.firstIndex { $0 < 0.01 } ?? expected.ids.count) : expected.ids.count
                if let program = loaded.executor as? JITProgram { try program.resetState() }
                model.reset()
                var logits = try model.feed(prompt.prompt_ids)
                var ids: [Int] = []
                for _ in 0..<checked {
                    let next = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) } ?? 0
                    ids.append(next)
                    logits = try model.feed([next])
                }
                XCTAssertGreaterThanOrEqual(checked, 10, "\(file) \(prompt.text)")
                XCTAssertEqual(ids, Array(expected.ids.prefix(checked)), "\(file): \(prompt.text)")
            }
        }
    }
}
