import Foundation
import MLXCIR

/// One transcribed stretch of audio: its tokens (text and timestamp ids, no end-of-text) and times.
public struct TranscriptSegment: Equatable {
    public var start: Double
    public var end: Double
    public var tokens: [Int]
    public var text: String
}

/// What one 30 s window decoded to.
public struct WindowResult {
    public var language: String?
    /// The window's prompt: start-of-transcript, language, task, and `<|notimestamps|>` without timestamps.
    public var prompt: [Int]
    /// The generated tokens, end-of-text dropped.
    public var tokens: [Int]
    /// The probability of `<|nospeech|>` at the start-of-transcript position.
    public var noSpeechProbability: Double?
    /// The mean log-probability of the chosen tokens (end-of-text included) under the decoding rules.
    public var averageLogProbability: Double
    /// Whether the window was dropped as silence (`noSpeechThreshold`).
    public var skipped = false
    public var seconds: (encode: Double, decode: Double)
}

/// Whisper's greedy (temperature 0) decoding of speech, as transformers' `WhisperForConditionalGeneration.generate`
/// does it with the same options: per 30 s window the prompt `<|startoftranscript|>` (+ language, detected
/// from the language tokens' logits at the first step when not given) (+ `<|transcribe|>`/`<|translate|>`)
/// (+ `<|notimestamps|>`), then one token at a time under `WhisperLogitRules` until end-of-text or the
/// decoder's cache is full. Audio longer than 30 s is decoded sequentially: each window starts where the
/// last one's final complete timestamp pair ended (or after the whole window when it ended on a single
/// timestamp or had none), as transformers'/OpenAI's long-form transcription seeks.
public final class WhisperTranscriber {
    public enum Task: String { case transcribe, translate }

    public struct Options {
        /// A language code ("en"), or nil to detect it (multilingual models).
        public var language: String?
        public var task: Task = .transcribe
        public var timestamps = false
        /// New tokens per window at most (also bounded by the decoder's cache).
        public var maxNewTokens: Int?
        /// Drop a window as silence when its no-speech probability exceeds this and its average
        /// log-probability is below `logProbThreshold` (transformers' `no_speech_threshold` rule).
        public var noSpeechThreshold: Double?
        public var logProbThreshold = -1.0
        public init() {}
    }

    public let programs: WhisperPrograms
    public let vocabulary: WhisperVocabulary
    public let tokenizer: Tokenizer
    public let frontEnd: LogMelSpectrogram

    public init(programs: WhisperPrograms, vocabulary: WhisperVocabulary, tokenizer: Tokenizer) throws {
        self.programs = programs
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        guard vocabulary.vocabularySize <= programs.vocabularySize else {
            throw ReferenceError("the tokenizer has \(vocabulary.vocabularySize) tokens but the decoder's logits only \(programs.vocabularySize)")
        }
        frontEnd = LogMelSpectrogram(melCount: programs.melCount)
    }

    /// Loads a model folder (see `WhisperFiles`) with `load` turning each program path and method (nil: forward)
    /// into an executor and its graph.
    /// `options` are checked against the tokenizer before any program is compiled.
    public convenience init(files: WhisperFiles, validating options: Options? = nil,
                            load: (String, String?) throws -> (any ProgramExecutor, MLXCIR.Graph)) throws {
        let tokenizer = try Tokenizer(jsonPath: files.tokenizer)
        let folder = (files.tokenizer as NSString).deletingLastPathComponent
        let vocabulary = try WhisperVocabulary(tokenizer: tokenizer, generationConfig: try WhisperFiles.jsonObject(files.generationConfig),
                                               config: try WhisperFiles.jsonObject(files.config), folder: folder)
        if let options { try Self.validate(options, vocabulary) }
        let programs = try WhisperPrograms(encoder: try load(files.encoder, files.encoderMethod),
                                           crossKV: try files.crossKV.map { try load($0, nil) },
                                           decoder: try load(files.decoder, files.decoderMethod), files: files)
        try self.init(programs: programs, vocabulary: vocabulary, tokenizer: tokenizer)
    }

    /// Checks options against the model before any audio is read.
    public func validate(_ options: Options) throws { try Self.validate(options, vocabulary) }

    static func validate(_ options: Options, _ vocabulary: WhisperVocabulary) throws {
        if let code = options.language {
            if vocabulary.isMultilingual {
                guard vocabulary.languageID(code) != nil else {
                    throw ReferenceError("unknown language \"\(code)\" (this model knows \(vocabulary.languages.map(\.code).joined(separator: ", ")))")
                }
            } else if code != "en" {
                throw ReferenceError("this model is English-only; --language \(code) is not available")
            }
        }
        if options.task == .translate && (!vocabulary.isMultilingual || vocabulary.translate == nil) {
            throw ReferenceError("this model has no <|translate|> token (English-only); use --task transcribe")
        }
    }

    /// Log-mel features of 16 kHz audio the way the feature extractor prepares them: up to 30 s padded
    /// with silence to one window (3000 frames), longer audio whole (its frames, for long-form decoding).
    public func features(_ samples: [Float]) -> (values: [Float], frames: Int) {
        if samples.count <= LogMelSpectrogram.windowSamples {
            return (frontEnd.window30s(samples), LogMelSpectrogram.windowFrames)
        }
        return frontEnd.features(samples)
    }

    /// Transcribes 16 kHz mono samples, calling `onSegment` as each segment is decoded.
    public func transcribe(_ samples: [Float], options: Options, onSegment: (TranscriptSegment) throws -> Void = { _ in }) throws
        -> (segments: [TranscriptSegment], windows: [WindowResult]) {
        try validate(options)
        let (mel, totalFrames) = features(samples)
        let windowFrames = programs.frames
        let inputStride = 2  // encoder frames per output position: conv1 stride 1 × conv2 stride 2
        var options = options
        if totalFrames > windowFrames { options.timestamps = true }  // long-form needs timestamps to seek
        var seek = 0
        var segments: [TranscriptSegment] = []
        var windows: [WindowResult] = []
        while seek < totalFrames {
            let count = min(windowFrames, totalFrames - seek)
            // The window's frames, zero-padded (in the log-mel domain, as F.pad does) to a full window.
            var window = [Float](repeating: 0, count: programs.melCount * windowFrames)
            for m in 0..<programs.melCount {
                let src = m * totalFrames + seek
                for t in 0..<count { window[m * windowFrames + t] = mel[src + t] }
            }
            let timeOffset = Double(seek) * LogMelSpectrogram.secondsPerFrame
            var result = try decodeWindow(window, options: options)
            if options.language == nil { options.language = result.language }  // detected once, on the first window
            if let threshold = options.noSpeechThreshold, let noSpeech = result.noSpeechProbability,
               noSpeech > threshold, result.averageLogProbability < options.logProbThreshold {
                result.skipped = true
                windows.append(result)
                seek += count
                continue
            }
            windows.append(result)
            let (found, advance) = split(result.tokens, timeOffset: timeOffset, windowFrames: count, inputStride: inputStride,
                                         timestamps: options.timestamps)
            for s in found { try onSegment(s) }
            segments += found
            seek += advance
        }
        return (segments, windows)
    }

    /// The prompt, language detection and greedy loop of one window.
    public func decodeWindow(_ window: [Float], options: Options) throws -> WindowResult {
        let v = vocabulary
        let t0 = Date()
        try programs.encode(window)
        let t1 = Date()
        var prompt = [v.startOfTranscript]
        var language = options.language
        var rowAtSOT: [Float]
        var position = 0
        var pending: [[Float]]
        if v.isMultilingual {
            if let code = language {
                prompt.append(v.languageID(code)!)
                pending = []
            } else {
                // Language detection: the likeliest language token after <|startoftranscript|>.
                let rows = try programs.decode(prompt, at: 0)
                position = 1
                let best = v.languages.max { rows[0][$0.id] < rows[0][$1.id] }!
                language = best.code
                prompt.append(best.id)
                pending = rows
            }
            prompt.append(options.task == .translate ? v.translate! : v.transcribe!)
        } else {
            pending = []
        }
        if !options.timestamps { prompt.append(v.noTimestamps) }
        let rows = try programs.decode(Array(prompt[position...]), at: position)
        let allRows = pending + rows
        rowAtSOT = allRows[0]
        position = prompt.count
        var logits = allRows[allRows.count - 1]

        let rules = WhisperLogitRules(vocabulary: v, timestamps: options.timestamps)
        let limit = min(options.maxNewTokens ?? Int.max, programs.maxDecoderTokens - prompt.count)
        var generated: [Int] = []
        var sumLogProb = 0.0, scored = 0
        while generated.count < limit {
            rules.apply(&logits, generated: generated)
            let next = WhisperLogitRules.argmax(logits)
            sumLogProb += Self.logSoftmax(logits, at: next)
            scored += 1
            if next == v.endOfText { break }
            generated.append(next)
            guard generated.count < limit else { break }
            logits = try programs.decode([next], at: position)[0]
            position += 1
        }
        var noSpeech: Double?
        if let ns = v.noSpeech, ns < rowAtSOT.count { noSpeech = Self.softmax(rowAtSOT, at: ns) }
        return WindowResult(language: v.isMultilingual ? language : nil, prompt: prompt, tokens: generated,
                            noSpeechProbability: noSpeech, averageLogProbability: sumLogProb / Double(max(scored, 1)), seconds: (t1.timeIntervalSince(t0), Date().timeIntervalSince(t1)))
    }

    /// Splits a window's tokens into segments at consecutive timestamp pairs (transformers' `_retrieve_segment`)
    /// and says how many frames to seek: to the last complete pair's end, or the whole window.
    func split(_ tokens: [Int], timeOffset: Double, windowFrames: Int, inputStride: Int, timestamps: Bool)
        -> (segments: [TranscriptSegment], advance: Int) {
        let v = vocabulary
        let isStamp = tokens.map(v.isTimestamp)
        let singleEnding = isStamp.count >= 2 ? (!isStamp[isStamp.count - 2] && isStamp[isStamp.count - 1]) : false
        var cuts = tokens.indices.dropLast().filter { isStamp[$0] && isStamp[$0 + 1] }.map { $0 + 1 }
        if !cuts.isEmpty {
            if singleEnding { cuts.append(tokens.count) } else { cuts[cuts.count - 1] += 1 }
            var segments: [TranscriptSegment] = []
            var last = 0
            for (i, cut) in cuts.enumerated() {
                let slice = Array(tokens[last..<cut])
                let endIndex = (i < cuts.count - 1 || singleEnding) ? slice.count - 1 : slice.count - 2
                segments.append(segment(slice, start: timeOffset + v.seconds(slice[0]), end: timeOffset + v.seconds(slice[endIndex])))
                last = cut
            }
            let advance = singleEnding ? windowFrames : (tokens[last - 2] - v.timestampBegin) * inputStride
            // A window whose last pair closes at <|0.00|> would seek nowhere (and decode the same window forever).
            return (segments, advance > 0 ? advance : windowFrames)
        }
        var endSeconds = Double(windowFrames) * LogMelSpectrogram.secondsPerFrame
        if let lastStamp = tokens.last(where: v.isTimestamp), lastStamp != v.timestampBegin { endSeconds = v.seconds(lastStamp) }
        return ([segment(tokens, start: timeOffset, end: timeOffset + endSeconds)], windowFrames)
    }

    func segment(_ tokens: [Int], start: Double, end: Double) -> TranscriptSegment {
        let text = tokenizer.decode(tokens.filter { $0 < vocabulary.endOfText }, skipSpecialTokens: true)
        return TranscriptSegment(start: start, end: end, tokens: tokens, text: text)
    }

    static func logSoftmax(_ row: [Float], at index: Int) -> Double {
        let m = row.max() ?? 0
        var sum = 0.0
        for x in row where x > -.infinity { sum += exp(Double(x - m)) }
        return Double(row[index] - m) - log(sum)
    }

    static func softmax(_ row: [Float], at index: Int) -> Double {
        let m = row.max() ?? 0
        var sum = 0.0
        for x in row { sum += exp(Double(x - m)) }
        return exp(Double(row[index] - m)) / sum
    }
}
