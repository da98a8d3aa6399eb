import Foundation

/// What Whisper's greedy decoder may pick next, as transformers' logits processors (in their order:
/// SuppressTokensAtBegin, SuppressTokens, WhisperTimeStampLogitsProcessor) and OpenAI's decoding.py decide:
/// - `begin_suppress_tokens` at the first generated position, `suppress_tokens` everywhere;
/// - with timestamps: `<|notimestamps|>` never; timestamps come in pairs (after a lone timestamp only
///   another timestamp or end-of-text; after a pair, no timestamp); never below the last one (nor
///   `<|0.00|>` again); the first token is a timestamp no later than `max_initial_timestamp_index`;
///   and when the timestamps' total probability beats the likeliest text token, a timestamp must come.
public struct WhisperLogitRules {
    public let vocabulary: WhisperVocabulary
    public let timestamps: Bool

    public init(vocabulary: WhisperVocabulary, timestamps: Bool) {
        self.vocabulary = vocabulary
        self.timestamps = timestamps
    }

    /// Masks `logits` (one row, the vocabulary) for the token after `generated` (the window's tokens
    /// after its prompt) to -inf where the rules forbid.
    public func apply(_ logits: inout [Float], generated: [Int]) {
        let v = vocabulary
        let n = logits.count
        if generated.isEmpty {
            for id in v.beginSuppressTokens where id < n { logits[id] = -.infinity }
        }
        for id in v.suppressTokens where id < n { logits[id] = -.infinity }
        guard timestamps else { return }
        let tb = v.timestampBegin
        guard tb < n else { return }
        logits[v.noTimestamps] = -.infinity

        let lastWasTimestamp = generated.last.map(v.isTimestamp) ?? false
        let penultimateWasTimestamp = generated.count < 2 || v.isTimestamp(generated[generated.count - 2])
        if lastWasTimestamp {
            if penultimateWasTimestamp {
                for id in tb..<n { logits[id] = -.infinity }  // a pair just closed: text (or end) next
            } else {
                for id in 0..<min(v.endOfText, n) { logits[id] = -.infinity }  // a lone timestamp: no text
            }
        }
        if let lastStamp = generated.last(where: v.isTimestamp) {
            // Monotonic: nothing below the last timestamp; after a pair, not even the same one again.
            let floor = lastWasTimestamp && !penultimateWasTimestamp ? lastStamp : lastStamp + 1
            for id in tb..<min(floor, n) { logits[id] = -.infinity }
        }
        if generated.isEmpty {
            for id in 0..<tb { logits[id] = -.infinity }
            if let maxInitial = v.maxInitialTimestampIndex {
                let last = tb + maxInitial
                if last + 1 < n { for id in (last + 1)..<n { logits[id] = -.infinity } }
            }
        }
        // Timestamp probability mass against the likeliest text token (log-softmax over the row).
        let maxAll = logits.max() ?? -.infinity
        guard maxAll > -.infinity else { return }
        var sumText = 0.0, sumStamps = 0.0
        var maxText = -Float.infinity
        for id in 0..<tb { sumText += exp(Double(logits[id] - maxAll)); maxText = max(maxText, logits[id]) }
        for id in tb..<n { sumStamps += exp(Double(logits[id] - maxAll)) }
        let logTotal = log(sumText + sumStamps)
        let stampLogProb = log(sumStamps) - logTotal
        let maxTextLogProb = Double(maxText - maxAll) - logTotal
        if stampLogProb > maxTextLogProb {
            for id in 0..<tb { logits[id] = -.infinity }
        }
    }

    /// The index of the largest logit (the first on ties, as torch.argmax).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for (i, x) in logits.enumerated() where x > bestValue { best = i; bestValue = x }
        return best
    }
}
