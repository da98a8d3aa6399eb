import Foundation

/// Live transcription with a Voxtral Realtime `--streaming` export, step for step as ExecuTorch's
/// StreamingSession (voxtral_realtime_runner.cpp) runs it:
/// - a step consumes `step_samples` (1280 = 80 ms) and needs `stft_right_lookahead` (40) more samples to have
///   arrived; its window is `stft_left_overlap` (320) samples before the step (zeros before the stream's start)
///   + the step + the look-ahead = 1640 samples, whose log-mel (Whisper's, with the window's own max − 8 floor:
///   what the streaming preprocessor.pte computes per call) has 10 frames; frames `mel_skip_frames` (2) ..< 10 are
///   the step's 8 — the frames offline decoding would compute there, but for that floor;
/// - encode_audio_chunk(mel [1, 128, 8], enc_pos [4] = 4k ..< 4k + 4): one audio embedding (its conv states and
///   ring KV cache are program state; enc_pos 0 resets the conv states);
/// - the decoder position k: token_embedding(previous token, `<s>` first) + the audio embedding → text_decoder at
///   cache_position [k] → the greedy token; `</s>` ends the stream's transcription.
/// At the end of the stream `finish()` does the runner's flush: the partial last step is padded with zeros to
/// whole steps, plus `delay_tokens` steps (the model writes a word that many steps after hearing it) and the
/// look-ahead, and those steps run like the others — so no text the audio holds is lost when the stream stops
/// mid-step. Feeding faster than real time just runs the steps back to back.
public final class VoxtralRealtimeStream {
    public struct Token {
        public var id: Int
        /// The step that produced it (= its decoder position).
        public var step: Int
        /// Seconds of real audio the step had heard (its end, or the stream's end for the flush's padded steps).
        public var audioSeconds: Double
        /// The stream samples the step needed (its end + the look-ahead, at most what was fed).
        public var heardSamples: Int
        /// The text this token completes (whole UTF-8 characters; empty for special tokens or partial characters).
        public var text: String
    }

    public let model: VoxtralRealtimeModel
    var samples: [Float] = []           // from `base` on: the left overlap kept + what is not consumed yet
    var base = 0                        // stream position of samples[0]
    var consumed = 0                    // stream samples consumed by steps
    var realSamples = 0                 // samples fed (the flush's padding excluded)
    var previous: Int
    var position = 0
    var pending: [UInt8] = []
    let mel: LogMelSpectrogram
    public private(set) var steps = 0
    public private(set) var finished = false
    public private(set) var endOfText = false
    public private(set) var tokens: [Int] = []
    /// Seconds spent in steps (log-mel, encoder, decoder).
    public private(set) var computeSeconds = 0.0

    public init(model: VoxtralRealtimeModel) throws {
        guard model.files.streaming else {
            throw ReferenceError("\(model.files.model): not a streaming export (no encode_audio_chunk): export with --streaming for live transcription")
        }
        self.model = model
        previous = model.bos
        mel = LogMelSpectrogram(melCount: model.melCount)
    }

    /// Seconds of audio fed so far.
    public var audioSeconds: Double { Double(realSamples) / Double(LogMelSpectrogram.sampleRate) }

    /// Appends 16 kHz samples and runs every step they complete; `onToken` gets each token as it is decoded.
    public func feed(_ new: [Float], onToken: (Token) throws -> Void) throws {
        precondition(!finished, "feed after finish")
        samples.append(contentsOf: new)
        realSamples += new.count
        try run(onToken)
    }

    /// End of stream: the runner's flush (the partial step zero-padded + delay_tokens steps + the look-ahead),
    /// then any bytes of an unfinished UTF-8 character.
    public func finish(onToken: (Token) throws -> Void) throws {
        guard !finished else { return }
        finished = true
        let remaining = base + samples.count - consumed
        if remaining > 0 && !endOfText {
            let step = model.stepSamples
            let padTo = ((remaining + step - 1) / step + model.delayTokens) * step + model.rightLookahead
            samples.append(contentsOf: repeatElement(0, count: padTo - remaining))
            try run(onToken)
        }
        if !pending.isEmpty {
            let text = String(decoding: pending, as: UTF8.self)
            pending = []
            try onToken(Token(id: -1, step: steps, audioSeconds: audioSeconds, heardSamples: realSamples, text: text))
        }
    }

    func run(_ onToken: (Token) throws -> Void) throws {
        let m = model
        while !endOfText, base + samples.count >= consumed + m.stepSamples + m.rightLookahead {
            let start = Date()
            var window = [Float](repeating: 0, count: m.leftOverlap + m.stepSamples + m.rightLookahead)
            let local = consumed - base
            let left = min(m.leftOverlap, consumed)   // zeros before the stream's first sample
            for i in 0..<left { window[m.leftOverlap - left + i] = samples[local - left + i] }
            for i in 0..<(m.stepSamples + m.rightLookahead) { window[m.leftOverlap + i] = samples[local + i] }
            let (values, frames) = mel.features(window)
            guard frames >= m.melSkip + m.chunkMel else {
                throw ReferenceError("the log-mel of a \(window.count)-sample window has \(frames) frames, fewer than mel_skip_frames + chunk_mel_len = \(m.melSkip + m.chunkMel)")
            }
            var chunk = [Float](repeating: 0, count: m.melCount * m.chunkMel)
            for b in 0..<m.melCount {
                for t in 0..<m.chunkMel { chunk[b * m.chunkMel + t] = values[b * frames + m.melSkip + t] }
            }
            let encPos = (0..<(m.chunkMel / 2)).map { Double(steps * (m.chunkMel / 2) + $0) }
            let out = try m.audioEncoder.run([m.tensor(chunk, shape: [1, m.melCount, m.chunkMel], dtype: m.melDType),
                                              HostTensor(dtype: .i64, shape: [m.chunkMel / 2], storage: encPos)])
            guard let audio = out.first, audio.count == m.dim else {
                throw ReferenceError("encode_audio_chunk returned \(out.first?.shape.description ?? "nothing"), expected [1, 1, \(m.dim)]")
            }
            consumed += m.stepSamples
            let heardSamples = min(consumed + m.rightLookahead, realSamples)
            let heard = Double(heardSamples) / Double(LogMelSpectrogram.sampleRate)
            let token = try m.decode(previous: previous, audio: audio.storage[...], position: position)
            steps += 1
            computeSeconds += Date().timeIntervalSince(start)
            // Keep the next step's left overlap; drop older samples.
            let keepFrom = consumed - m.leftOverlap
            if keepFrom > base {
                samples.removeFirst(keepFrom - base)
                base = keepFrom
            }
            if token == m.eos {
                endOfText = true
                break
            }
            tokens.append(token)
            pending += m.tokenizer.bytes(token)
            var text = ""
            if let s = String(validatingUTF8: pending.map { CChar(bitPattern: $0) } + [0]) { text = s; pending = [] }
            try onToken(Token(id: token, step: position, audioSeconds: heard, heardSamples: heardSamples, text: text))
            previous = token
            position += 1
        }
    }
}
