import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// etLLM's plain layer with Hugging Face RoPE (`use_hf_rope`: tables from hf_precompute_freqs_cis,
/// cos/sin of cat([freqs, freqs]) stored in the program; hf_apply_rotary_emb on x [1, T, H, D];
/// llama::update_cache / custom_sdpa) on numbers: DuplicatedHalfTables spells the row slices of the
/// tables whose halves are equal (and of no other table), then fuse-rotate-half-rope,
/// canonical-kv-attention, fold-transposes and fuse-rope-attention make one `rope_attention`; run call
/// after call against the reference on the layer as written. Random table rows (equal halves) and
/// q/k/v. Tolerance 1e-5 × max |reference|.
final class DuplicatedHalfTablesNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var hq = 4, hkv = 2, d = 16, slots = 24, steps = [5, 1, 3] }

    func literal(_ xs: [Double]) -> String { "literal(" + xs.map { String($0) }.joined(separator: ", ") + ")" }

    /// Rows of [f, f] with random f, so the halves are equal and every row differs.
    func table(_ r: inout Random, _ c: Case) -> [Double] {
        (0..<c.slots).flatMap { _ -> [Double] in
            let f = r.tensor([c.d / 2], -1, 1, .f32).storage
            return f + f
        }
    }

    func rotation(x: Int, heads: Int, base n: Int, t: String, d: Int) -> String {
        let ty = "f32[1, \(t), \(heads), \(d)]", half = "f32[1, \(t), \(heads), \(d / 2)]"
        return """
          %\(n) = reshape(x: %\(x), shape: [1, %10, \(heads), \(d)]) : \(ty)
          %\(n + 1) = multiply(a: %\(n), b: %16) : \(ty)
          %\(n + 2) = slice(x: %\(n), axis: 3, start: 0, stop: \(d / 2), step: 1) : \(half)
          %\(n + 3) = slice(x: %\(n), axis: 3, start: \(d / 2), stop: 9223372036854775807, step: 1) : \(half)
          %\(n + 4) = neg(x: %\(n + 3)) : \(half)
          %\(n + 5) = concatenate(tensors: [%\(n + 4), %\(n + 2)], axis: 3) : \(ty)
          %\(n + 6) = multiply(a: %\(n + 5), b: %17) : \(ty)
          %\(n + 7) = add(a: %\(n + 1), b: %\(n + 6)) : \(ty)
          %\(n + 8) = concatenate(tensors: [%\(n + 7)], axis: 3) : \(ty)

        """
    }

    func layer(_ c: Case, cos: [Double], sin: [Double]) -> String {
        let t = "?1..\(c.steps.max()!)", cache = "f32[1, \(c.slots), \(c.hkv), \(c.d)]"
        return """
        graph @layer
        input %0 : f32[1, \(t), \(c.hq * c.d)] "xq"
        input %1 : f32[1, \(t), \(c.hkv * c.d)] "xk"
        input %2 : f32[1, \(t), \(c.hkv * c.d)] "xv"
        input %3 : i64[1] "input_pos"
        const %4 : f32[\(c.slots), \(c.d)] = \(literal(cos)) "freqs_cos"
        const %5 : f32[\(c.slots), \(c.d)] = \(literal(sin)) "freqs_sin"
        state %6 : \(cache) = zeros "k_cache"
        state %7 : \(cache) = zeros "v_cache"
        block main {
          %8 = take(x: %3, index: -1, axis: 0) : i64[]
          %9 = item_int(x: %8) : i64[]
          %10 = sym_size(a: %0, dim: 1) : i64[]
          %11 = add_int(a: %9, b: %10) : i64[]
          %12 = slice(x: %4, axis: 0, start: %9, stop: %11, step: 1) : f32[\(t), \(c.d)]
          %13 = slice(x: %5, axis: 0, start: %9, stop: %11, step: 1) : f32[\(t), \(c.d)]
          %14 = take(x: %3, index: 0, axis: 0) : i64[]
          %15 = item_int(x: %14) : i64[]
          %16 = expand_dims(x: %12, axis: 1) : f32[\(t), 1, \(c.d)]
          %17 = expand_dims(x: %13, axis: 1) : f32[\(t), 1, \(c.d)]
        \(rotation(x: 0, heads: c.hq, base: 18, t: t, d: c.d))\(rotation(x: 1, heads: c.hkv, base: 27, t: t, d: c.d))  %36 = reshape(x: %2, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %6 = llama_update_cache(value: %35, cache: %6, start_pos: %15) : \(cache)
          %7 = llama_update_cache(value: %36, cache: %7, start_pos: %15) : \(cache)
          %37 = llama_custom_sdpa(q: %26, k: %6, v: %7, start_pos: %15, attn_mask: none, dropout_p: 0.0, is_causal: true, scale: none) : f32[1, \(t), \(c.hq), \(c.d)]
        }
        outputs %37

        """
    }

    func testOnlyTablesWithEqualHalvesAreSpelledSo() throws {
        var r = Random(4300)
        let c = Case()
        var g = try IRParser.parse(layer(c, cos: table(&r, c), sin: r.tensor([c.slots, c.d], -1, 1, .f32).storage))
        XCTAssertEqual(try DuplicatedHalfTables.run(&g, Self.pte), 1, "the sine table's halves differ")
        try Verifier.verify(g)
    }

    func testFusedLayerMatchesTheLayerAsWritten() throws {
        for (c, seed) in [(Case(), UInt64(4310)), (Case(hq: 2, hkv: 2, d: 32, slots: 16, steps: [7, 1, 1, 3]), 4311)] {
            var r = Random(seed)
            let graph = try IRParser.parse(layer(c, cos: table(&r, c), sin: table(&r, c)))
            let what = "hq\(c.hq) hkv\(c.hkv) d\(c.d) steps \(c.steps)"
            var fused = graph
            XCTAssertEqual(try DuplicatedHalfTables.run(&fused, Self.pte), 2, what)
            XCTAssertEqual(try FuseRotateHalfRope().run(&fused), 2, what)
            for pass in [CanonicalKVAttention(), FoldTransposes(), DeadCodeElimination()] as [any GraphPass] { _ = try pass.run(&fused) }
            XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what)
            _ = try DeadCodeElimination().run(&fused)
            try Verifier.verify(fused)
            var at = 0
            try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.steps.count, outputs: ["out"], tolerance: 1e-5) { call in
                let t = c.steps[call]
                defer { at += t }
                return [r.tensor([1, t, c.hq * c.d], -1, 1, .f32), r.tensor([1, t, c.hkv * c.d], -1, 1, .f32),
                        r.tensor([1, t, c.hkv * c.d], -1, 1, .f32), HostTensor(dtype: .i64, shape: [1], storage: [Double(at)])]
            }
        }
    }
}
