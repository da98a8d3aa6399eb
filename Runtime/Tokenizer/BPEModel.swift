import Foundation

/// The `model` section of a tokenizer.json of type BPE: vocabulary, ranked merges and the options
/// byte-level (GPT-2, Llama 3, Qwen) and SentencePiece-style (Llama 2, Gemma) files use.
final class BPEModel: @unchecked Sendable {
    /// Keyed by UTF-8 bytes: String keys would merge canonically equivalent tokens.
    private let vocab: [[UInt8]: Int32]
    private let tokens: [Int: String]
    private let merger: BPEMerger
    private let unknownID: Int32?
    private let fuseUnknown: Bool
    private let byteFallback: [Int32]?
    private let ignoreMerges: Bool
    private let continuingSubwordPrefix: String?
    private let endOfWordSuffix: String?

    /// Word → ids, as in `tokenizers` (10 000 words, none longer than 256 bytes).
    private var cache: [[UInt8]: [Int32]] = [:]
    private let cacheLock = NSLock()
    private static let cacheCapacity = 10_000
    private static let cacheableLength = 256

    let vocabularyCount: Int
    let maxID: Int

    init(_ node: JSONNode) throws {
        let type = try node["type"].optionalString() ?? "BPE"
        guard type == "BPE" else {
            throw node["type"].unsupported("model type \"\(type)\" (only BPE is implemented)")
        }
        if let dropout = node["dropout"].value as? Double, dropout > 0 {
            throw node["dropout"].unsupported("BPE dropout \(dropout) (tokenization would be random)")
        }
        var vocab: [[UInt8]: Int32] = [:]
        var tokens: [Int: String] = [:]
        for (token, idNode) in try node["vocab"].members() {
            let id = try idNode.int()
            guard id >= 0, id <= Int(Int32.max) else { throw idNode.invalid("token id \(id) is out of range") }
            vocab[Array(token.utf8)] = Int32(id)
            tokens[id] = token
        }
        self.vocab = vocab
        self.tokens = tokens
        vocabularyCount = vocab.count
        maxID = tokens.keys.max() ?? -1

        continuingSubwordPrefix = try node["continuing_subword_prefix"].optionalString()
        endOfWordSuffix = try node["end_of_word_suffix"].optionalString()
        fuseUnknown = try node["fuse_unk"].bool(default: false)
        ignoreMerges = try node["ignore_merges"].bool(default: false)
        if let unk = try node["unk_token"].optionalString() {
            guard let id = vocab[Array(unk.utf8)] else { throw node["unk_token"].invalid("unk_token \(unk.debugDescription) is not in model.vocab") }
            unknownID = id
        } else {
            unknownID = nil
        }
        // byte_fallback spells unknown characters with the <0xAB> tokens; a byte missing from the
        // vocabulary disables it for the characters needing that byte (as in `tokenizers`).
        byteFallback = try node["byte_fallback"].bool(default: false)
            ? (0..<256).map { vocab[Array(String(format: "<0x%02X>", $0).utf8)] ?? -1 } : nil

        let prefixLength = continuingSubwordPrefix?.utf8.count ?? 0
        var merges: [UInt64: UInt64] = [:]
        for (rank, entry) in try node["merges"].array().enumerated() {
            let (a, b) = try Self.mergePair(entry)
            guard let left = vocab[Array(a.utf8)] else { throw entry.invalid("merge token \(a.debugDescription) is not in model.vocab") }
            guard let right = vocab[Array(b.utf8)] else { throw entry.invalid("merge token \(b.debugDescription) is not in model.vocab") }
            let merged = Array(a.utf8) + Array(b.utf8).dropFirst(prefixLength)
            guard let result = vocab[merged] else {
                throw entry.invalid("merged token \(String(decoding: merged, as: UTF8.self).debugDescription) is not in model.vocab")
            }
            // A repeated pair keeps its last rank, as when `tokenizers` collects the merges into a map.
            merges[BPEMerger.key(left, right)] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: result))
        }
        merger = BPEMerger(merges: merges)
    }

    /// A merge is "a b" (split on the single space) or ["a", "b"].
    private static func mergePair(_ entry: JSONNode) throws -> (String, String) {
        if let s = entry.value as? String {
            let parts = s.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw entry.invalid("expected \"left right\" with exactly one space, found \(s.debugDescription)") }
            return (String(parts[0]), String(parts[1]))
        }
        guard let pair = entry.value as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String else {
            throw entry.invalid("expected a merge as \"left right\" or [left, right]")
        }
        return (a, b)
    }

    func id(of token: String) -> Int? { vocab[Array(token.utf8)].map(Int.init) }

    func token(_ id: Int) -> String? { tokens[id] }

    /// The ids for one pre-tokenized word.
    func tokenize(_ word: String, into out: inout [Int]) {
        guard !word.isEmpty else { return }
        let key = Array(word.utf8)
        if ignoreMerges, let id = vocab[key] {
            out.append(Int(id))
            return
        }
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit {
            out.append(contentsOf: hit.lazy.map(Int.init))
            return
        }
        let ids = merger.merge(symbols(of: word))
        if key.count < Self.cacheableLength {
            cacheLock.lock()
            if cache.count < Self.cacheCapacity { cache[key] = ids }
            cacheLock.unlock()
        }
        out.append(contentsOf: ids.lazy.map(Int.init))
    }

    /// The initial symbols: one per scalar, or its bytes with byte fallback, or the unknown token.
    private func symbols(of word: String) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(word.utf8.count)
        var pendingUnknown = false
        let scalars = word.unicodeScalars
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            let isFirst = index == scalars.startIndex
            index = scalars.index(after: index)
            var piece = String(scalar)
            if !isFirst, let prefix = continuingSubwordPrefix { piece = prefix + piece }
            if index == scalars.endIndex, let suffix = endOfWordSuffix { piece += suffix }
            if let id = vocab[Array(piece.utf8)] {
                if pendingUnknown, let unk = unknownID { ids.append(unk) }
                pendingUnknown = false
                ids.append(id)
                continue
            }
            if let table = byteFallback {
                let bytes = piece.utf8.map { table[Int($0)] }
                if !bytes.contains(-1) {
                    ids.append(contentsOf: bytes)
                    continue
                }
            }
            guard let unk = unknownID else { continue }
            // fuse_unk: a run of unknown characters becomes a single unknown token.
            if pendingUnknown && !fuseUnknown { ids.append(unk) }
            pendingUnknown = true
        }
        if pendingUnknown, let unk = unknownID { ids.append(unk) }
        return ids
    }
}
