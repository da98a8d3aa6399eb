import Foundation

/// A Hugging Face `tokenizer.json` tokenizer (BPE models: byte-level as in GPT-2/Llama 3/Qwen, or
/// SentencePiece-style with byte fallback as in Llama 2/Gemma), producing the same ids as the
/// `tokenizers` library. Thread-safe: the only mutable state is the BPE word cache, under a lock.
public final class Tokenizer: @unchecked Sendable {
    let model: BPEModel
    let added: AddedVocabulary
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?

    /// The token `encode` puts first when adding special tokens (from the post-processor), else the
    /// `bos_token` of a sibling tokenizer_config.json or a conventional name such as "<s>".
    public var bosTokenID: Int? = nil
    /// Tokens that end generation: generation_config.json / tokenizer_config.json next to the file
    /// when present, plus special tokens with conventional end names ("</s>", "<|eot_id|>", ...).
    public var eosTokenIDs: [Int] = []

    public convenience init(jsonPath: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: jsonPath))
        } catch {
            throw TokenizerError.unreadable(file: jsonPath, reason: (error as NSError).localizedDescription)
        }
        try self.init(data: data, name: jsonPath)
        let directory = URL(fileURLWithPath: jsonPath).deletingLastPathComponent()
        let defaults = SpecialTokenDefaults(directory: directory, tokenizer: self)
        bosTokenID = defaults.bos
        eosTokenIDs = defaults.eos
    }

    /// Parses tokenizer.json contents; `name` is used in error messages.
    public init(data: Data, name: String = "tokenizer.json") throws {
        let root = try JSONNode.parse(data, file: name)
        _ = try root.members()
        if let version = try root["version"].optionalString(), version != "1.0" {
            throw root["version"].unsupported("tokenizer.json version \"\(version)\" (expected 1.0)")
        }
        guard !root["model"].isNull else { throw root["model"].invalid("missing model") }
        model = try BPEModel(root["model"])
        normalizer = try Normalizer.parse(root["normalizer"])
        preTokenizer = try PreTokenizer.parse(root["pre_tokenizer"])
        postProcessor = try PostProcessor.parse(root["post_processor"])
        decoder = try TokenDecoder.parse(root["decoder"])
        let addedTokens = root["added_tokens"].isNull ? [] : try root["added_tokens"].array().map(Self.addedToken)
        added = AddedVocabulary(addedTokens, model: model, normalizer: normalizer)
        let defaults = SpecialTokenDefaults(directory: nil, tokenizer: self)
        bosTokenID = defaults.bos
        eosTokenIDs = defaults.eos
    }

    private static func addedToken(_ node: JSONNode) throws -> AddedToken {
        let special = try node["special"].bool(default: false)
        return AddedToken(id: try node["id"].int(default: -1), content: try node["content"].string(),
                          singleWord: try node["single_word"].bool(default: false), lstrip: try node["lstrip"].bool(default: false),
                          rstrip: try node["rstrip"].bool(default: false), normalized: try node["normalized"].bool(default: !special),
                          special: special)
    }

    /// Token ids for `text`; `addSpecialTokens` lets the post-processor add BOS and the like.
    /// Special tokens written in the text (e.g. "<|eot_id|>") are always recognized.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        for (raw, rawID) in added.split(Segment(text: text, atStart: true), normalized: false) {
            if let rawID { ids.append(rawID); continue }
            let normalized = Segment(text: normalizer?.apply(raw.text) ?? raw.text, atStart: raw.atStart)
            for (piece, pieceID) in added.split(normalized, normalized: true) {
                if let pieceID { ids.append(pieceID); continue }
                guard !piece.text.isEmpty else { continue }
                for word in preTokenizer?.apply([piece]) ?? [piece] { model.tokenize(word.text, into: &ids) }
            }
        }
        return postProcessor?.process(ids, addSpecialTokens: addSpecialTokens) ?? ids
    }

    /// Text for `ids`; unknown ids are skipped, as in `tokenizers`.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let token = tokenString(id) else { continue }
            if skipSpecialTokens && added.isSpecialString(token) { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// The vocabulary string of a token (added tokens as the decoder sees them).
    public func tokenString(_ id: Int) -> String? { added.decodedString(id) ?? model.token(id) }

    /// The id of a token string (added tokens first, then the model vocabulary).
    public func tokenID(_ token: String) -> Int? { added.id(of: token) ?? model.id(of: token) }

    /// Whether `id` is an added token marked special (BOS, EOS, chat markers...).
    public func isSpecial(_ id: Int) -> Bool { added.isSpecial(id) }

    /// One more than the largest id the tokenizer can produce.
    public var vocabularySize: Int { max(model.maxID, added.byID.keys.max() ?? -1) + 1 }

    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}
