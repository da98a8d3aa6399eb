import Foundation

/// The `{"String": ...}` / `{"Regex": ...}` patterns of Split pre-tokenizers and Replace
/// normalizers/decoders.
///
/// `tokenizers` runs regexes with Oniguruma (Ruby syntax); mlxc uses ICU through
/// NSRegularExpression. For the patterns shipped with GPT-2, Llama 3, Qwen 2 and GPT-4o-style
/// tokenizers the two agree: both support `\p{L}`/`\p{N}`, `(?i:...)`, lookahead and possessive
/// quantifiers (`++`, `?+`), and `\s` is the White_Space property in both. Oniguruma's `^`/`$` always
/// match at line breaks and only "\n" is a line break, hence `.anchorsMatchLines` and
/// `.useUnixLineSeparators`. Tests compare piece boundaries with `tokenizers` on the corpus.
final class TextPattern: @unchecked Sendable {
    private enum Kind {
        case literal([UInt8])
        case regex(NSRegularExpression)
    }

    private let kind: Kind
    let source: String

    init(literal: String) {
        kind = .literal(Array(literal.utf8))
        source = literal
    }

    init(regex pattern: String, node: JSONNode) throws {
        do {
            kind = .regex(try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines, .useUnixLineSeparators]))
        } catch {
            throw node.unsupported("regular expression \(pattern.debugDescription) (ICU rejects it: \(error))")
        }
        source = pattern
    }

    /// Parses `{"String": s}` or `{"Regex": r}`.
    static func parse(_ node: JSONNode) throws -> TextPattern {
        if !node["String"].isNull { return TextPattern(literal: try node["String"].string()) }
        if !node["Regex"].isNull { return try TextPattern(regex: try node["Regex"].string(), node: node["Regex"]) }
        throw node.invalid("expected {\"String\": ...} or {\"Regex\": ...}")
    }

    /// Match ranges, non-overlapping, left to right.
    func matches(in text: String) -> [Range<String.Index>] {
        switch kind {
        case let .literal(bytes):
            guard !bytes.isEmpty else { return [] }
            let utf8 = text.utf8
            return Text.literalMatches(of: bytes, in: Array(utf8)).map {
                utf8.index(utf8.startIndex, offsetBy: $0.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: $0.upperBound)
            }
        case let .regex(re):
            // Offsets are converted through the UTF-16 view by hand: `Range(_:in:)` rounds to
            // grapheme boundaries, which would glue "\r\n" or a letter and its combining mark.
            // Empty matches are kept: like Oniguruma's, they still cut the text between them.
            let utf16 = text.utf16
            var cursor = (offset: 0, index: utf16.startIndex)
            func index(_ offset: Int) -> String.Index {
                cursor = (offset, utf16.index(cursor.index, offsetBy: offset - cursor.offset))
                return cursor.index
            }
            return re.matches(in: text, options: [], range: NSRange(location: 0, length: utf16.count)).map {
                let lower = index($0.range.location)
                return lower..<index($0.range.location + $0.range.length)
            }
        }
    }

    /// `text` cut into consecutive pieces, each flagged as a match or the gap between matches
    /// (`tokenizers`' `Pattern::find_matches`).
    func flaggedPieces(of text: String) -> [(range: Range<String.Index>, isMatch: Bool)] {
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        var previous = text.startIndex
        for m in matches(in: text) {
            if previous < m.lowerBound { pieces.append((previous..<m.lowerBound, false)) }
            pieces.append((m, true))
            previous = m.upperBound
        }
        if previous < text.endIndex { pieces.append((previous..<text.endIndex, false)) }
        return pieces
    }

    func replacingMatches(in text: String, with replacement: String) -> String {
        if case let .literal(bytes) = kind { return Text.replacing(text, String(decoding: bytes, as: UTF8.self), with: replacement) }
        let found = matches(in: text)
        guard !found.isEmpty else { return text }
        // Sliced through the scalar view: String's own subscript would round to grapheme boundaries.
        let scalars = text.unicodeScalars
        var out = String.UnicodeScalarView()
        var previous = scalars.startIndex
        for m in found {
            out.append(contentsOf: scalars[previous..<m.lowerBound])
            out.append(contentsOf: replacement.unicodeScalars)
            previous = m.upperBound
        }
        out.append(contentsOf: scalars[previous...])
        return String(out)
    }
}
