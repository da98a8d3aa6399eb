import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Every committed fixture, run call by call on one loaded program (state carries over), must
/// reproduce eager PyTorch's outputs within the tolerance of its dtype:
/// - fp32 (also 4/8-bit weights with fp32 activations: the weights are dequantized exactly, so the
///   only difference is summation order): max |error| ≤ 1e-4 × max |expected|.
/// - bf16: PyTorch rounds every op's result to bf16 (8 significant bits, relative step 2⁻⁸ ≈ 0.4%),
///   and so does the reference, but from Double intermediates rather than fp32 ones; rounding flips
///   compound over the layers, so the bound is 2.5e-2 × max |expected| (measured worst: 1.6e-2, whisper bf16).
final class FixtureOutputsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Outcome { var name: String; var worst: Double; var tolerance: Double }

    func tolerance(_ meta: [String: Any]) -> Double {
        (meta["dtype"] as? String) == "bf16" ? 2.5e-2 : 1e-4
    }

    enum Engine { case reference, jit }

    func run(fixture name: String, engine: Engine = .reference) throws -> Outcome {
        let dir = Self.root.appendingPathComponent(name)
        let meta = (try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as? [String: Any]) ?? [:]
        let ptd = dir.appendingPathComponent("model.ptd").path
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path,
                              externalData: FileManager.default.fileExists(atPath: ptd) ? [ptd] : [])
        // The reference runs the graph as imported; the compiled engine runs it after the default
        // pipeline (canonicalization and fusion), as `mlxc run --jit` does.
        let graph = try Importer.importMethod(pte).graph
        let executor: any ProgramExecutor = engine == .reference
            ? try ReferenceExecutor(graph: graph, pte: pte)
            : try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
        let steps = (meta["steps"] as? Int) ?? 1
        let tol = tolerance(meta)
        var worst = 0.0
        for k in 0..<steps {
            var inputs: [HostTensor] = []
            for i in 0... {
                let path = dir.appendingPathComponent("step\(k).input\(i).npy").path
                guard FileManager.default.fileExists(atPath: path) else { break }
                var t = try TensorFiles.readNPY(path)
                if let want = graph[graph.inputs[i]].type?.dtype, want != t.dtype, want.isFloatingPoint { t = t.converted(to: want) }
                inputs.append(t)
            }
            let outputs = try executor.run(inputs)
            for (j, out) in outputs.enumerated() {
                let expected = try TensorFiles.readNPY(dir.appendingPathComponent("step\(k).output\(j).npy").path)
                XCTAssertEqual(out.shape, expected.shape, "\(name) step \(k) output \(j)")
                guard out.shape == expected.shape else { continue }
                let scale = max(expected.storage.map(abs).max() ?? 0, 1e-12)
                let err = zip(out.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
                worst = max(worst, err / scale)
                XCTAssertLessThanOrEqual(err, tol * scale, "\(name) step \(k) output \(j): max error \(err), scale \(scale)")
                // Plain programs also carry ExecuTorch's own runtime outputs (for weight-only quantized
                // ones: its run of the dequantized twin, see meta.json notes): held to the same bound.
                let etPath = dir.appendingPathComponent("step\(k).et_output\(j).npy").path
                if FileManager.default.fileExists(atPath: etPath) {
                    let et = try TensorFiles.readNPY(etPath)
                    XCTAssertEqual(out.shape, et.shape, "\(name) step \(k) et_output \(j)")
                    guard out.shape == et.shape else { continue }
                    let etErr = zip(out.storage, et.storage).map { abs($0 - $1) }.max() ?? 0
                    worst = max(worst, etErr / scale)
                    XCTAssertLessThanOrEqual(etErr, tol * scale, "\(name) step \(k) vs ExecuTorch's output \(j): max error \(etErr)")
                }
            }
        }
        // Every call ran on the kernels the plan chose: none fell back to the reference at run time.
        if let jit = executor as? JITProgram { XCTAssertEqual(jit.runtimeFallbacks, [:], "\(name): calls left to the reference") }
        return Outcome(name: name, worst: worst, tolerance: tol)
    }

    func testFixturesReproduceEagerPyTorch() throws { try runAll(.reference) }

    /// The compiled program (LLVM kernels plus reference fallback) is held to the same tolerances.
    func testCompiledFixturesReproduceEagerPyTorch() throws { try runAll(.jit) }

    func runAll(_ engine: Engine) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.root.path).sorted()
            .filter { FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("\($0)/step0.output0.npy").path) }
        XCTAssertGreaterThanOrEqual(names.count, 15)
        var report: [String] = []
        for name in names {
            do {
                let o = try run(fixture: name, engine: engine)
                report.append("\(name): worst relative error \(o.worst) (tolerance \(o.tolerance))")
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
        print(report.joined(separator: "\n"))
    }
}
