import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import IRTestSupport
import MLXCPasses
@testable import MLXCRuntime

/// canonical-kv-attention then fuse-rope-attention on numbers: attention layers as ExecuTorch's
/// custom-cache exports write them — MLX `kv_cache_update` on a flat cache with `custom_sdpa`'s
/// causal read of `slice(cache, 0, start + T)`, the ring buffer's two wrapped writes with a
/// sliding-window mask, and `llama::update_cache` / `llama::custom_sdpa` on [B, S, H, D] caches —
/// run call after call (prefill chunks, then decode, wrapping the ring) on the reference as written
/// and on the JIT after the passes (one `rope_attention`): outputs, and caches where the layout is
/// kept, agree after every call. Random q/k/v and window masks. Tolerance 1e-5 × max |reference|.
final class CanonicalKVAttentionNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var hq = 4, hkv = 2, d = 16, slots = 24, steps = [5, 1, 2], ring = 0 }

    /// The layer as IR text: inputs x (q rows), k, v, positions [T] (and a window mask); outputs
    /// out and the caches. Every tensor's token count is the reshape target %10.
    func mlxLayer(_ c: Case) -> String {
        let t = "?1..\(c.steps.max()!)", s = c.slots, cache = "f32[1, \(c.hkv), \(s), \(c.d)]"
        let rope = "dims: \(c.d), offset: %15, freqs: none, traditional: false, base: 10000.0, scale: 1.0"
        var writes = ""
        for (cacheID, u, base) in [(6, 21, 40), (7, 14, 50)] {
            if c.ring == 0 {
                writes += """
                  %\(base) = sym_size(a: %\(u), dim: 2) : i64[]
                  %\(base + 1) = add_int(a: %15, b: %\(base)) : i64[]
                  %\(cacheID) = slice_update(dst: %\(cacheID), update: %\(u), axis: 2, start: %15, stop: %\(base + 1), step: 1) : \(cache)

                """
            } else {
                writes += """
                  %\(base) = mod_int(a: %15, b: \(s)) : i64[]
                  %\(base + 1) = sym_size(a: %\(u), dim: 2) : i64[]
                  %\(base + 2) = subtract_int(a: \(s), b: %\(base)) : i64[]
                  %\(base + 3) = slice(x: %\(u), axis: 2, start: 0, stop: %\(base + 2), step: 1) : f32[1, \(c.hkv), ?0..\(c.steps.max()!), \(c.d)]
                  %\(base + 4) = sym_size(a: %\(base + 3), dim: 2) : i64[]
                  %\(base + 5) = slice(x: %\(u), axis: 2, start: %\(base + 4), stop: %\(base + 1), step: 1) : f32[1, \(c.hkv), ?0..\(c.steps.max()!), \(c.d)]
                  %\(base + 6) = add_int(a: %\(base), b: %\(base + 4)) : i64[]
                  %\(base + 7) = subtract_int(a: %\(base + 1), b: %\(base + 4)) : i64[]
                  %\(cacheID) = slice_update(dst: %\(cacheID), update: %\(base + 3), axis: 2, start: %\(base), stop: %\(base + 6), step: 1) : \(cache)
                  %\(cacheID) = slice_update(dst: %\(cacheID), update: %\(base + 5), axis: 2, start: 0, stop: %\(base + 7), step: 1) : \(cache)

                """
            }
        }
        // custom_sdpa: keys up to start + T, causal; a ring layer reads the whole buffer (start = R − T) with its mask.
        let read = c.ring == 0
            ? "  %60 = sym_size(a: %20, dim: 2) : i64[]\n  %61 = add_int(a: %15, b: %60) : i64[]\n"
            : "  %62 = subtract_int(a: \(s), b: %10) : i64[]\n  %60 = sym_size(a: %20, dim: 2) : i64[]\n  %61 = add_int(a: %62, b: %60) : i64[]\n"
        let mask = c.ring == 0 ? "none" : "%5", causal = c.ring == 0
        return """
        graph @layer
        input %0 : f32[1, \(t), \(c.hq * c.d)] "x"
        input %1 : f32[1, \(t), \(c.hkv * c.d)] "k"
        input %2 : f32[1, \(t), \(c.hkv * c.d)] "v"
        input %3 : i64[\(t)] "positions"
        input %5 : f32[1, 1, \(t), \(s)] "window_mask"
        state %6 : \(cache) = zeros "k_cache"
        state %7 : \(cache) = zeros "v_cache"
        block main {
          %10 = sym_size(a: %0, dim: 1) : i64[]
          %11 = reshape(x: %0, shape: [1, %10, \(c.hq), \(c.d)]) : f32[1, \(t), \(c.hq), \(c.d)]
          %12 = transpose(x: %11, perm: [0, 2, 1, 3]) : f32[1, \(c.hq), \(t), \(c.d)]
          %13 = reshape(x: %2, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %14 = transpose(x: %13, perm: [0, 2, 1, 3]) : f32[1, \(c.hkv), \(t), \(c.d)]
          %16 = reshape(x: %1, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %17 = transpose(x: %16, perm: [0, 2, 1, 3]) : f32[1, \(c.hkv), \(t), \(c.d)]
          %18 = take(x: %3, index: 0, axis: 0) : i64[]
          %15 = item_int(x: %18) : i64[]
          %20 = rope(x: %12, \(rope)) : f32[1, \(c.hq), \(t), \(c.d)]
          %21 = rope(x: %17, \(rope)) : f32[1, \(c.hkv), \(t), \(c.d)]
        \(writes)\(read)  %63 = slice(x: %6, axis: 2, start: 0, stop: %61, step: 1) : f32[1, \(c.hkv), ?0..\(s), \(c.d)]
          %64 = slice(x: %7, axis: 2, start: 0, stop: %61, step: 1) : f32[1, \(c.hkv), ?0..\(s), \(c.d)]
          %65 = sdpa(q: %20, k: %63, v: %64, scale: 0.25, mask: \(mask), causal: \(causal)) : f32[1, \(c.hq), \(t), \(c.d)]
          %66 = id_copy(x: %6) : \(cache)
          %67 = id_copy(x: %7) : \(cache)
        }
        outputs %65, %66, %67

        """
    }

    /// ExecuTorch's llama custom ops: BSHD caches, q/k already rotated by MLX-style rope ops.
    func llamaLayer(_ c: Case) -> String {
        let t = "?1..\(c.steps.max()!)", s = c.slots, cache = "f32[1, \(s), \(c.hkv), \(c.d)]"
        let rope = "dims: \(c.d), offset: %15, freqs: none, traditional: true, base: 10000.0, scale: 1.0"
        return """
        graph @layer
        input %0 : f32[1, \(t), \(c.hq * c.d)] "x"
        input %1 : f32[1, \(t), \(c.hkv * c.d)] "k"
        input %2 : f32[1, \(t), \(c.hkv * c.d)] "v"
        input %3 : i64[1] "input_pos"
        state %6 : \(cache) = zeros "k_cache"
        state %7 : \(cache) = zeros "v_cache"
        block main {
          %10 = sym_size(a: %0, dim: 1) : i64[]
          %18 = take(x: %3, index: 0, axis: 0) : i64[]
          %15 = item_int(x: %18) : i64[]
          %11 = reshape(x: %0, shape: [1, %10, \(c.hq), \(c.d)]) : f32[1, \(t), \(c.hq), \(c.d)]
          %12 = transpose(x: %11, perm: [0, 2, 1, 3]) : f32[1, \(c.hq), \(t), \(c.d)]
          %20 = rope(x: %12, \(rope)) : f32[1, \(c.hq), \(t), \(c.d)]
          %22 = transpose(x: %20, perm: [0, 2, 1, 3]) : f32[1, \(t), \(c.hq), \(c.d)]
          %16 = reshape(x: %1, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %17 = transpose(x: %16, perm: [0, 2, 1, 3]) : f32[1, \(c.hkv), \(t), \(c.d)]
          %21 = rope(x: %17, \(rope)) : f32[1, \(c.hkv), \(t), \(c.d)]
          %23 = transpose(x: %21, perm: [0, 2, 1, 3]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %13 = reshape(x: %2, shape: [1, %10, \(c.hkv), \(c.d)]) : f32[1, \(t), \(c.hkv), \(c.d)]
          %6 = llama_update_cache(value: %23, cache: %6, start_pos: %15) : \(cache)
          %7 = llama_update_cache(value: %13, cache: %7, start_pos: %15) : \(cache)
          %30 = llama_custom_sdpa(q: %22, k: %6, v: %7, start_pos: %15, attn_mask: none, dropout_p: 0.0, is_causal: true, scale: 0.25) : f32[1, \(t), \(c.hq), \(c.d)]
        }
        outputs %30

        """
    }

    /// The ring's additive mask for queries at `first`…: keep the cells whose position p (the newest
    /// written there) satisfies q − W < p ≤ q, as RingBufferKVCache.create_sliding_window_mask.
    func ringMask(first: Int, t: Int, slots: Int, window: Int) -> HostTensor {
        let end = first + t
        let lastSlot = (end - 1) % slots, base = end - 1 - lastSlot
        var m = [Double](repeating: -.infinity, count: t * slots)
        for i in 0..<t {
            for j in 0..<slots {
                let p = j <= lastSlot ? base + j : base - slots + j, q = first + i
                if p >= 0 && q - p >= 0 && q - p < window { m[i * slots + j] = 0 }
            }
        }
        return HostTensor(dtype: .f32, shape: [1, 1, t, slots], storage: m)
    }

    func check(_ c: Case, llama: Bool = false, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(densified(llama ? llamaLayer(c) : mlxLayer(c)))
        let what = "\(llama ? "llama ops" : c.ring > 0 ? "ring window \(c.ring)" : "flat") hq\(c.hq) hkv\(c.hkv) d\(c.d) slots\(c.slots) steps \(c.steps)"
        var fused = graph
        XCTAssertGreaterThan(try CanonicalKVAttention().run(&fused), 0, what, file: file, line: line)
        for pass in [FoldTransposes(), DeadCodeElimination()] as [any GraphPass] { _ = try pass.run(&fused) }
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertNil(fused.opHistogram["slice_update"], what, file: file, line: line)
        var at = 0
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.steps.count,
                                        outputs: llama ? ["out"] : ["out", "k cache", "v cache"], tolerance: 1e-5, file: file, line: line) { call in
            let t = c.steps[call]
            defer { at += t }
            var feeds: [HostTensor] = [r.tensor([1, t, c.hq * c.d], -1, 1, .f32), r.tensor([1, t, c.hkv * c.d], -1, 1, .f32),
                                       r.tensor([1, t, c.hkv * c.d], -1, 1, .f32)]
            if llama {
                feeds.append(HostTensor(dtype: .i64, shape: [1], storage: [Double(at)]))
            } else {
                feeds.append(HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(at + $0) }))
                feeds.append(ringMask(first: at, t: t, slots: c.slots, window: c.ring > 0 ? c.ring : c.slots))
            }
            return feeds
        }
    }

    func testFlatCacheCausalRead() throws {
        try check(Case(), seed: 3000)
        try check(Case(hq: 2, hkv: 2, d: 32, slots: 16, steps: [7, 1, 1, 3]), seed: 3001)
    }

    /// Window 6, chunk 4: 9 slots; the writes wrap on the third call and after.
    func testRingBufferWritesWrap() throws {
        try check(Case(slots: 9, steps: [4, 4, 1, 3, 4, 1, 1], ring: 6), seed: 3010)
    }

    func testLlamaCustomOps() throws {
        try check(Case(steps: [5, 1, 3]), llama: true, seed: 3020)
    }
}
