import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// The kernels for plain ExecuTorch programs (batched matmul, pow by a constant, reductions over
/// adjacent axes, index_put + copy_into KV-cache writes, conv1d) against the reference executor, on
/// random inputs over several shapes: odd sizes (vector tails), broadcast batches, T > 1, and
/// sizes that split across threads.
///
/// Tolerances: copies, scatters, bool reductions, x², √x and 1/x are exact (one correctly rounded
/// op, as the reference's double result rounded once). f32 sums (matmul, mean, sum, conv) are within
/// 1e-5 × the largest reference magnitude: f32 vector partial sums against the reference's ordered
/// double sum. bf16 results round the f32 sum once where the reference rounds the double sum, so
/// they may differ by one bf16 ulp (2⁻⁸ relative): 1e-2 × max.
final class JITPlainOpsTests: XCTestCase {
    static var pte: PTEFile { JITKernelTests.pte }
    typealias Random = JITKernelTests.Random

    /// max |got − want| ≤ tol · max |want| (tol 0: bit for bit).
    func compare(_ got: HostTensor, _ want: HostTensor, tol: Double, _ what: String, file: StaticString, line: UInt) {
        XCTAssertEqual(got.dtype, want.dtype, "\(what): dtype", file: file, line: line)
        XCTAssertEqual(got.shape, want.shape, "\(what): shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let scale = want.storage.filter(\.isFinite).map(Swift.abs).max() ?? 0
        for (i, (a, b)) in zip(got.storage, want.storage).enumerated() where !(a == b || (a.isNaN && b.isNaN)) {
            if Swift.abs(a - b) > tol * scale {
                XCTFail("\(what): element \(i) is \(a), reference \(b) (tolerance \(tol) × \(scale))", file: file, line: line)
                return
            }
        }
    }

    /// Runs `g` on the reference and compiled, call by call (state carries over); every op must be
    /// compiled, the `kernels` prefixes among them, and no call may fall back unless allowed.
    @discardableResult
    func check(_ g: RefGraph, _ outputs: [ValueID], calls: [[HostTensor]]? = nil, tol: Double, kernels: [String],
               allCompiled: Bool = true, runtimeFallbacks: Bool = false, _ what: String,
               file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        var graph = g.graph
        graph.outputs = outputs
        let reference = try ReferenceExecutor(graph: graph)
        let jit = try JITProgram(graph: graph, pte: Self.pte)
        if allCompiled { XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line) }
        for prefix in kernels {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(prefix) }, "\(what): no kernel \(prefix)… in \(jit.kernelNames)",
                          file: file, line: line)
        }
        for (k, feeds) in (calls ?? [g.feeds]).enumerated() {
            let want = try reference.run(feeds), got = try jit.run(feeds)
            for j in want.indices { compare(got[j], want[j], tol: tol, "\(what) call \(k) output \(j)", file: file, line: line) }
        }
        if !runtimeFallbacks { XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference", file: file, line: line) }
        return jit
    }

    func constant(_ g: inout RefGraph, _ t: HostTensor) -> ValueID {
        g.graph.addValue(TensorType(t.dtype, fixed: t.shape), .constant(.literal(t.storage)))
    }

    // MARK: matmul

    func testBatchedMatmulOverAttentionAndBroadcastShapes() throws {
        var r = Random(1)
        let cases: [([Int], [Int])] = [
            ([4, 1, 16], [4, 16, 96]), ([4, 7, 16], [4, 16, 33]), ([4, 33, 96], [4, 96, 16]),   // q·kᵀ decode/prefill, p·v
            ([2, 1, 5, 8], [1, 3, 8, 19]), ([5, 8], [3, 8, 7]), ([3, 6, 8], [8, 5]),            // broadcast batches
            ([8], [2, 8, 5]), ([3, 6, 8], [8]), ([9, 13], [13, 1]),                             // 1-D operands, N = 1
            ([8, 37, 64], [8, 64, 45]), ([2, 3, 4, 5, 6], [2, 3, 4, 6, 7]),                     // thread splits, rank 5
        ]
        for (sa, sb) in cases {
            var g = RefGraph()
            let a = g.input(r.tensor(sa)), b = g.input(r.tensor(sb)), out = g.result()
            g.append(.matmul(MatmulOp(a: a, b: b, out: out)))
            try check(g, [out], tol: 1e-5, kernels: ["batched_matmul_f32"], "matmul \(sa) @ \(sb)")
        }
        // bf16 operands, f32 accumulation, one rounding.
        var g = RefGraph()
        let a = g.input(r.tensor([4, 5, 40], -1, 1, .bf16)), b = g.input(r.tensor([4, 40, 37], -1, 1, .bf16)), out = g.result()
        g.append(.matmul(MatmulOp(a: a, b: b, out: out)))
        try check(g, [out], tol: 1e-2, kernels: ["batched_matmul_bf16"], "matmul bf16")
    }

    /// Batch dims that do not merge into two stay on the reference per call, with the same result.
    func testMatmulBatchBeyondTwoDimsFallsBackAtRunTime() throws {
        var r = Random(2)
        var g = RefGraph()
        let a = g.input(r.tensor([2, 1, 3, 4, 5])), b = g.input(r.tensor([1, 3, 1, 5, 6])), out = g.result()
        g.append(.matmul(MatmulOp(a: a, b: b, out: out)))
        let jit = try check(g, [out], tol: 1e-5, kernels: ["batched_matmul"], runtimeFallbacks: true, "matmul rank-3 batch")
        XCTAssertEqual(jit.runtimeFallbacks.values.reduce(0, +), 1)
    }

    // MARK: power

    func testPowerByConstantExponents() throws {
        var r = Random(3)
        for shape in [[3, 37], [1, 5, 64], [7, 20011]] {
            for (exponent, lo) in [(2.0, -3.0), (0.5, 0.01), (-1.0, 0.5), (-0.5, 0.01)] {
                var g = RefGraph()
                let x = g.input(r.tensor(shape, lo, 3)), p = g.literal(exponent, .f32), out = g.result()
                g.append(.power(PowerOp(a: x, b: p, out: out)))
                // rsqrt is sqrt then a division: two roundings, within an ulp of the reference's one.
                try check(g, [out], tol: exponent == -0.5 ? 2.4e-7 : 0, kernels: [], "power \(exponent) \(shape)")
            }
        }
        // bf16 x²: exact in f32, rounded once.
        var g = RefGraph()
        let x = g.input(r.tensor([3, 70], -4, 4, .bf16)), p = g.literal(2, .bf16), out = g.result()
        g.append(.power(PowerOp(a: x, b: p, out: out)))
        try check(g, [out], tol: 0, kernels: ["square_bf16"], "power 2 bf16")
        // Other exponents are left to the reference (named in the remarks), still correct.
        var h = RefGraph()
        let y = h.input(r.tensor([4, 9], 0.1, 2)), q = h.literal(3, .f32), o = h.result()
        h.append(.power(PowerOp(a: y, b: q, out: o)))
        let jit = try check(h, [o], tol: 0, kernels: [], allCompiled: false, "power 3")
        XCTAssertEqual(jit.remarks.count, 1)
    }

    // MARK: reductions

    func testMeanAndSumOverAdjacentAxes() throws {
        var r = Random(4)
        let cases: [([Int], [Int], Bool)] = [
            ([3, 37], [-1], true), ([1, 5, 64], [2], true), ([2, 5, 33], [1], false), ([2, 3, 4, 5], [1, 2], true),
            ([2, 3, 4, 5], [], false), ([1, 20011], [1], true), ([300, 64], [-1], false), ([6, 40, 19], [0], true),
        ]
        for (shape, axes, keepdims) in cases {
            for kind in ["mean", "sum"] {
                var g = RefGraph()
                let x = g.input(r.tensor(shape)), out = g.result()
                g.append(kind == "mean" ? .mean(MeanOp(x: x, out: out, axes: axes, keepdims: keepdims))
                                        : .sum(SumOp(x: x, out: out, axes: axes, keepdims: keepdims)))
                try check(g, [out], tol: 1e-5, kernels: ["reduce_\(kind)_f32"], "\(kind) \(shape) axes \(axes)")
            }
        }
        var g = RefGraph()
        let x = g.input(r.tensor([3, 5, 70], -2, 2, .bf16)), out = g.result()
        g.append(.mean(MeanOp(x: x, out: out, axes: [-1], keepdims: true)))
        try check(g, [out], tol: 1e-2, kernels: ["reduce_mean_bf16"], "mean bf16")
    }

    func testAnyAndAllOnBools() throws {
        var r = Random(5)
        for (shape, axes, p) in [([1, 4, 7, 96], [3], 0.02), ([3, 5, 9], [1], 0.1), ([2, 130], [-1], 0.97), ([4, 3, 33], [0, 1], 0.05)] {
            for kind in ["any", "all"] {
                var g = RefGraph()
                let x = g.input(r.bools(shape, p: p)), out = g.result()
                g.append(kind == "any" ? .any(AnyOp(x: x, out: out, axes: axes, keepdims: true))
                                       : .all(AllOp(x: x, out: out, axes: axes, keepdims: true)))
                try check(g, [out], tol: 0, kernels: ["reduce_\(kind)_bool"], "\(kind) \(shape) axes \(axes)")
            }
        }
    }

    // MARK: KV-cache writes

    /// The plain export's cache write: `out = index_put(cache, [positions], axis 2, values)`, read,
    /// then `copy_into(dst: cache, src: out)`. The index_put writes the new rows into the state in
    /// place and the write-back has nothing to copy; repeated positions run on the reference and
    /// the write-back copies its result.
    func testIndexPutAndCopyIntoWriteTheCacheInPlace() throws {
        var r = Random(6)
        var g = RefGraph()
        let cache = g.graph.addValue(TensorType(.f32, fixed: [1, 2, 16, 8]), .state(initial: nil))
        func dynamic(_ t: HostTensor, _ d: Int) -> ValueID {
            var shape = t.shape.map { Dim.fixed($0) }
            shape[d] = .dynamic(min: 0, max: 16)
            let v = g.graph.addValue(TensorType(t.dtype, shape), .input(position: g.feeds.count))
            g.graph.inputs.append(v)
            g.feeds.append(t)
            return v
        }
        let values = dynamic(r.tensor([2, 3, 8]), 1)
        let positions = dynamic(HostTensor(dtype: .i64, shape: [3], storage: [0, 1, 2]), 0)
        let written = g.result(), read = g.result()
        g.append(.indexPut(IndexPutOp(x: cache, indices: [positions], indexAxes: [2], values: values, accumulate: false, out: written)))
        g.append(.idCopy(IdCopyOp(x: written, out: read)))
        g.append(.copyInto(CopyIntoOp(dst: cache, src: written, out: cache)))
        var calls: [[HostTensor]] = []
        for (t, start) in [(3, 0), (1, 3), (1, 4), (5, 11), (2, -16)] {
            calls.append([r.tensor([2, t, 8]), HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(start + $0) })])
        }
        let jit = try check(g, [read], calls: calls, tol: 0, kernels: ["scatter_rows_inplace_b32_i64index", "copy_into_state_b32"],
                            "index_put + copy_into")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "the cache is written in place, not copied")
        // Repeated positions (a ring buffer wrapped within one call): reference index_put, then the copy.
        calls.append([r.tensor([2, 3, 8]), HostTensor(dtype: .i64, shape: [3], storage: [4, 4, 5])])
        calls.append([r.tensor([2, 1, 8]), HostTensor(dtype: .i64, shape: [1], storage: [6])])
        try check(g, [read], calls: calls, tol: 0, kernels: [], runtimeFallbacks: true, "index_put repeated positions")
    }

    // MARK: conv1d

    func testConv1DOverStridesPaddingDilationAndGroups() throws {
        var r = Random(7)
        // (length, channels, out channels, kernel, stride, padding, dilation, groups)
        let cases = [(64, 80, 64, 3, 1, 1, 1, 1), (64, 64, 64, 3, 2, 1, 1, 1), (17, 37, 9, 3, 1, 2, 2, 1),
                     (20, 12, 8, 5, 3, 0, 1, 4), (9, 6, 6, 3, 1, 1, 1, 6), (5, 19, 5, 7, 1, 3, 1, 1),
                     (40, 37, 37, 9, 1, 4, 1, 37)]   // the conformer's depthwise conv (kernel 9, "same" padding), channel tail
        for (length, channels, outChannels, kernel, stride, padding, dilation, groups) in cases {
            for transposed in [false, true] {
                var g = RefGraph()
                let x = g.input(r.tensor([2, length, channels]))
                let cg = channels / groups
                var w: ValueID
                if transposed {
                    // PyTorch's [O, C/groups, K], read through the transpose to MLX's [O, K, C/groups].
                    let stored = constant(&g, r.tensor([outChannels, cg, kernel]))
                    w = g.result()
                    g.append(.transpose(TransposeOp(x: stored, out: w, perm: [0, 2, 1])))
                } else {
                    w = constant(&g, r.tensor([outChannels, kernel, cg]))
                }
                let out = g.result()
                g.append(.conv1D(Conv1DOp(x: x, w: w, out: out, stride: stride, padding: padding, dilation: dilation, groups: groups)))
                // A depthwise conv1d (one channel per group) runs on conv2d's depthwise kernel.
                let depthwise = channels == groups && outChannels == groups
                try check(g, [out], tol: 1e-5, kernels: [depthwise ? "conv2d_dw_f32" : "conv1d_f32"],
                          "conv1d L\(length) C\(channels) O\(outChannels) K\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups) \(transposed)")
            }
        }
        var g = RefGraph()
        let x = g.input(r.tensor([1, 30, 40], -1, 1, .bf16)), w = constant(&g, r.tensor([16, 3, 40], -1, 1, .bf16)), out = g.result()
        g.append(.conv1D(Conv1DOp(x: x, w: w, out: out, stride: 1, padding: 1, dilation: 1, groups: 1)))
        try check(g, [out], tol: 1e-2, kernels: ["conv1d_bf16"], "conv1d bf16")
    }
}

extension JITKernelTests.Random {
    mutating func bools(_ shape: [Int], p: Double) -> HostTensor {
        HostTensor(dtype: .bool, shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in next() < p ? 1 : 0 })
    }
}
