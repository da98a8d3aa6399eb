import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Qwen 3.5 MoE's expert shapes on the gather kernels (16 experts, top-8: the zoo's qwen35moe_e16k8 programs; 256 and
/// top-8 in the real model): `gather_qmm` (4-bit, --qlinear 4w) and `gather_mm` (bf16) against the reference, for a
/// decode token's 8 entries and a sorted prefill; and an expert index outside the stacked weights (16, or −1 on
/// unsigned indices' wrap, as a corrupt router would give) is never read: the call goes to the reference, which
/// names the index, instead of reading past the weights.
final class JITMoEManyExpertsTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    let moe = JITMoETests(name: "JITMoEManyExpertsTests.moe", testClosure: { _ in })

    func testSixteenExpertsTopEight() throws {
        var r = Random(160)
        try moe.checkGatherQmm(JITMoETests.QmmCase(bits: 4, experts: 16, k: 64, n: 32, x: [8, 1, 64], rhs: r.ints([8], 0, 15, .u32),
                                                   dtype: .bf16), seed: 161, "decode e16 top8 bf16")
        var ids = r.ints([5 * 8], 0, 15, .u32)
        ids.storage.sort()
        try moe.checkGatherQmm(JITMoETests.QmmCase(bits: 4, experts: 16, k: 64, n: 32, x: [40, 1, 64], rhs: ids, dtype: .bf16),
                               seed: 162, "prefill e16 top8 bf16 sorted")
        try moe.checkGatherMm(experts: 16, k: 64, n: 32, x: [8, 1, 64], rhs: r.ints([8], 0, 15, .u32), dtype: .bf16, seed: 163,
                              "decode e16 top8 bf16")
    }

    func testExpertIndexOutOfRangeIsNamed() throws {
        for (bad, dtype) in [(16.0, DType.u32), (-1.0, .i32)] {
            var r = Random(170)
            var g = RefGraph()
            let x = g.input(r.tensor([2, 1, 64], -1, 1, .f32))
            let wt = r.tensor([16, 64, 32], -0.5, 0.5, .f32)
            let w = g.graph.addValue(TensorType(.f32, fixed: wt.shape), .constant(.literal(wt.storage)))
            let ids = g.input(HostTensor(dtype: dtype, shape: [2], storage: [3, bad]))
            let out = g.result()
            g.append(.gatherMm(GatherMmOp(a: x, b: w, out: out, rhsIndices: ids)))
            var graph = g.graph
            graph.outputs = [out]
            let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
            XCTAssertEqual(jit.remarks, [])
            XCTAssertThrowsError(try jit.run(g.feeds), "expert index \(bad)") { error in
                XCTAssertTrue("\(error)".contains("\(Int(bad))"), "\(error)")
            }
        }
    }
}
