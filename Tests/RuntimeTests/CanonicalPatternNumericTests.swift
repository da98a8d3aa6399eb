import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-rms-norm-pattern and fold-transposes on numbers: the plain export's RMSNorm (power, mean,
/// add eps, rsqrt, multiply, weight) and its attention-output permute chain (transpose, clone,
/// transpose, transpose, clone, reshape), built op by op, run on the reference as written and on
/// the JIT after the pass, for several shapes, f32 and bf16. Tolerance: f32 1e-6 × max |reference|
/// (a different summation order of the mean), bf16 one ulp (2⁻⁷); the permutes are exact.
final class CanonicalPatternNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    func compare(_ got: HostTensor, _ want: HostTensor, tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, what, file: file, line: line)
        let bound = tol * (want.storage.map(Swift.abs).max() ?? 0)
        if got.shape == want.shape, let i = want.storage.indices.first(where: { Swift.abs(got.storage[$0] - want.storage[$0]) > bound }) {
            XCTFail("\(what): element \(i) is \(got.storage[i]), reference \(want.storage[i])", file: file, line: line)
        }
    }

    func testRMSNormPattern() throws {
        var seed: UInt64 = 1100
        for (t, d, dtype) in [(1, 64, DType.f32), (7, 768, .f32), (5, 96, .bf16)] {
            seed += 1
            var r = Random(seed)
            var g = RefGraph()
            let x = g.input(r.tensor([1, t, d], -2, 2, dtype)), w = g.input(r.tensor([d], 0.5, 1.5, dtype))
            let two = g.literal(2, dtype), eps = g.literal(1e-5, dtype)
            let (sq, ms, se, rs, y, z) = (g.result(), g.result(), g.result(), g.result(), g.result(), g.result())
            g.append(.power(PowerOp(a: x, b: two, out: sq)))
            g.append(.mean(MeanOp(x: sq, out: ms, axes: [2], keepdims: true)))
            g.append(.add(AddOp(a: ms, b: eps, out: se)))
            g.append(.rsqrt(RsqrtOp(x: se, out: rs)))
            g.append(.multiply(MultiplyOp(a: x, b: rs, out: y)))
            g.append(.multiply(MultiplyOp(a: w, b: y, out: z)))
            var graph = g.graph
            graph.outputs = [z]
            let what = "rms_norm pattern t\(t) d\(d) \(dtype.name)"
            var fused = graph
            _ = ShapeInference.annotate(&fused)
            XCTAssertEqual(try FuseRMSNormPattern().run(&fused), 1, what)
            XCTAssertEqual(fused.opHistogram["rms_norm"], 1, what)
            let jit = try JITProgram(graph: fused, pte: Self.pte)
            XCTAssertEqual(jit.remarks, [], what)
            compare(try jit.run(g.feeds)[0], try ReferenceExecutor(graph: graph).run(g.feeds)[0], tol: dtype == .f32 ? 1e-6 : 0x1p-7, what)
        }
    }

    func testAttentionOutputPermuteChain() throws {
        var seed: UInt64 = 1200
        for (h, t, d, dtype) in [(4, 5, 16, DType.f32), (12, 1, 64, .f32), (2, 3, 32, .bf16)] {
            seed += 1
            var r = Random(seed)
            var g = RefGraph()
            let x = g.input(r.tensor([1, h, t, d], -1, 1, dtype))
            let v = (0..<6).map { _ in g.result() }
            g.append(.transpose(TransposeOp(x: x, out: v[0], perm: [2, 0, 1, 3])))
            g.append(.idCopy(IdCopyOp(x: v[0], out: v[1])))
            g.append(.transpose(TransposeOp(x: v[1], out: v[2], perm: [1, 2, 0, 3])))
            g.append(.transpose(TransposeOp(x: v[2], out: v[3], perm: [0, 2, 1, 3])))
            g.append(.idCopy(IdCopyOp(x: v[3], out: v[4])))
            g.append(.reshape(ReshapeOp(x: v[4], out: v[5], shape: [.literal(1), .literal(Int64(t)), .literal(Int64(h * d))])))
            var graph = g.graph
            graph.outputs = [v[5]]
            let what = "permute chain h\(h) t\(t) d\(d) \(dtype.name)"
            var folded = graph
            _ = ShapeInference.annotate(&folded)
            XCTAssertGreaterThan(try FoldTransposes().run(&folded), 0, what)
            _ = try DeadCodeElimination().run(&folded)
            XCTAssertEqual(folded.opHistogram["transpose"], 1, what)
            XCTAssertNil(folded.opHistogram["id_copy"], what)
            let jit = try JITProgram(graph: folded, pte: Self.pte)
            compare(try jit.run(g.feeds)[0], try ReferenceExecutor(graph: graph).run(g.feeds)[0], tol: 0, what)
        }
    }
}
