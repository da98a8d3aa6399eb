import Foundation
import XCTest
@testable import MLXCFrontend
import MLXCIR

/// The registry of Metal kernels mlxc knows (`KnownMetalKernels`), on the committed Qwen 3.5 MoE zoo program
/// (ExecuTorch's `examples/models/qwen3_5_moe/export.py --backend mlx`): its two `gated_delta_step` kernels are
/// recognised by name + source fingerprint and imported as `gated_delta_rule`; the same file with one character
/// of the kernel's source changed, or a template value that contradicts the operands, is refused with one line
/// naming the kernel (and the fingerprint); a kernel of another name stays a `metal_kernel` op.
final class KnownMetalKernelsTests: XCTestCase {
    static let model = Fixtures.root.appendingPathComponent("zoo/qwen35moe_e16k8_mlx_bf16/model.pte").path

    func bytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.model))) }

    func importGraph(_ bytes: [UInt8]) throws -> Graph {
        try Importer.importMethod(try PTEFile(file: MappedFile(bytes: bytes, name: "qwen35"))).graph
    }

    /// Offsets of `text` in `bytes`.
    func find(_ text: String, in bytes: [UInt8]) -> [Int] {
        let needle = Array(text.utf8)
        guard needle.count <= bytes.count else { return [] }
        return (0...(bytes.count - needle.count)).filter { i in needle.indices.allSatisfy { bytes[i + $0] == needle[$0] } }
    }

    func testGatedDeltaStepBecomesTheNativeOp() throws {
        let graph = try importGraph(try bytes())
        let ops = graph.blocks.flatMap(\.nodes).map(\.op)
        XCTAssertEqual(ops.filter { if case .gatedDeltaRule = $0 { return true } else { return false } }.count, 2)
        XCTAssertFalse(ops.contains { if case .metalKernel = $0 { return true } else { return false } })
    }

    func testAChangedSourceIsNamedWithItsFingerprint() throws {
        var b = try bytes()
        let at = find("kv_mem = simd_sum(kv_mem);", in: b)
        XCTAssertEqual(at.count, 1, "one source string, shared by the two layers' kernels")
        b[at[0] + 9] = UInt8(ascii: "x")   // simd_sum -> simd_xum: another program
        XCTAssertThrowsError(try importGraph(b)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("metal_kernel \"gated_delta_step\" has source fingerprint"), text)
            XCTAssertTrue(text.contains("instruction"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    func testWhitespaceDoesNotChangeTheFingerprint() throws {
        let k = MetalKernelOp(name: "k", source: "auto a = b;\n  for (;;) {}\n", inputs: [], outputs: [], grid: [], threadgroup: [])
        var spaced = k
        spaced.source = "  auto  a =\tb;\n\n for (;;)   {}"
        XCTAssertEqual(k.fingerprint, spaced.fingerprint)
        var other = k
        other.source = "auto a = c;\n  for (;;) {}\n"
        XCTAssertNotEqual(k.fingerprint, other.fingerprint)
        var templated = k
        templated.templateArgNames = ["T"]
        templated.templateArgKinds = [2]
        XCTAssertNotEqual(k.fingerprint, templated.fingerprint)
    }

    func testKnownSourceWithContradictingTemplateValuesIsRefused() throws {
        var b = try bytes()
        let names = find("gated_delta_step", in: b)
        XCTAssertEqual(names.count, 1, "one name string, shared by the two kernels")
        b[names[0]] = UInt8(ascii: "G")   // another name: not a kernel mlxc knows, so both stay metal_kernel ops
        let renamed = try importGraph(b)
        let kernels = renamed.blocks.flatMap(\.nodes).compactMap { node -> MetalKernelOp? in
            if case .metalKernel(let k) = node.op { return k } else { return nil }
        }
        XCTAssertEqual(kernels.map(\.name), ["Gated_delta_step", "Gated_delta_step"])
        XCTAssertEqual(kernels.first?.fingerprint, KnownMetalKernels.fingerprints["gated_delta_step"]?.first)
        // The known kernel with template values [InT, Dk, Dv, Hk, Hv] that contradict its operands' types.
        var wrong = try XCTUnwrap(kernels.first)
        wrong.name = "gated_delta_step"
        wrong.templateArgValues[1] = 64
        var graph = renamed
        graph.values[wrong.inputs[0].index].type = TensorType(.bf16, [.fixed(1), .dynamic(min: 1, max: 63), .fixed(2), .fixed(32)])
        graph.values[wrong.inputs[2].index].type = TensorType(.bf16, [.fixed(1), .dynamic(min: 1, max: 63), .fixed(4), .fixed(32)])
        XCTAssertThrowsError(try KnownMetalKernels.native(wrong, graph: &graph, origin: "chain 0 instruction 51",
                                                          fail: { ImportError(method: "forward", location: "", message: $0) })) {
            XCTAssertTrue("\($0)".contains("template_arg_values Dk = 64, but the operands have 32"), "\($0)")
        }
    }
}
