import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The LLM contract learned from a program: signatures (`input_pos [1]` or `cache_position [T]`,
/// dynamic or static T, logits of every or of the last position), limits from the constant methods,
/// and one clear line for metadata out of range or a program that is not a KV-cache LLM.
final class LanguageModelContractTests: XCTestCase {
    /// A forward signature with a KV cache: tokens [1, T], a position input, logits.
    func graph(tokens: Dim = .dynamic(min: 1, max: 32), position: Dim? = nil, logits: [Dim]? = nil, logitsDType: DType = .f32,
               inputs: Int = 2, state: Bool = true) -> Graph {
        var g = Graph(name: "forward")
        g.inputs.append(g.addValue(TensorType(.i64, [.fixed(1), tokens]), .input(position: 0), name: "tokens"))
        if inputs >= 2 { g.inputs.append(g.addValue(TensorType(.i64, [position ?? tokens]), .input(position: 1), name: "pos")) }
        if inputs >= 3 { g.inputs.append(g.addValue(TensorType(.f32, [.fixed(1)]), .input(position: 2), name: "extra")) }
        if state { g.addValue(TensorType(.f32, fixed: [1, 2, 48, 16]), .state(initial: nil), name: "layers.0.k_cache") }
        g.outputs.append(g.addValue(TensorType(logitsDType, logits ?? [.fixed(1), tokens, .fixed(100)]), .computed, name: "logits"))
        return g
    }

    func contract(_ g: Graph, _ meta: [String: ProgramMetadata.Value] = [:]) throws -> LanguageModelContract {
        try LanguageModelContract(graph: g, metadata: ProgramMetadata(values: meta, path: "m.pte"), path: "m.pte")
    }

    func testSignaturesAndLimits() throws {
        // Hugging Face: cache_position [T]; the traced bound and get_prefill_chunk_size, whichever is smaller.
        var c = try contract(graph(), ["get_max_ctx_len": .int(40), "get_prefill_chunk_size": .int(8), "get_max_seq_len": .int(48),
                                       "get_eos_id": .ints([3, 4]), "get_bos_id": .int(1), "get_vocab_size": .int(100)])
        XCTAssertEqual(c.positions, .perToken)
        XCTAssertEqual([c.maxChunk, c.maxContext], [8, 40])
        XCTAssertEqual(c.eosIDs, [3, 4])
        XCTAssertEqual(c.bosID, 1)
        XCTAssertFalse(c.fixedChunk)
        // etLLM: input_pos [1]; a scalar eos id; context from get_max_context_len, else get_max_seq_len, else the cache.
        c = try contract(graph(position: .fixed(1)), ["get_max_context_len": .int(30), "get_eos_ids": .int(7)])
        XCTAssertEqual(c.positions, .start)
        XCTAssertEqual([c.maxChunk, c.maxContext], [30, 30])
        XCTAssertEqual(c.eosIDs, [7])
        c = try contract(graph(position: .fixed(1)), ["get_max_seq_len": .int(20)])
        XCTAssertEqual([c.maxChunk, c.maxContext], [20, 20])
        c = try contract(graph(position: .fixed(1)))
        XCTAssertEqual(c.maxContext, 48, "the KV cache length")
        // Static, one token per call; logits of the last position only, in bf16; a sliding window.
        c = try contract(graph(tokens: .fixed(1), logits: [.fixed(1), .fixed(100)], logitsDType: .bf16),
                         ["get_max_ctx_len": .int(64), "sliding_window": .int(8)])
        XCTAssertEqual([c.maxChunk, c.maxContext], [1, 64])
        XCTAssertTrue(c.fixedChunk)
        XCTAssertFalse(c.logitsForEveryPosition)
        XCTAssertTrue(c.slidingWindow)
        XCTAssertEqual(c.vocabSize, 100)
    }

    func testRefusesWithOneLineNamingWhatAndWhere() {
        let cases: [(Graph, [String: ProgramMetadata.Value], String)] = [
            (graph(), ["get_prefill_chunk_size": .int(0)], "m.pte: metadata method get_prefill_chunk_size returns 0: must be ≥ 1"),
            (graph(), ["get_eos_ids": .ints([2, 100])], "m.pte: metadata method get_eos_ids returns [2, 100], but id 100 is outside the vocabulary of 100"),
            (graph(), ["get_bos_id": .int(-1)], "metadata method get_bos_id returns -1, but id -1 is outside the vocabulary"),
            (graph(), ["get_max_ctx_len": .int(4), "get_prefill_chunk_size": .int(8)], "metadata method get_max_ctx_len returns 4, less than get_prefill_chunk_size 8"),
            (graph(), ["get_vocab_size": .int(99)], "metadata method get_vocab_size returns 99, but forward's logits have 100 entries"),
            (graph(), ["get_max_seq_len": .double(2.5)], "metadata method get_max_seq_len returns 2.5: expected one integer"),
            (graph(), ["use_kv_cache": .bool(false)], "is not a KV-cache LLM mlxc can run: expected forward(tokens int64 [1, T], input_pos int64 [1] or cache_position int64 [T]) -> logits [1, T, V] or [1, V], with a KV cache; found use_kv_cache returns false"),
            (graph(state: false), [:], "found no state (KV cache) kept between calls"),
            (graph(inputs: 1), [:], "found forward(i64[1, ?1..32]) with 1 inputs"),
            (graph(inputs: 3), [:], "with 3 inputs"),
            (graph(position: .fixed(5)), [:], "found input 1 of type i64[5], neither input_pos [1] nor cache_position [T]"),
            (graph(tokens: .fixed(4)), [:], "a static-shape program taking exactly 4 tokens per call"),
            (graph(logits: [.fixed(100)]), [:], "found output 0 of type f32[100], not float logits"),
        ]
        for (g, meta, message) in cases {
            XCTAssertThrowsError(try contract(g, meta), message) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(message), "\(text)\n  expected: \(message)")
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
    }

    // MARK: programs ExecuTorch's scripts wrote

    static func zoo(_ name: String) -> String? {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return ["Tests/Fixtures/zoo", "tools/.work/zoo/out"].map { repo.appendingPathComponent("\($0)/\(name)/model.pte").path }
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    func load(_ name: String, engine: ProgramLoader.Engine = .reference) throws -> (LanguageModel, ProgramLoader.Loaded) {
        guard let path = Self.zoo(name) else { throw XCTSkip("zoo entry \(name) is not built or committed") }
        let loaded = try ProgramLoader.load(path, engine: engine, mlxcVersion: "test", passes: try PassManager(pipeline: PassRegistry.generationPipeline))
        return (try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte), loaded)
    }

    func testZooContracts() throws {
        let (hf, _) = try load("llama_mlx_fp32")
        XCTAssertEqual(hf.contract.positions, .perToken)
        XCTAssertEqual([hf.contract.maxChunk, hf.contract.maxContext], [63, 64])
        XCTAssertEqual(hf.contract.eosIDs, [4, 1])
        XCTAssertFalse(hf.contract.slidingWindow, "a flat cache as long as the context")
        let (sliding, _) = try load("gemma3_mlx_fp32")
        XCTAssertTrue(sliding.contract.fixedChunk)
        XCTAssertEqual(sliding.contract.maxChunk, 1)
        XCTAssertTrue(sliding.contract.slidingWindow)
        let (chunked, _) = try load("gemma3_mlx_custom_chunk4")
        XCTAssertEqual(chunked.contract.maxChunk, 4, "get_prefill_chunk_size")
        XCTAssertGreaterThan(chunked.contract.maxContext, 8, "a ring-buffer program holds more than its window")
        let (offGraph, _) = try load("llama_mlx_offgraph_fp32")
        let layout = try XCTUnwrap(offGraph.contract.offGraphCache, "update_and_attend: mlxc owns the cache")
        XCTAssertEqual(layout.caches, 2)
        XCTAssertEqual(layout.windows, [0, 0], "get_windows (an int32 tensor)")
        XCTAssertEqual([layout.capacity, layout.maxWrite], [offGraph.contract.maxContext, offGraph.contract.maxChunk])
    }

    /// On a sliding-window program a rewind cannot restore evicted cache entries: the conversation is
    /// fed again from the start, and a retried turn replies exactly as the first try did.
    func testRewindOnASlidingWindowProgramRefeeds() throws {
        let (model, _) = try load("gemma3_mlx_custom_chunk4", engine: .jit)
        let conversation = Conversation(model: model, sampler: SamplerConfig(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0),
                                        stopTokens: [])
        let first = try conversation.reply(to: Array(100..<118), maxNewTokens: 6)
        let second = try conversation.reply(to: [200, 201, 202], maxNewTokens: 6)
        XCTAssertTrue(try conversation.undo())
        XCTAssertEqual(model.position, 0, "rewinding past the window restarts")
        let retried = try conversation.reply(to: [200, 201, 202], maxNewTokens: 6)
        XCTAssertEqual(retried.tokens, second.tokens)
        XCTAssertEqual(retried.prefillTokens, 18 + first.tokens.count + 3)
    }
}
