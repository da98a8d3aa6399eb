import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Affine quantized matmuls (`quantized_matmul`, `fused_quantized_linear`) with bf16 and f16
/// activations — what `export_llm_hf --dtype bf16 --qlinear 4w` writes — against the reference
/// executor, which dequantizes exactly and multiplies in Double, rounding once to x's dtype.
///
/// Shapes: 2/4/8-bit codes (8-bit reads x widened in order, narrower codes permuted), groups 32
/// and 64, f32 and bf16 scales, decode (M = 1) and prefill with a 4-token block remainder (M = 6),
/// odd N. Tolerance: one result ulp (the kernel sums in f32, so the exact value may sit on the
/// other side of a rounding boundary; `ExportOpKernelChecks`). The fused forms (SwiGLU plus a
/// residual, q/k/v siblings; reference: the unfused graph, each op rounded) chain several rounded
/// steps: 2⁻⁶ (bf16) and 2⁻⁸ (f16) × the largest result, as `JITFusedLinearTests` holds fused
/// float linears. A wrong code, group, token or rounding step is off by far more.
final class JITHalfQuantizedMatmulTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Weight { var w: ValueID, scales: ValueID, biases: ValueID }

    func weight(_ g: inout RefGraph, _ r: inout Random, rows: Int, k: Int, bits: Int, groupSize: Int, params: DType) -> Weight {
        let words = k * bits / 32, groups = k / groupSize
        let codes = (0..<(rows * words)).map { _ in (r.next() * 4294967296).rounded(.down) }
        let w = g.graph.addValue(TensorType(.u32, fixed: [rows, words]), .constant(.literal(codes)))
        let s = ExportOpKernelChecks.constant(&g, r.tensor([rows, groups], 0.001, 0.05, params))
        let b = ExportOpKernelChecks.constant(&g, r.tensor([rows, groups], -0.2, 0.2, params))
        return Weight(w: w, scales: s, biases: b)
    }

    func linear(_ g: inout RefGraph, _ x: ValueID, _ w: Weight, bits: Int, groupSize: Int) -> ValueID {
        let out = g.result()
        g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: w.w, scales: w.scales, out: out, biases: w.biases, groupSize: groupSize,
                                                    bits: bits, mode: "affine", transpose: true)))
        return out
    }

    func testQuantizedMatmulHalfActivations() throws {
        var r = Random(71)
        for dtype in [DType.bf16, .f16] {
            for bits in [2, 4, 8, 6, 3] {
                for (groupSize, params) in [(32, DType.bf16), (64, .f32)] {
                    for m in [1, 6] {
                        let k = groupSize * 5, n = 37
                        var g = RefGraph()
                        let x = g.input(r.tensor([1, m, k], -1, 1, dtype))
                        let w = weight(&g, &r, rows: n, k: k, bits: bits, groupSize: groupSize, params: params)
                        let out = linear(&g, x, w, bits: bits, groupSize: groupSize)
                        try ExportOpKernelChecks.check(g, [out], kernels: ["qmm_affine_w\(bits)g\(groupSize)_\(params.name)params_\(dtype.name)_"],
                                                       "qmm \(dtype.name) w\(bits) g\(groupSize) \(params.name) params m\(m)")
                    }
                }
            }
        }
    }

    func testFusedQuantizedLinearsHalfActivations() throws {
        var r = Random(72)
        for dtype in [DType.bf16, .f16] {
            for bits in [4, 8] {
                for m in [1, 6] {
                    let k = 128, n = 48, groupSize = 32
                    var g = RefGraph()
                    let x = g.input(r.tensor([1, m, k], -1, 1, dtype)), skip = g.input(r.tensor([1, m, n], -1, 1, dtype))
                    func make(_ rows: Int) -> ValueID {
                        linear(&g, x, weight(&g, &r, rows: rows, k: k, bits: bits, groupSize: groupSize, params: dtype), bits: bits, groupSize: groupSize)
                    }
                    let gate = make(n), up = make(n)
                    let act = g.result(), prod = g.result(), mlp = g.result()
                    g.append(.silu(SiluOp(x: gate, out: act)))
                    g.append(.multiply(MultiplyOp(a: act, b: up, out: prod)))
                    g.append(.add(AddOp(a: skip, b: prod, out: mlp)))
                    let q = make(n), kk = make(16), v = make(16)
                    // A lone linear plus a residual (o_proj).
                    let o = make(n), oSum = g.result()
                    g.append(.add(AddOp(a: o, b: skip, out: oSum)))
                    var graph = g.graph
                    graph.outputs = [mlp, q, kk, v, oSum]
                    var fused = graph
                    XCTAssertEqual(try FuseQuantizedLinear().run(&fused), 4)   // swiglu, its residual, q/k/v, o + residual
                    try ExportOpKernelChecks.check(graph, compiled: fused, calls: [g.feeds], halfScaled: dtype == .bf16 ? 0x1p-6 : 0x1p-8,
                                                   kernels: ["qmm_affine_w\(bits)g32_\(dtype.name)params_\(dtype.name)_k128_n48+48_swiglu_residual"],
                                                   "fused \(dtype.name) w\(bits) m\(m)")
                }
            }
        }
    }

    /// A quantized embedding as the MLX delegate writes a half-precision export's (`--qembedding 4w`):
    /// take the token rows of the codes, scales and biases, dequantize them to bf16 / f16 — exactly
    /// the reference's values (one fused multiply-add in f32, rounded once more to the dtype, as the
    /// reference rounds its Double result through f32).
    func testQuantizedEmbeddingRowsDequantizedToHalf() throws {
        var r = Random(73)
        for dtype in [DType.bf16, .f16] {
            for (bits, groupSize) in [(4, 32), (8, 64), (2, 32)] {
                let vocab = 50, k = 128
                var g = RefGraph()
                let table = weight(&g, &r, rows: vocab, k: k, bits: bits, groupSize: groupSize, params: dtype)
                let ids = g.input(r.ints([1, 7], 0, vocab - 1))
                let w = g.result(), s = g.result(), b = g.result(), out = g.result()
                g.append(.take(TakeOp(x: table.w, out: w, index: .value(ids), axis: 0)))
                g.append(.take(TakeOp(x: table.scales, out: s, index: .value(ids), axis: 0)))
                g.append(.take(TakeOp(x: table.biases, out: b, index: .value(ids), axis: 0)))
                g.append(.dequantize(DequantizeOp(w: w, scales: s, out: out, biases: b, groupSize: groupSize, bits: bits, mode: "affine",
                                                  dtype: dtype)))
                try ExportOpKernelChecks.check(g, [out], halfScaled: 0, kernels: ["dequantize_affine_w\(bits)g\(groupSize)_\(dtype.name)params_\(dtype.name)_"],
                                               "embedding rows \(dtype.name) w\(bits) g\(groupSize)")
            }
        }
    }
}
