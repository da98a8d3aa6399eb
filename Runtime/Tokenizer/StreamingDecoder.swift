/// Decodes ids one at a time during generation, returning only text that is final: nothing is
/// returned while the ids so far end inside a multi-byte character (the decode ends in "�"), and
/// context-dependent decoders (Llama 2's leading-space strip, Metaspace) see the previous tokens.
///
/// Same scheme as `tokenizers`' DecodeStream: decode a short window of recent ids and emit what
/// extends the window's previously decoded prefix. The concatenation of everything `push` and
/// `finish` return equals `decode` of all ids.
///
/// Unlike DecodeStream, text held back for ending in "�" is released up to a clean cut more than
/// `settleIds` ids back: a cut where decoding the two sides apart gives the whole window's text. A
/// character still arriving cannot sit at such a cut — its lone lead byte decodes to one "�" and each
/// continuation byte after the cut to another, where decoded together they are one character — so
/// the text before it is final even when it ends in a literal "�" (or in bytes that can never
/// complete). Without this, a run of n literal "�" kept n ids in the window and re-decoded them at
/// every push: O(n²) (fuzzing, issue 17). Not with ByteFallback decoders: there one more byte token
/// can rewrite a whole run of them (`TokenDecoder.rewritesAcrossCleanCuts`), so a run of byte tokens is
/// held until it ends, as DecodeStream does.
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var ids: [Int] = []
    /// UTF-8 of `decode(ids[..<prefixIndex])`, already returned to the caller.
    private var prefix: [UInt8] = []
    private var prefixIndex = 0
    /// Ids kept as context (tests: it grows only with ids `decode` reads, and stays short).
    var windowCount: Int { ids.count }
    /// Ids kept after a cut that releases held-back text (see above): context for the next decodes.
    static let settleIds = 4

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the new text it completes (often empty).
    public mutating func push(_ id: Int) -> String {
        // An id `decode` drops (not in the vocabulary, or a skipped special token) changes no decode:
        // leave it out of the window, which would otherwise grow — and each push re-decode it — over
        // a long run of them.
        guard let token = tokenizer.tokenString(id),
              !(skipSpecialTokens && tokenizer.added.isSpecialString(token)) else { return "" }
        if prefix.isEmpty && !ids.isEmpty {
            let text = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
            if !Self.endsWithReplacement(text) {
                prefix = text
                prefixIndex = ids.count
            }
        }
        ids.append(id)
        let text = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
        if text.count > prefix.count, !Self.endsWithReplacement(text) {
            return emit(text, through: ids.count)
        }
        // Held back for a trailing "�": release the text before the last `settleIds` ids if the cut there is
        // clean (see the type's comment).
        guard ids.count - prefixIndex > Self.settleIds, tokenizer.decoder?.rewritesAcrossCleanCuts != true else { return "" }
        let cut = ids.count - Self.settleIds
        let settled = Array(tokenizer.decode(Array(ids[..<cut]), skipSpecialTokens: skipSpecialTokens).utf8)
        guard settled.count > prefix.count, text.starts(with: settled),
              Array(tokenizer.decode(Array(ids[cut...]), skipSpecialTokens: skipSpecialTokens).utf8)
                .elementsEqual(text[settled.count...]) else { return "" }
        return emit(settled, through: cut)
    }

    /// Returns `text` (the decode of `ids[..<count]`) past what was returned, and keeps only the ids after
    /// the old prefix as context, with the new prefix their first `count - prefixIndex`.
    private mutating func emit(_ text: [UInt8], through count: Int) -> String {
        let fresh = newText(text)
        ids.removeFirst(prefixIndex)
        prefixIndex = count - prefixIndex
        prefix = Array(tokenizer.decode(Array(ids[..<prefixIndex]), skipSpecialTokens: skipSpecialTokens).utf8)
        return fresh
    }

    /// Returns text still held back (an incomplete character at the end, decoded as "�").
    public mutating func finish() -> String {
        defer {
            ids.removeAll()
            prefix.removeAll()
            prefixIndex = 0
        }
        let text = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
        return text.count > prefix.count ? newText(text) : ""
    }

    private func newText(_ text: [UInt8]) -> String {
        // The window normally extends the prefix; if a decoder rewrote it, emit past the common part.
        var common = 0
        while common < prefix.count, common < text.count, prefix[common] == text[common] { common += 1 }
        while common > 0, common < text.count, text[common] & 0xC0 == 0x80 { common -= 1 }
        return String(decoding: text[common...], as: UTF8.self)
    }

    private static func endsWithReplacement(_ utf8: [UInt8]) -> Bool { utf8.suffix(3).elementsEqual([0xEF, 0xBF, 0xBD]) }
}
