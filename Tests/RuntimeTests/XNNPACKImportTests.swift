import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// XNNPACK-delegated fixtures run as one IR graph: every delegate inlined (no `delegate_call` left),
/// the compiled plan has no op on the reference executor, and each call reproduces both eager PyTorch
/// (`step<K>.output<J>.npy`) and ExecuTorch's own XNNPACK runtime (`step<K>.et_output<J>.npy`), within
/// 1e-4 × max |expected|. llama_xnnpack_fp32: measured ≤ 4.2e-7 against both (only summation order
/// differs). mlp_xnnpack_8da4w: `output` is ExecuTorch's runtime (measured 4.5e-8 on the reference, 0 compiled:
/// its quantized linears are `dynamic_quant_linear`, XNNPACK's int8 × int4 arithmetic); eager torchao
/// (`eager_output`) differs from both by 1.4e-3 — its weight scales are f32, XNNPACK's bf16 — and is
/// held to 1e-2.
final class XNNPACKImportTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Self.root.path)) ?? []).filter { $0.contains("xnnpack") }.sorted()
    }

    func testEveryDelegateIsInlinedAndCompiledWithoutFallback() throws {
        XCTAssertFalse(fixtures.isEmpty)
        for name in fixtures {
            let pte = try PTEFile(path: Self.root.appendingPathComponent("\(name)/model.pte").path)
            let graph = try Importer.importMethod(pte).graph
            try Verifier.verify(graph)
            XCTAssertNil(graph.opHistogram["delegate_call"], name)
            let jit = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
            XCTAssertEqual(jit.fusionStats.fallbackOps, 0, name)
        }
    }

    /// Every quantized fully connected node of the 8da4w fixture reads a per-row qdint8 Convert and is imported
    /// as the integer-exact `dynamic_quant_linear` (none left to the float emulation's quantized_matmul).
    func testDynamicallyQuantizedLinearsAreIntegerOps() throws {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("mlp_xnnpack_8da4w/model.pte").path)
        let graph = try ProgramLoader.prepare(pte, method: nil)
        XCTAssertGreaterThan(graph.opHistogram["dynamic_quant_linear"] ?? 0, 0)
        XCTAssertNil(graph.opHistogram["quantized_matmul"])
        XCTAssertNil(graph.opHistogram["fused_quantized_linear"])
        XCTAssertNil(graph.opHistogram["round"], "the float emulation's rounding is left after dead-code elimination")
    }

    func testOutputsMatchEagerAndExecuTorch() throws {
        for name in fixtures {
            let dir = Self.root.appendingPathComponent(name)
            let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
            let engines: [any ProgramExecutor] = [
                try ReferenceExecutor(graph: try Importer.importMethod(pte).graph, pte: pte),
                try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte),
            ]
            for executor in engines {
                for k in 0... {
                    let first = dir.appendingPathComponent("step\(k).input0.npy").path
                    guard FileManager.default.fileExists(atPath: first) else { break }
                    let inputs = try (0...).lazy.map { dir.appendingPathComponent("step\(k).input\($0).npy").path }
                        .prefix { FileManager.default.fileExists(atPath: $0) }.map { try TensorFiles.readNPY($0) }
                    let outputs = try executor.run(Array(inputs))
                    for (j, out) in outputs.enumerated() {
                        for (file, tolerance) in [("output", 1e-4), ("et_output", 1e-4), ("eager_output", 1e-2)] {
                            let path = dir.appendingPathComponent("step\(k).\(file)\(j).npy").path
                            guard FileManager.default.fileExists(atPath: path) else { continue }
                            let expected = try TensorFiles.readNPY(path)
                            XCTAssertEqual(out.shape, expected.shape, "\(name) step \(k) \(file)\(j)")
                            let scale = max(expected.storage.map(abs).max() ?? 0, 1e-12)
                            let err = zip(out.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
                            XCTAssertLessThanOrEqual(err, tolerance * scale, "\(name) \(type(of: executor)) step \(k) \(file)\(j)")
                        }
                    }
                }
            }
        }
    }
}
