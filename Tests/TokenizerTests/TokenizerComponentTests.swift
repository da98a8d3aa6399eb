import Foundation
import XCTest
@testable import MLXCRuntime

/// Pre-tokenizers and normalizers the trained tokenizers do not use, parsed from their
/// tokenizer.json specs and compared with `tokenizers` on the corpus (components.json).
final class TokenizerComponentTests: XCTestCase {
    func components() throws -> JSONNode {
        let url = TokenizerFixtureTests.root.appendingPathComponent("components.json")
        return JSONNode(value: try JSONParser.parse(Data(contentsOf: url), file: url.path), file: url.path)
    }

    func testPreTokenizersMatchTokenizers() throws {
        let all = try components()["pre_tokenizers"].members()
        XCTAssertGreaterThanOrEqual(all.count, 6)
        for (name, entry) in all {
            let pre = try XCTUnwrap(PreTokenizer.parse(entry["spec"]), name)
            // Empty text never reaches a pre-tokenizer in `encode` (empty pieces are dropped first),
            // while `pre_tokenize_str("")` lets ByteLevel/Metaspace prepend to it.
            for (text, want) in zip(TokenizerFixtureTests.corpus, try entry["pieces"].array()) where !text.isEmpty {
                let got = pre.apply([Segment(text: text, atStart: true)]).map(\.text)
                let expected = try want.array().map { try $0.string() }
                XCTAssertTrue(got.count == expected.count && zip(got, expected).allSatisfy { Text.same($0, $1) },
                              "\(name): \(text.debugDescription)\n  got      \(got)\n  expected \(expected)")
            }
        }
    }

    func testNormalizersMatchTokenizers() throws {
        let all = try components()["normalizers"].members()
        XCTAssertGreaterThanOrEqual(all.count, 6)
        for (name, entry) in all {
            let normalizer = try XCTUnwrap(Normalizer.parse(entry["spec"]), name)
            let changed = Dictionary(uniqueKeysWithValues: try entry["changed"].members().map { (Int($0.key) ?? -1, try $0.value.string()) })
            XCTAssertFalse(changed.isEmpty, name)
            for (i, text) in TokenizerFixtureTests.corpus.enumerated() {
                let want = changed[i] ?? text
                let got = normalizer.apply(text)
                XCTAssertTrue(Text.same(got, want), "\(name): \(text.debugDescription)\n  got      \(got.debugDescription)\n  expected \(want.debugDescription)")
            }
        }
    }
}
