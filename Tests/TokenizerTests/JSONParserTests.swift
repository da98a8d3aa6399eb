import Foundation
import XCTest
@testable import MLXCRuntime

/// The JSON reader keeps what Foundation's would lose or blur.
final class JSONParserTests: XCTestCase {
    func testCanonicallyEquivalentKeysStayDistinct() throws {
        // Both spellings of "é" are separate tokens; a [String: Any] would keep only one.
        let spec = #"{"model": {"type": "BPE", "vocab": {"\u00e9": 0, "e\u0301": 1, "e": 2, "\u0301": 3}, "merges": []}}"#
        let tok = try Tokenizer(data: Data(spec.utf8))
        XCTAssertEqual(tok.encode("\u{e9}"), [0])
        XCTAssertEqual(tok.encode("e\u{301}"), [2, 3])
        XCTAssertEqual(tok.tokenID("e\u{301}"), 1)
        XCTAssertEqual(tok.vocabularySize, 4)
    }

    func testValues() throws {
        let text = #"{"a": [1, -2.5e1, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude80\ud800"], "b": {}}"#
        let root = JSONNode(value: try JSONParser.parse(Data(text.utf8), file: "t"), file: "t")
        let a = try root["a"].array()
        XCTAssertEqual(try a[0].int(), 1)
        XCTAssertEqual(a[1].value as? Double, -25)
        XCTAssertEqual(try a[2].bool(default: false), true)
        XCTAssertEqual(try a[3].bool(default: true), false)
        XCTAssertTrue(a[4].isNull)
        XCTAssertEqual(try a[5].string(), "x\"\\/\u{8}\u{c}\n\r\té🚀\u{FFFD}")
        XCTAssertEqual(try root["b"].members().count, 0)
        XCTAssertThrowsError(try root["a"].int()) { XCTAssertTrue("\($0)".contains("t: a: expected an integer, found an array"), "\($0)") }
    }

    func testMalformedInputsReportPosition() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "\"abc", "{\"a\": tru}", "[1] x", "\"\\q\"", "[\"\\u12g4\"]"] {
            XCTAssertThrowsError(try JSONParser.parse(Data(bad.utf8), file: "f.json"), bad.debugDescription) { e in
                guard case let .malformedJSON(file, reason)? = e as? TokenizerError else { return XCTFail("\(e)") }
                XCTAssertEqual(file, "f.json")
                XCTAssertTrue(reason.contains("line 1, column"), reason)
            }
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try JSONParser.parse(Data(deep.utf8), file: "deep.json"))
    }
}
