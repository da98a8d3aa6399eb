import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Whisper's programs as ExecuTorch's scripts write them (tools/zoo/whisper_entries.py: export_whisper's encoder,
/// cross_kv and decoder programs in fp32, bf16 and fp32 with 4-bit linears; optimum-executorch's asr task, one
/// program with methods encoder / text_decoder), committed with eager PyTorch's calls under Fixtures/zoo/whisper_*:
/// a fixed mel → the encoder → the cross-KV program → the decoder fed Whisper's prompt and then eager's greedy tokens,
/// one call each (the decoder's KV cache carried between calls). Every call runs on the compiled engine (default
/// pipeline) and every output matches eager within the repo's tolerance (fp32 and 4-bit weights 1e-4 × max |expected|,
/// bf16 2.5e-2); the decoder's argmax after each call is eager's greedy token (a step whose eager top-2 margin is
/// within the tolerance is a tie); no op on the reference executor, no call falling back, and one rope_attention per
/// decoder layer (self-attention fused with its KV-cache writes).
final class WhisperZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Entry: Decodable { var name: String; var dtype: String; var command: String; var layers: Int }
    struct Step: Decodable { var argmax: Int; var top2_margin: Double }
    struct Program: Decodable { var steps: Int; var layers: Int?; var greedy: [Int]?; var greedy_steps: [Step]?; var prompt_calls: Int? }
    struct Reference: Decodable { var programs: [String: Program] }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/whisper_reference.json").path) }
    }

    func testWhisperFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(Self.entries.count, 3, "whisper zoo fixtures missing under \(Self.root.path)")
    }

    func testEveryProgramMatchesEagerFullyFused() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let entry = try JSONDecoder().decode(Entry.self, from: Data(contentsOf: dir.appendingPathComponent("entry.json")))
            let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("whisper_reference.json")))
            let tol = entry.dtype == "bf16" ? 2.5e-2 : 1e-4
            for (program, info) in reference.programs.sorted(by: { $0.key < $1.key }) {
                let own = dir.appendingPathComponent("\(program).pte")
                let file = FileManager.default.fileExists(atPath: own.path) ? own : dir.appendingPathComponent("model.pte")
                let method = file == own ? nil : program
                let what = "\(name)/\(program)"
                let loaded = try ProgramLoader.load(file.path, method: method, engine: .jit, mlxcVersion: "test",
                                                    passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
                let refDir = dir.appendingPathComponent("ref/\(program)")
                var argmaxes: [Int] = [], scales: [Double] = []
                var inputs: [HostTensor] = []
                for k in 0..<info.steps {
                    for (i, id) in loaded.graph.inputs.enumerated() {
                        // An input stored only at an earlier call is unchanged since (the cross K/V: `zoo whisper commit`
                        // keeps one copy).
                        let f = refDir.appendingPathComponent("step\(k).input\(i).npy").path
                        guard FileManager.default.fileExists(atPath: f) else {
                            XCTAssertGreaterThan(inputs.count, i, "\(what) call \(k): no input \(i)")
                            continue
                        }
                        var t = try TensorFiles.readNPY(f)
                        // .npy has no bf16: a bf16 program's inputs were widened exactly by the capture.
                        if let want = loaded.graph[id].type?.dtype, want != t.dtype, want.isFloatingPoint, t.dtype.isFloatingPoint {
                            t = t.converted(to: want)
                        }
                        if i < inputs.count { inputs[i] = t } else { inputs.append(t) }
                    }
                    let outputs = try loaded.executor.run(inputs)
                    for j in 0... {
                        let f = refDir.appendingPathComponent("step\(k).output\(j).npy").path
                        guard FileManager.default.fileExists(atPath: f) else { break }
                        let want = try TensorFiles.readNPY(f)
                        guard j < outputs.count else { XCTFail("\(what) call \(k): no output \(j)"); break }
                        XCTAssertEqual(outputs[j].shape, want.shape, "\(what) call \(k) output \(j)")
                        let scale = max(want.storage.map(abs).max() ?? 0, 1e-12)
                        let err = zip(outputs[j].storage, want.storage).map { abs($0 - $1) }.max() ?? .infinity
                        XCTAssertLessThanOrEqual(err, tol * scale, "\(what) call \(k) output \(j): max error \(err), scale \(scale)")
                        if j == 0 { scales.append(scale) }
                    }
                    if info.greedy != nil, let logits = outputs.first?.storage {
                        argmaxes.append(logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) } ?? -1)
                    }
                }
                if let greedy = info.greedy, let steps = info.greedy_steps, let first = info.prompt_calls {
                    // argmax after the prompt's last call, then after each greedy token, is eager's next token.
                    for (i, want) in greedy.enumerated() where argmaxes[first - 1 + i] != want {
                        XCTAssertLessThanOrEqual(steps[i].top2_margin, 2 * tol * scales[first - 1 + i], "\(what) greedy step \(i): \(argmaxes[first - 1 + i]) vs eager \(want)")
                        break
                    }
                }
                guard let jit = loaded.executor as? JITProgram else { XCTFail("\(what): not compiled"); continue }
                XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference")
                XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(what): ops on the reference executor")
                XCTAssertEqual(jit.fusionRemarks.filter { $0.contains("sdpa") }, [], "\(what): attention left unfused")
                if program.hasSuffix("decoder") {
                    XCTAssertEqual(jit.fusionStats.fusions.ropeAttention, entry.layers, "\(what): fused self-attention per decoder layer")
                }
            }
        }
    }
}
