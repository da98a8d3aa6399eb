import Foundation
import MLXCFrontend
import MLXCIR

/// Where a Voxtral model's pieces are: `model.pte` (methods audio_encoder, token_embedding, text_decoder, as
/// ExecuTorch's `export_voxtral_hf` writes it), `tekken.json` (Mistral's tokenizer), and `preprocessor.pte` when
/// present (the script's mel program; mlxc computes the same log-mel itself, see VoxtralTranscriber).
public struct VoxtralFiles {
    public var model: String
    public var tokenizer: String
    public var preprocessor: String?

    public static let methods = ["audio_encoder", "token_embedding", "text_decoder"]

    /// Whether `folder` is a Voxtral export: model.pte beside tekken.json, or a model.pte with an audio_encoder method
    /// (optimum's Whisper model.pte has encoder/text_decoder and tokenizer.json; Parakeet's, tokenizer.model).
    public static func recognises(_ folder: String) -> Bool {
        let fm = FileManager.default
        let model = (folder as NSString).appendingPathComponent("model.pte")
        guard fm.fileExists(atPath: model) else { return false }
        if fm.fileExists(atPath: (folder as NSString).appendingPathComponent("tekken.json")) { return true }
        return ((try? PTEFile(path: model).program.executionPlans.map(\.name)) ?? []).contains("audio_encoder")
    }

    public init(folder: String, model: String? = nil, tokenizer: String? = nil) throws {
        let fm = FileManager.default
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        func required(_ explicit: String?, _ name: String, _ what: String) throws -> String {
            if let explicit {
                guard fm.fileExists(atPath: explicit) else { throw ReferenceError("\(explicit): no such file (the \(what))") }
                return explicit
            }
            guard fm.fileExists(atPath: path(name)) else { throw ReferenceError("\(folder): no \(name) (the \(what)) in the Voxtral model folder") }
            return path(name)
        }
        self.model = try required(model, "model.pte", "program with audio_encoder, token_embedding and text_decoder")
        self.tokenizer = try required(tokenizer, "tekken.json", "Tekken tokenizer")
        preprocessor = fm.fileExists(atPath: path("preprocessor.pte")) ? path("preprocessor.pte") : nil
        // Every method before anything compiles: a program missing one is named at once.
        let names = try PTEFile(path: self.model).program.executionPlans.map(\.name)
        if let missing = Self.methods.first(where: { !names.contains($0) }) {
            throw ReferenceError("\(self.model): no method \(missing) (a Voxtral export has \(Self.methods.joined(separator: ", ")); this program has \(names.joined(separator: ", ")))")
        }
    }
}

/// Voxtral speech to text on the three methods of `model.pte`, as transformers' VoxtralProcessor +
/// VoxtralForConditionalGeneration run it:
/// - features: 16 kHz audio zero-padded to a multiple of the tokenizer's chunk (30 s), Whisper's log-mel with
///   128 bins over the whole padded audio (one global max, as WhisperFeatureExtractor computes it), cut into
///   3000-frame chunks [C, 128, 3000] (`LogMelSpectrogram`, the same front end the preprocessor program computes);
/// - audio_encoder: chunks → audio embeddings [1, 375·C, hidden];
/// - the prompt of mistral_common's instruct transcription request: `<s> [INST] [BEGIN_AUDIO] [AUDIO]×375·C
///   [/INST]`, then `lang:xx` when a language is given, then `[TRANSCRIBE]`; token_embedding on it, the audio
///   embeddings written over the [AUDIO] rows in order (VoxtralModel's masked_scatter);
/// - text_decoder: the whole prompt in one call (its static KV cache written at cache_position), then one greedy
///   token per call (argmax, lowest id on ties) fed back through token_embedding, until `</s>` or the budget.
public final class VoxtralTranscriber {
    public let audioEncoder: any ProgramExecutor
    public let tokenEmbedding: any ProgramExecutor
    public let textDecoder: any ProgramExecutor
    public let tokenizer: TekkenTokenizer
    public let melCount: Int
    public let framesPerChunk: Int
    public let maxChunks: Int
    public let tokensPerChunk: Int
    public let hidden: Int
    public let vocabularySize: Int
    /// Positions the decoder's KV cache holds (prompt + generated tokens).
    public let contextLength: Int
    let featureDType: DType
    let idDType: DType
    let embedDType: DType
    let positionDType: DType
    let ids: (bos: Int, eos: Int, inst: Int, endInst: Int, beginAudio: Int, audio: Int, transcribe: Int)

    public struct Result {
        public var prompt: [Int]
        public var tokens: [Int]
        public var text: String
        public var chunks: Int
        public var seconds: (features: Double, encode: Double, prefill: Double, decode: Double)
    }

    /// `load(path, method)` gives a method's executor and imported graph; every contract is checked here.
    public init(files: VoxtralFiles, load: (String, String) throws -> (any ProgramExecutor, Graph)) throws {
        let tok = try TekkenTokenizer(path: files.tokenizer)
        tokenizer = tok
        func id(_ name: String) throws -> Int {
            guard let i = tok.special(name) else { throw ReferenceError("\(files.tokenizer): no special token \(name) (a Voxtral tokenizer has it)") }
            return i
        }
        ids = (try id("<s>"), try id("</s>"), try id("[INST]"), try id("[/INST]"), try id("[BEGIN_AUDIO]"), try id("[AUDIO]"),
               try id("[TRANSCRIBE]"))
        guard let rate = tok.audioFrameRate, let chunk = tok.audioChunkSeconds, tok.sampleRate ?? 16000 == LogMelSpectrogram.sampleRate else {
            throw ReferenceError("\(files.tokenizer): no audio section with frame_rate, chunk_length_s and a 16 kHz sampling_rate")
        }
        tokensPerChunk = Int((rate * chunk).rounded())
        let (enc, eg) = try load(files.model, "audio_encoder")
        let (emb, bg) = try load(files.model, "token_embedding")
        let (dec, dg) = try load(files.model, "text_decoder")
        audioEncoder = enc; tokenEmbedding = emb; textDecoder = dec
        func type(_ g: Graph, _ v: ValueID) -> TensorType? { g[v].type }
        // ExecuTorch marks every dimension of these methods' inputs dynamic up to its traced size.
        func size(_ t: TensorType, _ i: Int) -> Int? { t.shape[i].fixedValue ?? t.shape[i].upperBound }
        let m = files.model
        guard eg.inputs.count == 1, eg.outputs.count == 1, let feat = type(eg, eg.inputs[0]), feat.rank == 3, feat.dtype.isFloatingPoint,
              let mels = size(feat, 1), let frames = size(feat, 2), let chunks = feat.shape[0].upperBound,
              let out = type(eg, eg.outputs[0]), out.rank == 3, let h = size(out, 2) else {
            throw ReferenceError("\(m): audio_encoder is not Voxtral's: expected input_features float [C, mels, frames] → [1, N, hidden]")
        }
        guard frames == Int(chunk) * 100 else {
            throw ReferenceError("\(m): audio_encoder takes \(frames) frames per chunk; the tokenizer's \(chunk) s chunks are \(Int(chunk) * 100)")
        }
        melCount = mels; framesPerChunk = frames; maxChunks = chunks; hidden = h; featureDType = feat.dtype
        guard bg.inputs.count == 1, let tid = type(bg, bg.inputs[0]), tid.rank == 2, !tid.dtype.isFloatingPoint,
              bg.outputs.count == 1, let e = type(bg, bg.outputs[0]), e.rank == 3, size(e, 2) == h else {
            throw ReferenceError("\(m): token_embedding is not Voxtral's: expected ids int [1, T] → [1, T, \(h)]")
        }
        idDType = tid.dtype
        guard dg.inputs.count == 2, let x = type(dg, dg.inputs[0]), x.rank == 3, x.dtype.isFloatingPoint, size(x, 2) == h,
              let p = type(dg, dg.inputs[1]), p.rank == 1, !p.dtype.isFloatingPoint,
              dg.outputs.count >= 1, let logits = type(dg, dg.outputs[0]), logits.rank == 3, let v = size(logits, 2) else {
            throw ReferenceError("\(m): text_decoder is not Voxtral's: expected (inputs_embeds float [1, T, \(h)], cache_position int [T]) → logits [1, T, V]")
        }
        embedDType = x.dtype; positionDType = p.dtype; vocabularySize = v
        guard let cache = LanguageModelContract.cacheLength(dg) else {
            throw ReferenceError("\(m): text_decoder keeps no KV cache state [1, H, S, D]")
        }
        contextLength = min(cache, (x.shape[1].upperBound ?? cache - 1) + 1)
    }

    /// mistral_common's instruct transcription prompt for `chunks` 30 s chunks.
    public func prompt(chunks: Int, language: String?) -> [Int] {
        var p = [ids.bos, ids.inst, ids.beginAudio] + [Int](repeating: ids.audio, count: tokensPerChunk * chunks) + [ids.endInst]
        if let language { p += tokenizer.encode("lang:\(language)") }
        return p + [ids.transcribe]
    }

    /// Log-mel chunks [C, 128, 3000] of 16 kHz samples: padded to whole chunks, one spectrogram, then cut.
    public func features(_ samples: [Float]) throws -> (values: [Float], chunks: Int) {
        let chunkSamples = framesPerChunk * LogMelSpectrogram.hop
        let chunks = max(1, (samples.count + chunkSamples - 1) / chunkSamples)
        guard chunks <= maxChunks else {
            throw ReferenceError("audio of \(String(format: "%.1f", Double(samples.count) / 16000)) s needs \(chunks) chunks; the audio encoder takes at most \(maxChunks) (\(maxChunks * framesPerChunk / 100) s)")
        }
        var padded = samples
        padded.append(contentsOf: repeatElement(0, count: chunks * chunkSamples - samples.count))
        let (mel, frames) = LogMelSpectrogram(melCount: melCount).features(padded)
        precondition(frames == chunks * framesPerChunk)
        // [mels, C·frames] → [C, mels, frames]
        var out = [Float](repeating: 0, count: mel.count)
        for c in 0..<chunks {
            for b in 0..<melCount {
                let src = b * frames + c * framesPerChunk, dst = (c * melCount + b) * framesPerChunk
                for t in 0..<framesPerChunk { out[dst + t] = mel[src + t] }
            }
        }
        return (out, chunks)
    }

    /// Audio embeddings [375·C × hidden] of the chunks' features.
    public func encode(_ features: [Float], chunks: Int) throws -> HostTensor {
        let input = HostTensor(dtype: .f32, shape: [chunks, melCount, framesPerChunk], storage: features.map(Double.init))
        let out = try audioEncoder.run([featureDType == .f32 ? input : input.converted(to: featureDType)])
        guard let a = out.first, a.shape == [1, tokensPerChunk * chunks, hidden] else {
            throw ReferenceError("audio_encoder returned \(out.first?.shape.description ?? "nothing"), expected [1, \(tokensPerChunk * chunks), \(hidden)] (\(tokensPerChunk) audio tokens per chunk, as the tokenizer says)")
        }
        return a
    }

    func embed(_ tokens: [Int]) throws -> HostTensor {
        let out = try tokenEmbedding.run([HostTensor(dtype: idDType, shape: [1, tokens.count], storage: tokens.map(Double.init))])
        guard let e = out.first, e.shape == [1, tokens.count, hidden] else {
            throw ReferenceError("token_embedding returned \(out.first?.shape.description ?? "nothing"), expected [1, \(tokens.count), \(hidden)]")
        }
        return e.dtype == embedDType ? e : e.converted(to: embedDType)
    }

    /// The decoder on embeddings [1, T, hidden] at positions start…: the last position's logits.
    func decodeStep(_ embeds: HostTensor, at start: Int) throws -> ArraySlice<Double> {
        let t = embeds.shape[1]
        let pos = HostTensor(dtype: positionDType, shape: [t], storage: (start..<(start + t)).map(Double.init))
        let out = try textDecoder.run([embeds, pos])
        guard let logits = out.first, logits.count % vocabularySize == 0, logits.count >= vocabularySize else {
            throw ReferenceError("text_decoder returned \(out.first?.shape.description ?? "nothing"), expected logits [1, \(t), \(vocabularySize)]")
        }
        return logits.storage[(logits.count - vocabularySize)...]
    }

    /// Greedy transcription of 16 kHz samples; `onText` receives the text as whole UTF-8 characters arrive.
    public func transcribe(_ samples: [Float], language: String?, maxNewTokens: Int? = nil,
                           onText: (String) -> Void = { _ in }) throws -> Result {
        try generate(samples, maxNewTokens: maxNewTokens, onText: onText) { prompt(chunks: $0, language: language) }
    }

    /// mistral_common's instruct chat prompt of one user message holding the audio, then `text`:
    /// `<s> [INST] [BEGIN_AUDIO] [AUDIO]×375·C text [/INST]` (VoxtralProcessor.apply_chat_template's tokens).
    public func chatPrompt(chunks: Int, text: String) -> [Int] {
        [ids.bos, ids.inst, ids.beginAudio] + [Int](repeating: ids.audio, count: tokensPerChunk * chunks)
            + tokenizer.encode(text) + [ids.endInst]
    }

    /// A question about the audio (audio in the prompt, as `apply_chat_template` places it): the greedy reply.
    public func chat(_ samples: [Float], text: String, maxNewTokens: Int? = nil, onText: (String) -> Void = { _ in }) throws -> Result {
        try generate(samples, maxNewTokens: maxNewTokens, onText: onText) { chatPrompt(chunks: $0, text: text) }
    }

    /// Features → audio embeddings → the prompt for that many chunks, embedded with the audio spliced in → greedy
    /// tokens until `</s>`, the budget or the cache.
    func generate(_ samples: [Float], maxNewTokens: Int?, onText: (String) -> Void, prompt makePrompt: (Int) -> [Int]) throws -> Result {
        var clock = Date()
        func lap() -> Double { let now = Date(); defer { clock = now }; return now.timeIntervalSince(clock) }
        let (feats, chunks) = try features(samples)
        let tFeatures = lap()
        let audio = try encode(feats, chunks: chunks)
        let tEncode = lap()
        let prompt = makePrompt(chunks)
        guard prompt.count < contextLength else {
            throw ReferenceError("the prompt (\(prompt.count) tokens for \(chunks) chunk\(chunks == 1 ? "" : "s")) does not fit the decoder's \(contextLength) positions")
        }
        var embeds = try embed(prompt)
        var next = 0
        for (i, t) in prompt.enumerated() where t == ids.audio {
            let dst = i * hidden, src = next * hidden
            for k in 0..<hidden { embeds.storage[dst + k] = audio.storage[src + k] }
            next += 1
        }
        var logits = try decodeStep(embeds, at: 0)
        let tPrefill = lap()
        let budget = min(maxNewTokens ?? Int.max, contextLength - prompt.count)
        var tokens: [Int] = []
        var pending: [UInt8] = []
        while tokens.count < budget {
            var best = logits.startIndex
            for i in logits.indices where logits[i] > logits[best] { best = i }
            let token = best - logits.startIndex
            if token == ids.eos { break }
            tokens.append(token)
            pending += tokenizer.bytes(token)
            if let s = String(validatingUTF8: pending.map { CChar(bitPattern: $0) } + [0]) { onText(s); pending = [] }
            guard tokens.count < budget else { break }
            logits = try decodeStep(try embed([token]), at: prompt.count + tokens.count - 1)
        }
        if !pending.isEmpty { onText(String(decoding: pending, as: UTF8.self)) }
        let tDecode = lap()
        return Result(prompt: prompt, tokens: tokens, text: tokenizer.decode(tokens), chunks: chunks,
                      seconds: (tFeatures, tEncode, tPrefill, tDecode))
    }
}
