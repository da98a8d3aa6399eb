import ArgumentParser
import Foundation
import MLXCRuntime

/// `mlxc run --interactive`: a conversation read from stdin, one turn per line, until EOF. Each
/// turn continues the KV cache the previous one left (only the new line is prefilled); replies
/// stream to stdout, per-turn speed and all diagnostics go to stderr.
///
/// A line that cannot be used (not token ids, out of the vocabulary, an unknown command, or a
/// turn the context window cannot hold) is reported on stderr with its line number and skipped,
/// leaving the conversation as it was, so a terminal session can go on with /undo or /reset.
/// The exit status is 1 if any line was refused, so scripted use notices.
///
/// With a chat template (`chat`), each line is the user's message: the conversation is rendered
/// in the template and only what the cache has not seen is prefilled.
struct InteractiveSession {
    let options: GenerationOptions
    let conversation: Conversation
    let tokenizer: Tokenizer?
    let turns: TurnParser
    let chat: ChatSession?
    let loadSeconds: Double
    let terminal = isatty(STDIN_FILENO) != 0

    /// One turn: token ids or text continuing the stream as they are, or a message for the template.
    enum Turn {
        case tokens([Int])
        case message(String, prompt: [Int])
    }

    static let help = """
        one turn per line; empty lines are skipped; a line starting with "//" sends the rest after one "/"
        /reset  start a new conversation (clears the cache and reseeds the sampler)
        /undo   drop the last turn (prompt and reply) and rewind the cache to before it
        /help   this text
        end with EOF (Ctrl-D)
        """

    /// A line of text as a turn: a message in the chat template, or tokens continuing the stream.
    func parse(_ line: String, number: Int) throws -> Turn {
        guard let chat else {
            return .tokens(try turns.line(line, number: number, startsConversation: conversation.tokens.isEmpty))
        }
        do {
            return .message(line, prompt: try chat.prompt(for: line))
        } catch let error as ReferenceError {
            throw ValidationError("line \(number): \(error)")
        } catch let error as TemplateError {
            throw ValidationError("line \(number): \(error)")
        }
    }

    func run(firstTurn: Turn?) throws {
        if terminal {
            let how = chat.map { "messages in \(($0.template.origin as NSString).lastPathComponent)" }
                ?? (turns.tokenInput ? "token ids, comma- or space-separated" : "text")
            note("chatting with \(conversation.model.contract.description); one turn per line (\(how)); /help for commands")
        }
        var refused = 0
        var turnNumber = 0
        func take(_ t: Turn) throws {
            turnNumber += 1
            try turn(t, number: turnNumber)
        }
        if let firstTurn { try take(firstTurn) }
        var lineNumber = 0
        while true {
            if terminal { FileHandle.standardError.write(Data("> ".utf8)) }
            guard var line = readLine(strippingNewline: true) else { break }
            lineNumber += 1
            if line.hasSuffix("\r") { line.removeLast() }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            do {
                if line.hasPrefix("/") && !line.hasPrefix("//") {
                    try command(line.trimmingCharacters(in: .whitespaces), number: lineNumber)
                    continue
                }
                if line.hasPrefix("//") { line.removeFirst() }
                let next = try parse(line, number: lineNumber)
                do {
                    switch next {
                    case .tokens(let ids): try conversation.check(adding: ids.count)
                    case .message(_, let prompt): try conversation.check(continuing: prompt)
                    }
                } catch let overflow as ContextOverflow {
                    throw ValidationError("line \(lineNumber): turn refused: \(overflow); /reset starts a new conversation, /undo drops the last turn")
                }
                try take(next)
            } catch let error as ValidationError {
                refused += 1
                FileHandle.standardError.write(Data("mlxc: error: \(error)\n".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if refused > 0 {
            throw ValidationError("\(refused) input line\(refused == 1 ? " was" : "s were") refused (see above)")
        }
    }

    /// One turn: prefill what the cache has not seen, stream the reply, report speed.
    func turn(_ t: Turn, number: Int) throws {
        let output = ReplyPrinter(tokenizer: options.printTokenIds ? nil : tokenizer)
        let reply: Conversation.Reply
        switch t {
        case .tokens(let prompt):
            reply = try conversation.reply(to: prompt, maxNewTokens: options.maxNewTokens) { output.push($0) }
        case .message(let text, let prompt):
            reply = try chat!.reply(to: text, prompt: prompt, maxNewTokens: options.maxNewTokens) { output.push($0) }
        }
        output.finish(reply.tokens)
        let firstToken = reply.prefillSeconds + (number == 1 ? loadSeconds : 0)
        let stats = String(format: "turn %d: time to first token %.3f s; prefill %.1f tok/s (%d tokens); decode %.1f tok/s (%d tokens); ended by %@; context %d/%d tokens; peak memory %.0f MB\n",
                           number, firstToken, Double(reply.prefillTokens) / max(reply.prefillSeconds, 1e-9), reply.prefillTokens,
                           Double(max(reply.tokens.count - 1, 0)) / max(reply.decodeSeconds, 1e-9), reply.tokens.count,
                           reply.stop.description, min(conversation.tokens.count, conversation.capacity), conversation.capacity,
                           Double(PeakMemory.residentBytes()) / 1_048_576)
        FileHandle.standardError.write(Data(stats.utf8))
        if reply.stop == .contextFull {
            note("the context window is full (\(conversation.capacity) tokens): the reply was cut; /reset starts a new conversation, /undo drops the last turn")
        }
    }

    func command(_ line: String, number: Int) throws {
        switch line {
        case "/reset":
            if let chat { chat.reset() } else { conversation.reset() }
            note("new conversation")
        case "/undo":
            if try chat?.undo() ?? conversation.undo() {
                note("dropped the last turn; context \(conversation.tokens.count)/\(conversation.capacity) tokens")
            } else {
                throw ValidationError("line \(number): /undo: no turn to drop")
            }
        case "/help":
            FileHandle.standardError.write(Data((Self.help + "\n").utf8))
        default:
            throw ValidationError("line \(number): unknown command '\(line)' (commands: /reset, /undo, /help; start a turn with \"//\" to send a leading \"/\")")
        }
    }

    func note(_ message: String) { FileHandle.standardError.write(Data("mlxc: \(message)\n".utf8)) }
}
