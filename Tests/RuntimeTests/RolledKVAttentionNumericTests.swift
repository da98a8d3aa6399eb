import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// inplace-rolled-state-writes then fuse-rope-attention on numbers: a sliding-window layer as optimum's
/// portable Gemma 3 export writes it once the window is full (transformers' StaticSlidingWindowLayer:
/// both caches rolled left by one with `take` at fmod(arange(W) + 1, W), the new k/v rows put at
/// [-1], attention over the put results with the export's mask — key cell j at position j + c is
/// kept when q − W < j + c ≤ q —, both results copied back) run call after call on the reference as
/// written and on the JIT after the passes (one `rope_attention`): outputs and caches agree after
/// every call, through calls whose mask keeps every cell, some, and none (the safe softmax's zeros).
/// Random q/k/v; tolerance 1e-5 × max |reference|.
final class RolledKVAttentionNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Case { var hq = 4, hkv = 2, d = 16, window = 8, keyOffset = 2, calls = 20 }

    func layer(_ c: Case) -> String {
        let w = c.window, cache = "f32[1, \(c.hkv), \(w), \(c.d)]"
        let rope = "dims: \(c.d), offset: %15, freqs: none, traditional: false, base: 10000.0, scale: 1.0"
        return """
        graph @layer
        input %0 : f32[1, \(c.hq), 1, \(c.d)] "q"
        input %1 : f32[1, \(c.hkv), 1, \(c.d)] "k"
        input %2 : f32[1, \(c.hkv), 1, \(c.d)] "v"
        input %3 : i64[1] "cache_position"
        state %4 : \(cache) = zeros "k_cache"
        state %5 : \(cache) = zeros "v_cache"
        const %6 : i64[] = literal(1.0)
        const %7 : i64[] = literal(\(w).0)
        const %8 : i64[] = literal(0.0)
        const %9 : i64[1] = literal(-1.0)
        const %10 : i64[] = literal(\(c.keyOffset).0)
        const %11 : f32[] = literal(0.0)
        const %12 : f32[] = literal(-inf)
        block main {
          %13 = take(x: %3, index: 0, axis: 0) : i64[]
          %15 = item_int(x: %13) : i64[]
          %14 = sym_size(a: %0, dim: 0) : i64[]
          %16 = arange(start: 0, stop: \(w), step: 1, scalar_type: i64) : i64[\(w)]
          %17 = add(a: %16, b: %10) : i64[\(w)]
          %18 = reshape(x: %3, shape: [1, 1, 1, 1]) : i64[1, 1, 1, 1]
          %19 = subtract(a: %18, b: %7) : i64[1, 1, 1, 1]
          %20 = greater(a: %17, b: %19) : bool[1, 1, 1, \(w)]
          %21 = less_equal(a: %17, b: %18) : bool[1, 1, 1, \(w)]
          %22 = bitwise_and(a: %20, b: %21) : bool[1, 1, 1, \(w)]
          %23 = where(condition: %22, x: %11, y: %12) : f32[1, 1, 1, \(w)]
          %24 = rope(x: %0, \(rope)) : f32[1, \(c.hq), 1, \(c.d)]
          %25 = rope(x: %1, \(rope)) : f32[1, \(c.hkv), 1, \(c.d)]
          %26 = arange(start: 0, stop: \(w), step: 1, scalar_type: i64) : i64[\(w)]
          %27 = add(a: %26, b: %6) : i64[\(w)]
          %28 = abs(x: %27) : i64[\(w)]
          %29 = remainder(a: %28, b: %7) : i64[\(w)]
          %30 = neg(x: %29) : i64[\(w)]
          %31 = less(a: %27, b: %8) : bool[\(w)]
          %32 = where(condition: %31, x: %30, y: %29) : i64[\(w)]
          %33 = take(x: %4, index: %32, axis: 2) : \(cache)
          %34 = take(x: %5, index: %32, axis: 2) : \(cache)
          %35 = reshape(x: %25, shape: [\(c.hkv), 1, \(c.d)]) : f32[\(c.hkv), 1, \(c.d)]
          %36 = index_put(x: %33, indices: [%9], index_axes: [2], values: %35, accumulate: false) : \(cache)
          %37 = reshape(x: %2, shape: [\(c.hkv), 1, \(c.d)]) : f32[\(c.hkv), 1, \(c.d)]
          %38 = index_put(x: %34, indices: [%9], index_axes: [2], values: %37, accumulate: false) : \(cache)
          %39 = sdpa(q: %24, k: %36, v: %38, scale: 0.25, mask: %23, causal: false) : f32[1, \(c.hq), 1, \(c.d)]
          %4 = copy_into(dst: %4, src: %36) : \(cache)
          %5 = copy_into(dst: %5, src: %38) : \(cache)
          %40 = id_copy(x: %4) : \(cache)
          %41 = id_copy(x: %5) : \(cache)
        }
        outputs %39, %40, %41

        """
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(layer(c))
        let what = "hq\(c.hq) hkv\(c.hkv) d\(c.d) window \(c.window) key offset \(c.keyOffset)"
        var fused = graph
        XCTAssertEqual(try InPlaceRolledStateWrites().run(&fused), 2, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertNil(fused.opHistogram["index_put"], what, file: file, line: line)
        XCTAssertNil(fused.opHistogram["sdpa"], what, file: file, line: line)
        var kept = Set<Int>()
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.calls, outputs: ["out", "k cache", "v cache"],
                                        tolerance: 1e-5, file: file, line: line) { p in
            kept.insert((0..<c.window).filter { p - c.window < $0 + c.keyOffset && $0 + c.keyOffset <= p }.count)
            return [r.tensor([1, c.hq, 1, c.d], -1, 1, .f32), r.tensor([1, c.hkv, 1, c.d], -1, 1, .f32),
                    r.tensor([1, c.hkv, 1, c.d], -1, 1, .f32), HostTensor(dtype: .i64, shape: [1], storage: [Double(p)])]
        }
        // The calls covered masks keeping every cell, some, and none.
        XCTAssertTrue(kept.contains(0) && kept.contains(c.window) && kept.contains(c.window / 2), "\(what) kept counts \(kept.sorted())", file: file, line: line)
    }

    func testSlidingWindowRollFusesExactly() throws {
        try check(Case(), seed: 4100)
        try check(Case(hq: 2, hkv: 1, d: 32, window: 5, keyOffset: 0, calls: 14), seed: 4101)
    }
}
