import Foundation
import MLXCFrontend
import MLXCIR

/// Where a Voxtral Realtime model's pieces are: `model.pte` as ExecuTorch's
/// `examples/models/voxtral_realtime/export_voxtral_rt.py` writes it — offline (audio_encoder, token_embedding,
/// text_decoder) or `--streaming` (encode_audio_chunk instead of audio_encoder) — with its constant methods
/// (delay_tokens, sample_rate, …) and Mistral's `tekken.json` beside it. The runner's `preprocessor.pte` may be there
/// too; mlxc computes the same log-mel itself (`LogMelSpectrogram`).
public struct VoxtralRealtimeFiles {
    public var model: String
    public var tokenizer: String
    public var streaming: Bool

    public static let offlineMethods = ["audio_encoder", "token_embedding", "text_decoder"]
    public static let streamingMethods = ["encode_audio_chunk", "token_embedding", "text_decoder"]

    /// Whether `folder` holds a Voxtral Realtime export: model.pte with an encode_audio_chunk method, or with the
    /// delay_tokens constant the script writes (export_voxtral_hf's Voxtral has neither).
    public static func recognises(_ folder: String) -> Bool {
        let model = (folder as NSString).appendingPathComponent("model.pte")
        guard FileManager.default.fileExists(atPath: model), let pte = try? PTEFile(path: model) else { return false }
        let names = pte.program.executionPlans.map(\.name)
        return names.contains("encode_audio_chunk") || (names.contains("delay_tokens") && names.contains("text_decoder"))
    }

    public init(folder: String, tokenizer: String? = nil) throws {
        let fm = FileManager.default
        model = (folder as NSString).appendingPathComponent("model.pte")
        guard fm.fileExists(atPath: model) else { throw ReferenceError("\(folder): no model.pte (the Voxtral Realtime program)") }
        let tok = tokenizer ?? (folder as NSString).appendingPathComponent("tekken.json")
        guard fm.fileExists(atPath: tok) else { throw ReferenceError("\(folder): no tekken.json (the Tekken tokenizer) beside model.pte") }
        self.tokenizer = tok
        let names = try PTEFile(path: model).program.executionPlans.map(\.name)
        streaming = names.contains("encode_audio_chunk")
        let wanted = streaming ? Self.streamingMethods : Self.offlineMethods
        if let missing = wanted.first(where: { !names.contains($0) }) {
            throw ReferenceError("\(model): no method \(missing) (a Voxtral Realtime \(streaming ? "streaming" : "offline") export has \(wanted.joined(separator: ", ")); this program has \(names.joined(separator: ", ")))")
        }
    }
}

/// The methods and constants of a Voxtral Realtime program, and the one decoder position both of ExecuTorch's
/// runner loops share (VoxtralRealtimeRunner::transcribe, StreamingSession::decode_step): the previous token's
/// embedding (token_embedding), plus the position's audio embedding while there is one, into text_decoder at
/// cache_position [p] (its KV cache — a ring in streaming exports — is program state), greedy argmax.
public final class VoxtralRealtimeModel {
    public let files: VoxtralRealtimeFiles
    /// audio_encoder (offline) or encode_audio_chunk (streaming).
    public let audioEncoder: any ProgramExecutor
    public let tokenEmbedding: any ProgramExecutor
    public let textDecoder: any ProgramExecutor
    public let tokenizer: TekkenTokenizer
    public let bos: Int
    public let eos: Int
    public let dim: Int
    public let vocabularySize: Int
    public let melCount: Int
    public let maxSeqLen: Int
    public let delayTokens: Int
    /// Streaming constants (export_streaming's metadata): samples per step, the STFT's left overlap and right
    /// look-ahead around it, the mel frames skipped at the window's start, mel frames per step.
    public let stepSamples: Int
    public let leftOverlap: Int
    public let rightLookahead: Int
    public let melSkip: Int
    public let chunkMel: Int
    /// Decoder ring window (0: a flat cache bounded by max_seq_len).
    public let slidingWindow: Int
    let embedDType: DType
    let melDType: DType

    public init(files: VoxtralRealtimeFiles, load: (String, String) throws -> (any ProgramExecutor, Graph)) throws {
        self.files = files
        let m = files.model
        let meta = ProgramMetadata(try PTEFile(path: m)).values
        func int(_ name: String, _ fallback: Int? = nil) throws -> Int {
            if case .int(let v)? = meta[name] { return v }
            if let fallback { return fallback }
            throw ReferenceError("\(m): no constant method \(name) (export_voxtral_rt writes it)")
        }
        guard try int("sample_rate") == LogMelSpectrogram.sampleRate, try int("hop_length") == LogMelSpectrogram.hop,
              try int("window_size") == LogMelSpectrogram.fftSize else {
            throw ReferenceError("\(m): sample_rate/hop_length/window_size are not 16000/160/400 (Whisper's log-mel, what mlxc computes)")
        }
        dim = try int("dim"); vocabularySize = try int("vocab_size"); melCount = try int("num_mel_bins")
        maxSeqLen = try int("max_seq_len"); delayTokens = try int("delay_tokens"); slidingWindow = try int("sliding_window", 0)
        if files.streaming {
            stepSamples = try int("step_samples"); leftOverlap = try int("stft_left_overlap")
            rightLookahead = try int("stft_right_lookahead"); melSkip = try int("mel_skip_frames"); chunkMel = try int("chunk_mel_len")
            guard stepSamples == chunkMel * LogMelSpectrogram.hop, leftOverlap == melSkip * LogMelSpectrogram.hop, rightLookahead >= 0 else {
                throw ReferenceError("\(m): step_samples \(stepSamples), chunk_mel_len \(chunkMel), stft_left_overlap \(leftOverlap), mel_skip_frames \(melSkip) do not describe whole mel frames")
            }
        } else {
            stepSamples = 1280; leftOverlap = 0; rightLookahead = 0; melSkip = 0; chunkMel = 8
        }
        tokenizer = try TekkenTokenizer(path: files.tokenizer)
        guard let b = tokenizer.special("<s>"), let e = tokenizer.special("</s>") else {
            throw ReferenceError("\(files.tokenizer): no <s> or </s> special token")
        }
        bos = b; eos = e
        guard tokenizer.vocabularySize == vocabularySize else {
            throw ReferenceError("\(files.tokenizer): \(tokenizer.vocabularySize) ids, but the program's vocab_size is \(vocabularySize)")
        }
        let encoderName = files.streaming ? "encode_audio_chunk" : "audio_encoder"
        let (enc, eg) = try load(m, encoderName)
        let (emb, bg) = try load(m, "token_embedding")
        let (dec, dg) = try load(m, "text_decoder")
        audioEncoder = enc; tokenEmbedding = emb; textDecoder = dec
        func type(_ g: Graph, _ v: ValueID) -> TensorType? { g[v].type }
        func size(_ t: TensorType, _ i: Int) -> Int? { t.shape[i].fixedValue ?? t.shape[i].upperBound }
        if files.streaming {
            guard eg.inputs.count == 2, let mel = type(eg, eg.inputs[0]), mel.staticShape == [1, melCount, chunkMel],
                  type(eg, eg.inputs[1])?.staticShape == [chunkMel / 2], eg.outputs.count == 1,
                  type(eg, eg.outputs[0])?.staticShape == [1, 1, dim] else {
                throw ReferenceError("\(m): encode_audio_chunk is not Voxtral Realtime's: expected (mel [1, \(melCount), \(chunkMel)], enc_pos [\(chunkMel / 2)]) → [1, 1, \(dim)]")
            }
            melDType = mel.dtype
        } else {
            guard eg.inputs.count == 1, let mel = type(eg, eg.inputs[0]), mel.rank == 3, size(mel, 1) == melCount, eg.outputs.count == 1,
                  let out = type(eg, eg.outputs[0]), out.rank == 3, size(out, 2) == dim else {
                throw ReferenceError("\(m): audio_encoder is not Voxtral Realtime's: expected mel [1, \(melCount), T] → [1, T/8, \(dim)]")
            }
            melDType = mel.dtype
        }
        guard bg.inputs.count == 1, bg.outputs.count == 1, let e = type(bg, bg.outputs[0]), e.rank == 3, size(e, 2) == dim else {
            throw ReferenceError("\(m): token_embedding is not Voxtral Realtime's: expected ids [1, T] → [1, T, \(dim)]")
        }
        guard dg.inputs.count == 2, let x = type(dg, dg.inputs[0]), x.rank == 3, size(x, 2) == dim, dg.outputs.count >= 1,
              let logits = type(dg, dg.outputs[0]), size(logits, 2) == vocabularySize else {
            throw ReferenceError("\(m): text_decoder is not Voxtral Realtime's: expected (embeds [1, T, \(dim)], cache_position [T]) → logits [1, T, \(vocabularySize)]")
        }
        embedDType = x.dtype
    }

    func tensor(_ values: [Float], shape: [Int], dtype: DType) -> HostTensor {
        let t = HostTensor(dtype: .f32, shape: shape, storage: values.map(Double.init))
        return dtype == .f32 ? t : t.converted(to: dtype)
    }

    /// One decoder position: token_embedding(previous) (+ the audio embedding) → text_decoder at `position` → the
    /// greedy token (argmax, lowest id on ties).
    public func decode(previous: Int, audio: ArraySlice<Double>?, position: Int) throws -> Int {
        let ids = HostTensor(dtype: .i64, shape: [1, 1], storage: [Double(previous)])
        guard var embeds = try tokenEmbedding.run([ids]).first, embeds.count == dim else {
            throw ReferenceError("token_embedding returned no [1, 1, \(dim)] embedding")
        }
        if let audio {
            // The runner sums in f32 (its bf16 path rounds the sum back to the model's dtype).
            for (k, a) in zip(0..<dim, audio) { embeds.storage[k] = Double(Float(embeds.storage[k]) + Float(a)) }
        }
        embeds = HostTensor(dtype: embeds.dtype, shape: [1, 1, dim], storage: embeds.storage)
        if embeds.dtype != embedDType { embeds = embeds.converted(to: embedDType) }
        let out = try textDecoder.run([embeds, HostTensor(dtype: .i64, shape: [1], storage: [Double(position)])])
        guard let logits = out.first, logits.count >= vocabularySize else {
            throw ReferenceError("text_decoder returned \(out.first?.shape.description ?? "nothing"), expected logits [1, 1, \(vocabularySize)]")
        }
        let row = logits.storage[(logits.count - vocabularySize)...]
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }
}
