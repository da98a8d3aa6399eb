import ArgumentParser
import Foundation
import MLXCIR
import MLXCRuntime

struct GenerationOptions: ParsableArguments {
    @Option(help: "Text to continue (needs a tokenizer). With --interactive: the first turn.")
    var prompt: String?

    @Option(help: "Prompt as token ids, comma-separated (skips the tokenizer). With --interactive: the first turn, and every stdin line is ids.")
    var promptTokens: String?

    @Option(help: "The tokenizer.json (default: next to the model).")
    var tokenizer: String?

    @Option(help: "Stop after this many new tokens (per turn with --interactive).")
    var maxNewTokens = 128

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(help: "Keep only the k most likely tokens (0: off).")
    var topK = 0

    @Option(help: "Nucleus sampling: keep the smallest set with this much probability (1: off).")
    var topP: Float = 1

    @Option(help: "Penalize tokens already seen (1: off).")
    var repetitionPenalty: Float = 1

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Print the generated token ids (space-separated, one line) instead of text. With --interactive and no chat template: stdin lines are ids too.")
    var printTokenIds = false

    @Flag(name: [.long, .customLong("chat")],
          help: "Multi-turn: one turn per stdin line until EOF, each continuing the conversation in the KV cache (/reset, /undo, /help). Text lines are messages in the model's chat template when it has one.")
    var interactive = false

    @Option(help: "With --chat: a system message, first in the conversation (needs a chat template).")
    var system: String?

    @Option(help: "With --chat: the chat template (a Jinja file) instead of the model's (chat_template.jinja or tokenizer_config.json next to the tokenizer).")
    var chatTemplate: String?

    @Flag(help: "With --chat: no chat template; turns continue the token stream as they are.")
    var noChatTemplate = false

    /// Whether turns are given as token ids rather than text (a chat template takes text).
    func tokenInput(templated: Bool) -> Bool { promptTokens != nil || (printTokenIds && !templated) }
}

/// Text generation on a loaded LLM: prompt → chunked prefill → token-by-token decode, streamed;
/// or, with `--interactive`, a conversation of many such turns.
struct TextGeneration {
    let options: GenerationOptions
    let modelPath: String
    let loaded: ProgramLoader.Loaded

    /// The chat template for `--chat`: the one given, or the model's; nil for raw turns.
    func chatTemplate(tokenizerDirectory: URL) throws -> ChatTemplate? {
        guard options.interactive, !options.noChatTemplate, options.promptTokens == nil else {
            if options.system != nil { throw ValidationError("--system needs --chat with text turns and a chat template") }
            return nil
        }
        let template: ChatTemplate?
        if let path = options.chatTemplate {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("--chat-template: cannot read \(path)") }
            template = try ChatTemplate(source: text, origin: path)
        } else {
            template = try ChatTemplate.load(directory: tokenizerDirectory)
        }
        guard let template else {
            if options.system != nil {
                throw ValidationError("--system needs a chat template: \(tokenizerDirectory.path) has no chat_template.jinja and no chat_template in tokenizer_config.json (give --chat-template)")
            }
            return nil
        }
        // Rendered once up front, so a template this engine cannot run is named before any turn.
        _ = try template.render(messages: [ChatMessage(role: "user", content: "hello")], addGenerationPrompt: true,
                                specialTokens: ChatTemplate.specialTokens(directory: tokenizerDirectory))
        return template
    }

    func run() throws {
        let model = try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte)
        var tokenizer: Tokenizer?
        let tokenizerPath = options.tokenizer ?? ((modelPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer.json")
        let tokenizerDirectory = URL(fileURLWithPath: tokenizerPath).deletingLastPathComponent()
        let template = try chatTemplate(tokenizerDirectory: tokenizerDirectory)
        if options.prompt != nil || !options.printTokenIds || template != nil, FileManager.default.fileExists(atPath: tokenizerPath) {
            tokenizer = try Tokenizer(jsonPath: tokenizerPath)
        }
        var stop = Set(model.contract.eosIDs)
        if let t = tokenizer { stop.formUnion(t.eosTokenIDs) }
        if let t = tokenizer, let template {
            // The template's end-of-turn markers end a reply too (<|im_end|>, <|eot_id|>, <end_of_turn>, …).
            stop.formUnion(template.endOfTurnTokens.compactMap { t.tokenID($0) })
        }
        if let vocab = model.contract.vocabSize { stop = stop.filter { $0 < vocab } }
        let conversation = Conversation(
            model: model,
            sampler: SamplerConfig(temperature: options.temperature, topK: options.topK, topP: options.topP,
                                   repetitionPenalty: options.repetitionPenalty, seed: options.seed),
            stopTokens: stop)
        let tokenInput = options.tokenInput(templated: template != nil)
        let turns = TurnParser(tokenizer: tokenizer, tokenizerPath: tokenizerPath, vocabSize: model.contract.vocabSize, tokenInput: tokenInput)
        if options.interactive {
            if !tokenInput && tokenizer == nil {
                throw ValidationError("no tokenizer: \(tokenizerPath) does not exist (give --tokenizer, or --print-token-ids to chat in token ids)")
            }
            var chat: ChatSession?
            if let template, let tokenizer {
                chat = ChatSession(conversation: conversation, template: template, tokenizer: tokenizer,
                                   specialTokens: ChatTemplate.specialTokens(directory: tokenizerDirectory), system: options.system)
            }
            var first: InteractiveSession.Turn?
            if let ids = options.promptTokens { first = .tokens(try turns.ids(ids, what: "--prompt-tokens")) }
            if let text = options.prompt {
                if let chat {
                    do {
                        first = .message(text, prompt: try chat.prompt(for: text))
                    } catch let error as ReferenceError {
                        throw ValidationError("--prompt: \(error)")
                    }
                } else {
                    first = .tokens(try turns.text(text, startsConversation: true))
                }
            }
            return try InteractiveSession(options: options, conversation: conversation, tokenizer: tokenizer, turns: turns, chat: chat,
                                          loadSeconds: loaded.loadSeconds).run(firstTurn: first)
        }
        let prompt: [Int]
        if let ids = options.promptTokens {
            prompt = try turns.ids(ids, what: "--prompt-tokens")
        } else if let text = options.prompt {
            prompt = try turns.text(text, startsConversation: true)
        } else {
            prompt = [tokenizer?.bosTokenID ?? model.contract.bosID ?? 0]
        }
        let output = ReplyPrinter(tokenizer: options.printTokenIds ? nil : tokenizer)
        let reply = try conversation.reply(to: prompt, maxNewTokens: options.maxNewTokens) { output.push($0) }
        output.finish(reply.tokens)
        let stats = String(format: "time to first token %.3f s (load %.3f s + prefill %.3f s); prefill %.1f tok/s (%d tokens); decode %.1f tok/s (%d tokens); peak memory %.0f MB\n",
                           loaded.loadSeconds + reply.prefillSeconds, loaded.loadSeconds, reply.prefillSeconds,
                           Double(prompt.count) / max(reply.prefillSeconds, 1e-9), prompt.count,
                           Double(max(reply.tokens.count - 1, 0)) / max(reply.decodeSeconds, 1e-9), reply.tokens.count,
                           Double(PeakMemory.residentBytes()) / 1_048_576)
        FileHandle.standardError.write(Data(stats.utf8))
    }
}

/// Writes one reply to stdout: text streamed token by token (with a tokenizer), or the ids on one
/// line at the end. Writes go straight to the file descriptor (no stdio buffer), so text and
/// later lines keep their order on a pipe.
final class ReplyPrinter {
    private var stream: StreamingDecoder?
    private let out = FileHandle.standardOutput

    init(tokenizer: Tokenizer?) { stream = tokenizer?.streamingDecoder() }

    func push(_ id: Int) {
        guard var s = stream else { return }
        out.write(Data(s.push(id).utf8))
        stream = s
    }

    func finish(_ ids: [Int]) {
        if var s = stream {
            out.write(Data((s.finish() + "\n").utf8))
            stream = s
        } else {
            out.write(Data((ids.map(String.init).joined(separator: " ") + "\n").utf8))
        }
    }
}

/// The bundled demo model (`models/demo`), found from the working directory or from the binary.
enum DemoModel {
    static func path() -> String? {
        let candidates = [
            FileManager.default.currentDirectoryPath + "/models/demo/demo_mlx_4bit.pte",
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
                .appendingPathComponent("../../models/demo/demo_mlx_4bit.pte").standardizedFileURL.path,
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
                .appendingPathComponent("../../../models/demo/demo_mlx_4bit.pte").standardizedFileURL.path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }
}
