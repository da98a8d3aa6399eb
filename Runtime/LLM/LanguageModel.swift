import Foundation
import MLXCFrontend
import MLXCIR

/// The contract of an exported LLM, learned from the program: `forward(tokens int64 [1, T],
/// input_pos int64 [1]) -> logits [1, T, vocab]` (or `[1, vocab]`, the last position only),
/// state (the KV cache) carried across calls, and metadata methods for the limits.
public struct LanguageModelContract: CustomStringConvertible {
    public var maxChunk: Int
    public var maxContext: Int
    public var vocabSize: Int?
    public var bosID: Int?
    public var eosIDs: [Int]
    /// Whether logits come for every position ([1, T, V]) or only the last ([1, V]).
    public var logitsForEveryPosition: Bool

    public var description: String {
        "prefill chunk ≤ \(maxChunk) tokens, context \(maxContext), vocab \(vocabSize.map(String.init) ?? "?")"
    }

    /// Reads the contract, or explains why the program is not an LLM this runtime can drive.
    public init(graph: Graph, pte: PTEFile) throws {
        func refuse(_ why: String) -> ReferenceError { ReferenceError("\(pte.path) is not a KV-cache LLM mlxc can run: \(why)") }
        guard graph.inputs.count == 2 else { throw refuse("forward takes \(graph.inputs.count) inputs, expected (tokens [1, T], input_pos [1])") }
        guard let tokens = graph[graph.inputs[0]].type, tokens.rank == 2, tokens.dtype == .i64 || tokens.dtype == .i32 else {
            throw refuse("input 0 must be int64 tokens [1, T], is \(graph[graph.inputs[0]].type?.description ?? "?")")
        }
        guard let pos = graph[graph.inputs[1]].type, pos.dtype == .i64 || pos.dtype == .i32, (pos.maxElementCount ?? 0) == 1 else {
            throw refuse("input 1 must be the int64 position [1], is \(graph[graph.inputs[1]].type?.description ?? "?")")
        }
        guard graph.outputs.count >= 1 else { throw refuse("forward has no outputs") }
        maxChunk = tokens.shape[1].upperBound ?? 1
        let hasState = graph.values.contains { if case .state = $0.kind { return true } else { return false } }
        guard hasState else { throw refuse("it holds no state (KV cache) between calls") }
        maxContext = pte.metadata("get_max_context_len") ?? pte.metadata("get_max_seq_len") ?? maxChunk
        let logits = graph[graph.outputs[0]].type
        // Without the metadata method, the logits' last dimension is the vocabulary: ids past it
        // would index outside the embedding table.
        vocabSize = pte.metadata("get_vocab_size") ?? logits?.shape.last?.fixedValue
        bosID = pte.metadata("get_bos_id")
        eosIDs = pte.metadataList("get_eos_ids") ?? pte.metadata("get_eos_id").map { [$0] } ?? []
        logitsForEveryPosition = (logits?.rank ?? 3) == 3
    }
}

/// Drives a compiled (or reference) LLM: chunked prefill, then one token per call, with the KV
/// cache held in the program's state. Tracks the position so multi-turn use can continue,
/// reset or rewind.
public final class LanguageModel {
    public let executor: any ProgramExecutor
    public let contract: LanguageModelContract
    public private(set) var position = 0
    let tokenDType: DType

    public init(executor: any ProgramExecutor, graph: Graph, pte: PTEFile) throws {
        self.executor = executor
        contract = try LanguageModelContract(graph: graph, pte: pte)
        tokenDType = graph[graph.inputs[0]].type?.dtype ?? .i64
    }

    /// Feeds tokens (in chunks the program accepts) and returns the logits of the last one.
    public func feed(_ tokens: [Int]) throws -> [Float] {
        guard !tokens.isEmpty else { throw ReferenceError("nothing to feed") }
        guard position + tokens.count <= contract.maxContext else {
            throw ReferenceError("the context would grow to \(position + tokens.count) tokens; this model holds \(contract.maxContext)")
        }
        var last: [Float] = []
        var start = 0
        while start < tokens.count {
            let chunk = Array(tokens[start..<min(start + contract.maxChunk, tokens.count)])
            let input = HostTensor(dtype: tokenDType, shape: [1, chunk.count], storage: chunk.map(Double.init))
            let pos = HostTensor(dtype: tokenDType, shape: [1], storage: [Double(position)])
            let outputs = try executor.run([input, pos])
            guard let logits = outputs.first, let vocab = logits.shape.last, vocab > 0 else {
                throw ReferenceError("the model returned no logits")
            }
            last = logits.storage.suffix(vocab).map(Float.init)
            position += chunk.count
            start += chunk.count
        }
        return last
    }

    /// Forgets the conversation (a new one starts at position 0; stale cache entries are masked by position).
    public func reset() { position = 0 }

    /// Goes back to an earlier position (e.g. to retry a turn); later cache entries are overwritten.
    public func rewind(to newPosition: Int) throws {
        guard newPosition >= 0, newPosition <= position else { throw ReferenceError("cannot rewind from \(position) to \(newPosition)") }
        position = newPosition
    }
}
