/// GPT-2's reversible map between the 256 byte values and printable Unicode scalars: byte-level BPE
/// vocabularies spell every token in these scalars (a space is "Ġ", a newline "Ċ").
enum ByteLevelAlphabet {
    /// `scalars[b]` is the scalar standing for byte `b`.
    static let scalars: [Unicode.Scalar] = {
        var printable = Array(UInt32(0x21)...0x7E) + Array(UInt32(0xA1)...0xAC) + Array(UInt32(0xAE)...0xFF)
        var table = [UInt32](repeating: 0, count: 256)
        for b in printable { table[Int(b)] = b }
        var next: UInt32 = 256
        for b in 0..<256 where !printable.contains(UInt32(b)) {
            table[b] = next
            printable.append(UInt32(b))
            next += 1
        }
        return table.map { Unicode.Scalar($0)! }
    }()

    /// Inverse of `scalars`, indexed by scalar value (all of them are below 0x144); -1 = not a byte.
    static let bytes: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalars.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The byte-level spelling of `text`'s UTF-8 bytes.
    static func encode(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for b in text.utf8 { out.append(scalars[Int(b)]) }
        return String(out)
    }

    /// The bytes a token stands for; a token with any scalar outside the alphabet (an added token
    /// such as "<|eot_id|>" is fine, "✓" is not) contributes its own UTF-8 bytes, as in `tokenizers`.
    static func decode(_ token: String, into out: inout [UInt8]) {
        let start = out.count
        for s in token.unicodeScalars {
            guard s.value < 0x144, bytes[Int(s.value)] >= 0 else {
                out.removeSubrange(start...)
                out.append(contentsOf: token.utf8)
                return
            }
            out.append(UInt8(bytes[Int(s.value)]))
        }
    }
}
