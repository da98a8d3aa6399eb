import Foundation
import XCTest
@testable import MLXCRuntime

/// Hand-built tokenizer.json files for options the trained fixtures do not use.
final class TokenizerBehaviorTests: XCTestCase {
    func make(_ spec: [String: Any]) throws -> Tokenizer {
        try Tokenizer(data: JSONSerialization.data(withJSONObject: spec))
    }

    func testUnknownTokensFuseOrNot() throws {
        let vocab: [String: Any] = ["<unk>": 0, "a": 1, "b": 2]
        for (fuse, want) in [(true, [1, 0, 2]), (false, [1, 0, 0, 2])] {
            let tok = try make(["model": ["type": "BPE", "vocab": vocab, "merges": [], "unk_token": "<unk>", "fuse_unk": fuse]])
            XCTAssertEqual(tok.encode("axyb"), want, "fuse_unk \(fuse)")
        }
        // Without an unk token unknown characters vanish, as in `tokenizers`.
        let bare = try make(["model": ["type": "BPE", "vocab": vocab, "merges": []]])
        XCTAssertEqual(bare.encode("axyb"), [1, 2])
    }

    func testMergePriorityAndIgnoreMerges() throws {
        // "bc" outranks "ab": abc → a + bc, not ab + c.
        let vocab: [String: Any] = ["a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5]
        let tok = try make(["model": ["type": "BPE", "vocab": vocab, "merges": ["b c", "a b"]]])
        XCTAssertEqual(tok.encode("abc"), [0, 4])
        XCTAssertEqual(tok.encode("abcabc"), [0, 4, 0, 4])
        let direct = try make(["model": ["type": "BPE", "vocab": vocab, "merges": ["b c", "a b"], "ignore_merges": true]])
        XCTAssertEqual(direct.encode("abc"), [5], "ignore_merges takes a whole word straight from the vocabulary")
    }

    func testContinuingSubwordPrefixAndSuffix() throws {
        let vocab: [String: Any] = ["a": 0, "##b": 1, "##c": 2, "ab": 3, "##bc": 4]
        let tok = try make(["model": ["type": "BPE", "vocab": vocab, "merges": [["a", "##b"], ["##b", "##c"]],
                                      "continuing_subword_prefix": "##"]])
        XCTAssertEqual(tok.encode("ab"), [3])
        // Merged tokens drop the right side's prefix: "a" + "##b" → "ab". Rank 0 wins: ab + ##c.
        XCTAssertEqual(tok.encode("abc"), [3, 2])
        XCTAssertEqual(tok.encode("bc"), [2], "the first symbol has no prefix, and a bare 'b' is not in the vocabulary")
    }

    func testLowercaseStripAndWhitespaceSplit() throws {
        let vocab: [String: Any] = ["h": 0, "i": 1, "hi": 2, "o": 3]
        let tok = try make([
            "normalizer": ["type": "Sequence", "normalizers": [["type": "Strip", "strip_left": true, "strip_right": true], ["type": "Lowercase"]]],
            "pre_tokenizer": ["type": "WhitespaceSplit"],
            "decoder": NSNull(),
            "model": ["type": "BPE", "vocab": vocab, "merges": ["h i"]],
        ])
        XCTAssertEqual(tok.encode("  HI  Ho "), [2, 0, 3])
        XCTAssertEqual(tok.decode([2, 0, 3]), "hi h o", "no decoder: tokens joined with spaces")
    }

    func testDigitsAndSplitBehaviors() throws {
        func pieces(_ pre: [String: Any], _ text: String) throws -> [String] {
            let json = try JSONParser.parse(JSONSerialization.data(withJSONObject: pre), file: "t")
            let pt = try XCTUnwrap(PreTokenizer.parse(JSONNode(value: json, file: "t")))
            return pt.apply([Segment(text: text, atStart: true)]).map(\.text)
        }
        XCTAssertEqual(try pieces(["type": "Digits", "individual_digits": true], "ab12c3"), ["ab", "1", "2", "c", "3"])
        XCTAssertEqual(try pieces(["type": "Digits", "individual_digits": false], "ab12c3"), ["ab", "12", "c", "3"])
        let dash: [String: Any] = ["String": "-"]
        let expectations: [(String, [String])] = [
            ("Removed", ["a", "b", "c"]), ("Isolated", ["a", "-", "b", "-", "-", "c"]),
            ("MergedWithPrevious", ["a-", "b-", "-", "c"]), ("MergedWithNext", ["a", "-b", "-", "-c"]),
            ("Contiguous", ["a", "-", "b", "--", "c"]),
        ]
        for (behavior, want) in expectations {
            XCTAssertEqual(try pieces(["type": "Split", "pattern": dash, "behavior": behavior, "invert": false], "a-b--c"), want, behavior)
        }
        // Inverted, the text between dashes is the delimiter; each dash stays its own piece.
        XCTAssertEqual(try pieces(["type": "Split", "pattern": dash, "behavior": "Removed", "invert": true], "a-b--c"), ["-", "-", "-"])
    }

    func testAddedTokenOptions() throws {
        let vocab: [String: Any] = ["x": 0, " ": 1]
        let tok = try make([
            "model": ["type": "BPE", "vocab": vocab, "merges": []],
            "added_tokens": [
                ["id": 2, "content": "<m>", "special": true, "lstrip": true, "rstrip": true, "normalized": false, "single_word": false],
                ["id": 3, "content": "w", "special": false, "lstrip": false, "rstrip": false, "normalized": false, "single_word": true],
                ["id": 4, "content": "<m>x", "special": false, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false],
            ],
        ])
        XCTAssertEqual(tok.encode("x  <m>  x"), [0, 2, 0], "lstrip/rstrip swallow the spaces")
        XCTAssertEqual(tok.encode("<m>x"), [4], "longest match wins")
        XCTAssertEqual(tok.encode("x w x"), [0, 1, 3, 1, 0])
        XCTAssertEqual(tok.encode("xw"), [0], "single_word: no match inside a word, and 'w' is not in the vocabulary")
        XCTAssertEqual(tok.decode([0, 2, 3], skipSpecialTokens: true), "x w", "no decoder joins with spaces")
        XCTAssertTrue(tok.isSpecial(2))
        XCTAssertFalse(tok.isSpecial(3))
    }

    func testByteLevelAlphabetRoundTrip() {
        XCTAssertEqual(ByteLevelAlphabet.encode(" \n"), "ĠĊ")
        var bytes: [UInt8] = []
        for b in 0..<256 { ByteLevelAlphabet.decode(String(ByteLevelAlphabet.scalars[b]), into: &bytes) }
        XCTAssertEqual(bytes, Array(0..<256).map(UInt8.init))
        XCTAssertEqual(Set(ByteLevelAlphabet.scalars).count, 256)
    }
}
