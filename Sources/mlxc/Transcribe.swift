import ArgumentParser
import Foundation
import MLXCIR
import MLXCRuntime

/// `mlxc transcribe MODEL AUDIO…`: speech to text with the Whisper programs ExecuTorch's `export_whisper` writes.
struct Transcribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Speech to text with Whisper (export_whisper's encoder.pte, cross_kv.pte, decoder.pte, or optimum-executorch's model.pte), Voxtral (export_voxtral_hf's model.pte + tekken.json), Voxtral Realtime (export_voxtral_rt's model.pte + tekken.json; --stream: live from stdin) or Parakeet TDT.",
        discussion: """
        MODEL is the export's folder: the three programs and tokenizer.json (there or in its processor/ folder), \
        or optimum-executorch's model.pte (automatic-speech-recognition task, methods encoder and text_decoder), \
        with generation_config.json (suppressed tokens, languages) when present; --encoder/--cross-kv/--decoder/\
        --tokenizer name the files one by one instead. AUDIO: WAV (PCM 8/16/24/32-bit, float 32/64, any channel \
        count mixed down, any sample rate resampled to 16 kHz) or, with --sample-rate, headerless PCM \
        (--pcm-format, --channels). Greedy decoding; audio over 30 s is decoded window by window, each window \
        starting at the last timestamp the previous one gave. Segments are printed as they are decoded; \
        timings and the real-time factor go to stderr.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, srt, vtt, json }

    @Argument(help: "The model folder: Whisper (encoder.pte, cross_kv.pte, decoder.pte, or optimum's model.pte) or Voxtral (model.pte, tekken.json).")
    var model: String

    @Argument(help: "Audio files.")
    var audio: [String] = []

    @Option(help: "Spoken language code (en, de, …) or auto (detected per file from the first 30 s).")
    var language = "auto"

    @Option(help: "transcribe, or translate (to English).")
    var task = "transcribe"

    @Flag(help: "Decode timestamps (segments with start and end times); always on for audio over 30 s.")
    var timestamps = false

    @Option(help: "Output: text, srt, vtt or json (one JSON object per file, with tokens).")
    var format: Format = .text

    @OptionGroup var cacheOptions: CacheOptions

    @Option(help: "Threads for compiled kernels (default: all cores).")
    var threads: Int?

    @Option(help: "Headerless PCM: its sample rate (the files are then read as raw samples).")
    var sampleRate: Int?

    @Option(help: "Headerless PCM: u8, s16, s24, s32, f32 or f64 (little-endian).")
    var pcmFormat = "s16"

    @Option(help: "Headerless PCM: interleaved channels (mixed down).")
    var channels = 1

    @Option(help: "New tokens per 30 s window at most (default: what the decoder's cache holds).")
    var maxNewTokens: Int?

    @Option(help: "Drop a window as silence when its <|nospeech|> probability exceeds this and its average log-probability is below --logprob-threshold (off by default).")
    var noSpeechThreshold: Double?

    @Option(help: "With --no-speech-threshold: the average log-probability below which a window may be silence.")
    var logprobThreshold = -1.0

    @Option(help: "The encoder program (default: MODEL/encoder.pte).") var encoder: String?
    @Option(help: "The cross-attention K/V program (default: MODEL/cross_kv.pte).") var crossKv: String?
    @Option(help: "The decoder program (default: MODEL/decoder.pte).") var decoder: String?
    @Option(help: "The tokenizer (default: MODEL/tokenizer.json).") var tokenizer: String?

    @Flag(help: "Run the programs on the reference executor instead of compiled kernels (slow; for checking).")
    var reference = false

    @Flag(help: "Live transcription (Voxtral Realtime --streaming export): read audio from stdin as it arrives — raw s16le mono 16 kHz, or a WAV stream, or --sample-rate/--pcm-format/--channels — and print text as it is decoded; latency per word and the real-time factor on stderr.")
    var stream = false

    func run() throws {
        try MLXC.guarded {
            if stream || VoxtralRealtimeFiles.recognises(model) {
                return try runVoxtralRealtime()
            }
            guard !audio.isEmpty else { throw ValidationError("give at least one audio file") }
            guard let task = WhisperTranscriber.Task(rawValue: task) else {
                throw ValidationError("--task must be transcribe or translate, not \"\(self.task)\"")
            }
            let raw = try rawPCMFormat()
            if let maxNewTokens, maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
            if encoder == nil, crossKv == nil, decoder == nil, ParakeetFiles.recognises(model) {
                return try runParakeet(raw: raw)
            }
            if encoder == nil, crossKv == nil, decoder == nil, VoxtralFiles.recognises(model) {
                return try runVoxtral(raw: raw)
            }

            // Cheap checks first: the model's files and every audio file, before anything is compiled.
            let files = try WhisperFiles(folder: model, encoder: encoder, crossKV: crossKv, decoder: decoder, tokenizer: tokenizer)
            var clips: [(String, AudioClip, Double)] = []
            for path in audio {
                let start = Date()
                let clip = try AudioLoader.load(path: path, raw: raw).resampled(to: LogMelSpectrogram.sampleRate)
                guard clip.samples.count > LogMelSpectrogram.fftSize / 2 else {
                    throw AudioError(path, "too short: \(clip.samples.count) samples at 16 kHz (Whisper needs more than \(LogMelSpectrogram.fftSize / 2))")
                }
                clips.append((path, clip, Date().timeIntervalSince(start)))
            }

            var options = WhisperTranscriber.Options()
            options.language = language == "auto" ? nil : language
            options.task = task
            options.timestamps = timestamps || format == .srt || format == .vtt
            options.maxNewTokens = maxNewTokens
            options.noSpeechThreshold = noSpeechThreshold
            options.logProbThreshold = logprobThreshold
            let loadStart = Date()
            let load = try speechProgramLoader(reference: reference, threads: threads, cache: cacheOptions)
            let transcriber = try WhisperTranscriber(files: files, validating: options, load: load)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            log(String(format: "model: %@ (%d mel bins, %d decoder layers, vocabulary %d) loaded and compiled in %.2f s",
                       model, transcriber.programs.melCount, transcriber.programs.layers, transcriber.programs.vocabularySize, loadSeconds))

            if format == .vtt { emit("WEBVTT\n\n") }
            var srtIndex = 0
            for (path, clip, readSeconds) in clips {
                let start = Date()
                let result = try transcriber.transcribe(clip.samples, options: options) { segment in
                    switch format {
                    case .text:
                        let text = segment.text.trimmingCharacters(in: .whitespaces)
                        emit(options.timestamps || clip.seconds > 30
                             ? "[\(Self.clock(segment.start, ".")) --> \(Self.clock(segment.end, "."))]  \(text)\n" : "\(text)\n")
                    case .srt:
                        srtIndex += 1
                        emit("\(srtIndex)\n\(Self.clock(segment.start, ",", hours: true)) --> \(Self.clock(segment.end, ",", hours: true))\n\(segment.text.trimmingCharacters(in: .whitespaces))\n\n")
                    case .vtt:
                        emit("\(Self.clock(segment.start, ".", hours: true)) --> \(Self.clock(segment.end, ".", hours: true))\n\(segment.text.trimmingCharacters(in: .whitespaces))\n\n")
                    case .json:
                        break
                    }
                }
                let seconds = Date().timeIntervalSince(start)
                if format == .json { emit(try Self.json(path: path, clip: clip, result: result) + "\n") }
                let encode = result.windows.reduce(0) { $0 + $1.seconds.encode }
                let decode = result.windows.reduce(0) { $0 + $1.seconds.decode }
                let tokens = result.windows.reduce(0) { $0 + $1.tokens.count }
                let language = result.windows.first?.language.map { ", language \($0)" } ?? ""
                if ProcessInfo.processInfo.environment["MLXC_PROFILE"] != nil {
                    let programs = transcriber.programs
                    for (name, executor) in [("encoder", programs.encoder), ("cross_kv", programs.crossKVProgram), ("decoder", programs.decoder)] as [(String, (any ProgramExecutor)?)] {
                        if let report = (executor as? JITProgram)?.profileReport, !report.isEmpty { log("profile \(name):\n\(report)") }
                    }
                }
                log(String(format: "%@: %.2f s of audio in %.2f s, real-time factor %.3f (read %.3f s; %d window%@: encoder %.2f s, decoder %.2f s for %d tokens, %.1f tok/s%@)",
                           path, clip.seconds, seconds, seconds / max(clip.seconds, 1e-9), readSeconds, result.windows.count,
                           result.windows.count == 1 ? "" : "s", encode, decode, tokens, Double(tokens) / max(decode, 1e-9), language))
            }
        }
    }

    /// A Voxtral folder (model.pte + tekken.json): the audio LLM's transcription request, greedy, text streamed.
    func runVoxtral(raw: PCMFormat?) throws {
        guard task == "transcribe" else { throw ValidationError("Voxtral's transcription request has no --task \(task) (only transcribe)") }
        guard format == .text || format == .json else {
            throw ValidationError("Voxtral gives no timestamps: --format must be text or json, not \(format.rawValue)")
        }
        let files = try VoxtralFiles(folder: model, tokenizer: tokenizer)
        let clips = try loadClips(raw: raw)
        let loadStart = Date()
        let load = try speechProgramLoader(reference: reference, threads: threads, cache: cacheOptions)
        let transcriber = try VoxtralTranscriber(files: files, load: load)
        log(String(format: "model: %@ (Voxtral: %d mel bins, %d audio tokens per 30 s, hidden %d, vocabulary %d, context %d) loaded and compiled in %.2f s",
                   model, transcriber.melCount, transcriber.tokensPerChunk, transcriber.hidden, transcriber.vocabularySize,
                   transcriber.contextLength, Date().timeIntervalSince(loadStart)))
        let lang = language == "auto" ? nil : language
        for (path, clip) in clips {
            let start = Date()
            let result = try transcriber.transcribe(clip.samples, language: lang, maxNewTokens: maxNewTokens) { piece in
                if format == .text { emit(piece) }
            }
            let seconds = Date().timeIntervalSince(start)
            if format == .text { emit("\n") } else {
                let object: [String: Any] = ["file": path, "seconds": clip.seconds, "language": lang ?? NSNull(), "text": result.text,
                                             "tokens": result.tokens, "prompt_tokens": result.prompt.count, "chunks": result.chunks]
                emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n")
            }
            let s = result.seconds
            log(String(format: "%@: %.2f s of audio in %.2f s, real-time factor %.3f (log-mel %.2f s, audio encoder %.2f s, prefill %d tokens %.2f s, decode %d tokens %.2f s, %.1f tok/s)",
                       path, clip.seconds, seconds, seconds / max(clip.seconds, 1e-9), s.features, s.encode, result.prompt.count, s.prefill,
                       result.tokens.count, s.decode, Double(result.tokens.count) / max(s.decode, 1e-9)))
        }
    }

    /// A Parakeet TDT folder (model.pte + tokenizer.model): greedy TDT, words timed by their encoder frames.
    func runParakeet(raw: PCMFormat?) throws {
        guard task == "transcribe" else { throw ValidationError("Parakeet TDT only transcribes: --task \(task) is not available") }
        guard language == "auto" || language == "en" else {
            throw ValidationError("Parakeet TDT takes no language: --language \(language) is not available (auto or en)")
        }
        let files = try ParakeetFiles(folder: model, tokenizer: tokenizer)
        var clips: [(String, AudioClip)] = []
        for path in audio {
            let clip = try AudioLoader.load(path: path, raw: raw).resampled(to: LogMelSpectrogram.sampleRate)
            guard clip.samples.count >= 1600 else {
                throw AudioError(path, "too short: \(clip.samples.count) samples at 16 kHz (the Parakeet preprocessor takes at least 1600, 0.1 s)")
            }
            clips.append((path, clip))
        }
        let loadStart = Date()
        let load = try speechProgramLoader(reference: reference, threads: threads, cache: cacheOptions)
        let transcriber = try ParakeetTranscriber(files: files, load: load)
        log(String(format: "model: %@ (Parakeet TDT: %d prediction layers of %d, joint %d, vocabulary %d, %.0f ms per encoder frame, at most %.1f s) loaded and compiled in %.2f s",
                   model, transcriber.layers, transcriber.predHidden, transcriber.jointHidden, transcriber.vocabulary.count,
                   transcriber.frameSeconds * 1000, Double(transcriber.maxSamples) / 16000, Date().timeIntervalSince(loadStart)))
        if format == .vtt { emit("WEBVTT\n\n") }
        var cue = 0
        for (path, clip) in clips {
            let start = Date()
            let result = try transcriber.transcribe(clip.samples)
            let seconds = Date().timeIntervalSince(start)
            switch format {
            case .text:
                emit(timestamps ? result.words.map { "[\(Self.clock($0.start, ".")) --> \(Self.clock($0.end, "."))]  \($0.text)\n" }.joined()
                     : result.text + "\n")
            case .srt:
                for w in result.words {
                    cue += 1
                    emit("\(cue)\n\(Self.clock(w.start, ",", hours: true)) --> \(Self.clock(w.end, ",", hours: true))\n\(w.text)\n\n")
                }
            case .vtt:
                for w in result.words {
                    emit("\(Self.clock(w.start, ".", hours: true)) --> \(Self.clock(w.end, ".", hours: true))\n\(w.text)\n\n")
                }
            case .json:
                let object: [String: Any] = [
                    "file": path, "seconds": clip.seconds, "text": result.text, "tokens": result.tokens, "frames": result.frames,
                    "durations": result.durations, "encoder_frames": result.encoderFrames, "frame_seconds": transcriber.frameSeconds,
                    "words": result.words.map { ["word": $0.text, "start": $0.start, "end": $0.end, "start_frame": $0.startFrame, "end_frame": $0.endFrame] },
                ]
                emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n")
            }
            let s = result.seconds
            log(String(format: "%@: %.2f s of audio in %.2f s, real-time factor %.3f (preprocessor %.2f s, encoder %.2f s for %d frames, TDT decode %.2f s for %d tokens)",
                       path, clip.seconds, seconds, seconds / max(clip.seconds, 1e-9), s.preprocess, s.encode, result.encoderFrames, s.decode, result.tokens.count))
        }
    }

    func emit(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    func log(_ text: String) {
        FileHandle.standardError.write(Data("transcribe: \(text)\n".utf8))
    }

    /// `MM:SS.mmm`, or `HH:MM:SS,mmm` (SRT) / `HH:MM:SS.mmm` (WebVTT).
    static func clock(_ seconds: Double, _ separator: String, hours: Bool = false) -> String {
        let ms = Int((seconds * 1000).rounded())
        let h = ms / 3_600_000, m = (ms / 60_000) % 60, s = (ms / 1000) % 60, f = ms % 1000
        let mmss = String(format: "%02d:%02d%@%03d", hours ? m : ms / 60_000, s, separator, f)
        return hours ? String(format: "%02d:", h) + mmss : mmss
    }

    static func json(path: String, clip: AudioClip, result: (segments: [TranscriptSegment], windows: [WindowResult])) throws -> String {
        let object: [String: Any] = [
            "file": path,
            "seconds": clip.seconds,
            "language": result.windows.first?.language ?? NSNull(),
            "text": result.segments.map(\.text).joined(),
            "segments": result.segments.map { ["start": $0.start, "end": $0.end, "text": $0.text, "tokens": $0.tokens] },
            "windows": result.windows.map { w -> [String: Any] in
                ["prompt": w.prompt, "tokens": w.tokens, "no_speech_prob": w.noSpeechProbability ?? NSNull(),
                 "avg_logprob": w.averageLogProbability, "skipped": w.skipped]
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

extension Transcribe {
    /// Raw PCM's layout when `--sample-rate` says the audio is headerless (nil: the files' own headers).
    func rawPCMFormat() throws -> PCMFormat? {
        guard let sampleRate else { return nil }
        guard let encoding = PCMEncoding(rawValue: pcmFormat) else {
            throw ValidationError("--pcm-format must be one of \(PCMEncoding.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(pcmFormat)\"")
        }
        return PCMFormat(encoding: encoding, channels: channels, sampleRate: sampleRate)
    }

    /// The audio files at 16 kHz, each long enough for one log-mel frame (else one line naming the file).
    func loadClips(raw: PCMFormat?) throws -> [(String, AudioClip)] {
        try audio.map { path in
            let clip = try AudioLoader.load(path: path, raw: raw).resampled(to: LogMelSpectrogram.sampleRate)
            guard clip.samples.count > LogMelSpectrogram.fftSize / 2 else {
                throw AudioError(path, "too short: \(clip.samples.count) samples at 16 kHz (the log-mel needs more than \(LogMelSpectrogram.fftSize / 2))")
            }
            return (path, clip)
        }
    }
}
