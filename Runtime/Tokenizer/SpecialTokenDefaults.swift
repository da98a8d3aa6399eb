import Foundation

/// tokenizer.json does not say which tokens are BOS and EOS; the files next to it usually do.
/// Optional files are read leniently: a missing or odd field falls back to conventional names.
struct SpecialTokenDefaults {
    var bos: Int?
    var eos: [Int] = []

    static let bosNames = ["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", "<|im_start|>"]
    static let eosNames = ["<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "</s>", "<eos>", "<end_of_turn>",
                           "<|endoftext|>", "<|im_end|>", "<|end|>", "<|return|>"]

    init(directory: URL?, tokenizer: Tokenizer) {
        let generation = Self.file(directory, "generation_config.json")
        let config = Self.file(directory, "tokenizer_config.json")
        func id(named name: String?) -> Int? { name.flatMap { tokenizer.tokenID($0) } }

        bos = tokenizer.postProcessor?.leadingSpecialID
            ?? (try? generation["bos_token_id"].int())
            ?? id(named: Self.tokenName(config["bos_token"]))
            ?? Self.bosNames.lazy.compactMap { id(named: $0) }.first
        var eos: [Int] = []
        func add(_ id: Int?) { if let id, !eos.contains(id) { eos.append(id) } }
        if let list = try? generation["eos_token_id"].array() { list.forEach { add(try? $0.int()) } }
        add(try? generation["eos_token_id"].int())
        add(id(named: Self.tokenName(config["eos_token"])))
        for name in Self.eosNames { if let i = id(named: name), tokenizer.isSpecial(i) { add(i) } }
        self.eos = eos
    }

    private static func file(_ directory: URL?, _ name: String) -> JSONNode {
        let url = directory?.appendingPathComponent(name)
        guard let url, let data = try? Data(contentsOf: url), let value = try? JSONParser.parse(data, file: url.path) else {
            return JSONNode(value: nil, file: name)
        }
        return JSONNode(value: value, file: url.path)
    }

    /// tokenizer_config.json gives a token as "<s>" or as {"content": "<s>", ...}.
    private static func tokenName(_ node: JSONNode) -> String? {
        (try? node.string()) ?? (try? node["content"].string())
    }
}
