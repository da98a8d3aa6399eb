import Foundation
import MLXCIR

/// Where a Whisper model's pieces are: the three programs ExecuTorch's `export_whisper` writes
/// (`encoder.pte`, `cross_kv.pte`, `decoder.pte`) and the tokenizer and configs, found in the folder
/// itself or in the `processor/` folder the export script saves next to the programs.
public struct WhisperFiles {
    public var encoder: String
    public var crossKV: String
    public var decoder: String
    public var tokenizer: String
    public var generationConfig: String?
    public var config: String?
    public var preprocessorConfig: String?

    /// Explicit paths override the folder's files; a missing required file is one error naming it.
    public init(folder: String, encoder: String? = nil, crossKV: String? = nil, decoder: String? = nil,
                tokenizer: String? = nil) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDir) else { throw ReferenceError("\(folder): no such model folder") }
        guard isDir.boolValue else {
            throw ReferenceError("\(folder): not a folder (give the folder holding encoder.pte, cross_kv.pte, decoder.pte and tokenizer.json)")
        }
        func find(_ name: String) -> String? {
            for dir in [folder, (folder as NSString).appendingPathComponent("processor")] {
                let path = (dir as NSString).appendingPathComponent(name)
                if fm.fileExists(atPath: path) { return path }
            }
            return nil
        }
        func required(_ explicit: String?, _ name: String, _ what: String) throws -> String {
            if let explicit {
                guard fm.fileExists(atPath: explicit) else { throw ReferenceError("\(explicit): no such file (the \(what))") }
                return explicit
            }
            guard let path = find(name) else { throw ReferenceError("\(folder): no \(name) (the \(what)) in the model folder") }
            return path
        }
        self.encoder = try required(encoder, "encoder.pte", "audio encoder program")
        self.crossKV = try required(crossKV, "cross_kv.pte", "cross-attention K/V program")
        self.decoder = try required(decoder, "decoder.pte", "decoder program")
        self.tokenizer = try required(tokenizer, "tokenizer.json", "tokenizer")
        generationConfig = find("generation_config.json")
        config = find("config.json")
        preprocessorConfig = find("preprocessor_config.json")
    }

    /// A JSON object file, or nil when absent; a file that is not a JSON object is an error naming it.
    public static func jsonObject(_ path: String?) throws -> [String: Any]? {
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError("\(path): cannot be read") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ReferenceError("\(path): not a JSON object")
        }
        return object
    }
}

/// The three loaded programs and the contract between them, checked once at load:
/// - encoder: `input_features [1, mels, 3000]` → hidden states `[1, 1500, d]`;
/// - cross_kv: hidden states → 2L tensors, every layer's cross-attention K then every layer's V, `[1, H, 1500, D]`;
/// - decoder: `(decoder_input_ids [1, T], cache_position [1], K₀…K_L-1, V₀…V_L-1)` → logits `[1, T, V]`,
///   its self-attention KV cache kept as program state (T fixed at 1 as export_whisper traces it, or dynamic).
public final class WhisperPrograms {
    public let encoder: any ProgramExecutor
    public let crossKVProgram: any ProgramExecutor
    public let decoder: any ProgramExecutor
    public let melCount: Int
    public let frames: Int
    public let layers: Int
    public let vocabularySize: Int
    /// Decoder positions the self-attention cache holds (prompt + generated tokens of one window).
    public let maxDecoderTokens: Int
    /// Tokens one decoder call takes at most (1 for export_whisper's programs).
    public let maxChunk: Int
    let featureDType: DType
    let tokenDType: DType
    let positionDType: DType

    public init(encoder: (any ProgramExecutor, Graph), crossKV: (any ProgramExecutor, Graph), decoder: (any ProgramExecutor, Graph),
                files: WhisperFiles) throws {
        self.encoder = encoder.0
        self.crossKVProgram = crossKV.0
        self.decoder = decoder.0
        func type(_ g: Graph, _ id: ValueID) -> TensorType? { g[id].type }
        // Encoder.
        let eg = encoder.1
        guard eg.inputs.count == 1, let feat = type(eg, eg.inputs[0]), feat.rank == 3, feat.dtype.isFloatingPoint,
              let mels = feat.shape[1].fixedValue, let frames = feat.shape[2].fixedValue, feat.shape[0].upperBound == 1 else {
            throw ReferenceError("\(files.encoder): not a Whisper encoder: expected forward(input_features float [1, mels, frames]), found \(eg.inputs.count) inputs \(eg.inputs.map { type(eg, $0)?.description ?? "?" })")
        }
        melCount = mels
        self.frames = frames
        featureDType = feat.dtype
        guard frames == LogMelSpectrogram.windowFrames else {
            throw ReferenceError("\(files.encoder): takes \(frames) frames; Whisper windows are \(LogMelSpectrogram.windowFrames) (30 s)")
        }
        guard eg.outputs.count == 1 else { throw ReferenceError("\(files.encoder): \(eg.outputs.count) outputs, expected the encoder's hidden states") }
        // Cross K/V.
        let cg = crossKV.1
        guard cg.inputs.count == 1, cg.outputs.count >= 2, cg.outputs.count % 2 == 0 else {
            throw ReferenceError("\(files.crossKV): not Whisper's cross-K/V program: expected 1 input and 2 outputs per decoder layer, found \(cg.inputs.count) inputs and \(cg.outputs.count) outputs")
        }
        layers = cg.outputs.count / 2
        // Decoder.
        let dg = decoder.1
        guard dg.inputs.count == 2 + 2 * layers else {
            throw ReferenceError("\(files.decoder): takes \(dg.inputs.count) inputs; with the \(layers) layers of \(files.crossKV) a Whisper decoder takes \(2 + 2 * layers) (tokens, cache_position, K and V per layer)")
        }
        guard let ids = type(dg, dg.inputs[0]), ids.rank == 2, !ids.dtype.isFloatingPoint, let maxT = ids.shape[1].upperBound,
              let pos = type(dg, dg.inputs[1]), pos.rank == 1, pos.shape[0].fixedValue == 1, !pos.dtype.isFloatingPoint else {
            throw ReferenceError("\(files.decoder): expected forward(decoder_input_ids int [1, T], cache_position int [1], …), found \(dg.inputs.prefix(2).map { type(dg, $0)?.description ?? "?" })")
        }
        guard dg.outputs.count >= 1, let logits = type(dg, dg.outputs[0]), logits.rank == 3, let vocab = logits.shape[2].fixedValue else {
            throw ReferenceError("\(files.decoder): output 0 is not logits [1, T, V]")
        }
        tokenDType = ids.dtype
        positionDType = pos.dtype
        vocabularySize = vocab
        // export_whisper traces the decoder with one token, so torch.export usually fixes T = 1: the
        // prompt is then fed a token per call. The window's token budget is the self-attention cache.
        maxChunk = maxT
        guard let cache = LanguageModelContract.cacheLength(dg) else {
            throw ReferenceError("\(files.decoder): no self-attention KV cache state [1, H, S, D] (a Whisper decoder keeps one between calls)")
        }
        maxDecoderTokens = cache
    }

    /// The cross-attention K/V of the window being decoded: held by a compiled decoder (converted once
    /// per window), else passed on every call.
    var passedCrossKV: [HostTensor] = []

    /// The encoder and cross-K/V programs on one window's features ([melCount × frames], row-major):
    /// the per-layer K and V every following `decode` call attends to.
    public func encode(_ features: [Float]) throws {
        precondition(features.count == melCount * frames)
        let input = HostTensor(dtype: featureDType, shape: [1, melCount, frames], storage: features.map(Double.init))
        let hidden = try encoder.run([featureDType == .f32 ? input : input.converted(to: featureDType)])
        let kv = try crossKVProgram.run(hidden)
        guard kv.count == 2 * layers else { throw ReferenceError("the cross-K/V program returned \(kv.count) tensors, expected \(2 * layers)") }
        if let compiled = decoder as? JITProgram {
            for (i, t) in kv.enumerated() { try compiled.holdInput(2 + i, t) }
            passedCrossKV = []
        } else {
            passedCrossKV = kv
        }
    }

    /// Runs the decoder on `tokens` at positions `position…`: one logits row per token.
    public func decode(_ tokens: [Int], at position: Int) throws -> [[Float]] {
        guard position + tokens.count <= maxDecoderTokens else {
            throw ReferenceError("the decoder would hold \(position + tokens.count) tokens; its cache holds \(maxDecoderTokens)")
        }
        var rows: [[Float]] = []
        var start = 0
        while start < tokens.count {
            let chunk = Array(tokens[start..<min(start + maxChunk, tokens.count)])
            let ids = HostTensor(dtype: tokenDType, shape: [1, chunk.count], storage: chunk.map(Double.init))
            let pos = HostTensor(dtype: positionDType, shape: [1], storage: [Double(position + start)])
            let out: [HostTensor]
            if let compiled = decoder as? JITProgram, passedCrossKV.isEmpty {
                out = try compiled.run([ids, pos] + [HostTensor?](repeating: nil, count: 2 * layers))
            } else {
                out = try decoder.run([ids, pos] + passedCrossKV)
            }
            guard let logits = out.first, logits.count == chunk.count * vocabularySize else {
                throw ReferenceError("the decoder returned \(out.first?.shape.description ?? "nothing"), expected logits [1, \(chunk.count), \(vocabularySize)]")
            }
            for t in 0..<chunk.count {
                rows.append(logits.storage[(t * vocabularySize)..<((t + 1) * vocabularySize)].map(Float.init))
            }
            start += chunk.count
        }
        return rows
    }
}
