import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Kernels for ops real exports emit, against the reference executor on random inputs:
/// - `split` (MLX SplitNode: Phi-3's fused QKV; aten split_with_sizes_copy / split_copy): sizes,
///   a chunk size with a shorter last part, a size given at run time, every axis, 1/2/4/8-byte dtypes;
/// - `max` / `min` reductions (f32/bf16/f16, NaN wins) and `argmax` / `argmin` (first NaN, else the
///   first extreme; i64/i32 indices);
/// - every `addmm` form no linear kernel takes: mat2 an activation (HF RoPE's inv_freq ⊗ positions,
///   K = 1), a constant [K, N] read as stored, alpha/beta ≠ 1 with a bias [N] or [M, N], batched x.
/// Tolerances: data movement, max/min and arg reductions exact; addmm f32 1e-5 × max |reference|
/// (summation order), bf16/f16 one result ulp (`ExportOpKernelChecks`).
final class JITExportOpKernelTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    func testSplit() throws {
        var r = Random(81)
        let cases: [(shape: [Int], axis: Int, sizes: [Int])] = [([1, 5, 96], -1, [32, 32, 32]), ([2, 7, 10], 1, [2, 0, 5]),
                                                                ([3, 11], 1, [4]), ([6, 4, 3], 0, [1, 5]), ([1, 1, 48], 2, [16, 32])]
        for dtype in [DType.f32, .bf16, .i64, .u8] {
            for (shape, axis, sizes) in cases {
                var g = RefGraph()
                let x = g.input(dtype == .i64 || dtype == .u8 ? r.ints(shape, 0, 200, dtype) : r.tensor(shape, -3, 3, dtype))
                let a = axis < 0 ? axis + shape.count : axis
                let parts = sizes.count == 1 ? (shape[a] + sizes[0] - 1) / sizes[0] : sizes.count
                let outs = (0..<parts).map { _ in g.result() }
                g.append(.split(SplitOp(x: x, outs: outs, sizes: sizes.map { .literal(Int64($0)) }, axis: axis)))
                try ExportOpKernelChecks.check(g, outs, kernels: ["split\(parts)_b\(dtype.byteSize * 8)"], "split \(dtype.name) \(shape) axis \(axis) \(sizes)")
            }
        }
        // A size computed at run time (a SymInt): two calls with different splits of one shape.
        var g = RefGraph()
        let x = g.input(r.tensor([2, 9, 4])), first = g.input(.scalar(3, .i64))
        let outs = [g.result(), g.result()]
        let rest = g.result()
        g.append(.subtractInt(SubtractIntOp(a: .literal(9), b: .value(first), out: rest)))
        g.append(.split(SplitOp(x: x, outs: outs, sizes: [.value(first), .value(rest)], axis: 1)))
        var graph = g.graph
        graph.outputs = outs
        try ExportOpKernelChecks.check(graph, calls: [[g.feeds[0], .scalar(3, .i64)], [g.feeds[0], .scalar(7, .i64)]],
                                       kernels: ["split2_b32"], "split with a run-time size")
    }

    func testMaxMinAndArgReductions() throws {
        var r = Random(82)
        for dtype in [DType.f32, .bf16, .f16] {
            for (shape, axes) in [([3, 37], [1]), ([2, 5, 33], [1]), ([4, 1, 20], [1, 2]), ([5, 9], [0]), ([1, 300], [-1])] {
                var x = r.tensor(shape, -5, 5, dtype)
                x.storage[x.count / 2] = .nan   // NaN wins the reduction and its arg
                x.storage[1] = x.storage[0]     // a tie: the first index
                var g = RefGraph()
                let v = g.input(x)
                let mx = g.result(), mn = g.result(), mk = g.result()
                g.append(.max(MaxOp(x: v, out: mx, axes: axes, keepdims: false)))
                g.append(.min(MinOp(x: v, out: mn, axes: axes, keepdims: false)))
                g.append(.max(MaxOp(x: v, out: mk, axes: axes, keepdims: true)))
                var outputs = [mx, mn, mk]
                if axes.count == 1 {
                    let am = g.result(TensorType(.i64, [])), an = g.result(TensorType(.i32, []))
                    g.append(.argmax(ArgmaxOp(x: v, out: am, axis: axes[0], keepdims: false)))
                    g.append(.argmin(ArgminOp(x: v, out: an, axis: axes[0], keepdims: true)))
                    outputs += [am, an]
                }
                try ExportOpKernelChecks.check(g, outputs, kernels: ["reduce_max_\(dtype.name)", "reduce_min_\(dtype.name)"],
                                               "max/min \(dtype.name) \(shape) axes \(axes)")
            }
        }
    }

    func testAddmmFormsWithoutALinearKernel() throws {
        var r = Random(83)
        for dtype in [DType.f32, .bf16, .f16] {
            // HF RoPE: inv_freq [1, D/2, 1] @ positions [1, 1, T] (K = 1), as the MLX delegate writes it.
            var g = RefGraph()
            let freqs = g.input(r.tensor([1, 8, 1], 0, 1, dtype)), positions = g.input(r.tensor([1, 1, 13], 0, 40, dtype).rounded())
            let outer = g.result()
            g.append(.addmm(AddmmOp(mat1: freqs, mat2: positions, out: outer)))
            // x [1, T, K] @ W [K, N] (constant, not transposed), and alpha/beta with biases [N] and [M, N].
            let x = g.input(r.tensor([1, 5, 24], -1, 1, dtype)), x2 = g.input(r.tensor([5, 24], -1, 1, dtype))
            let w = ExportOpKernelChecks.constant(&g, r.tensor([24, 37], -0.3, 0.3, dtype))
            let rowBias = ExportOpKernelChecks.constant(&g, r.tensor([37], -1, 1, dtype))
            let fullBias = g.input(r.tensor([5, 37], -1, 1, dtype))
            let plain = g.result(), scaled = g.result(), full = g.result()
            g.append(.addmm(AddmmOp(mat1: x, mat2: w, out: plain)))
            g.append(.addmm(AddmmOp(mat1: x2, mat2: w, out: scaled, bias: rowBias, alpha: 2, beta: 0.5)))
            g.append(.addmm(AddmmOp(mat1: x2, mat2: w, out: full, bias: fullBias, alpha: 1, beta: -1)))
            try ExportOpKernelChecks.check(g, [outer, plain, scaled, full],
                                           kernels: ["batched_matmul_\(dtype.name)_r", "batched_matmul_\(dtype.name)_bias_alpha2.0_beta0.5"],
                                           "addmm forms \(dtype.name)")
        }
    }
}
