import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The check WhisperZooTests and WhisperRealModelTests share, on a folder written by tools/zoo/whisper_capture.py:
/// every recorded call of every program (export_whisper's encoder.pte / cross_kv.pte / decoder.pte, or the methods
/// of optimum's model.pte) runs on the compiled engine after the default pipeline, one loaded program per program so
/// the decoder's KV cache carries over; every output is within `tolerance` × max |expected| of eager's; the
/// decoder's argmax after each call is eager's greedy token (a step whose eager top-2 margin is within twice the
/// bound is a tie: the comparison ends there); no op on the reference executor, no call falling back, no attention
/// remarked unfused, and `decoderAttentionKernels` rope_attention kernels in the decoder (attention fused with its
/// cache writes: one per layer, two where the cross K/V are a cache too).
/// An input file absent at a later call is the previous call's (the capture writes unchanged inputs once).
func assertWhisperProgramsMatchEager(_ dir: URL, name: String, tolerance tol: Double, decoderAttentionKernels: Int) throws {
    struct Step: Decodable { var argmax: Int; var top2_margin: Double }
    struct Program: Decodable { var steps: Int; var greedy: [Int]?; var greedy_steps: [Step]?; var prompt_calls: Int? }
    struct Reference: Decodable { var programs: [String: Program] }
    let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("whisper_reference.json")))
    for (program, info) in reference.programs.sorted(by: { $0.key < $1.key }) {
        let own = dir.appendingPathComponent("\(program).pte")
        let file = FileManager.default.fileExists(atPath: own.path) ? own : dir.appendingPathComponent("model.pte")
        let what = "\(name)/\(program)"
        let loaded = try ProgramLoader.load(file.path, method: file == own ? nil : program, engine: .jit, mlxcVersion: "test",
                                            passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
        let refDir = dir.appendingPathComponent("ref/\(program)")
        var argmaxes: [Int] = [], scales: [Double] = [], inputs: [HostTensor] = []
        for k in 0..<info.steps {
            for (i, id) in loaded.graph.inputs.enumerated() {
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
            // The argmax after the prompt's last call, then after each greedy token, is eager's next token.
            for (i, want) in greedy.enumerated() where argmaxes[first - 1 + i] != want {
                XCTAssertLessThanOrEqual(steps[i].top2_margin, 2 * tol * scales[first - 1 + i],
                                         "\(what) greedy step \(i): \(argmaxes[first - 1 + i]) vs eager \(want)")
                break
            }
        }
        guard let jit = loaded.executor as? JITProgram else { XCTFail("\(what): not compiled"); continue }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference")
        XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(what): ops on the reference executor")
        XCTAssertEqual(jit.fusionRemarks.filter { $0.contains("sdpa") }, [], "\(what): attention left unfused")
        if program.hasSuffix("decoder") {
            XCTAssertEqual(jit.fusionStats.fusions.ropeAttention, decoderAttentionKernels, "\(what): fused attention over the caches")
        }
    }
}
