import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// etLLM's plain attention layer on numbers: Meta-style RoPE (`rope.py` apply_rotary_emb — x reshaped
/// to pairs, lanes by slice + squeeze or take, tables `reshape(slice(freqs, p, p + T), [1, T, 1, h])`,
/// stack or expand_dims + concatenate, flatten) of q and k, `llama::update_cache` and
/// `llama::custom_sdpa`, run call after call on the reference as written and on the JIT after
/// fuse-rope-pattern, canonical-kv-attention, fold-transposes and fuse-rope-attention (one
/// `rope_attention`): the outputs agree after every call. Random q/k/v and random tables, so a
/// wrong row, lane or pairing shows. Tolerance 1e-5 × max |reference|.
final class FuseRopePatternPairsNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var hq = 4, hkv = 2, d = 16, slots = 24, steps = [5, 1, 3], takeLanes = false, stack = false }

    /// One rotation of %\(x) into [1, T, heads, d]: values from `base`; q reshapes flat x straight to
    /// pairs (as the export writes it), k views it [1, T, H, d] first. → text and the result's number.
    func rotation(_ c: Case, x: Int, heads: Int, base: Int, flat: Bool) -> (text: String, out: Int) {
        let t = "?1..\(c.steps.max()!)", h = c.d / 2, lead = "1, \(t), \(heads)"
        var next = base, text = ""
        func id() -> Int { defer { next += 1 }; return next }
        var source = x
        if !flat {
            source = id()
            text += "  %\(source) = reshape(x: %\(x), shape: [1, %10, \(heads), \(c.d)]) : f32[\(lead), \(c.d)]\n"
        }
        let pairs = id()
        text += "  %\(pairs) = reshape(x: %\(source), shape: [1, %10, \(heads), -1, 2]) : f32[\(lead), \(h), 2]\n"
        let x1: Int, x2: Int
        if c.takeLanes {
            (x1, x2) = (id(), id())
            text += "  %\(x1) = take(x: %\(pairs), index: 0, axis: 4) : f32[\(lead), \(h)]\n"
            text += "  %\(x2) = take(x: %\(pairs), index: 1, axis: -1) : f32[\(lead), \(h)]\n"
        } else {
            let (a, b) = (id(), id())
            (x1, x2) = (id(), id())
            text += """
              %\(a) = slice(x: %\(pairs), axis: 4, start: 0, stop: 1, step: 1) : f32[\(lead), \(h), 1]
              %\(b) = slice(x: %\(pairs), axis: 4, start: 1, stop: 2, step: 1) : f32[\(lead), \(h), 1]
              %\(x1) = squeeze(x: %\(a), dims: [4]) : f32[\(lead), \(h)]
              %\(x2) = squeeze(x: %\(b), dims: [4]) : f32[\(lead), \(h)]

            """
        }
        let (p0, p1, re, p2, p3, im) = (id(), id(), id(), id(), id(), id())
        text += """
          %\(p0) = multiply(a: %\(x1), b: %16) : f32[\(lead), \(h)]
          %\(p1) = multiply(a: %\(x2), b: %17) : f32[\(lead), \(h)]
          %\(re) = subtract(a: %\(p0), b: %\(p1)) : f32[\(lead), \(h)]
          %\(p2) = multiply(a: %\(x1), b: %17) : f32[\(lead), \(h)]
          %\(p3) = multiply(a: %\(x2), b: %16) : f32[\(lead), \(h)]
          %\(im) = add(a: %\(p2), b: %\(p3)) : f32[\(lead), \(h)]

        """
        let joined: Int
        if c.stack {
            joined = id()
            text += "  %\(joined) = stack(tensors: [%\(re), %\(im)], axis: -1) : f32[\(lead), \(h), 2]\n"
        } else {
            let (ea, eb) = (id(), id())
            joined = id()
            text += """
              %\(ea) = expand_dims(x: %\(re), axis: 4) : f32[\(lead), \(h), 1]
              %\(eb) = expand_dims(x: %\(im), axis: 4) : f32[\(lead), \(h), 1]
              %\(joined) = concatenate(tensors: [%\(ea), %\(eb)], axis: 4) : f32[\(lead), \(h), 2]

            """
        }
        let out = id()
        text += "  %\(out) = reshape(x: %\(joined), shape: [1, %10, \(heads), \(c.d)]) : f32[\(lead), \(c.d)]\n"
        return (text, out)
    }

    func layer(_ c: Case) -> String {
        let t = "?1..\(c.steps.max()!)", h = c.d / 2, cache = "f32[1, \(c.slots), \(c.hkv), \(c.d)]"
        let q = rotation(c, x: 0, heads: c.hq, base: 18, flat: true)
        let k = rotation(c, x: 1, heads: c.hkv, base: q.out + 1, flat: false)
        let n = k.out + 1
        return """
        graph @layer
        input %0 : f32[1, \(t), \(c.hq * c.d)] "xq"
        input %1 : f32[1, \(t), \(c.hkv * c.d)] "xk"
        input %2 : f32[1, \(t), \(c.hkv * c.d)] "xv"
        input %3 : i64[1] "input_pos"
        input %4 : f32[\(c.slots), \(h)] "freqs_cos"
        input %5 : f32[\(c.slots), \(h)] "freqs_sin"
        state %6 : \(cache) = zeros "k_cache"
        state %7 : \(cache) = zeros "v_cache"
        block main {
          %8 = take(x: %3, index: -1, axis: 0) : i64[]
          %9 = item_int(x: %8) : i64[]
          %10 = sym_size(a: %0, dim: 1) : i64[]
          %11 = add_int(a: %9, b: %10) : i64[]
          %12 = slice(x: %4, axis: 0, start: %9, stop: %11, step: 1) : f32[\(t), \(h)]
          %13 = slice(x: %5, axis: 0, start: %9, stop: %11, step: 1) : f32[\(t), \(h)]
          %14 = take(x: %3, index: 0, axis: 0) : i64[]
          %15 = item_int(x: %14) : i64[]
          %16 = reshape(x: %12, shape: [1, %10, 1, \(h)]) : f32[1, \(t), 1, \(h)]
          %17 = reshape(x: %13, shape: [1, %10, 1, \(h)]) : f32[1, \(t), 1, \(h)]
        \(q.text)\(k.text)  %\(n) = reshape(x: %2, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %6 = llama_update_cache(value: %\(k.out), cache: %6, start_pos: %15) : \(cache)
          %7 = llama_update_cache(value: %\(n), cache: %7, start_pos: %15) : \(cache)
          %\(n + 1) = llama_custom_sdpa(q: %\(q.out), k: %6, v: %7, start_pos: %15, attn_mask: none, dropout_p: 0.0, is_causal: true, scale: none) : f32[1, \(t), \(c.hq), \(c.d)]
        }
        outputs %\(n + 1)

        """
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(layer(c))
        let what = "hq\(c.hq) hkv\(c.hkv) d\(c.d) steps \(c.steps)\(c.takeLanes ? " take" : "")\(c.stack ? " stack" : "")"
        var fused = graph
        XCTAssertEqual(try FuseRopePattern().run(&fused), 2, what, file: file, line: line)
        for pass in [CanonicalKVAttention(), FoldTransposes(), DeadCodeElimination()] as [any GraphPass] { _ = try pass.run(&fused) }
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertNil(fused.opHistogram["rope_table"], what, file: file, line: line)
        let tables = [r.tensor([c.slots, c.d / 2], -1, 1, .f32), r.tensor([c.slots, c.d / 2], -1, 1, .f32)]
        var at = 0
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.steps.count, outputs: ["out"],
                                        tolerance: 1e-5, file: file, line: line) { call in
            let t = c.steps[call]
            defer { at += t }
            return [r.tensor([1, t, c.hq * c.d], -1, 1, .f32), r.tensor([1, t, c.hkv * c.d], -1, 1, .f32),
                    r.tensor([1, t, c.hkv * c.d], -1, 1, .f32), HostTensor(dtype: .i64, shape: [1], storage: [Double(at)])] + tables
        }
    }

    func testSliceSqueezeLanesAndConcatenate() throws {
        try check(Case(), seed: 4100)
        try check(Case(hq: 2, hkv: 2, d: 32, slots: 16, steps: [7, 1, 1, 3]), seed: 4101)
    }

    func testTakeLanesAndStack() throws {
        try check(Case(hq: 6, hkv: 2, d: 8, steps: [3, 2, 1], takeLanes: true, stack: true), seed: 4110)
    }
}
