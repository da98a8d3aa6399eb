import Foundation

/// The pieces of a SentencePiece model file (`tokenizer.model`, the protobuf `ModelProto` NeMo's BPE tokenizers
/// ship), enough to turn ids back into text as `SentencePieceProcessor.decode` does: pieces joined, `▁` read as a
/// space (the leading one dropped), byte pieces `<0xNN>` as raw bytes, control pieces dropped, unknown as ` ⁇ `.
/// Encoding text is not needed to transcribe and is not implemented.
public struct SentencePieceVocabulary {
    public enum Kind: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }
    public let pieces: [String]
    public let kinds: [Kind]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError("\(path): cannot read the SentencePiece model") }
        try self.init(bytes: [UInt8](data), path: path)
    }

    public init(bytes: [UInt8], path: String = "tokenizer.model") throws {
        var pieces: [String] = [], kinds: [Kind] = []
        var reader = ProtoReader(bytes: bytes[...], path: path)
        while let (field, wire) = try reader.key() {
            if field == 1 && wire == 2 {
                var inner = ProtoReader(bytes: try reader.lengthDelimited(), path: path)
                var piece: String?, kind = Kind.normal
                while let (f, w) = try inner.key() {
                    switch (f, w) {
                    case (1, 2): piece = String(decoding: try inner.lengthDelimited(), as: UTF8.self)
                    case (3, 0):
                        let raw = try inner.varint()
                        guard let k = Kind(rawValue: Int(raw)) else { throw ReferenceError("\(path): piece \(pieces.count) has unknown type \(raw)") }
                        kind = k
                    default: try inner.skip(w)
                    }
                }
                guard let piece else { throw ReferenceError("\(path): piece \(pieces.count) has no text") }
                pieces.append(piece)
                kinds.append(kind)
            } else {
                try reader.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw ReferenceError("\(path): not a SentencePiece model (no pieces)") }
        self.pieces = pieces
        self.kinds = kinds
    }

    public var count: Int { pieces.count }

    /// Whether piece `id` begins a word (SentencePiece marks word starts with `▁`).
    public func startsWord(_ id: Int) -> Bool { id >= 0 && id < pieces.count && pieces[id].hasPrefix("\u{2581}") }

    /// The text of `ids` (ids outside the vocabulary are refused by the caller; here they decode to nothing).
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, id < pieces.count else { continue }
            switch kinds[id] {
            case .control, .unused: continue
            case .unknown: bytes += Array(" \u{2047} ".utf8)
            case .byte:
                let p = pieces[id]
                if p.count == 6, p.hasPrefix("<0x"), let b = UInt8(p.dropFirst(3).prefix(2), radix: 16) { bytes.append(b) }
            case .normal, .userDefined: bytes += Array(pieces[id].utf8)
            }
        }
        let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\u{2581}", with: " ")
        return text.hasPrefix(" ") ? String(text.dropFirst()) : text
    }
}

/// Protobuf wire format, as far as the SentencePiece model needs: keys, varints, length-delimited fields, skips.
struct ProtoReader {
    var bytes: ArraySlice<UInt8>
    let path: String

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard let b = bytes.popFirst() else { throw ReferenceError("\(path): truncated varint") }
            guard shift < 64 else { throw ReferenceError("\(path): varint longer than 10 bytes") }
            value |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func key() throws -> (Int, Int)? {
        guard !bytes.isEmpty else { return nil }
        let k = try varint()
        return (Int(k >> 3), Int(k & 7))
    }

    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(bytes.count) else { throw ReferenceError("\(path): a field of \(n) bytes with \(bytes.count) left") }
        let out = bytes.prefix(Int(n))
        bytes = bytes.dropFirst(Int(n))
        return out
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1, 5:
            let n = wire == 1 ? 8 : 4
            guard bytes.count >= n else { throw ReferenceError("\(path): truncated fixed-width field") }
            bytes = bytes.dropFirst(n)
        case 2: _ = try lengthDelimited()
        default: throw ReferenceError("\(path): unknown protobuf wire type \(wire)")
        }
    }
}
