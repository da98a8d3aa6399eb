import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Voxtral as ExecuTorch's own MLX script writes it (tools/zoo/voxtral_entries.py: `export_voxtral_hf`, unchanged, on a
/// tiny VoxtralConfig checkpoint with a real Tekken tokenizer), committed with eager PyTorch's calls under
/// Fixtures/zoo/voxtral_*: the preprocessor's mel of audio.wav → audio_encoder → token_embedding of
/// apply_transcription_request's prompt with the audio embeddings written over the [AUDIO] rows → text_decoder prefill,
/// then eager's greedy tokens one call each (token_embedding per token, the KV cache carried between calls).
/// Every call of every model.pte method runs compiled (default pipeline) within the repo's tolerance of eager
/// (fp32 and 4-bit weights 1e-4 × max |expected|, bf16 2.5e-2), the decoder's argmax after each call is eager's
/// greedy token, nothing runs on the reference executor, one rope_attention per decoder layer. Two stated reductions
/// keep the fixture small (fixture.json): the encoder's input is stored as the frames the audio reaches plus the one
/// value every later frame holds, and the prefill logits as their last row.
/// preprocessor.pte (the mel front end) runs compiled too and gives eager's mel. Then the pipeline: VoxtralTranscriber (mlxc's log-mel, the prompt, splice, greedy) on audio.wav gives eager's
/// tokens, and its log-mel is the preprocessor's eager mel within 1e-4 × max.
final class VoxtralZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Entry: Decodable { var name: String; var dtype: String; var layers: Int; var decoder_rope_attention: Int }
    struct Method: Decodable { var steps: Int }
    struct Reference: Decodable {
        var methods: [String: Method]; var prompt: [Int]; var greedy: [Int]; var top2_margins: [Double]; var samples: Int
    }
    struct Fixture: Decodable { var mel_shape: [Int]; var mel_head_frames: Int; var mel_tail_value: Double? }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/voxtral_reference.json").path) }
    }

    func testVoxtralFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(Self.entries.count, 1, "voxtral zoo fixtures missing under \(Self.root.path)")
    }

    /// The audio encoder's eager input, rebuilt from the fixture's head frames and tail value.
    static func mel(_ dir: URL) throws -> HostTensor {
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: dir.appendingPathComponent("fixture.json")))
        let head = try TensorFiles.readNPY(dir.appendingPathComponent("ref/audio_encoder/mel_head.npy").path)
        let frames = fx.mel_shape[2], h = fx.mel_head_frames
        var out = HostTensor(dtype: .f32, shape: fx.mel_shape, repeating: fx.mel_tail_value ?? 0)
        for row in 0..<(fx.mel_shape[0] * fx.mel_shape[1]) {
            for t in 0..<h { out.storage[row * frames + t] = head.storage[row * h + t] }
        }
        return out
    }

    static func inputs(_ dir: URL, _ method: String, step k: Int, count: Int) throws -> [HostTensor] {
        if method == "audio_encoder" && k == 0 { return [try mel(dir)] }
        return try (0..<count).map { try TensorFiles.readNPY(dir.appendingPathComponent("ref/\(method)/step\(k).input\($0).npy").path) }
    }

    func testEveryMethodMatchesEagerFullyFused() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let entry = try JSONDecoder().decode(Entry.self, from: Data(contentsOf: dir.appendingPathComponent("entry.json")))
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("voxtral_reference.json")))
            let tol = entry.dtype == "bf16" ? 2.5e-2 : 1e-4
            for method in VoxtralFiles.methods {
                let what = "\(name)/\(method)"
                let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, method: method, engine: .jit,
                                                    mlxcVersion: "test", passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
                guard let steps = ref.methods[method]?.steps else { XCTFail("\(what): no reference"); continue }
                var argmaxes: [Int] = [], scales: [Double] = []
                for k in 0..<steps {
                    var inputs = try Self.inputs(dir, method, step: k, count: loaded.graph.inputs.count)
                    for (i, id) in loaded.graph.inputs.enumerated() {
                        if let want = loaded.graph[id].type?.dtype, want != inputs[i].dtype, want.isFloatingPoint, inputs[i].dtype.isFloatingPoint {
                            inputs[i] = inputs[i].converted(to: want)
                        }
                    }
                    var got = try loaded.executor.run(inputs)[0]
                    let base = dir.appendingPathComponent("ref/\(method)/step\(k).output0").path
                    let lastOnly = !FileManager.default.fileExists(atPath: base + ".npy")
                    let want = try TensorFiles.readNPY(base + (lastOnly ? ".last.npy" : ".npy"))
                    if lastOnly {   // the prefill's logits: their last row
                        let v = got.shape[2]
                        got = HostTensor(dtype: got.dtype, shape: [1, 1, v], storage: Array(got.storage.suffix(v)))
                    }
                    XCTAssertEqual(got.shape, want.shape, "\(what) call \(k)")
                    let scale = max(want.storage.map(abs).max() ?? 0, 1e-12)
                    let err = zip(got.storage, want.storage).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThanOrEqual(err, tol * scale, "\(what) call \(k): max error \(err), scale \(scale)")
                    if method == "text_decoder" {
                        let last = got.storage.suffix(got.shape[2])
                        argmaxes.append(last.indices.max { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }! - last.startIndex)
                        scales.append(scale)
                    }
                }
                if method == "text_decoder" {
                    for (i, want) in ref.greedy.enumerated() where argmaxes[i] != want {
                        XCTAssertLessThanOrEqual(ref.top2_margins[i], 2 * tol * scales[i], "\(what) greedy step \(i): \(argmaxes[i]) vs eager \(want)")
                        break
                    }
                }
                guard let jit = loaded.executor as? JITProgram else { XCTFail("\(what): not compiled"); continue }
                XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference")
                XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(what): ops on the reference executor")
                if method == "text_decoder" {
                    XCTAssertEqual(jit.fusionStats.fusions.ropeAttention, entry.decoder_rope_attention, "\(what): rope_attention per layer")
                }
            }
        }
    }

    /// preprocessor.pte (ExecuTorch's export_processor: STFT as portable unfold/_fft_r2c/abs around three MLX
    /// delegates) compiled with nothing on the reference: its mel of the clip is eager's (the encoder's input).
    func testPreprocessorMatchesEagerFullyCompiled() throws {
        var seen = Set<Data>()   // the entries share one preprocessor program: run each distinct one once
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard seen.insert(try Data(contentsOf: dir.appendingPathComponent("preprocessor.pte"))).inserted else { continue }
            let loaded = try ProgramLoader.load(dir.appendingPathComponent("preprocessor.pte").path, engine: .jit, mlxcVersion: "test",
                                                passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
            let wave = try TensorFiles.readNPY(dir.appendingPathComponent("ref/preprocessor/step0.input0.npy").path)
            let got = try loaded.executor.run([wave])[0]
            let want = try Self.mel(dir)
            XCTAssertEqual(got.shape, want.shape, name)
            let scale = want.storage.map(abs).max()!
            let err = zip(got.storage, want.storage).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(name)/preprocessor: max error \(err), scale \(scale)")
            guard let jit = loaded.executor as? JITProgram else { XCTFail("\(name)/preprocessor: not compiled"); continue }
            XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(name)/preprocessor: ops on the reference executor")
            XCTAssertEqual(jit.runtimeFallbacks, [:], "\(name)/preprocessor: calls left to the reference")
        }
    }

    func testTranscriberGivesEagerTokens() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let entry = try JSONDecoder().decode(Entry.self, from: Data(contentsOf: dir.appendingPathComponent("entry.json")))
            guard entry.dtype != "bf16" else { continue }   // bf16 logits: ties within rounding are not eager's to decide
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("voxtral_reference.json")))
            let files = try VoxtralFiles(folder: dir.path)
            let transcriber = try VoxtralTranscriber(files: files) { path, method in
                let l = try ProgramLoader.load(path, method: method, engine: .jit, mlxcVersion: "test")
                return (l.executor, l.graph)
            }
            let clip = try AudioLoader.load(path: dir.appendingPathComponent("audio.wav").path, raw: nil)
            XCTAssertEqual(clip.samples.count, ref.samples)
            // mlxc's log-mel = the preprocessor's eager mel (what the encoder was fed).
            let (feats, chunks) = try transcriber.features(clip.samples)
            let want = try Self.mel(dir)
            XCTAssertEqual([chunks, transcriber.melCount, transcriber.framesPerChunk], want.shape)
            let scale = want.storage.map(abs).max()!
            let err = zip(feats, want.storage).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(name): log-mel vs the preprocessor's eager mel")
            var streamed = ""
            let result = try transcriber.transcribe(clip.samples, language: "en", maxNewTokens: ref.greedy.count) { streamed += $0 }
            XCTAssertEqual(result.prompt, ref.prompt, "\(name): the transcription prompt")
            let eos = transcriber.tokenizer.special("</s>")!
            let expected = Array(ref.greedy.prefix { $0 != eos })
            XCTAssertEqual(result.tokens, expected, "\(name): greedy tokens")
            XCTAssertEqual(streamed, result.text)
            XCTAssertEqual(result.text, transcriber.tokenizer.decode(expected))
        }
    }

    /// Audio in a chat prompt (`mlxc run --audio … --prompt …`): the prompt is VoxtralProcessor.apply_chat_template's
    /// for [audio, question] and the greedy reply is transformers' `generate`'s (entries whose capture recorded it).
    func testAudioChatGivesTransformersTokens() throws {
        struct Chat: Decodable { var question: String; var prompt: [Int]; var hf_generate: [Int] }
        struct WithChat: Decodable { var chat: Chat? }
        var checked = 0
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard let chat = try JSONDecoder().decode(WithChat.self, from: Data(contentsOf: dir.appendingPathComponent("voxtral_reference.json"))).chat
            else { continue }
            let transcriber = try VoxtralTranscriber(files: try VoxtralFiles(folder: dir.path)) { path, method in
                let l = try ProgramLoader.load(path, method: method, engine: .jit, mlxcVersion: "test")
                return (l.executor, l.graph)
            }
            let clip = try AudioLoader.load(path: dir.appendingPathComponent("audio.wav").path, raw: nil)
            let result = try transcriber.chat(clip.samples, text: chat.question, maxNewTokens: chat.hf_generate.count)
            XCTAssertEqual(result.prompt, chat.prompt, "\(name): apply_chat_template's prompt")
            let eos = transcriber.tokenizer.special("</s>")!
            XCTAssertEqual(result.tokens, Array(chat.hf_generate.prefix { $0 != eos }), "\(name): greedy reply")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no fixture records a chat reference")
    }

    /// `mlxc transcribe` tells the model.pte folders apart: Voxtral's (tekken.json, or an audio_encoder method) but not
    /// optimum's Whisper model.pte (encoder/text_decoder + tokenizer.json) nor export_whisper's three programs.
    func testVoxtralFoldersAreRecognised() throws {
        for name in Self.entries { XCTAssertTrue(VoxtralFiles.recognises(Self.root.appendingPathComponent(name).path), name) }
        let speech = Self.root.deletingLastPathComponent().appendingPathComponent("speech")
        for other in ["whisper_tiny_xnnpack_fp32", "whisper_tiny_mlx_fp32"] {
            let folder = speech.appendingPathComponent(other).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder), folder)
            XCTAssertFalse(VoxtralFiles.recognises(folder), other)
        }
    }

    /// The Tekken tokenizer encodes the transcription prompt's language tag as mistral_common does (the reference
    /// prompt's tokens between [/INST] and [TRANSCRIBE]).
    func testTekkenEncodesTheLanguageTagAsMistralCommon() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("voxtral_reference.json")))
            let tok = try TekkenTokenizer(path: dir.appendingPathComponent("tekken.json").path)
            let end = ref.prompt.lastIndex(of: tok.special("[/INST]")!)!
            XCTAssertEqual(tok.encode("lang:en"), Array(ref.prompt[(end + 1)..<(ref.prompt.count - 1)]), name)
            XCTAssertEqual(tok.decode(tok.encode("lang:en hello, world")), "lang:en hello, world")
        }
    }

    /// mistral_common's Tekkenizer ids for strings with spaces, tabs, newlines, digits, punctuation, accents, CJK and
    /// emoji (tekken_reference.json, from voxtral_checkpoint.py): the Swift encoder gives the same ids, and decodes
    /// them back to the text.
    func testTekkenMatchesMistralCommon() throws {
        struct Case: Decodable { var text: String; var ids: [Int] }
        struct Cases: Decodable { var cases: [Case] }
        var checked = 0
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let file = dir.appendingPathComponent("tekken_reference.json")
            guard FileManager.default.fileExists(atPath: file.path) else { continue }
            let tok = try TekkenTokenizer(path: dir.appendingPathComponent("tekken.json").path)
            for c in try JSONDecoder().decode(Cases.self, from: Data(contentsOf: file)).cases {
                XCTAssertEqual(tok.encode(c.text), c.ids, "\(name): \(c.text.debugDescription)")
                XCTAssertEqual(tok.decode(c.ids), c.text)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no fixture has tekken_reference.json")
    }
}
