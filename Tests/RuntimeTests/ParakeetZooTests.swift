import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Parakeet TDT as ExecuTorch's own `export_parakeet_tdt.py` writes it (tools/zoo/parakeet_entries.py: the script
/// unchanged, on a tiny random-weight FastConformer-TDT built from NeMo's config), committed with eager PyTorch's calls
/// under Fixtures/zoo/parakeet_*: audio.wav's samples → preprocessor → encoder → the script's greedy TDT loop on the
/// eager modules (decoder_step and joint, one call each; parakeet_xnnpack_fp32 — the script's --backend xnnpack, its
/// convolutions XNNConv2d/XNNDepthwiseConv2d — keeps the first 3 of those calls, for size). Every call of every method runs compiled (default
/// pipeline) within 1e-4 × max |expected| of eager (integer outputs — lengths, the joint's token and duration
/// indices — exactly), nothing on the reference executor (fallback_ops 0, the encoder's conv2d included). Then the pipeline: ParakeetTranscriber on the same samples gives eager's tokens, frames and
/// durations (= NeMo's greedy TDT, recorded beside them), and words whose frames are NeMo's word offsets (within one
/// encoder frame), monotonic.
final class ParakeetZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Method: Decodable { var steps: Int }
    struct Decode: Decodable { var tokens: [Int]; var frames: [Int]; var durations: [Int] }
    struct NemoWord: Decodable { var word: String?; var start_offset: Int; var end_offset: Int }
    struct Nemo: Decodable { var tokens: [Int]; var frames: [Int]; var durations: [Int]; var words: [NemoWord]; var text: String }
    struct Decodes: Decodable { var script_loop: Decode; var nemo: Nemo }
    struct Reference: Decodable { var methods: [String: Method]; var decode: Decodes }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/parakeet_reference.json").path) }
    }

    static func reference(_ dir: URL) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("parakeet_reference.json")))
    }

    func testParakeetFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(Self.entries.count, 1, "parakeet zoo fixtures missing under \(Self.root.path)")
    }

    func testEveryMethodMatchesEager() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let ref = try Self.reference(dir)
            for method in ParakeetFiles.methods {
                let what = "\(name)/\(method)"
                let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, method: method, engine: .jit,
                                                    mlxcVersion: "test", passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
                let steps = try XCTUnwrap(ref.methods[method]?.steps, what)
                var worst = 0.0
                for k in 0..<steps {
                    let inputs = try (0..<loaded.graph.inputs.count).map {
                        try TensorFiles.readNPY(dir.appendingPathComponent("ref/\(method)/step\(k).input\($0).npy").path)
                    }
                    let got = try loaded.executor.run(inputs)
                    for j in got.indices {
                        let want = try TensorFiles.readNPY(dir.appendingPathComponent("ref/\(method)/step\(k).output\(j).npy").path)
                        XCTAssertEqual(got[j].shape, want.shape, "\(what) call \(k) output \(j)")
                        guard got[j].shape == want.shape else { continue }
                        if !want.dtype.isFloatingPoint {
                            XCTAssertEqual(got[j].storage, want.storage, "\(what) call \(k) output \(j)")
                            continue
                        }
                        let scale = max(want.storage.map(abs).max() ?? 0, 1e-30)
                        let err = zip(got[j].storage, want.storage).map { abs($0 - $1) }.max() ?? 0
                        worst = max(worst, err / scale)
                    }
                }
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(what): worst |got − eager| / max |eager| over \(steps) calls")
                // Fully compiled, the encoder's dw_striding subsampling too: its 2-D convolutions on the conv2d kernel
                // (ATen's weight transposes, XNNPACK's depthwise filter orientation read through strides).
                let jit = try XCTUnwrap(loaded.executor as? JITProgram, what)
                XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(what): ops on the reference executor")
                if method == "encoder" {
                    for kind in ["conv2d_gen_", "conv2d_dw_"] {
                        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(kind) }, "\(what): no \(kind)… kernel (the stem, the depthwise convs)")
                    }
                }
            }
        }
    }

    func testGreedyTDTIsEagerAndWordsAreNeMos() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let ref = try Self.reference(dir)
            let files = try ParakeetFiles(folder: dir.path)
            let transcriber = try ParakeetTranscriber(files: files) { path, method in
                let loaded = try ProgramLoader.load(path, method: method, engine: .jit, mlxcVersion: "test")
                return (loaded.executor, loaded.graph)
            }
            let samples = try TensorFiles.readNPY(dir.appendingPathComponent("ref/preprocessor/step0.input0.npy").path).storage.map(Float.init)
            let result = try transcriber.transcribe(samples)
            let eager = ref.decode.script_loop
            XCTAssertEqual(result.tokens, eager.tokens, name)
            XCTAssertEqual(result.frames, eager.frames, name)
            XCTAssertEqual(result.durations, eager.durations, name)
            // The script's loop on the eager modules is NeMo's own greedy TDT decode.
            XCTAssertEqual(eager.tokens, ref.decode.nemo.tokens)
            XCTAssertEqual(eager.durations, ref.decode.nemo.durations)
            XCTAssertEqual(result.text, ref.decode.nemo.text, name)
            XCTAssertEqual(result.words.count, ref.decode.nemo.words.count, name)
            for (w, n) in zip(result.words, ref.decode.nemo.words) {
                XCTAssertEqual(w.text, n.word, name)
                XCTAssertLessThanOrEqual(abs(w.startFrame - n.start_offset), 1, "\(name): \(w) vs NeMo \(n)")
                XCTAssertLessThanOrEqual(abs(w.endFrame - n.end_offset), 1, "\(name): \(w) vs NeMo \(n)")
            }
            for (a, b) in zip(result.words, result.words.dropFirst()) {
                XCTAssertLessThanOrEqual(a.start, b.start, "\(name): word starts go back")
                XCTAssertLessThanOrEqual(a.start, a.end, "\(name): a word ends before it starts")
            }
            XCTAssertEqual(transcriber.frameSeconds, 0.08, accuracy: 1e-12)
        }
    }
}
