import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// `stack` (Voxtral Realtime's encoder interleaves its RoPE halves with it) on the concatenate kernel: every new-axis
/// position (first, middle, last, negative), 2 and 3 inputs, f32/bf16/i64/bool, a run-time length; exact against the
/// reference executor, AVX-512 and MLXC_ISA=avx2.
final class JITStackTests: XCTestCase {
    func testStackIsExact() throws {
        var r = JITKernelTests.Random(17)
        for dtype in [DType.f32, .bf16, .i64, .bool] {
            for (shape, axis, parts) in [([3, 5], 0, 2), ([3, 5], 1, 3), ([3, 5], 2, 2), ([2, 4, 7], -1, 2), ([2, 4, 7], -3, 3), ([1, 6, 2, 8], 2, 2)] {
                var g = RefGraph()
                let xs = (0..<parts).map { _ in
                    g.input(dtype == .f32 || dtype == .bf16 ? r.tensor(shape, -2, 2, dtype)
                            : dtype == .bool ? r.ints(shape, 0, 1, .bool) : r.ints(shape, -1000, 1000, dtype))
                }
                let out = g.result()
                g.append(.stack(StackOp(tensors: xs, out: out, axis: axis)))
                var graph = g.graph
                graph.outputs = [out]
                let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
                XCTAssertEqual(jit.remarks, [], "stack \(dtype.name) \(shape) axis \(axis)")
                let got = try jit.run(g.feeds)[0], want = try ReferenceExecutor(graph: graph).run(g.feeds)[0]
                XCTAssertEqual(got.shape, want.shape)
                XCTAssertEqual(got.storage, want.storage, "stack \(dtype.name) \(shape) axis \(axis) x\(parts)")
                XCTAssertEqual(jit.runtimeFallbacks, [:])
            }
        }
    }

    func testRunTimeLength() throws {
        var r = JITKernelTests.Random(18)
        for t in [1, 6, 33] {
            var g = RefGraph()
            let a = g.input(r.tensor([1, t, 4]), dynamic: 1, min: 1, max: 64), b = g.input(r.tensor([1, t, 4]), dynamic: 1, min: 1, max: 64)
            let out = g.result()
            g.append(.stack(StackOp(tensors: [a, b], out: out, axis: -1)))
            var graph = g.graph
            graph.outputs = [out]
            let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
            XCTAssertEqual(jit.remarks, [])
            XCTAssertEqual(try jit.run(g.feeds)[0], try ReferenceExecutor(graph: graph).run(g.feeds)[0], "T = \(t)")
        }
    }
}
