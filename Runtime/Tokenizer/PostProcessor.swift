/// `tokenizer.json` post-processors, reduced to what they do to the ids of a single sequence:
/// add special tokens (BOS, CLS/SEP) around it when `addSpecialTokens` is on.
indirect enum PostProcessor {
    /// TemplateProcessing's `single` template: each element is the sequence ($A) or fixed ids.
    case template([TemplatePiece])
    /// RobertaProcessing / BertProcessing: `cls` A `sep`.
    case wrap(prefix: Int, suffix: Int)
    /// ByteLevel only trims offsets, which mlxc does not compute.
    case none
    case sequence([PostProcessor])

    enum TemplatePiece {
        case sequence
        case special([Int])
    }

    /// `nil` for a `null` post-processor.
    static func parse(_ node: JSONNode) throws -> PostProcessor? {
        if node.isNull { return nil }
        switch try node.typeTag() {
        case "TemplateProcessing": return .template(try parseTemplate(node))
        case "RobertaProcessing", "BertProcessing":
            return .wrap(prefix: try pairID(node["cls"]), suffix: try pairID(node["sep"]))
        case "ByteLevel": return PostProcessor.none
        case "Sequence": return .sequence(try node["processors"].array().compactMap { try parse($0) })
        case let other:
            throw node["type"].unsupported("post-processor \"\(other)\" (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence)")
        }
    }

    private static func parseTemplate(_ node: JSONNode) throws -> [TemplatePiece] {
        try node["single"].array().map { piece in
            if !piece["Sequence"].isNull {
                let which = try piece["Sequence"]["id"].string()
                guard which == "A" else { throw piece["Sequence"]["id"].unsupported("template sequence \"\(which)\" in a single-sequence template") }
                return .sequence
            }
            guard !piece["SpecialToken"].isNull else { throw piece.invalid("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}") }
            let name = try piece["SpecialToken"]["id"].string()
            let entry = node["special_tokens"][name]
            guard !entry.isNull else { throw piece["SpecialToken"]["id"].invalid("\(name.debugDescription) is not in special_tokens") }
            return .special(try entry["ids"].array().map { try $0.int() })
        }
    }

    /// Roberta/Bert store a special token as ["<s>", 0].
    private static func pairID(_ node: JSONNode) throws -> Int {
        let items = try node.array()
        guard items.count == 2 else { throw node.invalid("expected [token, id]") }
        return try items[1].int()
    }

    func process(_ ids: [Int], addSpecialTokens: Bool) -> [Int] {
        switch self {
        case let .template(pieces):
            guard addSpecialTokens else { return ids }
            return pieces.flatMap { piece -> [Int] in
                switch piece {
                case .sequence: return ids
                case let .special(fixed): return fixed
                }
            }
        case let .wrap(prefix, suffix):
            return addSpecialTokens ? [prefix] + ids + [suffix] : ids
        case .none:
            return ids
        case let .sequence(all):
            return all.reduce(ids) { $1.process($0, addSpecialTokens: addSpecialTokens) }
        }
    }

    /// The id the processor puts first, i.e. the BOS token, if any.
    var leadingSpecialID: Int? {
        switch self {
        case let .template(pieces):
            if case let .special(fixed)? = pieces.first { return fixed.first }
            return nil
        case let .wrap(prefix, _): return prefix
        case .none: return nil
        case let .sequence(all): return all.lazy.compactMap(\.leadingSpecialID).first
        }
    }
}
