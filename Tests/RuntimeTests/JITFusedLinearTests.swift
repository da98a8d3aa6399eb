import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-linear's kernels against the unfused graph on the reference executor (the definition): a
/// gated MLP as plain exports write it (gate + a broadcast bias add, silu spelled x·sigmoid(x), the
/// residual add), a GeGLU (tanh gelu) pair, an fc1 with its bias and erf gelu, and q/k/v-style
/// siblings with mixed biases, over every M from 1 to 19 (decode, the 4-token blocks and their
/// remainders) and K/N that leave vector tails, odd row tiles and thread splits mid-matrix.
///
/// Tolerance: f32 1e-5 × max |reference| (summation order of the dot products; silu's and gelu's
/// approximations add ~1e-7 relative). bf16 2⁻⁶ × max |reference|: the kernel rounds every step to
/// bf16 as the unfused ops do, but a dot product summed in another order can round to the
/// neighbouring bf16 (2⁻⁸ relative), and x·sigmoid(x) is rounded twice by the reference, once by
/// the kernel; f16 likewise at 2⁻⁸ (its ulp is 2⁻¹¹). Mixed dtypes with an f32 result are held to
/// f32's bound. A wrong row, token, bias or epilogue is off by O(1).
extension JITKernelTests {
    func checkFusedLinears(dtype: DType, weights: DType? = nil, m: Int, k: Int, n: Int, seed: UInt64,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let wdtype = weights ?? dtype, out = ShapeRules.promote(dtype, wdtype)
        var r = Random(seed)
        var g = RefGraph()
        let x = g.input(r.tensor([1, m, k], -1, 1, dtype)), skip = g.input(r.tensor([1, m, n], -1, 1, dtype))
        let scale = 1 / Double(k).squareRoot()
        func constant(_ shape: [Int], _ lo: Double, _ hi: Double) -> ValueID {
            g.graph.addValue(TensorType(wdtype, fixed: shape), .constant(.literal(r.tensor(shape, lo, hi, wdtype).storage)))
        }
        func linear(_ rows: Int, bias: Bool = false) -> ValueID {
            let w = constant([rows, k], -2 * scale, 2 * scale)
            let t = g.result(), out = g.result()
            g.append(.transpose(TransposeOp(x: w, out: t, perm: [1, 0])))
            g.append(.addmm(AddmmOp(mat1: x, mat2: t, out: out, bias: bias ? constant([rows], -0.5, 0.5) : nil, alpha: 1, beta: 1)))
            return out
        }
        // Gated MLP: (x·W_gᵀ + b) · sigmoid(…) · (x·W_uᵀ) + skip.
        let gate = linear(n), gb = g.result(), sig = g.result(), act = g.result()
        g.append(.add(AddOp(a: gate, b: constant([n], -0.5, 0.5), out: gb)))
        g.append(.sigmoid(SigmoidOp(x: gb, out: sig)))
        g.append(.multiply(MultiplyOp(a: gb, b: sig, out: act)))
        let up = linear(n), prod = g.result(), mlp = g.result()
        g.append(.multiply(MultiplyOp(a: act, b: up, out: prod)))
        g.append(.add(AddOp(a: skip, b: prod, out: mlp)))
        // GeGLU.
        let gate2 = linear(n), gelu = g.result(), up2 = linear(n), geglu = g.result()
        g.append(.gelu(GeluOp(x: gate2, out: gelu, approximate: "tanh")))
        g.append(.multiply(MultiplyOp(a: gelu, b: up2, out: geglu)))
        // fc1 + bias and its erf gelu.
        let fc1 = linear(n + 5, bias: true), fcAct = g.result()
        g.append(.gelu(GeluOp(x: fc1, out: fcAct, approximate: "none")))
        // Siblings: q (bias), k (none), v (bias).
        let q = linear(n, bias: true), kk = linear(16), v = linear(n / 2 + 3, bias: true)
        var graph = g.graph
        graph.outputs = [mlp, geglu, fcAct, q, kk, v]
        let reference = try ReferenceExecutor(graph: graph)
        var fused = graph
        let what = "fused linear \(dtype.name) x, \(wdtype.name) w, m\(m) k\(k) n\(n)"
        XCTAssertEqual(try FuseLinear().run(&fused), 6, what)   // bias, swiglu, geglu, gelu, residual, q/k/v
        XCTAssertEqual(fused.opHistogram["fused_linear"], 4, what)
        XCTAssertEqual(fused.opHistogram["addmm"] ?? 0, 0, what)
        let jit = try JITProgram(graph: fused, pte: Self.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        for part in ["\(wdtype.name)w_\(dtype.name)_", "_swiglu_residual\(dtype.name)", "_geglu_tanh", "_bias\(wdtype.name)_gelu_",
                     "_bias\(wdtype.name)+0+\(wdtype.name)"] {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("linear_fused_") && $0.contains(part) }, "\(what): \(part) in \(jit.kernelNames)",
                          file: file, line: line)
        }
        // Float kernels carry the packed-panel GEMM for many tokens; the gated ones pair gate and up columns in each panel.
        for part in ["_bias\(wdtype.name)_gelu_", "_swiglu_residual", "_geglu_tanh"] {
            XCTAssertTrue(jit.kernelNames.contains { $0.contains(part) && $0.contains("_gemm") }, "\(what): \(part) in \(jit.kernelNames)",
                          file: file, line: line)
        }
        XCTAssertEqual(jit.fusionStats.fusions.linear, 4, what, file: file, line: line)
        XCTAssertEqual(jit.fusionStats.fusions.elementwise, 3, what, file: file, line: line)
        let want = try reference.run(g.feeds), got = try jit.run(g.feeds)
        let tol: Tolerance = out == .f32 ? .scaled(1e-5) : .scaled(out == .f16 ? 0x1p-8 : 0x1p-6)
        for j in want.indices { compare(got[j], want[j], tol, "\(what) output \(j)", file: file, line: line) }
        XCTAssertEqual(jit.runtimeFallbacks, [:], what, file: file, line: line)
        // The fused graph on the reference (its unfused definition) agrees with the original too.
        let definition = try ReferenceExecutor(graph: fused).run(g.feeds)
        for j in want.indices { compare(definition[j], want[j], tol, "\(what) definition output \(j)", file: file, line: line) }
    }

    func testFusedLinearsEveryTokenCount() throws {
        for dtype in [DType.f32, .bf16] {
            for m in 1...19 { try checkFusedLinears(dtype: dtype, m: m, k: 96, n: 40, seed: UInt64(1000 + m)) }
        }
    }

    /// f16 weights and activations, and mixed dtypes (f32 x with bf16 or f16 weights: f32 results).
    func testFusedLinearsHalfAndMixedDTypes() throws {
        var seed: UInt64 = 3000
        for (x, w) in [(DType.f16, DType.f16), (.f32, .bf16), (.f32, .f16), (.bf16, .f32)] {
            for m in [1, 5, 19] {
                seed += 1
                try checkFusedLinears(dtype: x, weights: w, m: m, k: 80, n: 37, seed: seed)
            }
        }
    }

    /// From `LinearPanels.minTokens` tokens on, the float linears are a packed-panel GEMM: whole and partial
    /// register tiles of tokens, whole and partial panels of columns (N not a multiple of two vectors, or of
    /// one for the gated pairs; siblings whose panels end mid-weight), K with and without a vector tail.
    func testFusedLinearsManyTokensTakePanels() throws {
        var seed: UInt64 = 4000
        for (k, n) in [(64, 40), (200, 37), (96, 70)] {
            for m in [48, 61, 150] {
                seed += 1
                try checkFusedLinears(dtype: .f32, m: m, k: k, n: n, seed: seed)
            }
        }
        // Half weights and x widened into the panels and the broadcasts, every step rounded as the unfused ops round.
        for (x, w) in [(DType.bf16, DType.bf16), (.f16, .f16), (.f32, .bf16), (.bf16, .f32)] {
            for (m, k, n) in [(48, 64, 40), (61, 200, 37)] {
                seed += 1
                try checkFusedLinears(dtype: x, weights: w, m: m, k: k, n: n, seed: seed)
            }
        }
    }

    func testFusedLinearsVectorTailsAndOddRows() throws {
        var seed: UInt64 = 2000
        for dtype in [DType.f32, .bf16] {
            // K: whole bf16 pairs (64), a pair plus one vector (80), a scalar tail (200); N: odd tiles.
            for (k, n) in [(64, 37), (80, 45), (200, 21)] {
                for m in [1, 4, 7, 19] {
                    seed += 1
                    try checkFusedLinears(dtype: dtype, m: m, k: k, n: n, seed: seed)
                }
            }
        }
    }
}
