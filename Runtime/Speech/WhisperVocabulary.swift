import Foundation

/// Whisper's control tokens and decoding options, read from a model folder's `tokenizer.json`
/// (the added tokens `<|startoftranscript|>`, `<|en|>`…, `<|transcribe|>`, `<|translate|>`,
/// `<|nospeech|>`, `<|notimestamps|>`, `<|0.00|>`…`<|30.00|>`) and `generation_config.json`
/// (`suppress_tokens`, `begin_suppress_tokens`, `max_initial_timestamp_index`, `lang_to_id`; from
/// `config.json` when the folder has no generation config).
///
/// Whisper's layout puts every text token below `<|endoftext|>` and every timestamp at or above
/// `<|notimestamps|>` + 1, in steps of 0.02 s; the decoding rules rely on both.
public struct WhisperVocabulary {
    public var endOfText: Int
    public var startOfTranscript: Int
    /// Language code ("en", "de", …) → token id, in vocabulary order; empty for English-only models.
    public var languages: [(code: String, id: Int)]
    public var transcribe: Int?
    public var translate: Int?
    public var noSpeech: Int?
    public var noTimestamps: Int
    /// The id of `<|0.00|>`; later ids are later times.
    public var timestampBegin: Int
    public var vocabularySize: Int
    public var suppressTokens: [Int]
    public var beginSuppressTokens: [Int]
    public var maxInitialTimestampIndex: Int?
    public static let secondsPerTimestamp = 0.02

    public var isMultilingual: Bool { !languages.isEmpty }

    public func languageID(_ code: String) -> Int? { languages.first { $0.code == code }?.id }
    public func languageCode(_ id: Int) -> String? { languages.first { $0.id == id }?.code }
    public func isTimestamp(_ id: Int) -> Bool { id >= timestampBegin }
    public func seconds(_ timestamp: Int) -> Double { Double(timestamp - timestampBegin) * Self.secondsPerTimestamp }

    /// `folder` names the model in messages; `generationConfig` / `config` are the parsed JSON objects, if present.
    public init(tokenizer: Tokenizer, generationConfig: [String: Any]?, config: [String: Any]?, folder: String) throws {
        func required(_ token: String) throws -> Int {
            guard let id = tokenizer.tokenID(token) else {
                throw ReferenceError("\(folder): tokenizer.json has no \(token) token (not a Whisper tokenizer)")
            }
            return id
        }
        endOfText = try required("<|endoftext|>")
        startOfTranscript = try required("<|startoftranscript|>")
        noTimestamps = try required("<|notimestamps|>")
        transcribe = tokenizer.tokenID("<|transcribe|>")
        translate = tokenizer.tokenID("<|translate|>")
        noSpeech = tokenizer.tokenID("<|nospeech|>") ?? tokenizer.tokenID("<|nocaptions|>")
        timestampBegin = noTimestamps + 1
        if let zero = tokenizer.tokenID("<|0.00|>"), zero != timestampBegin {
            throw ReferenceError("\(folder): tokenizer.json puts <|0.00|> at \(zero), not right after <|notimestamps|> (\(noTimestamps))")
        }
        vocabularySize = tokenizer.vocabularySize

        // Languages: generation_config's lang_to_id when present, else every <|xx|> token between
        // <|startoftranscript|> and <|translate|> (Whisper's order).
        var langs: [(String, Int)] = []
        if let map = generationConfig?["lang_to_id"] as? [String: Any] {
            for (token, value) in map {
                guard let id = (value as? NSNumber)?.intValue, token.hasPrefix("<|"), token.hasSuffix("|>") else { continue }
                langs.append((String(token.dropFirst(2).dropLast(2)), id))
            }
        } else if let translate {
            for id in (startOfTranscript + 1)..<translate {
                guard let token = tokenizer.tokenString(id), token.hasPrefix("<|"), token.hasSuffix("|>") else { continue }
                langs.append((String(token.dropFirst(2).dropLast(2)), id))
            }
        }
        if let multilingual = generationConfig?["is_multilingual"] as? Bool, !multilingual { langs = [] }
        languages = langs.sorted { $0.1 < $1.1 }.map { (code: $0.0, id: $0.1) }

        func ints(_ key: String) -> [Int]? {
            for source in [generationConfig, config] {
                if let list = source?[key] as? [Any] { return list.compactMap { ($0 as? NSNumber)?.intValue } }
            }
            return nil
        }
        suppressTokens = ints("suppress_tokens") ?? []
        beginSuppressTokens = ints("begin_suppress_tokens") ?? []
        maxInitialTimestampIndex = (generationConfig?["max_initial_timestamp_index"] as? NSNumber)?.intValue
        for (name, list) in [("suppress_tokens", suppressTokens), ("begin_suppress_tokens", beginSuppressTokens)] {
            if let bad = list.first(where: { $0 < 0 || $0 >= vocabularySize }) {
                throw ReferenceError("\(folder): \(name) lists token \(bad), outside the vocabulary of \(vocabularySize)")
            }
        }
        if let configured = (generationConfig?["no_timestamps_token_id"] as? NSNumber)?.intValue, configured != noTimestamps {
            throw ReferenceError("\(folder): generation_config.json's no_timestamps_token_id \(configured) is not tokenizer.json's <|notimestamps|> (\(noTimestamps))")
        }
    }
}
