import ArgumentParser
import Foundation
import MLXCRuntime

/// Turns a prompt (a flag's value or one stdin line) into token ids, with errors that say which
/// input was wrong and how.
struct TurnParser {
    let tokenizer: Tokenizer?
    let tokenizerPath: String
    let vocabSize: Int?
    /// Whether stdin lines are token ids (else text for the tokenizer).
    let tokenInput: Bool

    /// Ids separated by commas and/or whitespace ("1,2,3", "1 2 3"), so a printed reply line
    /// can be pasted back as a turn.
    func ids(_ text: String, what: String) throws -> [Int] {
        let fields = text.split(whereSeparator: { $0 == "," || $0.isWhitespace })
        let ids = try fields.map { field -> Int in
            guard let n = Int(field), n >= 0 else { throw ValidationError("\(what): '\(field)' is not a token id") }
            return n
        }
        guard !ids.isEmpty else { throw ValidationError("\(what): no token ids") }
        if let vocabSize, let bad = ids.first(where: { $0 >= vocabSize }) {
            throw ValidationError("\(what): token id \(bad) is outside the model's vocabulary of \(vocabSize)")
        }
        return ids
    }

    /// Text through the tokenizer; special tokens (BOS) only when the turn starts a conversation,
    /// as a model sees BOS once at the start of its sequence.
    func text(_ text: String, startsConversation: Bool) throws -> [Int] {
        guard let tokenizer else { throw ValidationError("no tokenizer: \(tokenizerPath) does not exist (give --tokenizer or --prompt-tokens)") }
        let ids = tokenizer.encode(text, addSpecialTokens: startsConversation)
        guard !ids.isEmpty else { throw ValidationError("the prompt is empty") }
        if let vocabSize, let bad = ids.first(where: { $0 >= vocabSize }) {
            throw ValidationError("\(tokenizerPath) gives id \(bad) (\"\(tokenizer.tokenString(bad) ?? "?")\"), outside the model's vocabulary of \(vocabSize): the tokenizer does not belong to this model")
        }
        return ids
    }

    /// One stdin line as a turn, in the session's input format.
    func line(_ line: String, number: Int, startsConversation: Bool) throws -> [Int] {
        tokenInput ? try ids(line, what: "line \(number)") : try text(line, startsConversation: startsConversation)
    }
}
