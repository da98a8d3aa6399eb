import Foundation
import XCTest
@testable import MLXCRuntime

/// Malformed or unsupported tokenizer.json files fail with a `TokenizerError` naming the file and
/// the JSON path, never a trap.
final class TokenizerErrorTests: XCTestCase {
    /// A minimal valid file; tests break one part of it.
    static func spec(model: [String: Any]? = nil, extra: [String: Any] = [:]) -> [String: Any] {
        var s: [String: Any] = [
            "version": "1.0",
            "model": model ?? ["type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 2], "merges": ["a b"]],
        ]
        for (k, v) in extra { s[k] = v }
        return s
    }

    func error(_ json: Any, file: StaticString = #filePath, line: UInt = #line) -> TokenizerError? {
        let data = (try? JSONSerialization.data(withJSONObject: json)) ?? Data()
        do {
            _ = try Tokenizer(data: data, name: "broken.json")
            XCTFail("loaded without error", file: file, line: line)
            return nil
        } catch let e as TokenizerError {
            return e
        } catch {
            XCTFail("not a TokenizerError: \(error)", file: file, line: line)
            return nil
        }
    }

    func assertError(_ json: Any, path: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        guard let e = error(json, file: file, line: line) else { return }
        let text = e.description
        XCTAssertTrue(text.hasPrefix("broken.json: "), text, file: file, line: line)
        XCTAssertTrue(text.contains(": \(path): "), "no path \(path) in: \(text)", file: file, line: line)
        for w in words { XCTAssertTrue(text.contains(w), "no \(w.debugDescription) in: \(text)", file: file, line: line) }
    }

    func testValidMinimalFileLoads() throws {
        let data = try JSONSerialization.data(withJSONObject: Self.spec())
        let tok = try Tokenizer(data: data)
        XCTAssertEqual(tok.encode("abba"), [2, 1, 0])
    }

    func testNotJSON() {
        do {
            _ = try Tokenizer(data: Data("{\"model\": [".utf8), name: "broken.json")
            XCTFail("loaded")
        } catch let e as TokenizerError {
            guard case .malformedJSON(let file, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(file, "broken.json")
        } catch { XCTFail("\(error)") }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try Tokenizer(jsonPath: "/nonexistent/tokenizer.json")) { e in
            guard case .unreadable(let file, _)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(file, "/nonexistent/tokenizer.json")
        }
    }

    func testStructuralErrors() {
        assertError([1, 2], path: "(root)", mentions: ["expected an object"])
        assertError(["version": "1.0"], path: "model", mentions: ["missing model"])
        assertError(["version": "2.0", "model": [:]], path: "version", mentions: ["2.0"])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": "zero"], "merges": []]), path: "model.vocab.a", mentions: ["integer"])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": 0], "merges": 3]), path: "model.merges", mentions: ["array"])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": 0, "b": 1], "merges": ["a b c"]]), path: "model.merges[0]", mentions: ["one space"])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": 0, "b": 1], "merges": [["a", "b"]]]), path: "model.merges[0]", mentions: ["\"ab\"", "not in model.vocab"])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": 0], "merges": [["a", "zz"]]]), path: "model.merges[0]", mentions: ["\"zz\""])
        assertError(Self.spec(model: ["type": "BPE", "vocab": ["a": 0], "merges": [], "unk_token": "<unk>"]), path: "model.unk_token", mentions: ["<unk>"])
        assertError(Self.spec(extra: ["added_tokens": [["id": 5]]]), path: "added_tokens[0].content", mentions: ["string"])
        assertError(Self.spec(extra: ["normalizer": ["type": "Replace", "pattern": ["Glob": "*"], "content": ""]]), path: "normalizer.pattern", mentions: ["Regex"])
        assertError(Self.spec(extra: ["pre_tokenizer": ["type": "Split", "pattern": ["String": " "], "behavior": "Sideways", "invert": false]]),
                    path: "pre_tokenizer.behavior", mentions: ["Sideways"])
        assertError(Self.spec(extra: ["post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]]], "special_tokens": [:]]]),
                    path: "post_processor.single[0].SpecialToken.id", mentions: ["<s>"])
        assertError(Self.spec(extra: ["decoder": ["type": "Strip", "content": "ab", "start": 1, "stop": 0]]), path: "decoder.content", mentions: ["single character"])
    }

    func testUnsupportedComponents() {
        assertError(Self.spec(model: ["type": "Unigram", "vocab": []]), path: "model.type", mentions: ["unsupported", "Unigram"])
        assertError(Self.spec(extra: ["normalizer": ["type": "Precompiled", "precompiled_charsmap": ""]]), path: "normalizer.type", mentions: ["unsupported", "Precompiled"])
        assertError(Self.spec(extra: ["pre_tokenizer": ["type": "Sequence", "pretokenizers": [["type": "BertPreTokenizer"]]]]),
                    path: "pre_tokenizer.pretokenizers[0].type", mentions: ["BertPreTokenizer"])
        assertError(Self.spec(extra: ["decoder": ["type": "WordPiece"]]), path: "decoder.type", mentions: ["WordPiece"])
        assertError(Self.spec(extra: ["pre_tokenizer": ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated", "invert": false]]),
                    path: "pre_tokenizer.pattern.Regex", mentions: ["(unclosed"])
    }
}
