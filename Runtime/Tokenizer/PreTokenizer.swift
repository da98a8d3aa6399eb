/// `tokenizer.json` pre-tokenizers: cut normalized text into the words BPE runs on (merges never
/// cross a word boundary) and, for byte-level models, respell the words in the GPT-2 alphabet.
indirect enum PreTokenizer {
    case split(TextPattern, SplitBehavior, invert: Bool)
    /// `regex` is GPT-2's built-in pattern when `use_regex` is true.
    case byteLevel(addPrefixSpace: Bool, regex: TextPattern?)
    case metaspace(replacement: String, prepend: PrependScheme, split: Bool)
    case digits(individual: Bool)
    case whitespaceSplit
    case punctuation(SplitBehavior)
    case charDelimiter(Unicode.Scalar)
    case sequence([PreTokenizer])

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// `nil` for a `null` pre-tokenizer.
    static func parse(_ node: JSONNode) throws -> PreTokenizer? {
        if node.isNull { return nil }
        switch try node.typeTag() {
        case "Split":
            return .split(try TextPattern.parse(node["pattern"]), try SplitBehavior.parse(node["behavior"]),
                          invert: try node["invert"].bool(default: false))
        case "ByteLevel":
            let regex = try node["use_regex"].bool(default: true) ? try TextPattern(regex: gpt2Pattern, node: node) : nil
            return .byteLevel(addPrefixSpace: try node["add_prefix_space"].bool(default: true), regex: regex)
        case "Metaspace":
            return .metaspace(replacement: try Self.replacement(node["replacement"]), prepend: try PrependScheme.parse(node),
                              split: try node["split"].bool(default: true))
        case "Digits": return .digits(individual: try node["individual_digits"].bool(default: false))
        case "WhitespaceSplit": return .whitespaceSplit
        // Runs of word characters and runs of other non-space characters; spaces are dropped.
        case "Whitespace": return .split(try TextPattern(regex: #"\w+|[^\w\s]+"#, node: node), .removed, invert: true)
        case "Punctuation":
            return .punctuation(node["behavior"].isNull ? .isolated : try SplitBehavior.parse(node["behavior"]))
        case "CharDelimiterSplit": return .charDelimiter(try replacement(node["delimiter"]).unicodeScalars.first!)
        case "Sequence": return .sequence(try node["pretokenizers"].array().compactMap { try parse($0) })
        case let other:
            throw node["type"].unsupported("pre-tokenizer \"\(other)\" (supported: Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit, Sequence)")
        }
    }

    /// Metaspace's replacement is a single character ("▁").
    static func replacement(_ node: JSONNode) throws -> String {
        let r = try node.string()
        guard r.unicodeScalars.count == 1 else { throw node.invalid("expected a single character, found \(r.debugDescription)") }
        return r
    }

    func apply(_ segments: [Segment]) -> [Segment] {
        switch self {
        case let .split(pattern, behavior, invert):
            return segments.flatMap { seg in
                let pieces = pattern.flaggedPieces(of: seg.text)
                return behavior.apply(invert ? pieces.map { ($0.range, !$0.isMatch) } : pieces, to: seg)
            }
        case let .byteLevel(addPrefixSpace, regex):
            return segments.flatMap { seg -> [Segment] in
                var seg = seg
                if addPrefixSpace && seg.text.utf8.first != UInt8(ascii: " ") { seg.text = " " + seg.text }
                let words = regex.map { SplitBehavior.isolated.apply($0.flaggedPieces(of: seg.text), to: seg) } ?? [seg]
                return words.map { Segment(text: ByteLevelAlphabet.encode($0.text), atStart: $0.atStart) }
            }
        case let .metaspace(replacement, prepend, split):
            return segments.flatMap { seg -> [Segment] in
                var text = Text.replacing(seg.text, " ", with: replacement)
                let startsWithReplacement = Text.hasPrefix(text, replacement)
                switch prepend {
                case .always where !startsWithReplacement: text = replacement + text
                case .first where !startsWithReplacement && seg.atStart: text = replacement + text
                default: break
                }
                let out = Segment(text: text, atStart: seg.atStart)
                guard split else { return [out] }
                let r = replacement.unicodeScalars.first!
                return SplitBehavior.mergedWithNext.apply(Self.scalarPieces(of: text) { $0 == r }, to: out)
            }
        case let .digits(individual):
            let behavior: SplitBehavior = individual ? .isolated : .contiguous
            return segments.flatMap { behavior.apply(Self.scalarPieces(of: $0.text) { $0.isRustNumeric }, to: $0) }
        case .whitespaceSplit:
            return segments.flatMap { SplitBehavior.removed.apply(Self.scalarPieces(of: $0.text) { $0.isRustWhitespace }, to: $0) }
        case let .punctuation(behavior):
            return segments.flatMap { behavior.apply(Self.scalarPieces(of: $0.text) { $0.isRustPunctuation }, to: $0) }
        case let .charDelimiter(delimiter):
            return segments.flatMap { SplitBehavior.removed.apply(Self.scalarPieces(of: $0.text) { $0 == delimiter }, to: $0) }
        case let .sequence(all):
            return all.reduce(segments) { $1.apply($0) }
        }
    }

    /// Flagged pieces for a per-character predicate: each matching scalar is its own match.
    static func scalarPieces(of text: String, _ isMatch: (Unicode.Scalar) -> Bool) -> [(range: Range<String.Index>, isMatch: Bool)] {
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        let scalars = text.unicodeScalars
        var gapStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex {
            let next = scalars.index(after: i)
            if isMatch(scalars[i]) {
                if gapStart < i { pieces.append((gapStart..<i, false)) }
                pieces.append((i..<next, true))
                gapStart = next
            }
            i = next
        }
        if gapStart < scalars.endIndex { pieces.append((gapStart..<scalars.endIndex, false)) }
        return pieces
    }
}

/// When Metaspace adds the leading "▁".
enum PrependScheme {
    case always, first, never

    static func parse(_ node: JSONNode) throws -> PrependScheme {
        if !node["prepend_scheme"].isNull {
            switch try node["prepend_scheme"].string() {
            case "always": return .always
            case "first": return .first
            case "never": return .never
            case let other: throw node["prepend_scheme"].invalid("unknown prepend_scheme \"\(other)\" (expected always, first or never)")
            }
        }
        // Files older than `prepend_scheme` only have `add_prefix_space`.
        return try node["add_prefix_space"].bool(default: true) ? .always : .never
    }
}
