import Foundation

/// One message of a conversation.
public struct ChatMessage: Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A model's chat template (Jinja), rendered as Hugging Face's `apply_chat_template` renders it:
/// variables `messages`, `add_generation_prompt`, `tools`/`documents` (none), the special tokens
/// of tokenizer_config.json (`bos_token`, `eos_token`, …), and the globals `raise_exception`,
/// `namespace`, `range`, `dict`, `strftime_now`.
public final class ChatTemplate {
    public let source: String
    /// Where it came from, for messages (a file, or tokenizer_config.json's chat_template).
    public let origin: String
    let nodes: [TemplateNode]
    let locator: SourceLocator

    public init(source: String, origin: String = "chat template") throws {
        self.source = source
        self.origin = origin
        let lexer = TemplateLexer(source)
        locator = lexer.locator
        do {
            nodes = try TemplateParser.parse(source)
        } catch var error as TemplateError {
            error.source = origin
            throw error
        }
    }

    /// Renders with these variables (plus the globals).
    public func render(_ variables: [String: TemplateValue]) throws -> String {
        let globals = TemplateScope(parent: nil)
        for (name, f) in Self.globals { globals.variables[name] = .function(f) }
        let scope = TemplateScope(parent: globals)
        for (k, v) in variables { scope.variables[k] = v }
        var out = ""
        do {
            _ = try TemplateRenderer(locator: locator).render(nodes, scope, &out)
        } catch var error as TemplateError {
            error.source = origin
            throw error
        } catch let failure as TemplateFailure {
            // A limit of the whole render (RenderBudget's output length) has no one place in the source.
            var error = locator.error(failure.kind, failure.message, at: 0)
            error.source = origin
            throw error
        }
        return out
    }

    /// Renders a conversation: `specialTokens` are tokenizer_config.json's (`bos_token` → "<s>", …);
    /// `extra` adds template switches such as `enable_thinking`.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
                       extra: [String: TemplateValue] = [:]) throws -> String {
        var variables: [String: TemplateValue] = [
            "messages": .list(messages.map { .dict(TemplateDict([("role", .string($0.role)), ("content", .string($0.content))])) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        for (k, v) in specialTokens { variables[k] = .string(v) }
        for (k, v) in extra { variables[k] = v }
        return try render(variables)
    }

    static let globals: [String: TemplateFunction] = [
        "raise_exception": TemplateFunction("raise_exception") { args in
            throw TemplateFailure(args.positional.first?.text ?? "raise_exception", kind: .raised)
        },
        "range": TemplateFunction("range") { args in
            let ns = args.positional.compactMap(TemplateBuiltins.index)
            guard ns.count == args.positional.count, (1...3).contains(ns.count) else { throw TemplateFailure("range takes 1 to 3 integers") }
            let (start, stop, step) = ns.count == 1 ? (0, ns[0], 1) : (ns[0], ns[1], ns.count == 3 ? ns[2] : 1)
            guard step != 0 else { throw TemplateFailure("range step cannot be zero") }
            // The item count, computed without overflow and bounded before anything is allocated.
            let (span, overflow) = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            let stepSize = step == .min ? Int.max : abs(step)
            let count = overflow ? Int.max : span <= 0 ? 0 : span / stepSize + (span % stepSize == 0 ? 0 : 1)
            guard count <= TemplateBuiltins.maxGeneratedLength else {
                throw TemplateFailure("range(\(start), \(stop), \(step)) has more than \(TemplateBuiltins.maxGeneratedLength) items")
            }
            return .list(stride(from: start, to: stop, by: step).map { .int($0) })
        },
        "namespace": TemplateFunction("namespace") { args in
            var values = TemplateDict()
            if case .dict(let d)? = args.positional.first { for k in d.keys { values[k] = d[k] } }
            for (k, v) in args.keyword { values[k] = v }
            return .namespace(TemplateNamespace(values))
        },
        "dict": TemplateFunction("dict") { args in
            var values = TemplateDict()
            if case .dict(let d)? = args.positional.first { for k in d.keys { values[k] = d[k] } }
            for (k, v) in args.keyword { values[k] = v }
            return .dict(values)
        },
        "strftime_now": TemplateFunction("strftime_now") { args in
            guard case .string(let format)? = args.positional.first else { throw TemplateFailure("strftime_now needs a format string") }
            return .string(strftime(format, Date()))
        },
    ]

    /// C strftime of a date (local time), as Python's `datetime.now().strftime`.
    static func strftime(_ format: String, _ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [Int8](repeating: 0, count: 256)
        let n = Foundation.strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: finding a model's template

    /// The template next to a tokenizer: `chat_template.jinja` (transformers 5 saves it there),
    /// else tokenizer_config.json's `chat_template` (a string, or a list of {name, template}: the
    /// one named "default", else the first). Nil when the model has none.
    public static func load(directory: URL) throws -> ChatTemplate? {
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: jinja.path) {
            guard let text = try? String(contentsOf: jinja, encoding: .utf8) else {
                throw TemplateError(kind: .syntax, message: "not readable as UTF-8 text", line: 1, column: 1, source: jinja.path)
            }
            return try ChatTemplate(source: text, origin: jinja.path)
        }
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        guard let config = tokenizerConfig(configURL) else { return nil }
        let origin = "\(configURL.path) chat_template"
        switch config["chat_template"] {
        case let text as String:
            return try ChatTemplate(source: text, origin: origin)
        case let list as [[String: Any]]:
            let chosen = list.first { $0["name"] as? String == "default" } ?? list.first
            guard let text = chosen?["template"] as? String else { return nil }
            return try ChatTemplate(source: text, origin: "\(origin) \"\(chosen?["name"] as? String ?? "?")\"")
        default:
            return nil
        }
    }

    static func tokenizerConfig(_ url: URL) -> [String: Any]? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// tokenizer_config.json's special tokens as the template sees them (`bos_token`, `eos_token`,
    /// `pad_token`, `unk_token`, …; written as "<s>" or as {"content": "<s>", …}).
    public static func specialTokens(directory: URL) -> [String: String] {
        guard let config = tokenizerConfig(directory.appendingPathComponent("tokenizer_config.json")) else { return [:] }
        var out: [String: String] = [:]
        for key in ["bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"] {
            if let s = config[key] as? String {
                out[key] = s
            } else if let d = config[key] as? [String: Any], let s = d["content"] as? String {
                out[key] = s
            }
        }
        return out
    }

    /// Tokens that end an assistant turn in the families' templates.
    public static let endOfTurnMarkers = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
                                          "</s>", "<|end_of_text|>", "<eos>", "<|return|>", "<|END_OF_TURN_TOKEN|>"]

    /// The end-of-turn markers this template writes (so a reply stops where the template would
    /// close the assistant's turn).
    public var endOfTurnTokens: [String] { Self.endOfTurnMarkers.filter { source.contains($0) } }
}
