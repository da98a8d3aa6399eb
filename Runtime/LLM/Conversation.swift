import Foundation

/// A turn that does not fit: the conversation would outgrow the model's context window. The turn
/// is refused before anything is fed, so the conversation is unchanged and can still be reset or
/// undone (feeding past the window would overwrite the cache and produce garbage).
public struct ContextOverflow: Error, CustomStringConvertible {
    /// Tokens the conversation would hold with the refused turn.
    public var needed: Int
    /// Tokens the conversation holds now (with the reply's last token, sampled but not yet in the cache).
    public var used: Int
    /// The model's context window.
    public var capacity: Int

    public var description: String {
        "the conversation would grow to \(needed) tokens (\(needed - used) new) but the model's context holds \(capacity)"
    }
}

/// One conversation with a language model: a single token stream whose prefix lives in the KV
/// cache (the program's state). Each turn feeds only what the cache has not seen yet — the last
/// token of the previous reply (sampled, never fed) and the new prompt — so earlier turns are
/// never prefilled again. Single-shot generation is a conversation of one turn, so both paths
/// share this loop and a multi-turn run reproduces a one-shot run of the concatenated tokens.
public final class Conversation {
    public let model: LanguageModel
    public let samplerConfig: SamplerConfig
    /// Tokens that end a reply (EOS, end of turn). The one that ended a reply stays in the
    /// conversation, so the model sees the boundary when the next turn is fed.
    public let stopTokens: Set<Int>
    private var sampler: Sampler

    /// Every token of the conversation: prompts, replies and stop tokens, in order. The first
    /// `model.position` are in the cache; the rest (at most one) are fed with the next turn.
    public private(set) var tokens: [Int] = []
    /// Where each turn begins in `tokens`, so `undo` can drop the last one.
    public private(set) var turnStarts: [Int] = []

    public enum Stop: Equatable, CustomStringConvertible {
        case stopToken(Int)
        case maxNewTokens
        /// The cache is full: no room to feed the last sampled token.
        case contextFull

        public var description: String {
            switch self {
            case .stopToken(let id): return "stop token \(id)"
            case .maxNewTokens: return "max new tokens"
            case .contextFull: return "context full"
            }
        }
    }

    public struct Reply {
        /// The generated tokens, without the stop token.
        public var tokens: [Int]
        public var stop: Stop
        /// Tokens fed before the first new one (the new prompt plus any pending token).
        public var prefillTokens: Int
        public var prefillSeconds: Double
        public var decodeSeconds: Double
    }

    public init(model: LanguageModel, sampler: SamplerConfig, stopTokens: Set<Int>) {
        self.model = model
        samplerConfig = sampler
        self.stopTokens = stopTokens
        self.sampler = Sampler(sampler)
    }

    /// The model's context window, in tokens.
    public var capacity: Int { model.contract.maxContext }

    /// Whether a turn of `count` tokens fits in the context window (with what is still pending).
    public func check(adding count: Int) throws {
        if tokens.count + count > capacity {
            throw ContextOverflow(needed: tokens.count + count, used: tokens.count, capacity: capacity)
        }
    }

    /// Appends `prompt` as a new turn and generates the reply, calling `onToken` for each new
    /// token as it is sampled. Throws `ContextOverflow` (conversation unchanged) if the turn
    /// does not fit.
    public func reply(to prompt: [Int], maxNewTokens: Int, onToken: (Int) -> Void = { _ in }) throws -> Reply {
        let pending = Array(tokens[model.position...])
        let feed = pending + prompt
        guard !feed.isEmpty else { throw ReferenceError("the turn is empty and nothing is pending: no token to continue from") }
        try check(adding: prompt.count)
        turnStarts.append(tokens.count)
        tokens += prompt
        let start = Date()
        var logits = try model.feed(feed)
        let prefillSeconds = Date().timeIntervalSince(start)
        var generated: [Int] = []
        var stop = Stop.maxNewTokens
        let decodeStart = Date()
        while generated.count < maxNewTokens {
            let next = sampler.sample(logits: logits, history: tokens)
            tokens.append(next)
            if stopTokens.contains(next) { stop = .stopToken(next); break }
            generated.append(next)
            onToken(next)
            if generated.count == maxNewTokens { break }
            if model.position + 1 > capacity { stop = .contextFull; break }
            logits = try model.feed([next])
        }
        return Reply(tokens: generated, stop: stop, prefillTokens: feed.count, prefillSeconds: prefillSeconds,
                     decodeSeconds: Date().timeIntervalSince(decodeStart))
    }

    /// How many tokens of `full` the conversation already holds (the longest common prefix).
    public func sharedPrefix(with full: [Int]) -> Int {
        zip(tokens, full).prefix { $0 == $1 }.count
    }

    /// Whether the conversation can become `full` (its whole token stream re-rendered) in the context window.
    public func check(continuing full: [Int]) throws {
        if full.count > capacity {
            throw ContextOverflow(needed: full.count, used: tokens.count, capacity: capacity)
        }
    }

    /// Continues the conversation so that its token stream reads `full` (a chat template renders
    /// the whole conversation each turn): keeps the prefix the conversation already holds, drops
    /// what differs after it (the cache rewinds, so e.g. a reply that re-tokenizes differently is
    /// fed again), and feeds only the new tokens. Throws `ContextOverflow` (conversation
    /// unchanged) if `full` does not fit.
    public func reply(continuing full: [Int], maxNewTokens: Int, onToken: (Int) -> Void = { _ in }) throws -> Reply {
        try check(continuing: full)
        let common = sharedPrefix(with: full)
        guard common < full.count || common < tokens.count else {
            throw ReferenceError("the turn adds no tokens to the conversation")
        }
        if common < tokens.count {
            tokens.removeSubrange(common...)
            turnStarts.removeAll { $0 > common }
            if model.position > common { try model.rewind(to: common) }
        }
        return try reply(to: Array(full[common...]), maxNewTokens: maxNewTokens, onToken: onToken)
    }

    /// Starts a new conversation: empty stream, cache position 0, and the sampler reseeded so a
    /// reset conversation samples exactly as a fresh run does.
    public func reset() {
        model.reset()
        tokens = []
        turnStarts = []
        sampler = Sampler(samplerConfig)
    }

    /// Drops the last turn (its prompt and reply) and rewinds the cache to where it began;
    /// returns false when there is no turn to drop. The sampler is not rewound, so a retried
    /// turn samples afresh (greedy decoding repeats itself).
    @discardableResult
    public func undo() throws -> Bool {
        guard let start = turnStarts.popLast() else { return false }
        tokens.removeSubrange(start...)
        if model.position > start { try model.rewind(to: start) }
        return true
    }
}
