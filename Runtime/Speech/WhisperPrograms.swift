import Foundation
import MLXCIR

/// Where a Whisper model's pieces are, in either layout ExecuTorch's scripts write: the three programs of
/// `export_whisper` (`encoder.pte`, `cross_kv.pte`, `decoder.pte`), or optimum-executorch's one `model.pte`
/// (its automatic-speech-recognition task, any recipe: methods `encoder` and `text_decoder`, the decoder taking
/// the encoder's hidden states and projecting the cross-attention K/V itself); the tokenizer and configs are
/// found in the folder itself or in the `processor/` folder the export script saves next to the programs.
public struct WhisperFiles {
    public var encoder: String
    /// nil in optimum's layout (its decoder computes the cross-attention K/V).
    public var crossKV: String?
    public var decoder: String
    /// The method each program runs (`forward` for export_whisper's programs).
    public var encoderMethod: String?
    public var decoderMethod: String?
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
            throw ReferenceError("\(folder): not a folder (give the folder holding encoder.pte, cross_kv.pte, decoder.pte and tokenizer.json, or optimum's model.pte and tokenizer.json)")
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
        // optimum's layout: one model.pte and none of export_whisper's programs, named or in the folder.
        if encoder == nil, crossKV == nil, decoder == nil, find("encoder.pte") == nil, let model = find("model.pte") {
            self.encoder = model
            self.crossKV = nil
            self.decoder = model
            encoderMethod = "encoder"
            decoderMethod = "text_decoder"
        } else {
            self.encoder = try required(encoder, "encoder.pte", "audio encoder program")
            self.crossKV = try required(crossKV, "cross_kv.pte", "cross-attention K/V program")
            self.decoder = try required(decoder, "decoder.pte", "decoder program")
        }
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

/// The loaded programs and the contract between them, checked once at load:
/// - encoder: `input_features [1, mels, 3000]` → hidden states `[1, 1500, d]`;
/// - export_whisper's layout: cross_kv: hidden states → 2L tensors, every layer's cross-attention K then every
///   layer's V, `[1, H, 1500, D]`; decoder: `(decoder_input_ids [1, T], cache_position [1], K₀…K_L-1, V₀…V_L-1)`
///   → logits `[1, T, V]`;
/// - optimum's layout (no cross_kv program): text_decoder: `(decoder_input_ids [1, T], encoder_hidden_states
///   [1, 1500, d], cache_position [1])` in any order → logits `[1, T, V]`, projecting the cross K/V itself;
/// the decoder keeps its self-attention KV cache as program state (T fixed at 1 as both scripts trace it, or dynamic).
public final class WhisperPrograms {
    public let encoder: any ProgramExecutor
    /// nil when the decoder takes the encoder's hidden states (optimum's layout).
    public let crossKVProgram: (any ProgramExecutor)?
    public let decoder: any ProgramExecutor
    public let melCount: Int
    public let frames: Int
    public let layers: Int
    public let vocabularySize: Int
    /// Decoder positions the self-attention cache holds (prompt + generated tokens of one window).
    public let maxDecoderTokens: Int
    /// Tokens one decoder call takes at most (1 for both scripts' programs).
    public let maxChunk: Int
    let featureDType: DType
    let tokenDType: DType
    let positionDType: DType
    /// Where the decoder takes its inputs: token ids, position, and what one window fixes (the cross K/V or the
    /// encoder's hidden states), in the order `encode` produces them.
    let tokenInput: Int
    let positionInput: Int
    let windowInputs: [Int]

    public init(encoder: (any ProgramExecutor, Graph), crossKV: (any ProgramExecutor, Graph)?, decoder: (any ProgramExecutor, Graph),
                files: WhisperFiles) throws {
        self.encoder = encoder.0
        self.crossKVProgram = crossKV?.0
        self.decoder = decoder.0
        let encoderName = files.encoder + (files.encoderMethod.map { " (method \($0))" } ?? "")
        let decoderName = files.decoder + (files.decoderMethod.map { " (method \($0))" } ?? "")
        func type(_ g: Graph, _ id: ValueID) -> TensorType? { g[id].type }
        // Encoder.
        let eg = encoder.1
        guard eg.inputs.count == 1, let feat = type(eg, eg.inputs[0]), feat.rank == 3, feat.dtype.isFloatingPoint,
              let mels = feat.shape[1].fixedValue, let frames = feat.shape[2].fixedValue, feat.shape[0].upperBound == 1 else {
            throw ReferenceError("\(encoderName): not a Whisper encoder: expected forward(input_features float [1, mels, frames]), found \(eg.inputs.count) inputs \(eg.inputs.map { type(eg, $0)?.description ?? "?" })")
        }
        melCount = mels
        self.frames = frames
        featureDType = feat.dtype
        guard frames == LogMelSpectrogram.windowFrames else {
            throw ReferenceError("\(encoderName): takes \(frames) frames; Whisper windows are \(LogMelSpectrogram.windowFrames) (30 s)")
        }
        guard eg.outputs.count == 1 else { throw ReferenceError("\(encoderName): \(eg.outputs.count) outputs, expected the encoder's hidden states") }
        let dg = decoder.1
        let noCache = ReferenceError("\(decoderName): no self-attention KV cache state [1, H, S, D] (a Whisper decoder keeps one between calls)")
        let inputTypes = dg.inputs.map { type(dg, $0) }
        if let crossKV {
            // Cross K/V.
            let cg = crossKV.1
            let crossName = files.crossKV ?? "the cross-K/V program"
            guard cg.inputs.count == 1, cg.outputs.count >= 2, cg.outputs.count % 2 == 0 else {
                throw ReferenceError("\(crossName): not Whisper's cross-K/V program: expected 1 input and 2 outputs per decoder layer, found \(cg.inputs.count) inputs and \(cg.outputs.count) outputs")
            }
            layers = cg.outputs.count / 2
            guard dg.inputs.count == 2 + 2 * layers else {
                throw ReferenceError("\(decoderName): takes \(dg.inputs.count) inputs; with the \(layers) layers of \(crossName) a Whisper decoder takes \(2 + 2 * layers) (tokens, cache_position, K and V per layer)")
            }
            tokenInput = 0
            positionInput = 1
            windowInputs = Array(2..<(2 + 2 * layers))
            guard let cache = LanguageModelContract.cacheLength(dg) else { throw noCache }
            maxDecoderTokens = cache
        } else {
            // optimum: ids [1, T] int, hidden [1, frames / 2, d] float, cache_position [1] int, told apart by type.
            let ids = inputTypes.indices.filter { inputTypes[$0].map { $0.rank == 2 && !$0.dtype.isFloatingPoint } ?? false }
            let hidden = inputTypes.indices.filter { inputTypes[$0].map { $0.rank == 3 && $0.dtype.isFloatingPoint } ?? false }
            let pos = inputTypes.indices.filter { inputTypes[$0].map { $0.rank == 1 && !$0.dtype.isFloatingPoint } ?? false }
            guard dg.inputs.count == 3, ids.count == 1, hidden.count == 1, pos.count == 1 else {
                throw ReferenceError("\(decoderName): expected text_decoder(decoder_input_ids int [1, T], encoder_hidden_states float [1, S, d], cache_position int [1]), found \(inputTypes.map { $0?.description ?? "?" })")
            }
            tokenInput = ids[0]
            positionInput = pos[0]
            windowInputs = hidden
            // The caches are unnamed state [1, H, S, D]: the cross-attention's hold the encoder's positions, the
            // self-attention's (K and V per layer) the decoder's; the program writes both.
            let encoderPositions = inputTypes[hidden[0]]!.shape[1].fixedValue
            let selfCaches = dg.values.compactMap { v -> Int? in
                guard case .state = v.kind, let t = v.type, t.rank == 4, t.dtype.isFloatingPoint,
                      let s = t.shape[2].fixedValue, s != encoderPositions else { return nil }
                return s
            }
            guard let cache = selfCaches.min(), selfCaches.count % 2 == 0 else { throw noCache }
            maxDecoderTokens = cache
            layers = selfCaches.count / 2
        }
        guard let ids = inputTypes[tokenInput], ids.rank == 2, !ids.dtype.isFloatingPoint, let maxT = ids.shape[1].upperBound,
              let pos = inputTypes[positionInput], pos.rank == 1, pos.shape[0].fixedValue == 1, !pos.dtype.isFloatingPoint else {
            throw ReferenceError("\(decoderName): expected decoder_input_ids int [1, T] and cache_position int [1], found \(inputTypes.map { $0?.description ?? "?" })")
        }
        guard dg.outputs.count >= 1, let logits = type(dg, dg.outputs[0]), logits.rank == 3, let vocab = logits.shape[2].fixedValue else {
            throw ReferenceError("\(decoderName): output 0 is not logits [1, T, V]")
        }
        tokenDType = ids.dtype
        positionDType = pos.dtype
        vocabularySize = vocab
        // Both scripts trace the decoder with one token, so torch.export usually fixes T = 1: the
        // prompt is then fed a token per call. The window's token budget is the self-attention cache.
        maxChunk = maxT
    }

    /// What one window fixes for the decoder (the cross-attention K/V, or the encoder's hidden states): held by a
    /// compiled decoder (converted once per window), else passed on every call.
    var passedWindowInputs: [HostTensor] = []

    /// The encoder (and cross-K/V program) on one window's features ([melCount × frames], row-major): what every
    /// following `decode` call attends to.
    public func encode(_ features: [Float]) throws {
        precondition(features.count == melCount * frames)
        let input = HostTensor(dtype: featureDType, shape: [1, melCount, frames], storage: features.map(Double.init))
        let features = featureDType == .f32 ? input : input.converted(to: featureDType)
        if let encoder = encoder as? JITProgram, let decoder = decoder as? JITProgram, crossKVProgram == nil || crossKVProgram is JITProgram {
            // Compiled all through: the hidden states and the cross K/V go from program to program as bytes.
            try encoder.withOutputs([features]) { hidden in
                guard let crossKV = crossKVProgram as? JITProgram else { return try hold(hidden, in: decoder) }
                try crossKV.withOutputs(native: hidden) { try hold($0, in: decoder) }
            }
            passedWindowInputs = []
            return
        }
        let hidden = try encoder.run([features])
        let window = try crossKVProgram.map { try $0.run(hidden) } ?? hidden
        try checkWindow(window.count)
        if let compiled = decoder as? JITProgram {
            for (i, t) in zip(windowInputs, window) { try compiled.holdInput(i, t) }
            passedWindowInputs = []
        } else {
            passedWindowInputs = window
        }
    }

    func hold(_ window: [NativeTensor], in decoder: JITProgram) throws {
        try checkWindow(window.count)
        for (i, t) in zip(windowInputs, window) { try decoder.holdInput(i, native: t) }
    }

    func checkWindow(_ count: Int) throws {
        guard count == windowInputs.count else {
            throw ReferenceError(crossKVProgram == nil ? "the encoder returned \(count) tensors, expected its hidden states"
                                 : "the cross-K/V program returned \(count) tensors, expected \(windowInputs.count)")
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
            var inputs = [HostTensor?](repeating: nil, count: 2 + windowInputs.count)
            inputs[tokenInput] = HostTensor(dtype: tokenDType, shape: [1, chunk.count], storage: chunk.map(Double.init))
            inputs[positionInput] = HostTensor(dtype: positionDType, shape: [1], storage: [Double(position + start)])
            let out: [HostTensor]
            if let compiled = decoder as? JITProgram, passedWindowInputs.isEmpty {
                out = try compiled.run(inputs)
            } else {
                for (i, t) in zip(windowInputs, passedWindowInputs) { inputs[i] = t }
                out = try decoder.run(inputs.map { $0! })
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
