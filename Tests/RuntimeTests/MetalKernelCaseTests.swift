import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Programs the MLX delegate writes around its Metal kernels (Fixtures/metal_kernels: cases of ExecuTorch's own
/// custom-kernel op tests and of the op suite, with eager PyTorch's outputs), run as `mlxc conformance` runs them:
/// gated_delta_step (GQA bf16, a dynamic T exported at 2 and run at 8, two calls in one program), the rule's
/// ScanNode form (use_custom_kernel=False: GQA 2:8 after a repeat, Dk 16 in bf16), tq_norm,
/// tq_dequant, tq4_compress and the TurboQuant KV caches (compress on write, dequantize for attention) must pass
/// on the reference and compiled with every op on a kernel; a kernel mlxc does not know (`metal_kernel_1024`'s
/// "vadd") is skipped with its name and source fingerprint.
final class MetalKernelCaseTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/metal_kernels")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/model.pte").path) }
    }

    func testKnownKernelsMatchEagerPyTorch() throws {
        XCTAssertEqual(Self.cases.count, 11, "cases under \(Self.root.path)")
        for name in Self.cases where !name.hasPrefix("metal_kernel_") {
            let dir = Self.root.appendingPathComponent(name).path
            XCTAssertEqual(Conformance.run(caseDirectory: dir), .passed, "\(name) on the reference")
            XCTAssertEqual(Conformance.run(caseDirectory: dir, compiled: true), .passed, "\(name) compiled")
            let pte = try PTEFile(path: dir + "/model.pte")
            let jit = try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)
            XCTAssertEqual(jit.remarks, [], "\(name): ops left to the reference")
        }
    }

    func testAnUnknownKernelIsSkippedByName() {
        let verdict = Conformance.run(caseDirectory: Self.root.appendingPathComponent("metal_kernel_1024").path)
        guard case .skipped(let why) = verdict else { return XCTFail("\(verdict)") }
        XCTAssertTrue(why.contains("\"vadd\" (source fingerprint 85a37eafe079432b)"), why)
    }
}
