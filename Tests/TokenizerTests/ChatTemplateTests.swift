import Foundation
import XCTest
@testable import MLXCRuntime

/// The Jinja engine against transformers' own renderer: every family template (the zoo's, and
/// Qwen3's, Mistral's) and a template exercising the whole subset, over several conversations,
/// with and without the generation prompt. Expected text and errors come from
/// tools/python/chat_template_expected.py (Fixtures/chat_templates/expected.json).
final class ChatTemplateTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat_templates")

    struct Message: Decodable { var role: String; var content: String }
    struct Case: Decodable {
        var template: String
        var conversation: String
        var add_generation_prompt: Bool
        var special_tokens: [String: String]
        var extra: [String: Bool]
        var rendered: String?
        var error: String?
    }
    struct Expected: Decodable { var conversations: [String: [Message]]; var cases: [Case] }

    func template(_ name: String) throws -> ChatTemplate {
        try ChatTemplate(source: String(contentsOf: Self.root.appendingPathComponent("\(name).jinja"), encoding: .utf8), origin: "\(name).jinja")
    }

    func testRendersAsTransformersDoes() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.root.appendingPathComponent("expected.json")))
        XCTAssertGreaterThanOrEqual(expected.cases.count, 90)
        var templates: [String: ChatTemplate] = [:]
        for c in expected.cases {
            let t = try templates[c.template] ?? template(c.template)
            templates[c.template] = t
            let messages = expected.conversations[c.conversation]!.map { ChatMessage(role: $0.role, content: $0.content) }
            let what = "\(c.template) / \(c.conversation) / generation prompt \(c.add_generation_prompt) \(c.extra)"
            do {
                let text = try t.render(messages: messages, addGenerationPrompt: c.add_generation_prompt, specialTokens: c.special_tokens,
                                        extra: c.extra.mapValues { .bool($0) })
                XCTAssertNil(c.error, "\(what): rendered, but transformers raised \(c.error ?? "")")
                XCTAssertEqual(text, c.rendered, what)
            } catch let error as TemplateError {
                guard let want = c.error else { XCTFail("\(what): \(error)"); continue }
                XCTAssertEqual(error.kind, .raised, what)
                XCTAssertTrue(want.hasSuffix(error.message), "\(what): \(error.message) vs \(want)")
            }
        }
    }

    /// Unsupported constructs and syntax errors: one line naming the construct and line:column.
    func testErrorsNameTheConstructAndWhere() {
        let cases: [(String, TemplateError.Kind, String, Int, Int)] = [
            ("hello\n  {% include 'x.jinja' %}", .unsupported, "'{% include %}'", 2, 6),
            ("{{ messages | frobnicate }}", .unsupported, "filter 'frobnicate'", 1, 15),
            ("{% if x is prime %}{% endif %}", .unsupported, "test 'prime'", 1, 12),
            ("{% if true %}\nno end", .syntax, "'{% if %}' is not closed", 1, 4),
            ("{{ 'a' + }}", .syntax, "expected a value", 1, 10),
            ("{% for x in [1] %}{% endif %}", .syntax, "unexpected '{% endif %}'", 1, 22),
            ("{{ (1 ]}}", .syntax, "unexpected ']'", 1, 7),
            ("a\n{{ x.y }}", .render, "'x' is undefined", 2, 5),
            ("{{ 1 + 'a' }}", .render, "'+' is not supported between a int and a string", 1, 6),
            ("{{ '%s' % 1 }}", .unsupported, "'%' string formatting", 1, 9),
            ("{% for x in y recursive %}{% endfor %}", .unsupported, "recursive for loops", 1, 15),
        ]
        for (source, kind, message, line, column) in cases {
            do {
                let t = try ChatTemplate(source: source, origin: "t.jinja")
                _ = try t.render(["y": .list([])])
                XCTFail("\(source): no error")
            } catch let error as TemplateError {
                XCTAssertEqual(error.kind, kind, "\(source): \(error)")
                XCTAssertTrue(error.message.contains(message), "\(source): \(error)")
                XCTAssertEqual([error.line, error.column], [line, column], "\(source): \(error)")
                XCTAssertTrue(error.description.hasPrefix("t.jinja \(line):\(column): "), error.description)
                XCTAssertFalse(error.description.contains("\n"), error.description)
            } catch {
                XCTFail("\(source): \(error)")
            }
        }
    }

    /// A model directory's template: chat_template.jinja first, else tokenizer_config.json's
    /// chat_template (a string, or a list of named templates: "default" else the first).
    func testFindsTheModelsTemplate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertNil(try ChatTemplate.load(directory: dir))
        func config(_ template: Any) throws {
            let json: [String: Any] = ["chat_template": template, "bos_token": ["content": "<s>", "special": true], "eos_token": "</s>"]
            try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        }
        try config("A{{ bos_token }}")
        XCTAssertEqual(try ChatTemplate.load(directory: dir)?.render(messages: [], addGenerationPrompt: true,
                                                                    specialTokens: ChatTemplate.specialTokens(directory: dir)), "A<s>")
        try config([["name": "tool_use", "template": "T"], ["name": "default", "template": "D{{ eos_token }}"]])
        XCTAssertEqual(try ChatTemplate.load(directory: dir)?.render(["eos_token": .string("</s>")]), "D</s>")
        try "J{{ messages|length }}\n".write(to: dir.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ChatTemplate.load(directory: dir)?.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: true), "J1")
    }

    func testEndOfTurnTokensAreThoseTheTemplateWrites() throws {
        XCTAssertEqual(try template("chatml").endOfTurnTokens, ["<|im_end|>"])
        XCTAssertEqual(try template("llama3").endOfTurnTokens, ["<|eot_id|>"])
        XCTAssertEqual(try template("gemma").endOfTurnTokens, ["<end_of_turn>"])
        XCTAssertEqual(try template("phi").endOfTurnTokens, ["<|end|>"])
    }

    func testStrftimeNow() throws {
        let t = try ChatTemplate(source: "{{ strftime_now('%Y') }}")
        XCTAssertEqual(try t.render([:]), String(Calendar.current.component(.year, from: Date())))
    }
}
