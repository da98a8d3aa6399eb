import Foundation

/// A conversation in the model's chat template: each user turn re-renders the whole conversation
/// (system message, earlier turns with the replies as the model wrote them, the new message and
/// the opened assistant turn), tokenizes it as `apply_chat_template` does (no special tokens added
/// beyond what the template writes), and continues the KV cache from the longest prefix it
/// already holds, so only the new tokens are prefilled.
public final class ChatSession {
    public let conversation: Conversation
    public let template: ChatTemplate
    public let tokenizer: Tokenizer
    /// tokenizer_config.json's special tokens, as the template sees them.
    public let specialTokens: [String: String]
    public let system: String?
    public private(set) var messages: [ChatMessage] = []
    /// Messages added per turn (user and assistant), so `undo` drops a whole turn.
    private var turnSizes: [Int] = []

    public init(conversation: Conversation, template: ChatTemplate, tokenizer: Tokenizer, specialTokens: [String: String], system: String?) {
        self.conversation = conversation
        self.template = template
        self.tokenizer = tokenizer
        self.specialTokens = specialTokens
        self.system = system
        resetMessages()
    }

    private func resetMessages() {
        messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        turnSizes = []
    }

    /// The tokens of the whole conversation with `user` as the next message and the assistant's
    /// turn opened; every id must be in the model's vocabulary.
    public func prompt(for user: String) throws -> [Int] {
        let text = try template.render(messages: messages + [ChatMessage(role: "user", content: user)], addGenerationPrompt: true,
                                       specialTokens: specialTokens)
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        guard !ids.isEmpty else { throw ReferenceError("\(template.origin) rendered the conversation as no tokens") }
        if let vocab = conversation.model.contract.vocabSize, let bad = ids.first(where: { $0 >= vocab }) {
            throw ReferenceError("the tokenizer gives id \(bad) (\"\(tokenizer.tokenString(bad) ?? "?")\"), outside the model's vocabulary of \(vocab): the tokenizer does not belong to this model")
        }
        return ids
    }

    /// One turn: `full` is `prompt(for: user)`. The reply is kept as the model wrote it (decoded
    /// with its special tokens, so it renders back to the same ids).
    public func reply(to user: String, prompt full: [Int], maxNewTokens: Int, onToken: (Int) -> Void = { _ in }) throws -> Conversation.Reply {
        let reply = try conversation.reply(continuing: full, maxNewTokens: maxNewTokens, onToken: onToken)
        messages.append(ChatMessage(role: "user", content: user))
        messages.append(ChatMessage(role: "assistant", content: tokenizer.decode(reply.tokens)))
        turnSizes.append(2)
        return reply
    }

    public func reset() {
        conversation.reset()
        resetMessages()
    }

    /// Drops the last turn (the user's message and the reply); false when there is none.
    @discardableResult
    public func undo() throws -> Bool {
        guard let n = turnSizes.popLast() else { return false }
        messages.removeLast(n)
        try conversation.undo()
        return true
    }
}
