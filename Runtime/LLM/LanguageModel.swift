import Foundation
import MLXCFrontend
import MLXCIR
import MLXCPasses

/// The contract of an exported LLM, learned from the program as ExecuTorch's export scripts write it:
/// - `forward(tokens [1, T], input_pos [1])` (etLLM: the position of the first token) or
///   `forward(input_ids [1, T], cache_position [T])` (Hugging Face exports: one position per token);
///   T dynamic up to a traced bound, or fixed (a static program takes exactly T tokens per call);
/// - logits for every position `[1, T, V]` or only the last `[1, V]`, in f32, bf16 or f16;
/// - a KV cache carried across calls: program state, or the off-graph cache `update_and_attend` uses;
/// - limits from the constant methods (`ProgramMetadata`).
public struct LanguageModelContract: CustomStringConvertible {
    /// How forward's second input gives positions.
    public enum Positions: String {
        /// `input_pos [1]`: where the call's first token goes.
        case start = "input_pos [1]"
        /// `cache_position [T]`: one position per token.
        case perToken = "cache_position [T]"
    }

    public var positions: Positions
    /// Tokens one call takes at most: the traced T bound and `get_prefill_chunk_size`, whichever is smaller.
    public var maxChunk: Int
    /// Whether every call must take exactly `maxChunk` tokens (a static-shape program; only T = 1 is driven).
    public var fixedChunk: Bool
    /// Tokens the conversation may hold (for sliding-window programs this exceeds the cache length).
    public var maxContext: Int
    public var vocabSize: Int?
    public var bosID: Int?
    public var eosIDs: [Int]
    /// Whether logits come for every position ([1, T, V]) or only the last ([1, V]).
    public var logitsForEveryPosition: Bool
    /// Whether some layer attends over a sliding window (its cache is a ring or rolls): a rewind
    /// cannot bring back evicted entries, so rewinding re-feeds the conversation from the start.
    public var slidingWindow: Bool
    /// The KV cache lives outside the graph (`update_and_attend`); the runtime owns its pools.
    public var offGraphCache: OffGraphCacheLayout?
    public var tokenDType: DType
    public var positionDType: DType

    public var description: String {
        "prefill chunk ≤ \(maxChunk) tokens, context \(maxContext), vocab \(vocabSize.map(String.init) ?? "?")"
    }

    /// Reads the contract, or explains why the program is not an LLM this runtime can drive.
    public init(graph: Graph, pte: PTEFile) throws {
        try self.init(graph: graph, metadata: ProgramMetadata(pte), path: pte.path)
    }

    public init(graph: Graph, metadata meta: ProgramMetadata, path: String) throws {
        let expected = "forward(tokens int64 [1, T], input_pos int64 [1] or cache_position int64 [T]) -> logits [1, T, V] or [1, V], with a KV cache"
        func refuse(_ found: String) -> ReferenceError {
            ReferenceError("\(path) is not a KV-cache LLM mlxc can run: expected \(expected); found \(found)")
        }
        func typeText(_ id: ValueID) -> String { graph[id].type?.description ?? "?" }
        guard graph.inputs.count == 2 else {
            throw refuse("forward(\(graph.inputs.map(typeText).joined(separator: ", "))) with \(graph.inputs.count) inputs")
        }
        guard let tokens = graph[graph.inputs[0]].type, tokens.rank == 2, tokens.dtype == .i64 || tokens.dtype == .i32,
              tokens.shape[0].upperBound == 1 else {
            throw refuse("input 0 of type \(typeText(graph.inputs[0])), not int tokens [1, T]")
        }
        let tokenDim = tokens.shape[1]
        guard let pos = graph[graph.inputs[1]].type, pos.dtype == .i64 || pos.dtype == .i32, pos.rank == 1 else {
            throw refuse("input 1 of type \(typeText(graph.inputs[1])), not an int position [1] or [T]")
        }
        if pos.shape[0] == .fixed(1), tokenDim.fixedValue != 1 || tokenDim == .fixed(1) {
            positions = .start
        } else if pos.shape[0].upperBound == tokenDim.upperBound {
            positions = .perToken
        } else {
            throw refuse("input 1 of type \(pos), neither input_pos [1] nor cache_position [T] for tokens \(tokens)")
        }
        guard let logitsID = graph.outputs.first, let logits = graph[logitsID].type, logits.dtype.isFloatingPoint,
              logits.rank == 2 || logits.rank == 3, logits.shape[0].upperBound == 1 else {
            throw refuse(graph.outputs.isEmpty ? "forward with no outputs" : "output 0 of type \(graph.outputs.first.map(typeText) ?? "?"), not float logits [1, T, V] or [1, V]")
        }
        logitsForEveryPosition = logits.rank == 3
        tokenDType = tokens.dtype
        positionDType = pos.dtype

        let hasState = graph.values.contains { if case .state = $0.kind { return true } else { return false } }
        // update_and_attend, or the state mlxc made of its pools (ProgramLoader): the layout is the metadata's either way.
        let attendsOffGraph = graph.blocks.contains { $0.nodes.contains { if case .updateAndAttend = $0.op { return true } else { return false } } }
            || graph.values.contains { $0.name?.hasPrefix(OffGraphKVState.statePrefix) == true }
        if try meta.bool("use_kv_cache") == false {
            throw refuse("use_kv_cache returns false (the program recomputes the whole sequence every call)")
        }
        guard hasState || attendsOffGraph else { throw refuse("no state (KV cache) kept between calls and no update_and_attend") }

        // Limits: the traced bound, then what the metadata says.
        let chunkMeta = try meta.int("get_prefill_chunk_size", atLeast: 1)
        let context = try meta.int("get_max_ctx_len", atLeast: 1) ?? meta.int("get_max_context_len", atLeast: 1)
            ?? meta.int("get_max_seq_len", atLeast: 1)
        let contextMethod = ["get_max_ctx_len", "get_max_context_len", "get_max_seq_len"].first { meta.has($0) }
        let cacheLength = Self.cacheLength(graph)
        if let fixed = tokenDim.fixedValue {
            guard fixed == 1 else {
                throw refuse("a static-shape program taking exactly \(fixed) tokens per call (mlxc drives static programs of one token per call)")
            }
            maxChunk = 1
            fixedChunk = true
        } else {
            let traced = tokenDim.upperBound
            fixedChunk = false
            guard let chunk = [traced, chunkMeta].compactMap({ $0 }).min() ?? context ?? cacheLength else {
                throw refuse("tokens \(tokens) with no bound on T and no get_prefill_chunk_size, context or cache length")
            }
            maxChunk = chunk
        }
        maxContext = context ?? cacheLength ?? maxChunk
        if let context, let chunkMeta, context < chunkMeta, let contextMethod {
            throw ReferenceError("\(path): metadata method \(contextMethod) returns \(context), less than get_prefill_chunk_size \(chunkMeta)")
        }
        maxChunk = min(maxChunk, maxContext)

        // Vocabulary and special ids.
        let logitsVocab = logits.shape.last?.fixedValue
        vocabSize = try meta.int("get_vocab_size", atLeast: 1) ?? logitsVocab
        if let v = try meta.int("get_vocab_size"), let l = logitsVocab, v != l {
            throw ReferenceError("\(path): metadata method get_vocab_size returns \(v), but forward's logits have \(l) entries")
        }
        let bosMethod = "get_bos_id"
        bosID = try meta.int(bosMethod)
        let eosMethod = meta.has("get_eos_ids") ? "get_eos_ids" : "get_eos_id"
        eosIDs = try meta.ints(eosMethod) ?? []
        let vocabLimit = vocabSize ?? Int.max
        for (method, ids) in [(bosMethod, bosID.map { [$0] } ?? []), (eosMethod, eosIDs)] {
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocabLimit }) {
                throw ReferenceError("\(path): metadata method \(method) returns \(meta.values[method]!), but id \(bad) is outside the vocabulary of \(vocabSize ?? 0)")
            }
        }
        if let batch = try meta.int("get_max_batch_size"), batch < 1 {
            throw ReferenceError("\(path): metadata method get_max_batch_size returns \(batch): must be ≥ 1")
        }
        _ = try meta.int("get_n_layers", atLeast: 1)
        _ = try meta.bool("enable_dynamic_shape")

        offGraphCache = attendsOffGraph ? try OffGraphCacheLayout(meta, maxContext: maxContext, maxChunk: maxChunk, path: path) : nil
        let windows = (try? meta.ints("get_windows")) ?? nil
        // A cache shorter than the context is a ring (or rolling) buffer of some window, whatever the metadata says.
        let window = try meta.int("sliding_window") ?? 0
        let contextLength = maxContext
        slidingWindow = window > 0 || (windows ?? []).contains { $0 > 0 } || (cacheLength.map { $0 < contextLength } ?? false)
    }

    /// The sequence length of the shortest KV cache state (the larger of a rank-4 cache's middle
    /// two axes, [B, H, S, D] or [B, S, H, D]): the context of programs that publish no limit.
    static func cacheLength(_ graph: Graph) -> Int? {
        graph.values.compactMap { v -> Int? in
            guard case .state = v.kind, let t = v.type, t.rank == 4, let name = v.name?.lowercased(), name.contains("cache"),
                  let a = t.shape[1].fixedValue, let b = t.shape[2].fixedValue else { return nil }
            return max(a, b)
        }.min()
    }
}

/// Drives a compiled (or reference) LLM: chunked prefill, then one token per call, with the KV
/// cache held in the program's state (or the off-graph pools). Tracks the position so multi-turn
/// use can continue, reset or rewind.
public final class LanguageModel {
    public let executor: any ProgramExecutor
    public let contract: LanguageModelContract
    public private(set) var position = 0

    public init(executor: any ProgramExecutor, graph: Graph, pte: PTEFile) throws {
        self.executor = executor
        contract = try LanguageModelContract(graph: graph, pte: pte)
        if let layout = contract.offGraphCache { try layout.install(on: executor) }
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
            let input = HostTensor(dtype: contract.tokenDType, shape: [1, chunk.count], storage: chunk.map(Double.init))
            let positions = contract.positions == .start ? [position] : Array(position..<(position + chunk.count))
            let pos = HostTensor(dtype: contract.positionDType, shape: [positions.count], storage: positions.map(Double.init))
            let outputs = try executor.run([input, pos])
            guard let logits = outputs.first, let vocab = logits.shape.last, vocab > 0, logits.count >= vocab else {
                throw ReferenceError("the model returned no logits")
            }
            last = logits.storage.suffix(vocab).map(Float.init)
            position += chunk.count
            start += chunk.count
        }
        return last
    }

    /// Forgets the conversation (a new one starts at position 0; stale cache entries are masked by position).
    public func reset() {
        position = 0
        contract.offGraphCache?.clear(executor)
    }

    /// Goes back to an earlier position (e.g. to retry a turn); later cache entries are overwritten.
    /// A sliding-window cache has evicted what lies behind its window, so there the conversation is
    /// fed again from the start (the position goes to 0; the caller re-feeds what it holds).
    public func rewind(to newPosition: Int) throws {
        guard newPosition >= 0, newPosition <= position else { throw ReferenceError("cannot rewind from \(position) to \(newPosition)") }
        if newPosition == position { return }
        if contract.slidingWindow { reset() } else { position = newPosition }
    }
}
