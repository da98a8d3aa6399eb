import Foundation

/// Offline transcription with a Voxtral Realtime offline export (audio_encoder, token_embedding, text_decoder), as
/// ExecuTorch's VoxtralRealtimeRunner::transcribe runs it: the 16 kHz audio zero-padded to whole 30 s chunks (what
/// the offline preprocessor.pte does), Whisper's log-mel with 128 bins over it (one max − 8 floor for the whole
/// padded audio), audio_encoder → T audio embeddings (one per 80 ms); decoder position p < T takes audio[p] +
/// token_embedding(previous token, `<s>` first), later positions the token embedding alone; greedy until `</s>`,
/// T + max_new_tokens positions or max_seq_len.
///
/// Against the streaming loop on the same audio: the offline mel's floor is the whole padded audio's max − 8 (a
/// streaming step's is its 1640-sample window's), its first frame is reflect-padded (a stream's first window has
/// zeros before the start), the offline encoder attends to every earlier position (the streaming one to its ring's
/// window), and offline decoding runs past the audio on text alone while a stream ends after its delay_tokens
/// padded steps — so the two give the same tokens only where these do not tip an argmax.
public final class VoxtralRealtimeOffline {
    public let model: VoxtralRealtimeModel
    public static let chunkSamples = LogMelSpectrogram.windowSamples

    public struct Result {
        public var tokens: [Int]
        public var text: String
        public var audioPositions: Int
        public var seconds: (features: Double, encode: Double, decode: Double)
    }

    public init(model: VoxtralRealtimeModel) throws {
        guard !model.files.streaming else {
            throw ReferenceError("\(model.files.model): a streaming export; offline decoding takes the offline export (audio_encoder)")
        }
        self.model = model
    }

    public func transcribe(_ samples: [Float], maxNewTokens: Int = 500, onText: (String) -> Void = { _ in }) throws -> Result {
        let m = model
        var clock = Date()
        func lap() -> Double { let now = Date(); defer { clock = now }; return now.timeIntervalSince(clock) }
        let chunks = max(1, (samples.count + Self.chunkSamples - 1) / Self.chunkSamples)
        var padded = samples
        padded.append(contentsOf: repeatElement(0, count: chunks * Self.chunkSamples - samples.count))
        let (mel, frames) = LogMelSpectrogram(melCount: m.melCount).features(padded)
        let tFeatures = lap()
        let out = try m.audioEncoder.run([m.tensor(mel, shape: [1, m.melCount, frames], dtype: m.melDType)])
        guard let audio = out.first, audio.shape.count == 3, audio.shape[2] == m.dim else {
            throw ReferenceError("audio_encoder returned \(out.first?.shape.description ?? "nothing"), expected [1, \(frames / 8), \(m.dim)]")
        }
        let tEncode = lap()
        let positions = audio.shape[1]
        var tokens: [Int] = []
        var pending: [UInt8] = []
        var previous = m.bos
        for p in 0..<min(maxNewTokens + positions, m.maxSeqLen) {
            let a = p < positions ? audio.storage[(p * m.dim)..<((p + 1) * m.dim)] : nil
            let token = try m.decode(previous: previous, audio: a, position: p)
            if token == m.eos { break }
            tokens.append(token)
            pending += m.tokenizer.bytes(token)
            if let s = String(validatingUTF8: pending.map { CChar(bitPattern: $0) } + [0]) { onText(s); pending = [] }
            previous = token
        }
        if !pending.isEmpty { onText(String(decoding: pending, as: UTF8.self)) }
        return Result(tokens: tokens, text: m.tokenizer.decode(tokens), audioPositions: positions, seconds: (tFeatures, tEncode, lap()))
    }
}
