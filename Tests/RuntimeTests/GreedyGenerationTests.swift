import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Greedy generation of 64 tokens, one call per token with the KV cache carried in the program's
/// state, must give eager PyTorch's ids token for token (fixtures' greedy.json): plain and
/// MLX-delegated Llama, the MoE model, and the sliding-window model far past its window of 8.
final class GreedyGenerationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Reference: Decodable { var prompt: [Int]; var tokens: [Int] }

    func greedy(_ model: LanguageModel, prompt: [Int], count: Int) throws -> [Int] {
        var logits = try model.feed(prompt)
        var out: [Int] = []
        var sampler = Sampler(.greedy)
        for _ in 0..<count {
            let next = sampler.sample(logits: logits, history: [])
            out.append(next)
            if out.count < count { logits = try model.feed([next]) }
        }
        return out
    }

    func testGreedyTokensMatchEagerPyTorch() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.root.path).sorted()
            .filter { FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("\($0)/greedy.json").path) }
        XCTAssertGreaterThanOrEqual(names.count, 10, "greedy references missing")
        for name in names {
            let dir = Self.root.appendingPathComponent(name)
            let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("greedy.json")))
            let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, engine: .jit, mlxcVersion: "test",
                                                passes: try PassManager(pipeline: PassRegistry.generationPipeline))
            let model = try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte)
            let tokens = try greedy(model, prompt: reference.prompt, count: reference.tokens.count)
            XCTAssertEqual(tokens, reference.tokens, "\(name): first difference at \(Array(zip(tokens, reference.tokens)).firstIndex { $0.0 != $0.1 } ?? -1)")
        }
    }
}
