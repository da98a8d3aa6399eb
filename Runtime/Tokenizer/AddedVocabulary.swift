/// One entry of `added_tokens`.
struct AddedToken {
    var id: Int
    var content: String
    var singleWord = false
    var lstrip = false
    var rstrip = false
    var normalized = true
    var special = false
}

/// The `added_tokens` of a tokenizer.json and how text is cut around them before normalization.
///
/// Matching follows `tokenizers`' AddedVocabulary: tokens with `normalized: false` are found in the
/// raw text first, then tokens with `normalized: true` in the normalized text of the remaining
/// pieces; at each position the leftmost, then longest, token wins; `single_word` rejects a match
/// touching a word character, `lstrip`/`rstrip` swallow the whitespace around it.
struct AddedVocabulary {
    private(set) var byID: [Int: AddedToken] = [:]
    private var idByContent: [[UInt8]: Int] = [:]
    /// What `decode` prints for a normalized token (its content after normalization).
    private var decodedForm: [Int: String] = [:]
    private var specialContents: Set<[UInt8]> = []
    private var rawTrie = ByteTrie()
    private var normalizedTrie = ByteTrie()

    /// Adds tokens in file order. As in `tokenizers`, a token takes its id from the model vocabulary
    /// or an earlier added token when its content is already there, and the next free id
    /// (starting at the model's vocabulary size) otherwise; the `id` in the file is not trusted.
    init(_ tokens: [AddedToken], model: BPEModel, normalizer: Normalizer?) {
        var nextID = model.vocabularyCount
        for var token in tokens where !token.content.isEmpty {
            let key = Array(token.content.utf8)
            if let id = idByContent[key] ?? model.id(of: token.content) {
                token.id = id
            } else {
                token.id = nextID
                nextID += 1
            }
            idByContent[key] = token.id
            if token.special { specialContents.insert(key) }
            byID[token.id] = token
        }
        for token in byID.values.sorted(by: { $0.id < $1.id }) {
            if token.normalized {
                let form = normalizer?.apply(token.content) ?? token.content
                if !Text.same(form, token.content) { decodedForm[token.id] = form }
                normalizedTrie.insert(Array(form.utf8), value: token.id)
            } else {
                rawTrie.insert(Array(token.content.utf8), value: token.id)
            }
        }
    }

    var isEmpty: Bool { byID.isEmpty }

    func id(of content: String) -> Int? { idByContent[Array(content.utf8)] }

    /// The token string `decode` uses for an added token.
    func decodedString(_ id: Int) -> String? { decodedForm[id] ?? byID[id]?.content }

    /// Special-ness is decided on the token string, as in `tokenizers`' decode.
    func isSpecialString(_ token: String) -> Bool { specialContents.contains(Array(token.utf8)) }

    func isSpecial(_ id: Int) -> Bool { byID[id]?.special ?? false }

    /// Cuts `segment` into text pieces and added-token ids; `normalized` selects which tokens look.
    func split(_ segment: Segment, normalized: Bool) -> [(segment: Segment, id: Int?)] {
        let trie = normalized ? normalizedTrie : rawTrie
        guard !trie.isEmpty, !segment.text.isEmpty else { return [(segment, nil)] }
        let bytes = Array(segment.text.utf8)
        var pieces: [(segment: Segment, id: Int?)] = []
        func text(_ r: Range<Int>) {
            guard !r.isEmpty else { return }
            pieces.append((Segment(text: Text.string(bytes[r]), atStart: segment.atStart && r.lowerBound == 0), nil))
        }
        var consumed = 0
        var searchFrom = 0
        while let (matchStart, matchEnd, id) = trie.leftmostLongest(in: bytes, from: searchFrom) {
            searchFrom = matchEnd
            guard let token = byID[id] else { continue }
            if token.singleWord {
                let wordBefore = matchStart > 0 && Text.scalar(before: matchStart, in: bytes).0.isRustWord
                let wordAfter = matchEnd < bytes.count && Text.scalar(at: matchEnd, in: bytes).0.isRustWord
                if wordBefore || wordAfter { continue }
            }
            var start = matchStart, end = matchEnd
            if token.lstrip {
                while start > 0 {
                    let (s, at) = Text.scalar(before: start, in: bytes)
                    guard s.isRustWhitespace else { break }
                    start = at
                }
                start = max(start, consumed)
            }
            if token.rstrip {
                while end < bytes.count {
                    let (s, length) = Text.scalar(at: end, in: bytes)
                    guard s.isRustWhitespace else { break }
                    end += length
                }
            }
            text(consumed..<start)
            pieces.append((Segment(text: Text.string(bytes[start..<end]), atStart: false), id))
            consumed = end
            searchFrom = end
        }
        text(consumed..<bytes.count)
        return pieces
    }
}

/// A byte trie over added-token contents for leftmost-longest matching (what `tokenizers` does
/// with a daachorse automaton). Tokens are few and short, so a plain trie walk per position is
/// cheap; positions without a child of the root are skipped at once.
struct ByteTrie {
    private var children: [[UInt8: Int32]] = [[:]]
    private var values: [Int?] = [nil]

    var isEmpty: Bool { children[0].isEmpty }

    mutating func insert(_ key: [UInt8], value: Int) {
        guard !key.isEmpty else { return }
        var node = 0
        for b in key {
            if let next = children[node][b] {
                node = Int(next)
            } else {
                children.append([:])
                values.append(nil)
                children[node][b] = Int32(children.count - 1)
                node = children.count - 1
            }
        }
        if values[node] == nil { values[node] = value }
    }

    /// The first position at or after `from` where some key matches, with the longest key there.
    func leftmostLongest(in bytes: [UInt8], from: Int) -> (Int, Int, Int)? {
        var start = from
        while start < bytes.count {
            if children[0][bytes[start]] != nil {
                var node = 0
                var best: (Int, Int)?
                var i = start
                while i < bytes.count, let next = children[node][bytes[i]] {
                    node = Int(next)
                    i += 1
                    if let v = values[node] { best = (i, v) }
                }
                if let (end, value) = best { return (start, end, value) }
            }
            start += 1
        }
        return nil
    }
}
