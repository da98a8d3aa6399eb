import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The MoE kernels against the reference executor: `gather_qmm` / `gather_mm` (the expert
/// matmuls), on decode (top-k entries of one token) and prefill shapes (tokens sorted by expert,
/// so runs share weight reads, and unsorted), experts 4 and 8, top-k 1 and 2, 2/4/8-bit and
/// f32/bf16, lhs indices, broadcast index batches (mlx-lm's [T, 1] × [T, k]) and M > 1.
///
/// Tolerances: f32 results within 1e-5 × max |reference| (the kernels sum in f32 with vector
/// partial sums, the reference in double); bf16 results within 8e-3 × max |reference| (both
/// round once to bf16 from f32 vs double, so a result may land one bf16 ulp, 2^-8 relative, away).
final class JITMoETests: XCTestCase {
    typealias Random = JITKernelTests.Random
    /// The kernel tests' run-and-compare helpers (failures are recorded against the running test).
    let harness = JITKernelTests(name: "JITMoETests.harness", testClosure: { _ in })

    // MARK: gather_qmm

    struct QmmCase {
        var bits = 4, groupSize = 32, experts = 4, k = 64, n = 37
        var x: [Int]                       // x's shape: batch + [M, K]
        var lhs: HostTensor? = nil, rhs: HostTensor? = nil
        var dtype: DType = .f32
    }

    func checkGatherQmm(_ q: QmmCase, seed: UInt64, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let words = q.k * q.bits / 32, groups = q.k / q.groupSize
        let codes: [Double] = (0..<(q.experts * q.n * words)).map { _ in (r.next() * 4294967296).rounded(.down) }
        var g = RefGraph()
        let x = g.input(r.tensor(q.x, -1, 1, q.dtype))
        let w = g.graph.addValue(TensorType(.u32, fixed: [q.experts, q.n, words]), .constant(.literal(codes)))
        let pd = q.dtype == .f32 ? DType.f32 : q.dtype
        let scales = r.tensor([q.experts, q.n, groups], 0.001, 0.05, pd), biases = r.tensor([q.experts, q.n, groups], -0.2, 0.2, pd)
        let s = g.graph.addValue(TensorType(pd, fixed: scales.shape), .constant(.literal(scales.storage)))
        let b = g.graph.addValue(TensorType(pd, fixed: biases.shape), .constant(.literal(biases.storage)))
        let lhs = q.lhs.map { g.input($0) }, rhs = q.rhs.map { g.input($0) }
        let out = g.result()
        g.append(.gatherQmm(GatherQmmOp(x: x, w: w, scales: s, out: out, mode: "affine", biases: b, lhsIndices: lhs, rhsIndices: rhs,
                                        transpose: true, groupSize: q.groupSize, bits: q.bits)))
        let tol: JITKernelTests.Tolerance = q.dtype == .f32 ? .scaled(1e-5) : .scaled(8e-3)
        try harness.check(g, [out], tol, kernels: ["gather_qmm_affine_w\(q.bits)"], "gather_qmm \(what)", file: file, line: line)
    }

    /// Top-k experts of one token: x repeated per entry, one expert each (the fixtures' decode path).
    func testGatherQmmDecode() throws {
        var seed: UInt64 = 1
        for bits in [4, 8, 2] {
            for experts in [4, 8] {
                for topK in [1, 2] {
                    seed += 1
                    var r = Random(seed)
                    let rhs = r.ints([topK], 0, experts - 1, .i32)
                    try checkGatherQmm(QmmCase(bits: bits, experts: experts, k: 160, x: [topK, 1, 160], rhs: rhs), seed: seed,
                                       "decode w\(bits) e\(experts) top\(topK)")
                }
            }
        }
    }

    /// T tokens × top-k entries, sorted by expert (runs of 4 share the weight reads) and not.
    func testGatherQmmPrefill() throws {
        var seed: UInt64 = 50
        for bits in [4, 8, 6, 3] {
            for experts in [4, 8] {
                for sorted in [true, false] {
                    seed += 1
                    var r = Random(seed)
                    var ids = r.ints([11 * 2], 0, experts - 1, .i32)
                    if sorted { ids.storage.sort() }
                    try checkGatherQmm(QmmCase(bits: bits, experts: experts, x: [22, 1, 64], rhs: ids), seed: seed,
                                       "prefill w\(bits) e\(experts) sorted \(sorted)")
                }
            }
        }
        // One expert for every entry: blocks of 4, 4 and a single token.
        let same = HostTensor(dtype: .u32, shape: [9], storage: [Double](repeating: 3, count: 9))
        try checkGatherQmm(QmmCase(x: [9, 1, 64], rhs: same), seed: 70, "one expert")
    }

    /// lhs indices, a broadcast index batch ([T, 1] x batch against [T, k] experts), M > 1, bf16.
    func testGatherQmmIndexLayoutsAndBF16() throws {
        var r = Random(80)
        try checkGatherQmm(QmmCase(x: [3, 1, 64], lhs: r.ints([6], 0, 2, .i64), rhs: r.ints([6], 0, 3, .u32)), seed: 81, "lhs and rhs")
        try checkGatherQmm(QmmCase(experts: 8, x: [5, 1, 1, 64], rhs: r.ints([5, 2], 0, 7, .u32)), seed: 82, "broadcast [T,1] x [T,k]")
        try checkGatherQmm(QmmCase(x: [2, 3, 64], rhs: r.ints([2], 0, 3, .i32)), seed: 83, "M = 3")
        try checkGatherQmm(QmmCase(k: 128, x: [4, 1, 128], lhs: nil, rhs: nil), seed: 84, "no indices")
        try checkGatherQmm(QmmCase(bits: 4, k: 128, x: [2, 1, 128], rhs: r.ints([2], 0, 3, .i32), dtype: .bf16), seed: 85, "bf16 decode")
        var ids = r.ints([12], 0, 3, .i32)
        ids.storage.sort()
        try checkGatherQmm(QmmCase(bits: 8, k: 128, x: [12, 1, 128], rhs: ids, dtype: .bf16), seed: 86, "bf16 prefill")
    }

    // MARK: gather_mm

    func checkGatherMm(experts: Int, k: Int, n: Int, x shape: [Int], rhs: HostTensor, dtype: DType, seed: UInt64, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        var g = RefGraph()
        let x = g.input(r.tensor(shape, -1, 1, dtype))
        let wt = r.tensor([experts, k, n], -0.5, 0.5, dtype)
        let w = g.graph.addValue(TensorType(dtype, fixed: wt.shape), .constant(.literal(wt.storage)))
        let ids = g.input(rhs)
        let out = g.result()
        g.append(.gatherMm(GatherMmOp(a: x, b: w, out: out, rhsIndices: ids)))
        let tol: JITKernelTests.Tolerance = dtype == .f32 ? .scaled(1e-5) : .scaled(8e-3)
        try harness.check(g, [out], tol, kernels: ["gather_mm_\(dtype.name)"], "gather_mm \(what)", file: file, line: line)
    }

    func testGatherMm() throws {
        var seed: UInt64 = 100
        for dtype in [DType.f32, .bf16] {
            for experts in [4, 8] {
                for n in [64, 37] {
                    seed += 1
                    var r = Random(seed)
                    try checkGatherMm(experts: experts, k: 48, n: n, x: [2, 1, 48], rhs: r.ints([2], 0, experts - 1, .i32),
                                      dtype: dtype, seed: seed, "decode \(dtype.name) e\(experts) n\(n)")
                    try checkGatherMm(experts: experts, k: 48, n: n, x: [1, 1, 48], rhs: r.ints([1], 0, experts - 1, .i32),
                                      dtype: dtype, seed: seed + 1000, "top1 \(dtype.name) e\(experts) n\(n)")
                    var ids = r.ints([14], 0, experts - 1, .i32)
                    ids.storage.sort()
                    try checkGatherMm(experts: experts, k: 48, n: n, x: [14, 1, 48], rhs: ids, dtype: dtype, seed: seed + 2000,
                                      "prefill \(dtype.name) e\(experts) n\(n)")
                }
            }
        }
    }

    /// Long sorted runs (every token-run tier: 8/4/2/1 on AVX-512, 6/3/1 on AVX2, ending
    /// mid-tier) and two column vectors per work item (n = 128, 256), x widened once per run.
    func testGatherMmLongRuns() throws {
        var seed: UInt64 = 300
        for dtype in [DType.f32, .bf16, .f16] {
            for (n, tokens) in [(128, 29), (256, 23), (40, 17)] {
                seed += 1
                var r = Random(seed)
                var ids = r.ints([tokens], 0, 2, .i32)
                ids.storage.sort()
                try checkGatherMm(experts: 3, k: 40, n: n, x: [tokens, 1, 40], rhs: ids, dtype: dtype, seed: seed,
                                  "runs \(dtype.name) n\(n) t\(tokens)")
            }
        }
    }
}
