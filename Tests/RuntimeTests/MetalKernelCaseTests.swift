import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Programs the MLX delegate writes around its Metal kernels (Fixtures/metal_kernels: cases of ExecuTorch's own
/// custom-kernel op tests and of the op suite, with eager PyTorch's outputs), run as `mlxc conformance` runs them:
/// gated_delta_step (GQA bf16, a dynamic T exported at 2 and run at 8, two calls in one program), the rule's
/// ScanNode form (use_custom_kernel=False: GQA 2:8 after a repeat, Dk 16 in bf16; the op suite's projection case:
/// f32 q/k/v/g/beta on a bf16 state), GGUF K-quant linears and embeddings
/// (ET_MLX_EMIT_DIRECT_GGUF's kernels: Q4_K mat-mat, Q5_K mat-vec, Q6_K fp16, a Q5_K embedding), tq_norm,
/// tq_dequant, tq4_compress and the TurboQuant KV caches (compress on write, dequantize for attention) must pass
/// on the reference and compiled with every op on a kernel; so must a kernel with its own source (the op suite's
/// `metal_kernel_1024`, "vadd"), compiled as the Metal subset (MetalSubsetTests has the subset itself).
final class MetalKernelCaseTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/metal_kernels")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/model.pte").path) }
    }

    func testKnownKernelsMatchEagerPyTorch() throws {
        XCTAssertEqual(Self.cases.count, 16, "cases under \(Self.root.path)")
        for name in Self.cases {
            let dir = Self.root.appendingPathComponent(name).path
            XCTAssertEqual(Conformance.run(caseDirectory: dir), .passed, "\(name) on the reference")
            XCTAssertEqual(Conformance.run(caseDirectory: dir, compiled: true), .passed, "\(name) compiled")
            let pte = try PTEFile(path: dir + "/model.pte")
            let jit = try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)
            XCTAssertEqual(jit.remarks, [], "\(name): ops left to the reference")
        }
    }

    /// GGUF linears never materialise an f32 weight: the blocks are repacked at load into affine groups (q4_k 4-bit g32,
    /// q5_k 8-bit g32, q6_k 8-bit g16, f32 scales/biases) and run on the quantized matmul kernels, which decode the
    /// codes in registers (the cases above hold the results to eager PyTorch's).
    func testGGUFLinearsDecodeTheirCodesInRegisters() throws {
        let expected = ["q4_k": "qmm_affine_w4g32_f32params", "q5_k": "qmm_affine_w8g32_f32params", "q6_k": "qmm_affine_w8g16_f32params"]
        let linears = Self.cases.filter { $0.hasPrefix("gguf_linear_") }
        XCTAssertEqual(linears.count, 3)
        for name in linears {
            let type = try XCTUnwrap(expected.keys.first { name.contains($0) }, name)
            let pte = try PTEFile(path: Self.root.appendingPathComponent(name).path + "/model.pte")
            let graph = try Importer.importMethod(pte).graph
            let ops = graph.blocks.flatMap(\.nodes).map(\.op)
            XCTAssertFalse(ops.contains { if case .ggufDequantize = $0 { return true } else { return false } }, "\(name): an f32 weight")
            XCTAssertTrue(ops.contains { if case .ggufPackAffine(let o) = $0 { return o.ggmlType == type } else { return false } }, name)
            let jit = try JITProgram(graph: graph, pte: pte)
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(expected[type]!) }, "\(name): \(jit.kernelNames)")
        }
    }

    /// The op suite's user kernel ("vadd": its own inline source) runs compiled from that source.
    func testAUserKernelRunsCompiledFromItsSource() throws {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("metal_kernel_1024/model.pte").path)
        let jit = try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)
        XCTAssertEqual(jit.kernelNames.count, 1, "\(jit.kernelNames)")
        XCTAssertTrue(jit.kernelNames.allSatisfy { $0.hasPrefix("metal_subset_vadd_") }, "\(jit.kernelNames)")
    }

    /// A GGUF block whose f16 scale is not finite: the load (which dequantizes the weight once) names the row and block.
    func testGGUFBlockWithABadScaleIsNamed() throws {
        let path = Self.root.appendingPathComponent("gguf_linear_q4_k_m8_n512_k512_bf16/model.pte").path
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // Every block of the test's weight starts with d = dmin = f16(7e-4) = 0x11BC; the first is row 0 block 0.
        let pattern: [UInt8] = [0xBC, 0x11, 0xBC, 0x11]
        let at = try XCTUnwrap((0...(bytes.count - 4)).first { i in (0..<4).allSatisfy { bytes[i + $0] == pattern[$0] } })
        bytes[at] = 0x00
        bytes[at + 1] = 0x7C   // +inf
        let pte = try PTEFile(file: MappedFile(bytes: bytes, name: "bad-scale"))
        XCTAssertThrowsError(try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)) { error in
            XCTAssertTrue("\(error)".contains("q4_k weight row 0 block 0: its scale is not finite (f16 bits 0x7c00)"), "\(error)")
        }
    }
}
