import Foundation
import FuzzSupport
import MLXCRuntime

/// A `tokenizer.json` (JSON parser, BPE model, normalizer, pre-tokenizer, post-processor, decoder,
/// added tokens), then one fixed text encoded and decoded through it.
let tokenizerJSONTarget = FuzzTarget(
    name: "tokenizer-json",
    summary: "tokenizer.json reader, then a fixed text encoded, decoded and stream-decoded",
    run: { bytes in
        let tokenizer = try Tokenizer(data: Data(bytes), name: "fuzz/tokenizer.json")
        let ids = tokenizer.encode("Hello, wörld! <|eot_id|>  12345\n\tend", addSpecialTokens: true)
        _ = tokenizer.decode(ids)
        var stream = tokenizer.streamingDecoder()
        for id in ids { _ = stream.push(id) }
        _ = stream.finish()
    },
    seeds: { fixtures, corpus in
        for file in Seeds.files(under: fixtures, suffix: "tokenizer.json") {
            try Seeds.write([UInt8](try Data(contentsOf: file)), Seeds.relative(file, fixtures), to: corpus)
        }
    })

/// Arbitrary text (and arbitrary ids) through the committed tokenizers: the first byte picks the
/// tokenizer, the rest is the text; its bytes read as 16-bit ids are decoded too (unknown ids included).
let tokenizeTarget = FuzzTarget(
    name: "tokenize",
    summary: "arbitrary text encoded and arbitrary ids decoded by the fixture tokenizers",
    run: { bytes in
        let tokenizers = TokenizeFuzz.tokenizers
        guard let first = bytes.first, !tokenizers.isEmpty else { return }
        let tokenizer = tokenizers[Int(first) % tokenizers.count]
        let rest = bytes.dropFirst()
        let text = String(decoding: rest, as: UTF8.self)
        let ids = tokenizer.encode(text, addSpecialTokens: first & 0x80 != 0)
        _ = tokenizer.decode(ids, skipSpecialTokens: first & 0x40 != 0)
        var arbitrary: [Int] = []
        var iterator = rest.makeIterator()
        while let lo = iterator.next(), let hi = iterator.next() { arbitrary.append(Int(lo) | Int(hi) << 8) }
        _ = tokenizer.decode(arbitrary)
        var stream = tokenizer.streamingDecoder(skipSpecialTokens: first & 0x20 != 0)
        for id in ids + arbitrary { _ = stream.push(id) }
        _ = stream.finish()
    },
    seeds: { fixtures, corpus in
        let url = fixtures.appendingPathComponent("tokenizers/corpus.json")
        let texts = (try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String]) ?? []
        for (i, text) in texts.enumerated() {
            for pick in 0..<TokenizeFuzz.paths.count {
                try Seeds.write([UInt8(pick)] + Array(text.utf8), "corpus_\(i)_tokenizer\(pick)", to: corpus)
            }
        }
    })

enum TokenizeFuzz {
    /// Three tokenizer families (byte-level BPE, Metaspace, SentencePiece byte fallback) and two real
    /// families' trained vocabularies with special tokens and chat markers.
    static let paths = ["tokenizers/bytelevel", "tokenizers/metaspace", "tokenizers/sentencepiece",
                        "zoo/llama_mlx_fp32", "zoo/gemma3_mlx_fp32", "zoo/qwen2_mlx_fp32"]

    static let tokenizers: [Tokenizer] = paths.compactMap {
        try? Tokenizer(jsonPath: FuzzEnvironment.fixtures.appendingPathComponent($0 + "/tokenizer.json").path)
    }
}
