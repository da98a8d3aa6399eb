/// `tokenizer.json` decoders: turn the token strings of some ids back into text. Each stage maps a
/// list of strings to a list of strings (`decode_chain`); the final list is concatenated.
indirect enum TokenDecoder {
    case byteLevel
    case replace(TextPattern, String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme)
    case bpe(suffix: String)
    case sequence([TokenDecoder])

    /// `nil` for a `null` decoder (tokens are then joined with spaces).
    static func parse(_ node: JSONNode) throws -> TokenDecoder? {
        if node.isNull { return nil }
        switch try node.typeTag() {
        case "ByteLevel": return .byteLevel
        case "Replace": return .replace(try TextPattern.parse(node["pattern"]), try node["content"].string())
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let content = try PreTokenizer.replacement(node["content"])
            return .strip(content: content.unicodeScalars.first!, start: max(0, try node["start"].int(default: 0)),
                          stop: max(0, try node["stop"].int(default: 0)))
        case "Metaspace":
            return .metaspace(replacement: try PreTokenizer.replacement(node["replacement"]).unicodeScalars.first!,
                              prepend: try PrependScheme.parse(node))
        case "BPEDecoder": return .bpe(suffix: try node["suffix"].optionalString() ?? "</w>")
        case "Sequence": return .sequence(try node["decoders"].array().compactMap { try parse($0) })
        case let other:
            throw node["type"].unsupported("decoder \"\(other)\" (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, BPEDecoder, Sequence)")
        }
    }

    /// Whether a later token can change the text of earlier ones even past a cut where decoding the two
    /// sides apart gives the whole text: ByteFallback decodes a whole run of byte tokens at once (valid
    /// UTF-8 → its text, else one "�" per byte), so one more byte token can rewrite the run.
    var rewritesAcrossCleanCuts: Bool {
        switch self {
        case .byteFallback: return true
        case let .sequence(all): return all.contains { $0.rewritesAcrossCleanCuts }
        default: return false
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            // All tokens become one string so multi-byte characters split across tokens reassemble.
            var bytes: [UInt8] = []
            for t in tokens { ByteLevelAlphabet.decode(t, into: &bytes) }
            return [String(decoding: bytes, as: UTF8.self)]
        case let .replace(pattern, content):
            return tokens.map { pattern.replacingMatches(in: $0, with: content) }
        case .byteFallback:
            return Self.byteFallback(tokens)
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var lo = 0, hi = scalars.count
                while lo < min(start, scalars.count), scalars[lo] == content { lo += 1 }
                var removed = 0
                while removed < stop, hi > lo, scalars[hi - 1] == content {
                    hi -= 1
                    removed += 1
                }
                return String(String.UnicodeScalarView(scalars[lo..<hi]))
            }
        case let .metaspace(replacement, prepend):
            return tokens.enumerated().map { i, token in
                // As in `tokenizers`: every replacement in the first token is dropped, not just one.
                var out = String.UnicodeScalarView()
                for s in token.unicodeScalars {
                    if s != replacement { out.append(s) } else if i != 0 || prepend == .never { out.append(" ") }
                }
                return String(out)
            }
        case let .bpe(suffix):
            return tokens.enumerated().map { i, token in Text.replacing(token, suffix, with: i == tokens.count - 1 ? "" : " ") }
        case let .sequence(all):
            return all.reduce(tokens) { $1.decodeChain($0) }
        }
    }

    /// Consecutive "<0xAB>" tokens become the text of their bytes, or one "�" per byte when the
    /// bytes are not valid UTF-8.
    private static func byteFallback(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validating: pending, as: UTF8.self) {
                out.append(s)
            } else {
                out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for token in tokens {
            if let b = byteValue(token) {
                pending.append(b)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }

    /// The byte of a "<0xAB>" token (6 bytes, two hex digits; Rust's parser also takes "+A").
    private static func byteValue(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }
}
