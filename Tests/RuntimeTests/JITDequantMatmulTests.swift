import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Plain exports' weight-only quantized linears (`dequantize_affine` → transpose → matmul / addmm):
/// the graph after fuse-dequant-matmul (weights repacked at load into MLX's affine layout, then the
/// quantized linear kernel), compiled, against the unfused graph on the reference (dequantize, then
/// multiply in double precision).
///
/// Random signed codes over the whole range, random non-zero zero points and scales, 8-bit
/// (int8 codes, [-128, 127]) and 4-bit (int4 codes stored one per int8 byte, [-8, 7]), groups of
/// 32, 64 and 128, M = 1 … 9 tokens in calls of one program (decode and prefill blocks with
/// remainders). Tolerance 1e-5 × max |reference|: the repack is exact up to the f32 rounding of
/// bias = s·(lo − z); a wrong code, nibble order, group or zero point is off by O(1).
extension JITKernelTests {
    struct DequantLinear {
        var graph: Graph
        var feeds: [[HostTensor]]
        var out: ValueID
    }

    /// x [?M, K] · dequantize_affine(q [N, K])ᵀ (+ bias [N] through addmm), with M = 1 … 9 over the calls.
    func dequantLinear(bits: Int, groupSize: Int, k: Int, n: Int, bias: Bool, seed: UInt64) -> DequantLinear {
        var r = Random(seed)
        let (lo, hi) = bits == 8 ? (-128, 127) : (-8, 7)
        let groups = k / groupSize
        var g = RefGraph()
        let x = dynamicInput(&g, r.tensor([1, k]), dynamic: 0, max: 16)
        let q = g.graph.addValue(TensorType(.i8, fixed: [n, k]), .constant(.literal(r.ints([n, k], lo, hi, .i8).storage)))
        let s = g.graph.addValue(TensorType(.f32, fixed: [n, groups]),
                                 .constant(.literal(r.tensor([n, groups], 0.001, 0.05).storage)))
        let z = g.graph.addValue(TensorType(.i8, fixed: [n, groups]), .constant(.literal(r.ints([n, groups], lo, hi, .i8).storage)))
        let d = g.result(TensorType(.f32, fixed: [n, k])), t = g.result(TensorType(.f32, fixed: [k, n]))
        let out = g.result()
        g.append(.dequantizeAffine(DequantizeAffineOp(x: q, blockSize: [1, groupSize], scale: s, zeroPoint: z, quantMin: lo,
                                                      quantMax: hi, dtype: .f32, out: d)))
        g.append(.transpose(TransposeOp(x: d, out: t, perm: [1, 0])))
        if bias {
            let c = g.graph.addValue(TensorType(.f32, fixed: [n]), .constant(.literal(r.tensor([n]).storage)))
            g.append(.addmm(AddmmOp(mat1: x, mat2: t, out: out, bias: c)))
        } else {
            g.append(.matmul(MatmulOp(a: x, b: t, out: out)))
        }
        g.graph.outputs = [out]
        let calls = (1...9).map { m in [r.tensor([m, k])] }
        return DequantLinear(graph: g.graph, feeds: calls, out: out)
    }

    func checkDequantLinear(bits: Int, groupSize: Int, k: Int, n: Int, bias: Bool = false, seed: UInt64,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let c = dequantLinear(bits: bits, groupSize: groupSize, k: k, n: n, bias: bias, seed: seed)
        let what = "dequant w\(bits) g\(groupSize) k\(k) n\(n)\(bias ? " bias" : "")"
        let reference = try ReferenceExecutor(graph: c.graph)
        var fused = c.graph
        XCTAssertEqual(try FuseDequantMatmul().run(&fused), 1, what, file: file, line: line)
        try Verifier.verify(fused)
        XCTAssertEqual(fused.opHistogram["quantized_matmul"], 1, what, file: file, line: line)
        XCTAssertNil(fused.opHistogram["dequantize_affine"], what, file: file, line: line)
        let jit = try JITProgram(graph: fused, pte: Self.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("qmm_affine_w\(bits)g\(groupSize)_") }, "\(what): \(jit.kernelNames)",
                      file: file, line: line)
        XCTAssertEqual(jit.fusionStats.fusions.dequantMatmul, 1, what, file: file, line: line)
        for feeds in c.feeds {
            let want = try reference.run(feeds), got = try jit.run(feeds)
            compare(got[0], want[0], .scaled(1e-5), "\(what) m\(feeds[0].shape[0])", file: file, line: line)
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): kernels that left calls to the reference", file: file, line: line)
    }

    func testDequantizeAffineLinearsMatchTheUnfusedGraph() throws {
        var seed: UInt64 = 700
        for bits in [8, 4] {
            for groupSize in [32, 64, 128] {
                seed += 1
                try checkDequantLinear(bits: bits, groupSize: groupSize, k: groupSize * 3, n: 37, seed: seed)
            }
        }
    }

    func testDequantizeAffineLinearWithBiasThroughAddmm() throws {
        try checkDequantLinear(bits: 4, groupSize: 32, k: 96, n: 24, bias: true, seed: 720)
        try checkDequantLinear(bits: 8, groupSize: 64, k: 128, n: 24, bias: true, seed: 721)
    }

    /// The repack alone: scale·u + bias reproduces (q − z)·s for every element (4 and 8 bits, LSB-first words).
    func testPackAffineWeightReproducesTheDequantizedWeight() throws {
        var r = Random(730)
        for (bits, lo, hi) in [(4, -8, 7), (8, -128, 127)] {
            let (n, k, groupSize) = (5, 64, 32)
            let q = r.ints([n, k], lo, hi, .i8), s = r.tensor([n, k / groupSize], 0.001, 0.05), z = r.ints([n, k / groupSize], lo, hi, .i8)
            let want = try Environment.dequantizeAffine(q, blockSize: [1, groupSize], scale: s, zeroPoint: z, dtype: .f32)
            let packed = try Environment.packAffineWeight(q, scale: s, zeroPoint: z, quantMin: lo, bits: bits, groupSize: groupSize)
            XCTAssertEqual(packed.w.shape, [n, k * bits / 32])
            let got = try Environment.dequantize(packed.w, scales: packed.scales, biases: packed.biases, groupSize: groupSize,
                                                 bits: bits, mode: "affine")
            compare(got, want, .scaled(1e-6), "pack w\(bits)", file: #filePath, line: #line)
            // A code outside the declared range cannot be repacked.
            var bad = q
            bad.storage[3] = Double(hi + 1)
            XCTAssertThrowsError(try Environment.packAffineWeight(bad, scale: s, zeroPoint: z, quantMin: lo, bits: bits, groupSize: groupSize))
        }
    }

    /// torchao's formula on a hand-computed case: (q − z)·s per [1, 2] block, f32 result.
    func testDequantizeAffineSemantics() throws {
        let q = HostTensor(dtype: .i8, shape: [2, 4], storage: [-8, 7, 0, 3, -128, 127, 5, -5])
        let s = HostTensor(dtype: .f32, shape: [2, 2], storage: [0.5, 0.25, 2, 0.125])
        let z = HostTensor(dtype: .i8, shape: [2, 2], storage: [1, -2, 0, 3])
        let out = try Environment.dequantizeAffine(q, blockSize: [1, 2], scale: s, zeroPoint: z, dtype: .f32)
        XCTAssertEqual(out.dtype, .f32)
        XCTAssertEqual(out.storage, [-4.5, 3, 0.5, 1.25, -256, 254, 0.25, -1])
        let noZero = try Environment.dequantizeAffine(q, blockSize: [2, 4], scale: HostTensor(dtype: .f32, shape: [1], storage: [0.5]),
                                                      zeroPoint: nil, dtype: .f32)
        XCTAssertEqual(noZero.storage, q.storage.map { $0 * 0.5 })
    }
}
