import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Small plain programs exported by ExecuTorch 1.5.1 with the ops LLM exports emit that the fixtures
/// lack (`tools/python/export_op_programs.py`, `Tests/Fixtures/ops/`): the dim-order ops
/// (`.contiguous()`, `.to(dtype)`, `.clone()`; dim-order ops are ExecuTorch's default), fmod of
/// int64 positions by a scalar (negative dividends and divisors), split with
/// sizes, `max.dim_max` and `amax`, the fused-QKV split of a linear, addmm with a bias and
/// alpha/beta ≠ 1, `x @ W` with W [K, N], nn.Linear on a batched x [1, T, K], and the quantized
/// embeddings (`embedding_byte` / `embedding_4bit`, f32 and bf16 rows), and etLLM's `llama::gated_delta_rule`.
///
/// Each runs on the reference (as imported) and compiled after the default pipeline, held to eager
/// PyTorch's outputs: f32 within 1e-5 × max |expected| (summation order), bf16-rounded values exactly
/// (the ops round the same f32 products), indices exactly; compiled, no op may be left to the
/// reference. A permuted dim order (channels-last) is refused with one line naming the op.
final class OpProgramTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ops")

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("\(name).pte").path)
        let graph = try Importer.importMethod(pte).graph
        var inputs: [HostTensor] = []
        for i in 0... {
            let path = Self.root.appendingPathComponent("\(name).input\(i).npy").path
            guard FileManager.default.fileExists(atPath: path) else { break }
            inputs.append(try TensorFiles.readNPY(path))
        }
        let jit = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
        XCTAssertEqual(jit.remarks, [], "\(name): ops left to the reference", file: file, line: line)
        for (engine, executor) in [("reference", try ReferenceExecutor(graph: graph, pte: pte) as any ProgramExecutor), ("compiled", jit)] {
            let outputs = try executor.run(inputs)
            for (j, out) in outputs.enumerated() {
                let expected = try TensorFiles.readNPY(Self.root.appendingPathComponent("\(name).output\(j).npy").path)
                XCTAssertEqual(out.shape, expected.shape, "\(name) \(engine) output \(j)", file: file, line: line)
                guard out.shape == expected.shape else { continue }
                let scale = max(expected.storage.map(abs).max() ?? 0, 1e-12)
                let err = zip(out.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
                let tolerance = out.dtype == .f32 ? 1e-5 * scale : 0
                XCTAssertLessThanOrEqual(err, tolerance, "\(name) \(engine) output \(j) (\(out.dtype.name) \(out.shape))", file: file, line: line)
            }
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(name): calls left to the reference", file: file, line: line)
    }

    func testDimOrderOps() throws { try check("dim_order_ops") }
    func testSplitAndMax() throws { try check("split_max") }
    func testAddmmForms() throws { try check("addmm_forms") }
    func testFmodOfIntegers() throws { try check("fmod") }
    /// `--qembedding 8w|4w`'s host op: embedding_byte with one scale per row (f32 and bf16 rows),
    /// per-group scales with zero points, embedding_4bit with bf16 scales; compiled to one
    /// quantized_embedding kernel each (bf16: eager rounds the same f32 product once, so exact).
    func testQuantizedEmbeddings() throws {
        try check("quantized_embedding")
        let pte = try PTEFile(path: Self.root.appendingPathComponent("quantized_embedding.pte").path)
        let jit = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
        XCTAssertEqual(jit.kernelNames.filter { $0.hasPrefix("quantized_embedding_") }.count, 4, "\(jit.kernelNames)")
    }

    /// etLLM's `llama::gated_delta_rule` alone (heads first, state [B, H, Dk, Dv], Dk 32 ≠ Dv 16, T = 35, 3 heads,
    /// a random initial state), on mlxc's native gated_delta_rule: y and the final state within 1e-5 of the op's
    /// own CPU kernel (eager), reference and compiled — one kernel reading the operands and the state in etLLM's
    /// layout (`heads_first`), no transposes around it.
    func testLlamaGatedDeltaRule() throws {
        try check("gated_delta_rule")
        let pte = try PTEFile(path: Self.root.appendingPathComponent("gated_delta_rule.pte").path)
        let jit = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
        XCTAssertEqual(jit.kernelNames.count, 1, "\(jit.kernelNames)")
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("gated_delta_rule_hf_f32_dk32") }, "\(jit.kernelNames)")
    }

    /// A per-channel decay [B, H, T, Dk] (the channelwise form, which the native op has no kernel for) is refused
    /// with one line naming the op and the decay.
    func testChannelwiseGatedDeltaDecayIsRefusedByName() throws {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("gated_delta_rule_channelwise.pte").path)
        XCTAssertThrowsError(try Importer.importMethod(pte)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("llama::gated_delta_rule") && message.contains("per-channel decay"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    func testPermutedDimOrderIsRefusedByName() throws {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("dim_order_channels_last.pte").path)
        XCTAssertThrowsError(try Importer.importMethod(pte)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("dim_order_ops::_clone_dim_order.out") && message.contains("[0, 2, 3, 1]"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }
}
