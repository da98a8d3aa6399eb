import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The compiled affine quantized matmul against the reference executor, which dequantizes the
/// weights and then multiplies (the dequantize-then-compute oracle).
///
/// Shapes cover every code path: 2/4/8-bit codes (several to a byte, x permuted), 3/5/6-bit codes (straddling
/// bytes and words, read in element order), group sizes 32/64/128, f32/bf16/f16 scales and
/// biases, group counts that are a whole number of vectors and ones that leave power-of-two
/// remainders (3, 5, 24 groups), decode (M = 1), prefill blocks of 8 tokens with and without a
/// remainder (M = 8, 11, 19), and odd N (thread splits mid-matrix).
///
/// Tolerance: 1e-5 × max |reference|. The kernel sums `s·Σq·x + b·Σx` per group in f32 with
/// vector partial sums; the reference sums dequantized products in order in double precision.
/// Measured ≤ 1e-6 on these shapes; a wrong code, group, scale or token is off by O(1).
extension JITKernelTests {

    /// x [m, k] times a random quantized weight [n, k] with random scales and biases: the graph and its result.
    func quantizedMatmulGraph(bits: Int, groupSize: Int, params: DType, m: Int, k: Int, n: Int, seed: UInt64) -> (RefGraph, ValueID) {
        var r = Random(seed)
        let words = k * bits / 32, groups = k / groupSize
        let codes: [Double] = (0..<(n * words)).map { _ in (r.next() * 4294967296).rounded(.down) }
        var g = RefGraph()
        let x = g.input(r.tensor([m, k]))
        let w = g.graph.addValue(TensorType(.u32, fixed: [n, words]), .constant(.literal(codes)))
        let scales = r.tensor([n, groups], 0.001, 0.05, params), biases = r.tensor([n, groups], -0.2, 0.2, params)
        let s = g.graph.addValue(TensorType(params, fixed: [n, groups]), .constant(.literal(scales.storage)))
        let b = g.graph.addValue(TensorType(params, fixed: [n, groups]), .constant(.literal(biases.storage)))
        let out = g.result()
        g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: w, scales: s, out: out, biases: b, groupSize: groupSize, bits: bits,
                                                    mode: "affine", transpose: true)))
        return (g, out)
    }

    func checkQuantizedMatmul(bits: Int, groupSize: Int, params: DType, m: Int, k: Int, n: Int, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let (g, out) = quantizedMatmulGraph(bits: bits, groupSize: groupSize, params: params, m: m, k: k, n: n, seed: seed)
        let what = "qmm w\(bits) g\(groupSize) \(params.name) m\(m) k\(k) n\(n)"
        let jit = try check(g, [out], .scaled(1e-5), kernels: ["qmm_affine_w\(bits)g\(groupSize)_\(params.name)params"],
                            what, file: file, line: line)
        // Many tokens: the kernel carries the dequantize-into-panels GEMM (taken from 48 tokens on).
        if m >= 48 { XCTAssertTrue(jit.kernelNames.contains { $0.contains("_gemm") }, "\(what): \(jit.kernelNames)", file: file, line: line) }
    }

    /// From 48 tokens on, each panel of columns is dequantized once into f32 and multiplied as the f32
    /// GEMM does (whole and partial token tiles, partial panels at odd N; codes that straddle bytes).
    func testQuantizedMatmulManyTokensTakePanels() throws {
        var seed: UInt64 = 150
        for bits in [4, 8, 2, 3, 5, 6] {
            for (m, params) in [(48, DType.f32), (61, .bf16), (100, .f32)] {
                seed += 1
                try checkQuantizedMatmul(bits: bits, groupSize: 32, params: params, m: m, k: 160, n: 45, seed: seed)
            }
        }
    }

    /// `MLXC_QMM_INT16=1`: one-token 4-bit rows on x rounded to int16 per group (`AffineInt16Rows`), against the
    /// dequantize-then-compute reference. Tolerance 1e-4 × max |reference| (the 4-bit fixtures' bound): each x is
    /// off by at most max|x of its group| / 65534, so the error is a random walk of ~K such terms times s·q —
    /// measured 4.4e-6–2.9e-5 here (the largest at K = 3072); a wrong nibble, pairing or group scale is off by O(1). M = 5: four tokens take
    /// the f32 block, the fifth the int16 rows.
    func testQuantizedMatmulInt16Decode() throws {
        setenv("MLXC_QMM_INT16", "1", 1)
        defer { unsetenv("MLXC_QMM_INT16") }
        var seed: UInt64 = 300
        for groupSize in [32, 64, 128] {
            for (k, n, m, params) in [(groupSize * 3, 37, 1, DType.f32), (groupSize * 24, 21, 1, .bf16), (groupSize * 5, 19, 5, .f32)] {
                seed += 1
                let (g, out) = quantizedMatmulGraph(bits: 4, groupSize: groupSize, params: params, m: m, k: k, n: n, seed: seed)
                let what = "int16 qmm g\(groupSize) \(params.name) m\(m) k\(k) n\(n)"
                let jit = try check(g, [out], .scaled(1e-4), kernels: ["qmm_affine_w4g\(groupSize)_\(params.name)params"], what)
                #if arch(x86_64)
                XCTAssertTrue(jit.kernelNames.contains { $0.contains("_xi16") }, "\(what): \(jit.kernelNames)")
                #endif
            }
        }
    }

    func testQuantizedMatmulEveryBitWidthAndGroupSize() throws {
        var seed: UInt64 = 1
        for bits in [2, 3, 4, 5, 6, 8] {
            for groupSize in [32, 64, 128] {
                for (k, n) in [(groupSize * 3, 37), (groupSize * 24, 21)] {
                    seed += 1
                    try checkQuantizedMatmul(bits: bits, groupSize: groupSize, params: .f32, m: 1, k: k, n: n, seed: seed)
                }
            }
        }
    }

    func testQuantizedMatmulPrefillTokenBlocks() throws {
        var seed: UInt64 = 100
        for bits in [4, 8, 2, 6, 3, 5] {
            for m in [2, 8, 11, 19] {
                seed += 1
                try checkQuantizedMatmul(bits: bits, groupSize: 32, params: .f32, m: m, k: 160, n: 45, seed: seed)
            }
        }
    }

    func testQuantizedMatmulHalfPrecisionParams() throws {
        var seed: UInt64 = 200
        for params in [DType.bf16, .f16] {
            for bits in [4, 8] {
                seed += 1
                try checkQuantizedMatmul(bits: bits, groupSize: 64, params: params, m: 3, k: 320, n: 33, seed: seed)
                try checkQuantizedMatmul(bits: bits, groupSize: 32, params: params, m: 1, k: 768, n: 64, seed: seed + 50)
            }
        }
    }
}

// MARK: fused linears

extension JITKernelTests {
    /// The unfused graph on the reference against the graph after fuse-quantized-linear, compiled:
    /// SwiGLU with a residual, and q/k/v-style siblings, at 2/4/8 bits, decode and prefill shapes (from 48
    /// tokens the panel GEMM; N = 45 leaves partial panels);
    /// silu also spelled `g · sigmoid(g)` as XNNPACK 8da4w delegates write it. Tolerance as for the
    /// plain kernel, 1e-5 × max |reference| (silu's exp approximation adds ~1e-7 relative).
    func testFusedQuantizedLinearsMatchTheUnfusedGraph() throws {
        var seed: UInt64 = 300
        for (bits, spelled) in [(4, false), (8, false), (2, false), (4, true), (8, true)] {
            for (m, n) in [(1, 48), (6, 48), (53, 48), (61, 45)] {
                seed += 1
                var r = Random(seed)
                let k = 128, groupSize = 32, words = k * bits / 32, groups = k / groupSize
                var g = RefGraph()
                let x = g.input(r.tensor([1, m, k])), skip = g.input(r.tensor([1, m, n]))
                func weight(_ rows: Int) -> (ValueID, ValueID, ValueID) {
                    let codes = (0..<(rows * words)).map { _ in (r.next() * 4294967296).rounded(.down) }
                    let w = g.graph.addValue(TensorType(.u32, fixed: [rows, words]), .constant(.literal(codes)))
                    let s = g.graph.addValue(TensorType(.f32, fixed: [rows, groups]), .constant(.literal(r.tensor([rows, groups], 0.001, 0.05).storage)))
                    let b = g.graph.addValue(TensorType(.f32, fixed: [rows, groups]), .constant(.literal(r.tensor([rows, groups], -0.2, 0.2).storage)))
                    return (w, s, b)
                }
                func linear(_ wsb: (ValueID, ValueID, ValueID)) -> ValueID {
                    let out = g.result()
                    g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: wsb.0, scales: wsb.1, out: out, biases: wsb.2, groupSize: groupSize,
                                                                bits: bits, mode: "affine", transpose: true)))
                    return out
                }
                let gate = linear(weight(n)), up = linear(weight(n))
                let act = g.result(), prod = g.result(), mlp = g.result()
                if spelled {
                    let sig = g.result()
                    g.append(.sigmoid(SigmoidOp(x: gate, out: sig)))
                    g.append(.multiply(MultiplyOp(a: gate, b: sig, out: act)))
                } else {
                    g.append(.silu(SiluOp(x: gate, out: act)))
                }
                g.append(.multiply(MultiplyOp(a: act, b: up, out: prod)))
                g.append(.add(AddOp(a: skip, b: prod, out: mlp)))
                let q = linear(weight(n)), kk = linear(weight(16)), v = linear(weight(16))
                var graph = g.graph
                graph.outputs = [mlp, q, kk, v]
                let reference = try ReferenceExecutor(graph: graph)
                var fused = graph
                XCTAssertEqual(try FuseQuantizedLinear().run(&fused), 3)   // swiglu, its residual, q/k/v
                XCTAssertEqual(fused.opHistogram["fused_quantized_linear"], 2)
                let jit = try JITProgram(graph: fused, pte: Self.pte)
                XCTAssertEqual(jit.remarks, [], "w\(bits) m\(m) spelled \(spelled): ops left to the reference")
                XCTAssertTrue(jit.kernelNames.contains { $0.contains("_swiglu_residual_") }, "\(jit.kernelNames)")
                // Many tokens: the SwiGLU pair dequantized into shared panels (gate and up columns side by side), as the siblings.
                if m >= 48 { XCTAssertTrue(jit.kernelNames.contains { $0.contains("_swiglu_residual_") && $0.contains("_gemm") }, "\(jit.kernelNames)") }
                let want = try reference.run(g.feeds), got = try jit.run(g.feeds)
                for j in want.indices { compare(got[j], want[j], .scaled(1e-5), "fused w\(bits) m\(m) spelled \(spelled) output \(j)", file: #filePath, line: #line) }
                XCTAssertEqual(jit.runtimeFallbacks, [:])
            }
        }
    }
}
