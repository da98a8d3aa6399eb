import Foundation

// Hugging Face tokenizers work on Rust `char`s (Unicode scalars) and UTF-8 bytes, while Swift's
// `String` compares and iterates by grapheme cluster with canonical equivalence ("é" == "e\u{301}").
// These helpers keep every comparison and split at the scalar/byte level so results match exactly.

extension Unicode.Scalar {
    /// Rust `char::is_whitespace` and regex `\s`: the Unicode White_Space property.
    var isRustWhitespace: Bool { properties.isWhitespace }

    /// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    var isRustWord: Bool {
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Rust `char::is_numeric`: general categories Nd, Nl, No.
    var isRustNumeric: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// ASCII punctuation or a Unicode punctuation category (the Punctuation pre-tokenizer).
    var isRustPunctuation: Bool {
        if isASCII { return (0x21...0x2F).contains(value) || (0x3A...0x40).contains(value) || (0x5B...0x60).contains(value) || (0x7B...0x7E).contains(value) }
        switch properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// `unicode_normalization::char::is_combining_mark` (Mn, Mc, Me), used by StripAccents.
    var isCombiningMark: Bool {
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}

enum Text {
    /// Byte-exact equality (Swift's `==` would treat canonically equivalent strings as equal).
    static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    static func hasPrefix(_ s: String, _ prefix: String) -> Bool { s.utf8.starts(with: prefix.utf8) }

    /// Replaces every non-overlapping occurrence of `pattern`, scanning left to right on UTF-8 bytes.
    /// A valid UTF-8 pattern can only match at scalar boundaries, so the result stays valid.
    static func replacing(_ s: String, _ pattern: String, with replacement: String) -> String {
        let p = Array(pattern.utf8)
        guard !p.isEmpty else { return s }
        let bytes = Array(s.utf8)
        guard bytes.count >= p.count else { return s }
        let r = Array(replacement.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        var changed = false
        while i < bytes.count {
            if bytes[i] == p[0], i + p.count <= bytes.count, bytes[i..<i + p.count].elementsEqual(p) {
                out.append(contentsOf: r)
                i += p.count
                changed = true
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : s
    }

    /// Non-overlapping occurrences of a literal pattern, as UTF-8 byte ranges.
    static func literalMatches(of pattern: [UInt8], in bytes: [UInt8]) -> [Range<Int>] {
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return [] }
        var found: [Range<Int>] = []
        var i = 0
        while i + pattern.count <= bytes.count {
            if bytes[i] == pattern[0], bytes[i..<i + pattern.count].elementsEqual(pattern) {
                found.append(i..<i + pattern.count)
                i += pattern.count
            } else {
                i += 1
            }
        }
        return found
    }

    /// The scalar starting at byte `i` of valid UTF-8 and its encoded length.
    static func scalar(at i: Int, in bytes: [UInt8]) -> (Unicode.Scalar, Int) {
        let b0 = bytes[i]
        let length = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
        var value = length == 1 ? UInt32(b0) : UInt32(b0) & (0xFF >> (length + 1))
        for k in 1..<length where i + k < bytes.count { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
        return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
    }

    /// The scalar ending just before byte `end` of valid UTF-8 and its starting byte.
    static func scalar(before end: Int, in bytes: [UInt8]) -> (Unicode.Scalar, Int) {
        var start = end - 1
        while start > 0, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return (scalar(at: start, in: bytes).0, start)
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
}
