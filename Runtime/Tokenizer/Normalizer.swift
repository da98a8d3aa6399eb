import Foundation

/// `tokenizer.json` normalizers: applied to each piece of input text between added tokens, before
/// pre-tokenization (Llama 2's Prepend("▁") therefore also applies after every special token).
indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case stripAccents
    case strip(left: Bool, right: Bool)
    case replace(TextPattern, String)
    case prepend(String)
    case byteLevel
    case sequence([Normalizer])

    /// `nil` for a `null` normalizer.
    static func parse(_ node: JSONNode) throws -> Normalizer? {
        if node.isNull { return nil }
        switch try node.typeTag() {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "StripAccents": return .stripAccents
        case "Strip": return .strip(left: try node["strip_left"].bool(default: true), right: try node["strip_right"].bool(default: true))
        case "Replace": return .replace(try TextPattern.parse(node["pattern"]), try node["content"].string())
        case "Prepend": return .prepend(try node["prepend"].string())
        case "ByteLevel": return .byteLevel
        case "Sequence": return .sequence(try node["normalizers"].array().compactMap { try parse($0) })
        case let other: throw node["type"].unsupported("normalizer \"\(other)\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, ByteLevel, Sequence)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase:
            // Per scalar, like Rust's `char::to_lowercase` (no context-dependent final sigma).
            var out = ""
            for s in text.unicodeScalars { out += s.properties.lowercaseMapping }
            return out
        case .stripAccents:
            return String(String.UnicodeScalarView(text.unicodeScalars.filter { !$0.isCombiningMark }))
        case let .strip(left, right):
            let scalars = text.unicodeScalars
            var lo = scalars.startIndex, hi = scalars.endIndex
            if left { while lo < hi, scalars[lo].isRustWhitespace { lo = scalars.index(after: lo) } }
            if right { while hi > lo, scalars[scalars.index(before: hi)].isRustWhitespace { hi = scalars.index(before: hi) } }
            return String(scalars[lo..<hi])
        case let .replace(pattern, content): return pattern.replacingMatches(in: text, with: content)
        case let .prepend(prefix): return text.isEmpty ? text : prefix + text
        case .byteLevel: return ByteLevelAlphabet.encode(text)
        case let .sequence(all): return all.reduce(text) { $1.apply($0) }
        }
    }
}
