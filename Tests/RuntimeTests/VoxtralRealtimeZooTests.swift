import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Voxtral Realtime as ExecuTorch's own script writes it (tools/zoo/voxtral_rt_entries.py: `export_voxtral_rt.py
/// --backend mlx --streaming`, unchanged, on a tiny consolidated checkpoint with a Tekken tokenizer), committed with
/// eager PyTorch's calls chained as ExecuTorch's StreamingSession runs them on LibriVox clip 0880 (44 steps of 80 ms:
/// 37 while the clip lasts, 7 of the flush): per step the streaming preprocessor's mel of a 1640-sample window,
/// encode_audio_chunk (conv states and the encoder's ring KV cache carried; --max-enc-len 32 makes the ring wrap
/// after 16 steps), token_embedding of the previous token, text_decoder at the step's position, greedy.
/// Every call of every method runs compiled within 1e-4 × max |eager| (fp32 and 4-bit weights), nothing on the
/// reference executor, attention fused; mlxc's log-mel of each window is eager's mel chunk; VoxtralRealtimeStream
/// (mlxc's mel, the step protocol, the flush) gives eager's tokens however the audio is cut into pieces.
final class VoxtralRealtimeZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Entry: Decodable { var name: String; var dtype: String; var methods: [String]; var decoder_layers: Int; var streaming: Bool }
    struct Reference: Decodable {
        var mode: String; var tokens: [Int]; var eos: Bool; var samples: Int; var calls: [String: Int]
        var steps: Int?; var max_new_tokens: Int?; var audio_positions: Int?
    }
    struct Fixture: Decodable { var mel_shape: [Int]; var mel_head_frames: Int; var mel_tail_value: Double? }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/voxtral_rt_reference.json").path) }
    }

    static func load<T: Decodable>(_ type: T.Type, _ dir: URL, _ file: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: dir.appendingPathComponent(file)))
    }

    static func npy(_ dir: URL, _ method: String, _ name: String) throws -> HostTensor {
        try TensorFiles.readNPY(dir.appendingPathComponent("ref/\(method)/\(name).npy").path)
    }

    /// The offline audio encoder's eager input (the 30 s mel), rebuilt from the fixture's head frames and tail value.
    static func offlineMel(_ dir: URL) throws -> HostTensor {
        let fx = try load(Fixture.self, dir, "fixture.json")
        let head = try npy(dir, "audio_encoder", "mel_head")
        let frames = fx.mel_shape[2], h = fx.mel_head_frames
        var out = HostTensor(dtype: .f32, shape: fx.mel_shape, repeating: fx.mel_tail_value ?? 0)
        for row in 0..<(fx.mel_shape[0] * fx.mel_shape[1]) {
            for t in 0..<h { out.storage[row * frames + t] = head.storage[row * h + t] }
        }
        return out
    }

    static func model(_ dir: URL) throws -> VoxtralRealtimeModel {
        try VoxtralRealtimeModel(files: try VoxtralRealtimeFiles(folder: dir.path)) { path, method in
            let l = try ProgramLoader.load(path, method: method, engine: .jit, mlxcVersion: "test")
            return (l.executor, l.graph)
        }
    }

    func testFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(Self.entries.count, 1, "voxtral_rt zoo fixtures missing under \(Self.root.path)")
    }

    func testEveryMethodMatchesEagerFullyFused() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let entry = try Self.load(Entry.self, dir, "entry.json")
            let ref = try Self.load(Reference.self, dir, "voxtral_rt_reference.json")
            let tol = 1e-4
            for method in entry.methods {
                let what = "\(name)/\(method)"
                let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, method: method, engine: .jit,
                                                    mlxcVersion: "test", passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
                // Every recorded call (offline fixtures keep the decoder's first calls: fixture.json).
                let steps = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("ref/\(method)").path)
                    .filter { $0.hasSuffix(".output0.npy") }.count
                XCTAssertEqual(steps, entry.streaming ? ref.calls[method] : min(ref.calls[method] ?? 0, method == "audio_encoder" ? 1 : 24), what)
                for k in 0..<steps {
                    let inputs = method == "audio_encoder" ? [try Self.offlineMel(dir)]
                        : try (0..<loaded.graph.inputs.count).map { try Self.npy(dir, method, "step\(k).input\($0)") }
                    let got = try loaded.executor.run(inputs)[0]
                    let want = try Self.npy(dir, method, "step\(k).output0")
                    XCTAssertEqual(got.shape, want.shape, "\(what) call \(k)")
                    let scale = max(want.storage.map(abs).max() ?? 0, 1e-12)
                    let err = zip(got.storage, want.storage).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThanOrEqual(err, tol * scale, "\(what) call \(k): max error \(err), scale \(scale)")
                    if method == "text_decoder" {
                        let best = got.storage.indices.max { got.storage[$0] < got.storage[$1] || (got.storage[$0] == got.storage[$1] && $0 > $1) }!
                        let eager = k < ref.tokens.count ? ref.tokens[k] : 2
                        XCTAssertEqual(best, eager, "\(what) call \(k): argmax vs eager's greedy token")
                    }
                }
                guard let jit = loaded.executor as? JITProgram else { XCTFail("\(what): not compiled"); continue }
                XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference")
                XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(what): ops on the reference executor")
                if method == "text_decoder" || method == "encode_audio_chunk" {
                    XCTAssertEqual(jit.fusionStats.fusions.ropeAttention, entry.decoder_layers, "\(what): rope_attention per layer")
                }
            }
        }
    }

    /// preprocessor.pte (mel_spectrogram.py --streaming) compiled: eager's mel of the recorded windows; and mlxc's own
    /// log-mel of the same windows too.
    func testPreprocessorAndMLXCLogMelMatchEager() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard try Self.load(Entry.self, dir, "entry.json").streaming else { continue }
            let loaded = try ProgramLoader.load(dir.appendingPathComponent("preprocessor.pte").path, engine: .jit, mlxcVersion: "test",
                                                passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
            let recorded = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("ref/preprocessor").path)
                .filter { $0.hasSuffix(".output0.npy") }.count
            XCTAssertGreaterThan(recorded, 0)
            for k in 0..<recorded {
                let window = try Self.npy(dir, "preprocessor", "step\(k).input0")
                let want = try Self.npy(dir, "preprocessor", "step\(k).output0")
                let got = try loaded.executor.run([window])[0]
                let own = LogMelSpectrogram(melCount: 128).features(window.storage.map(Float.init))
                XCTAssertEqual(got.shape, want.shape)
                XCTAssertEqual([1, 128, own.frames], want.shape)
                let scale = want.storage.map(abs).max()!
                XCTAssertLessThanOrEqual(zip(got.storage, want.storage).map { abs($0 - $1) }.max()!, 1e-4 * scale, "\(name)/preprocessor call \(k)")
                XCTAssertLessThanOrEqual(zip(own.values, want.storage).map { abs(Double($0) - $1) }.max()!, 1e-4 * scale, "\(name): mlxc's log-mel, window \(k)")
            }
            let jit = try XCTUnwrap(loaded.executor as? JITProgram)
            XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(name)/preprocessor: ops on the reference executor")
        }
    }

    /// The runner README's XNNPACK streaming preprocessor (`mel_spectrogram --feature_size 128 --streaming`): XNNPACK
    /// delegates with portable ops between (`aten::log10.out` among them), compiled with nothing on the reference; two
    /// recorded windows (steps 0 and 1 of voxtral_rt_xnnpack_stream_fp32) give eager's mel.
    func testXNNPACKStreamingPreprocessorMatchesEager() throws {
        let dir = Self.root.deletingLastPathComponent().appendingPathComponent("speech/voxtral_rt_preprocessor_xnnpack")
        let loaded = try ProgramLoader.load(dir.appendingPathComponent("preprocessor.pte").path, engine: .jit, mlxcVersion: "test",
                                            passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
        for k in 0..<2 {
            let window = try TensorFiles.readNPY(dir.appendingPathComponent("step\(k).input0.npy").path)
            let want = try TensorFiles.readNPY(dir.appendingPathComponent("step\(k).output0.npy").path)
            let got = try loaded.executor.run([window])[0]
            XCTAssertEqual(got.shape, want.shape)
            let scale = want.storage.map(abs).max()!
            XCTAssertLessThanOrEqual(zip(got.storage, want.storage).map { abs($0 - $1) }.max()!, 1e-4 * scale, "window \(k)")
        }
        let jit = try XCTUnwrap(loaded.executor as? JITProgram)
        XCTAssertEqual(jit.fusionStats.fallbackOps, 0)
        XCTAssertEqual(jit.runtimeFallbacks, [:])
    }

    func clip(_ dir: URL) throws -> [Float] {
        try AudioLoader.load(path: dir.appendingPathComponent("audio.wav").path, raw: nil).samples
    }

    /// Runs a stream over `samples` cut at `cuts` (piece lengths, cycled): tokens, steps.
    func stream(_ m: VoxtralRealtimeModel, _ samples: [Float], cuts: [Int]) throws -> (tokens: [Int], text: String, steps: Int) {
        let s = try VoxtralRealtimeStream(model: m)
        var text = ""
        var at = 0, i = 0
        while at < samples.count {
            let n = min(cuts[i % cuts.count], samples.count - at)
            try s.feed(Array(samples[at..<(at + n)])) { text += $0.text }
            at += n; i += 1
        }
        try s.finish { text += $0.text }
        return (s.tokens, text, s.steps)
    }

    /// mlxc's whole streaming loop (its own log-mel per window, the runner's step protocol and flush) gives eager's
    /// tokens, fed in 80 ms pieces, all at once, or in ragged pieces (1, 333, 2560, 17 samples …).
    func testStreamGivesEagerTokensHoweverTheAudioArrives() throws {
        var checked = 0
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard try Self.load(Entry.self, dir, "entry.json").streaming else { continue }
            let ref = try Self.load(Reference.self, dir, "voxtral_rt_reference.json")
            let m = try Self.model(dir)
            let samples = try clip(dir)
            XCTAssertEqual(samples.count, ref.samples)
            // Every way of cutting on the first streaming entry; 80 ms pieces on the others (the suite's time).
            let patterns = checked == 0 ? [[1280], [samples.count], [1, 333, 2560, 17, 4000]] : [[1280]]
            checked += 1
            for cuts in patterns {
                let r = try stream(m, samples, cuts: cuts)
                XCTAssertEqual(r.tokens, ref.tokens, "\(name), pieces \(cuts)")
                XCTAssertEqual(r.steps, ref.steps, "\(name), pieces \(cuts)")
                XCTAssertEqual(r.text, m.tokenizer.decode(ref.tokens), "\(name), pieces \(cuts)")
            }
        }
    }

    /// A stream that stops mid-step keeps every token its complete steps gave (those steps saw exactly what the whole
    /// clip's steps saw: eager's tokens), then the flush runs the partial step + delay_tokens steps on zeros.
    func testStreamStoppingMidStepKeepsItsTokens() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard try Self.load(Entry.self, dir, "entry.json").streaming else { continue }
            let ref = try Self.load(Reference.self, dir, "voxtral_rt_reference.json")
            let m = try Self.model(dir)
            let cut = 20 * 1280 + 700   // inside step 21
            let r = try stream(m, Array(try clip(dir).prefix(cut)), cuts: [1280])
            let complete = (cut - m.rightLookahead) / m.stepSamples   // steps whose audio and look-ahead had arrived
            XCTAssertEqual(Array(r.tokens.prefix(complete)), Array(ref.tokens.prefix(complete)), name)
            let flushSteps = (cut - complete * m.stepSamples + m.stepSamples - 1) / m.stepSamples + m.delayTokens
            XCTAssertEqual(r.steps, complete + flushSteps, name)
            XCTAssertEqual(r.tokens.count, r.steps, "\(name): no </s> in this clip: one token per step")
        }
    }

    /// An offline export through VoxtralRealtimeOffline (mlxc's 30 s log-mel, audio_encoder, the runner's offline
    /// loop: audio + token embeddings for 375 positions, then 16 on text alone) gives eager's 391 tokens; its
    /// log-mel is the preprocessor's eager mel (the encoder's input) within 1e-4 × max.
    func testOfflineGivesEagerTokens() throws {
        var checked = 0
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            guard !(try Self.load(Entry.self, dir, "entry.json").streaming) else { continue }
            let ref = try Self.load(Reference.self, dir, "voxtral_rt_reference.json")
            let m = try Self.model(dir)
            let samples = try clip(dir)
            var padded = samples + [Float](repeating: 0, count: VoxtralRealtimeOffline.chunkSamples - samples.count)
            padded = Array(padded.prefix(VoxtralRealtimeOffline.chunkSamples))
            let own = LogMelSpectrogram(melCount: m.melCount).features(padded)
            let want = try Self.offlineMel(dir)
            let scale = want.storage.map(abs).max()!
            XCTAssertLessThanOrEqual(zip(own.values, want.storage).map { abs(Double($0) - $1) }.max()!, 1e-4 * scale, "\(name): offline log-mel")
            var streamed = ""
            let r = try VoxtralRealtimeOffline(model: m).transcribe(samples, maxNewTokens: try XCTUnwrap(ref.max_new_tokens)) { streamed += $0 }
            XCTAssertEqual(r.audioPositions, ref.audio_positions, name)
            XCTAssertEqual(r.tokens, ref.tokens, name)
            XCTAssertEqual(streamed, m.tokenizer.decode(ref.tokens), name)
            XCTAssertThrowsError(try VoxtralRealtimeStream(model: m), "\(name): an offline export is no stream")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no offline voxtral_rt fixture")
    }

    func testFoldersAreRecognised() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name).path
            XCTAssertTrue(VoxtralRealtimeFiles.recognises(dir), name)
            let entry = try Self.load(Entry.self, Self.root.appendingPathComponent(name), "entry.json")
            XCTAssertEqual(try VoxtralRealtimeFiles(folder: dir).streaming, entry.streaming, name)
        }
        for other in ["voxtral_mlx_fp32", "parakeet_portable_fp32", "llama_mlx_fp32"] {
            XCTAssertFalse(VoxtralRealtimeFiles.recognises(Self.root.appendingPathComponent(other).path), other)
        }
    }
}
