import Foundation
import XCTest
@testable import MLXCRuntime

/// Token-for-token agreement with the `tokenizers` package (0.23.3) on tokenizers trained by
/// tools/python/train_test_tokenizers.py: encode with and without special tokens, decode with and
/// without skipping them, and streaming decode, on every corpus case.
final class TokenizerFixtureTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers")

    struct Expected: Decodable {
        var ids: [Int]
        var ids_no_special: [Int]
        var decoded: String
        var decoded_skip_special: String
    }

    static func json<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: root.appendingPathComponent(name)))
    }

    static let corpus: [String] = (try? json("corpus.json", as: [String].self)) ?? []

    func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(jsonPath: Self.root.appendingPathComponent("\(name)/tokenizer.json").path)
    }

    struct Pretokenize: Decodable {
        var patterns: [String: String]
        var piece_ends: [String: [[Int]]]
    }

    func expected(_ name: String) throws -> [Expected] {
        try XCTUnwrap(try Self.json("expected.json", as: [String: ExpectedEntry].self)[name]?.cases)
    }

    /// expected.json maps each tokenizer to its cases, next to a version string.
    struct ExpectedEntry: Decodable {
        var cases: [Expected]?
        init(from decoder: Decoder) throws { cases = try? decoder.singleValueContainer().decode([Expected].self) }
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try tokenizer(name)
        let cases = try expected(name)
        XCTAssertEqual(cases.count, Self.corpus.count, "expected.json and corpus.json disagree", file: file, line: line)
        XCTAssertGreaterThan(cases.count, 50)
        var failures = 0
        for (text, want) in zip(Self.corpus, cases) {
            let ids = tok.encode(text)
            let plain = tok.encode(text, addSpecialTokens: false)
            let decoded = tok.decode(want.ids)
            let skipped = tok.decode(want.ids, skipSpecialTokens: true)
            let ok = ids == want.ids && plain == want.ids_no_special && Text.same(decoded, want.decoded)
                && Text.same(skipped, want.decoded_skip_special)
            if !ok {
                failures += 1
                if failures <= 5 {
                    XCTFail("""
                        \(name): \(text.debugDescription)
                          ids      \(ids)
                          expected \(want.ids)
                          no-special \(plain == want.ids_no_special ? "ok" : "\(plain) vs \(want.ids_no_special)")
                          decoded  \(decoded.debugDescription) vs \(want.decoded.debugDescription)
                          skipped  \(skipped.debugDescription) vs \(want.decoded_skip_special.debugDescription)
                        """, file: file, line: line)
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(name): \(failures) of \(cases.count) cases differ", file: file, line: line)
    }

    func testByteLevelMatchesTokenizers() throws { try check("bytelevel") }
    func testSentencePieceMatchesTokenizers() throws { try check("sentencepiece") }
    func testMetaspaceMatchesTokenizers() throws { try check("metaspace") }

    /// Streaming decode of every case, one id at a time, concatenates to the full decode.
    func testStreamingDecodeEqualsFullDecode() throws {
        for name in ["bytelevel", "sentencepiece", "metaspace"] {
            let tok = try tokenizer(name)
            for text in Self.corpus {
                let ids = tok.encode(text)
                for skip in [false, true] {
                    let full = tok.decode(ids, skipSpecialTokens: skip)
                    var stream = tok.streamingDecoder(skipSpecialTokens: skip)
                    var out = ""
                    for id in ids {
                        let piece = stream.push(id)
                        // A "�" may only come out if the full decode has one too (e.g. the byte-level
                        // decoder reads a normalized added token "étude" as the byte 0xE9).
                        XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}") && !full.unicodeScalars.contains("\u{FFFD}"),
                                       "\(name): split character in \(piece.debugDescription)")
                        out += piece
                    }
                    out += stream.finish()
                    XCTAssertTrue(Text.same(out, full), "\(name) skip=\(skip): \(out.debugDescription) vs \(full.debugDescription)")
                }
            }
        }
    }

    /// Ids `decode` drops — outside the vocabulary, or special with skipSpecialTokens — are no part of
    /// the stream's window: interleaved with a real id sequence they return "" and leave every other
    /// piece as it was (fuzzing, issue 17: 2 000 unknown ids re-decoded a growing window per push).
    func testStreamingPassesOverIdsDecodeDrops() throws {
        for name in ["bytelevel", "sentencepiece", "metaspace"] {
            let tok = try tokenizer(name)
            let special = try XCTUnwrap((0..<tok.vocabularySize).first { tok.isSpecial($0) })
            for text in Self.corpus.prefix(20) {
                let ids = tok.encode(text)
                var plain = tok.streamingDecoder(skipSpecialTokens: true)
                let want = ids.map { plain.push($0) } + [plain.finish()]
                var noisy = tok.streamingDecoder(skipSpecialTokens: true)
                var again = tok.streamingDecoder(skipSpecialTokens: true)
                var got: [String] = []
                for id in ids {
                    for dropped in [tok.vocabularySize, -1, special, tok.vocabularySize + 70_000] {
                        XCTAssertEqual(noisy.push(dropped), "", "\(name): id \(dropped)")
                    }
                    got.append(noisy.push(id))
                    _ = again.push(id)
                    XCTAssertEqual(noisy.windowCount, again.windowCount, "\(name): the dropped ids stayed in the window")
                }
                got.append(noisy.finish())
                XCTAssertEqual(got, want, "\(name): \(text.debugDescription)")
            }
        }
    }

    /// A run of literal "�" — or of bytes that never complete a character — comes out as it arrives, with a
    /// short window (fuzzing, issue 17: the window held every such id and re-decoded it at each push, O(n²)),
    /// and the stream still equals `decode` (ByteFallback tokenizers too, which hold a byte run whole).
    func testStreamingReleasesLiteralReplacementCharacters() throws {
        for name in ["bytelevel", "sentencepiece", "metaspace"] {
            let tok = try tokenizer(name)
            var runs = [String(repeating: "\u{FFFD}", count: 120), "a" + String(repeating: "\u{FFFD}x", count: 60)]
            runs.append(String(repeating: "\u{FFFD}", count: 30) + "ꙮ🚀é" + String(repeating: "\u{FFFD}", count: 30))
            var ids = runs.map { tok.encode($0, addSpecialTokens: false) }
            // Bytes that never complete a character: byte-fallback tokens of lone continuation bytes.
            if let lone = tok.tokenID("<0x80>"), let lead = tok.tokenID("<0xE2>") {
                ids.append(Array(repeating: lone, count: 100) + [lead, lone] + Array(repeating: lone, count: 100))
            }
            for run in ids {
                let full = tok.decode(run)
                var stream = tok.streamingDecoder()
                var out = "", widest = 0, releasedBeforeEnd = 0
                for (i, id) in run.enumerated() {
                    let piece = stream.push(id)
                    if i < run.count - 1 { releasedBeforeEnd += piece.utf8.count }
                    out += piece
                    widest = max(widest, stream.windowCount)
                }
                out += stream.finish()
                XCTAssertTrue(Text.same(out, full), "\(name): \(out.count) vs \(full.count) characters")
                // ByteFallback decodes a run of byte tokens as a whole: nothing in a run is final before it ends.
                guard tok.decoder?.rewritesAcrossCleanCuts != true else { continue }
                XCTAssertLessThanOrEqual(widest, 2 * StreamingDecoder.settleIds + 4, "\(name): window of \(widest) ids")
                XCTAssertGreaterThan(releasedBeforeEnd, full.utf8.count / 2, "\(name): held back until the end")
            }
        }
    }

    /// Multi-byte characters arriving byte by byte are held back until complete.
    func testStreamingHoldsPartialCharacters() throws {
        let tok = try tokenizer("sentencepiece")
        // "ꙮ" is not in the vocabulary: byte fallback spells it as three <0x..> tokens.
        let ids = tok.encode("ꙮ", addSpecialTokens: false)
        let bytes = ids.filter { tok.tokenString($0)?.hasPrefix("<0x") == true }
        XCTAssertEqual(bytes.count, 3, "\(ids.map { tok.tokenString($0) ?? "?" })")
        var stream = tok.streamingDecoder()
        let pieces = ids.map { stream.push($0) }
        XCTAssertEqual(pieces.last, "ꙮ")
        XCTAssertTrue(pieces.dropLast().allSatisfy { !$0.contains("\u{FFFD}") })
        let byteLevel = try tokenizer("bytelevel")
        var s2 = byteLevel.streamingDecoder()
        let emoji = byteLevel.encode("🚀", addSpecialTokens: false)
        XCTAssertGreaterThan(emoji.count, 1)
        XCTAssertEqual(emoji.map { s2.push($0) }.joined(), "🚀")
    }

    /// The Split regex matcher (ICU) cuts the same pieces as Oniguruma for patterns shipped with
    /// GPT-2, Qwen 2, tiktoken-style (possessive quantifiers, `$`) and GPT-4o-style tokenizers.
    func testRegexPiecesMatchOniguruma() throws {
        let all = try Self.json("pretokenize.json", as: Pretokenize.self)
        let patterns = all.patterns, ends = all.piece_ends
        XCTAssertEqual(patterns.count, 4)
        for (name, source) in patterns.sorted(by: { $0.key < $1.key }) {
            let pattern = try TextPattern(regex: source, node: JSONNode(value: nil, file: "test"))
            let split = PreTokenizer.split(pattern, .isolated, invert: false)
            for (text, want) in zip(Self.corpus, try XCTUnwrap(ends[name])) {
                var offset = 0
                let got = split.apply([Segment(text: text, atStart: true)]).map { seg -> Int in
                    offset += seg.text.unicodeScalars.count
                    return offset
                }
                XCTAssertEqual(got, want, "\(name): \(text.debugDescription)")
            }
        }
    }

    func testSpecialTokenMetadata() throws {
        let byteLevel = try tokenizer("bytelevel")
        XCTAssertEqual(byteLevel.bosTokenID, byteLevel.tokenID("<|begin_of_text|>"))
        XCTAssertEqual(Set(byteLevel.eosTokenIDs), Set(["<|end_of_text|>", "<|eot_id|>"].compactMap(byteLevel.tokenID)))
        XCTAssertTrue(byteLevel.isSpecial(try XCTUnwrap(byteLevel.tokenID("<|eot_id|>"))))
        XCTAssertFalse(byteLevel.isSpecial(try XCTUnwrap(byteLevel.tokenID("<think>"))))
        XCTAssertFalse(byteLevel.isSpecial(byteLevel.encode("the", addSpecialTokens: false)[0]))

        let sp = try tokenizer("sentencepiece")
        XCTAssertEqual(sp.bosTokenID, 1)
        // </s>, and <end_of_turn> by its conventional (Gemma) name.
        XCTAssertEqual(sp.eosTokenIDs, [2, 1001])
        XCTAssertEqual(sp.encode("").first, 1)
        XCTAssertEqual(sp.encode("", addSpecialTokens: false), [])
    }

    /// Encoding a long text stays fast (priority-queue merges, word cache) and round-trips.
    func testLongTextPerformanceAndRoundTrip() throws {
        let tok = try tokenizer("bytelevel")
        // Without added tokens: the normalized "étude" decodes as "�tude" in byte-level tokenizers.
        let text = Self.corpus.filter { !$0.contains("tude") }.joined(separator: "\n").replacingOccurrences(of: "<", with: "(")
        let big = String(repeating: text, count: 20)
        let start = Date()
        let ids = tok.encode(big, addSpecialTokens: false)
        let elapsed = Date().timeIntervalSince(start)
        let back = tok.decode(ids), want = big.precomposedStringWithCanonicalMapping
        XCTAssertTrue(Text.same(back, want), "round trip differs at byte \(zip(back.utf8, want.utf8).prefix { $0 == $1 }.count): \(back.utf8.count) vs \(want.utf8.count) bytes")
        XCTAssertLessThan(elapsed, 10, "encoding \(big.utf8.count) bytes took \(elapsed)s")
        // One 20 000-character "word" with no pre-tokenizer: the merge loop must not be quadratic.
        let sp = try tokenizer("sentencepiece")
        let word = String(repeating: "abracadabra", count: 2000)
        let t0 = Date()
        let wordIDs = sp.encode(word, addSpecialTokens: false)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        XCTAssertEqual(sp.decode(wordIDs), word)
    }
}
