import Foundation

/// Mistral's Tekken tokenizer as `tekken.json` describes it (mistral_common's `Tekkenizer`): ids 0..<S are the
/// special tokens (`special_tokens`, by `token_str`; missing ranks are `<SPECIAL_n>` fillers), ids S… are the
/// byte-level BPE vocabulary (`vocab[i].token_bytes`, base64) shifted by S. Text is split by the file's tiktoken
/// pattern and each piece merged tiktoken's way (the adjacent pair whose joined bytes have the lowest rank first).
/// Decoding drops special tokens (`SpecialTokenPolicy.IGNORE`, what transcription output uses).
public struct TekkenTokenizer {
    public let specialCount: Int
    public let vocabularySize: Int
    let specialIDs: [String: Int]
    let pieces: [[UInt8]]              // rank → bytes (non-special)
    let ranks: [[UInt8]: Int]
    let pattern: NSRegularExpression
    /// The file's `audio` section: sampling rate, audio tokens per second, chunk padding.
    public let sampleRate: Int?
    public let audioFrameRate: Double?
    public let audioChunkSeconds: Double?

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError("\(path): cannot be read") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let config = root["config"] as? [String: Any], let vocab = root["vocab"] as? [[String: Any]] else {
            throw ReferenceError("\(path): not a Tekken tokenizer (expected a JSON object with config and vocab)")
        }
        guard let special = config["default_num_special_tokens"] as? Int, let size = config["default_vocab_size"] as? Int,
              let patternText = config["pattern"] as? String, special > 0, size > special else {
            throw ReferenceError("\(path): config lacks default_num_special_tokens, default_vocab_size or pattern")
        }
        specialCount = special
        vocabularySize = size
        var names: [String: Int] = [:]
        for t in root["special_tokens"] as? [[String: Any]] ?? [] {
            if let rank = t["rank"] as? Int, let s = t["token_str"] as? String { names[s] = rank }
        }
        specialIDs = names
        let inner = size - special
        guard vocab.count >= inner else { throw ReferenceError("\(path): \(vocab.count) vocabulary entries, fewer than \(inner)") }
        var pieces: [[UInt8]] = []
        var ranks: [[UInt8]: Int] = [:]
        pieces.reserveCapacity(inner)
        for (i, entry) in vocab.prefix(inner).enumerated() {
            guard let b64 = entry["token_bytes"] as? String, let bytes = Data(base64Encoded: b64) else {
                throw ReferenceError("\(path): vocab[\(i)] has no base64 token_bytes")
            }
            pieces.append([UInt8](bytes))
            ranks[[UInt8](bytes)] = i
        }
        self.pieces = pieces
        self.ranks = ranks
        do { pattern = try NSRegularExpression(pattern: patternText) } catch {
            throw ReferenceError("\(path): the pre-tokenizer pattern does not compile: \(error.localizedDescription)")
        }
        let audio = root["audio"] as? [String: Any]
        sampleRate = audio?["sampling_rate"] as? Int
        audioFrameRate = (audio?["frame_rate"] as? NSNumber)?.doubleValue
        audioChunkSeconds = (audio?["chunk_length_s"] as? NSNumber)?.doubleValue
    }

    /// The id of a special token (`<s>`, `[INST]`, `[AUDIO]`, …), or nil when the file does not define it.
    public func special(_ name: String) -> Int? { specialIDs[name] }

    public func encode(_ text: String) -> [Int] {
        let ns = text as NSString
        var out: [Int] = []
        for m in pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            out += merge([UInt8](ns.substring(with: m.range).utf8)).map { $0 + specialCount }
        }
        return out
    }

    /// tiktoken's byte-pair merge of one piece: repeatedly join the adjacent pair whose bytes rank lowest.
    func merge(_ bytes: [UInt8]) -> [Int] {
        if let whole = ranks[bytes] { return [whole] }
        var parts = bytes.map { [$0] }
        while parts.count > 1 {
            var best: (rank: Int, at: Int)?
            for i in 0..<(parts.count - 1) {
                if let r = ranks[parts[i] + parts[i + 1]], best == nil || r < best!.rank { best = (r, i) }
            }
            guard let b = best else { break }
            parts[b.at] += parts[b.at + 1]
            parts.remove(at: b.at + 1)
        }
        return parts.map { ranks[$0] ?? Int($0[0]) }
    }

    /// The bytes of a token (empty for special tokens).
    public func bytes(_ id: Int) -> [UInt8] {
        id >= specialCount && id - specialCount < pieces.count ? pieces[id - specialCount] : []
    }

    public func decode(_ ids: [Int]) -> String {
        String(decoding: ids.flatMap(bytes), as: UTF8.self)
    }
}
