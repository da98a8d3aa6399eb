import Foundation
import MLXCFrontend
import MLXCIR

/// Where a Parakeet TDT model's pieces are: `model.pte` with the methods ExecuTorch's `export_parakeet_tdt.py`
/// writes (preprocessor, encoder, decoder_step, joint, and constant methods blank_id, num_rnn_layers, pred_hidden,
/// sample_rate, window_stride, encoder_subsampling_factor, vocab_size) and `tokenizer.model` (SentencePiece).
public struct ParakeetFiles {
    public var model: String
    public var tokenizer: String

    public static let methods = ["preprocessor", "encoder", "decoder_step", "joint"]

    /// Whether `folder` looks like a Parakeet export: model.pte beside a SentencePiece tokenizer.model, or a
    /// model.pte whose methods are Parakeet's (so a missing tokenizer is named as such).
    public static func recognises(_ folder: String) -> Bool {
        let fm = FileManager.default
        let model = (folder as NSString).appendingPathComponent("model.pte")
        guard fm.fileExists(atPath: model) else { return false }
        if fm.fileExists(atPath: (folder as NSString).appendingPathComponent("tokenizer.model")) { return true }
        let names = (try? PTEFile(path: model).program.executionPlans.map(\.name)) ?? []
        return names.contains("decoder_step") && names.contains("joint")
    }

    public init(folder: String, tokenizer: String? = nil) throws {
        let fm = FileManager.default
        model = (folder as NSString).appendingPathComponent("model.pte")
        guard fm.fileExists(atPath: model) else { throw ReferenceError("\(folder): no model.pte (the Parakeet program) in the model folder") }
        if let tokenizer {
            guard fm.fileExists(atPath: tokenizer) else { throw ReferenceError("\(tokenizer): no such file (the SentencePiece tokenizer)") }
            self.tokenizer = tokenizer
        } else {
            self.tokenizer = (folder as NSString).appendingPathComponent("tokenizer.model")
            guard fm.fileExists(atPath: self.tokenizer) else { throw ReferenceError("\(folder): no tokenizer.model (the SentencePiece tokenizer) in the Parakeet model folder") }
        }
        let names = try PTEFile(path: model).program.executionPlans.map(\.name)
        if let missing = Self.methods.first(where: { !names.contains($0) }) {
            throw ReferenceError("\(model): no method \(missing) (a Parakeet TDT export has \(Self.methods.joined(separator: ", ")); this program has \(names.joined(separator: ", ")))")
        }
    }
}

/// Parakeet TDT speech to text on the four methods of `model.pte`, as the export script's
/// `greedy_decode_executorch` (and NeMo's greedy TDT decoding) run them:
/// - preprocessor: 16 kHz samples [N] → NeMo's normalized log-mel [1, F, T] (the program's own front end);
/// - encoder: mel → projected encoder frames [1, T/8, J] (FastConformer + the joint's encoder projection);
/// - decoder_step: (token [1, 1], h, c [L, 1, P]) → projected prediction [1, 1, J] and the LSTM state;
/// - joint: (frame, prediction) → (token id, duration index): the argmaxes of the token and duration heads.
/// Greedy TDT: the prediction network is primed with blank; at frame t the joint picks a token and a duration d
/// (durations 0…4, the script's list); blank advances by max(d, 1), a token is emitted at frame t, fed to the
/// prediction network, and advances by d; at most 10 tokens per frame (then one frame on).
public final class ParakeetTranscriber {
    public let preprocessor: any ProgramExecutor
    public let encoder: any ProgramExecutor
    public let decoderStep: any ProgramExecutor
    public let joint: any ProgramExecutor
    public let vocabulary: SentencePieceVocabulary
    public let blankID: Int
    public let layers: Int
    public let predHidden: Int
    public let jointHidden: Int
    public let sampleRate: Int
    /// Seconds per encoder frame: the mel hop × the encoder's subsampling.
    public let frameSeconds: Double
    public let maxSamples: Int
    public let durations = [0, 1, 2, 3, 4]
    public let maxSymbolsPerFrame = 10

    public struct Word: Equatable {
        public var text: String
        public var startFrame: Int
        public var endFrame: Int
        public var start: Double
        public var end: Double
    }

    public struct Result {
        public var tokens: [Int]
        public var frames: [Int]
        public var durations: [Int]
        public var words: [Word]
        public var text: String
        public var encoderFrames: Int
        public var seconds: (preprocess: Double, encode: Double, decode: Double)
    }

    /// `load(path, method)` gives a method's executor and imported graph; every contract is checked here.
    public init(files: ParakeetFiles, load: (String, String) throws -> (any ProgramExecutor, Graph)) throws {
        let m = files.model
        let meta = ProgramMetadata(try PTEFile(path: m)).values
        func int(_ name: String) throws -> Int {
            guard case .int(let v)? = meta[name] else { throw ReferenceError("\(m): no constant method \(name) (export_parakeet_tdt writes it)") }
            return v
        }
        blankID = try int("blank_id"); layers = try int("num_rnn_layers"); predHidden = try int("pred_hidden")
        jointHidden = try int("joint_hidden"); sampleRate = try int("sample_rate")
        let subsampling = try int("encoder_subsampling_factor"), vocab = try int("vocab_size")
        guard case .double(let stride)? = meta["window_stride"], stride > 0 else { throw ReferenceError("\(m): no constant method window_stride (a positive double)") }
        guard sampleRate == LogMelSpectrogram.sampleRate else { throw ReferenceError("\(m): sample_rate \(sampleRate); mlxc reads audio at \(LogMelSpectrogram.sampleRate) Hz") }
        frameSeconds = stride * Double(subsampling)
        vocabulary = try SentencePieceVocabulary(path: files.tokenizer)
        guard vocabulary.count == vocab, blankID == vocab else {
            throw ReferenceError("\(files.tokenizer): \(vocabulary.count) pieces, but the program's vocab_size is \(vocab) and blank_id \(blankID) (blank follows the vocabulary)")
        }
        let (pre, pg) = try load(m, "preprocessor")
        let (enc, eg) = try load(m, "encoder")
        let (dec, dg) = try load(m, "decoder_step")
        let (joi, jg) = try load(m, "joint")
        preprocessor = pre; encoder = enc; decoderStep = dec; joint = joi
        func type(_ g: Graph, _ v: ValueID) -> TensorType? { g[v].type }
        guard pg.inputs.count == 2, let audio = type(pg, pg.inputs[0]), audio.rank == 1, audio.dtype == .f32, let most = audio.shape[0].upperBound else {
            throw ReferenceError("\(m): preprocessor is not Parakeet's: expected (audio f32 [N], length i64 [1]) → (mel, mel_len)")
        }
        maxSamples = most
        guard eg.inputs.count == 2, eg.outputs.count == 2, let f = type(eg, eg.outputs[0]), f.rank == 3, f.shape[2].fixedValue == jointHidden else {
            throw ReferenceError("\(m): encoder is not Parakeet's: expected (mel, length) → (f_proj [1, T, \(jointHidden)], length)")
        }
        guard dg.inputs.count == 3, dg.outputs.count == 3, type(dg, dg.inputs[1])?.staticShape == [layers, 1, predHidden] else {
            throw ReferenceError("\(m): decoder_step is not Parakeet's: expected (token [1, 1], h, c [\(layers), 1, \(predHidden)]) → (g_proj, h, c)")
        }
        guard jg.inputs.count == 2, jg.outputs.count == 2 else {
            throw ReferenceError("\(m): joint is not Parakeet's: expected (f [1, 1, \(jointHidden)], g [1, 1, \(jointHidden)]) → (token id, duration index)")
        }
    }

    func predict(_ token: Int, _ h: HostTensor, _ c: HostTensor) throws -> (HostTensor, HostTensor, HostTensor) {
        let out = try decoderStep.run([HostTensor(dtype: .i64, shape: [1, 1], storage: [Double(token)]), h, c])
        guard out.count == 3, out[0].count == jointHidden else {
            throw ReferenceError("decoder_step returned \(out.map(\.shape)), expected g_proj [1, 1, \(jointHidden)], h, c")
        }
        return (out[0], out[1], out[2])
    }

    /// Greedy TDT transcription of 16 kHz samples.
    public func transcribe(_ samples: [Float]) throws -> Result {
        guard samples.count <= maxSamples else {
            throw ReferenceError("audio of \(String(format: "%.1f", Double(samples.count) / Double(sampleRate))) s is longer than the program takes (\(maxSamples) samples, \(String(format: "%.1f", Double(maxSamples) / Double(sampleRate))) s)")
        }
        var clock = Date()
        func lap() -> Double { let now = Date(); defer { clock = now }; return now.timeIntervalSince(clock) }
        let mel = try preprocessor.run([HostTensor(dtype: .f32, shape: [samples.count], storage: samples.map(Double.init)),
                                        HostTensor(dtype: .i64, shape: [1], storage: [Double(samples.count)])])
        guard mel.count == 2, mel[0].shape.count == 3 else { throw ReferenceError("preprocessor returned \(mel.map(\.shape)), expected (mel [1, F, T], mel_len [1])") }
        let tPre = lap()
        let enc = try encoder.run([mel[0], mel[1]])
        guard enc.count == 2, enc[0].shape.count == 3, enc[0].shape[2] == jointHidden, let length = enc[1].storage.first else {
            throw ReferenceError("encoder returned \(enc.map(\.shape)), expected (f_proj [1, T, \(jointHidden)], length [1])")
        }
        let tEnc = lap()
        let frames = min(Int(length), enc[0].shape[1])
        let fProj = enc[0]
        var h = HostTensor(dtype: .f32, shape: [layers, 1, predHidden], repeating: 0), c = h
        var (g, h2, c2) = try predict(blankID, h, c)
        h = h2; c = c2
        var tokens: [Int] = [], at: [Int] = [], lasting: [Int] = []
        var t = 0, symbols = 0
        while t < frames {
            let row = Array(fProj.storage[(t * jointHidden)..<((t + 1) * jointHidden)])
            let out = try joint.run([HostTensor(dtype: fProj.dtype, shape: [1, 1, jointHidden], storage: row), g])
            guard out.count == 2, let k = out[0].storage.first.map(Int.init), let d = out[1].storage.first.map(Int.init),
                  k >= 0, k <= blankID, d >= 0, d < durations.count else {
                throw ReferenceError("joint returned \(out.map(\.storage)), expected a token id in 0…\(blankID) and a duration index in 0..<\(durations.count)")
            }
            let duration = durations[d]
            if k == blankID {
                t += max(duration, 1)
                symbols = 0
                continue
            }
            tokens.append(k); at.append(t); lasting.append(duration)
            (g, h2, c2) = try predict(k, h, c)
            h = h2; c = c2
            t += duration
            if duration == 0 {
                symbols += 1
                if symbols >= maxSymbolsPerFrame { t += 1; symbols = 0 }
            } else {
                symbols = 0
            }
        }
        let tDec = lap()
        return Result(tokens: tokens, frames: at, durations: lasting, words: words(tokens, at, lasting),
                      text: vocabulary.decode(tokens), encoderFrames: frames, seconds: (tPre, tEnc, tDec))
    }

    /// Words as NeMo's TDT timestamps give them: a word starts at a token whose piece begins with `▁` (or the first
    /// token); it starts at its first token's frame and ends at its last token's frame + that token's duration.
    public func words(_ tokens: [Int], _ frames: [Int], _ durations: [Int]) -> [Word] {
        var out: [Word] = []
        var group: [Int] = []
        func close() {
            guard let first = group.first, let last = group.last else { return }
            let text = vocabulary.decode(group.map { tokens[$0] }).trimmingCharacters(in: .whitespaces)
            let s = frames[first], e = frames[last] + durations[last]
            if !text.isEmpty { out.append(Word(text: text, startFrame: s, endFrame: e, start: Double(s) * frameSeconds, end: Double(e) * frameSeconds)) }
            group = []
        }
        for i in tokens.indices {
            if vocabulary.startsWord(tokens[i]) { close() }
            group.append(i)
        }
        close()
        return out
    }
}
