import Foundation
import FuzzSupport
import MLXCRuntime

/// A chat template (Jinja subset: lexer, parser, renderer, builtins and filters) parsed and rendered
/// over a fixed four-turn conversation with the usual special tokens.
let chatTemplateTarget = FuzzTarget(
    name: "chat-template",
    summary: "chat template (Jinja) parsed and rendered over a fixed conversation",
    run: { bytes in
        let template = try ChatTemplate(source: String(decoding: bytes, as: UTF8.self), origin: "fuzz.jinja")
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                        ChatMessage(role: "assistant", content: "Hello! <think>x</think>"), ChatMessage(role: "user", content: "  2+2?\n")]
        _ = try template.render(messages: messages, addGenerationPrompt: true,
                                specialTokens: ["bos_token": "<s>", "eos_token": "</s>"],
                                extra: ["enable_thinking": .bool(false)])
    },
    seeds: { fixtures, corpus in
        for file in Seeds.files(under: fixtures, suffix: ".jinja") {
            try Seeds.write([UInt8](try Data(contentsOf: file)), Seeds.relative(file, fixtures), to: corpus)
        }
    })
