import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// What the tests of the kernels for ops real exports emit (sin/cos, split, max, addmm forms,
/// quantized matmuls with half activations) share: run a graph on the reference executor and
/// compiled, require every op compiled (no remark, no run-time fallback) and compare per element.
///
/// Tolerance per result dtype: bf16/f16 within one result ulp (`JITHalfPrecisionTests`' rule: the
/// kernels compute in f32 and round once, the reference in Double and rounds once, so the exact value
/// may sit on either side of a rounding boundary; a floor of 2^-10 of the largest result covers
/// cancellation) or, for chains of rounded steps (`halfScaled`), within that × the largest reference
/// magnitude; f32 within `f32Tolerance` × the largest reference magnitude; others exact.
enum ExportOpKernelChecks {
    static func ulp(_ dtype: DType) -> Double {
        switch dtype {
        case .bf16: return 0x1p-7
        case .f16: return 0x1p-10
        default: return 0
        }
    }

    static func compare(_ got: HostTensor, _ want: HostTensor, f32Tolerance: Double, halfScaled: Double? = nil, _ what: String,
                        file: StaticString, line: UInt) {
        XCTAssertEqual(got.dtype, want.dtype, "\(what): dtype", file: file, line: line)
        XCTAssertEqual(got.shape, want.shape, "\(what): shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let scale = want.storage.filter(\.isFinite).map(Swift.abs).max() ?? 0
        for (i, (a, b)) in zip(got.storage, want.storage).enumerated() {
            if a.isNaN || b.isNaN {
                if !(a.isNaN && b.isNaN) { return XCTFail("\(what): element \(i) is \(a), reference \(b)", file: file, line: line) }
                continue
            }
            if a == b { continue }
            let bound: Double
            switch want.dtype {
            case .bf16, .f16: bound = halfScaled.map { $0 * scale } ?? ulp(want.dtype) * Swift.max(Swift.abs(b), 0x1p-10 * scale)
            case .f32: bound = f32Tolerance * scale
            default: bound = 0
            }
            if !(Swift.abs(a - b) <= bound) {
                return XCTFail("\(what): element \(i) is \(a), reference \(b) (tolerance \(bound))", file: file, line: line)
            }
        }
    }

    /// Runs `graph` (outputs set) on the reference and `compiled` (default: `graph`; e.g. the graph
    /// after a fusion pass) compiled, over `calls`, and compares; every op must compile
    /// and `kernels` (name prefixes) must be among the kernels.
    @discardableResult
    static func check(_ graph: Graph, compiled: Graph? = nil, calls: [[HostTensor]], f32Tolerance: Double = 1e-5, halfScaled: Double? = nil,
                      kernels: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        let reference = try ReferenceExecutor(graph: graph)
        let jit = try JITProgram(graph: compiled ?? graph, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        for prefix in kernels {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(prefix) }, "\(what): no kernel \(prefix)… in \(jit.kernelNames)",
                          file: file, line: line)
        }
        for (k, feeds) in calls.enumerated() {
            let want = try reference.run(feeds)
            let got = try jit.run(feeds)
            for j in want.indices { compare(got[j], want[j], f32Tolerance: f32Tolerance, halfScaled: halfScaled, "\(what) call \(k) output \(j)", file: file, line: line) }
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): kernels that left calls to the reference", file: file, line: line)
        return jit
    }

    static func check(_ g: RefGraph, _ outputs: [ValueID], f32Tolerance: Double = 1e-5, halfScaled: Double? = nil, kernels: [String],
                      _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var graph = g.graph
        graph.outputs = outputs
        try check(graph, calls: [g.feeds], f32Tolerance: f32Tolerance, halfScaled: halfScaled, kernels: kernels, what, file: file, line: line)
    }

    /// A constant (as a weight is): a literal of `t`'s dtype and shape.
    static func constant(_ g: inout RefGraph, _ t: HostTensor) -> ValueID {
        g.graph.addValue(TensorType(t.dtype, fixed: t.shape), .constant(.literal(t.storage)))
    }
}
