import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-kv-attention on numbers: attention over a KV cache without RoPE, as Whisper's decoder self-attention
/// reads once canonical-kv-attention has run on export_whisper's program (k and v rows written in place at
/// arange(pos, pos + T), keep mask key j ≤ position of row i, sdpa over the whole cache) runs call after call
/// on the reference as written and on the JIT after the pass (one `rope_attention` with rope_dims 0): outputs
/// and both caches agree after every call, from the first position (one key kept) to the cache's last
/// (all kept). Random q/k/v; tolerance 1e-5 × max |reference|.
final class KVAttentionNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Case { var hq = 4, hkv = 4, d = 16, t = 1, cells = 16 }

    func layer(_ c: Case) -> String {
        let cache = "f32[1, \(c.hkv), \(c.cells), \(c.d)]"
        return """
        graph @layer
        input %0 : f32[1, \(c.hq), \(c.t), \(c.d)] "q"
        input %1 : f32[1, \(c.hkv), \(c.t), \(c.d)] "k"
        input %2 : f32[1, \(c.hkv), \(c.t), \(c.d)] "v"
        input %3 : i64[1] "cache_position"
        state %4 : \(cache) = zeros "k_cache"
        state %5 : \(cache) = zeros "v_cache"
        block main {
          %6 = item_int(x: %3) : i64[]
          %7 = add_int(a: %6, b: \(c.t)) : i64[]
          %8 = arange(start: %6, stop: %7, step: 1, scalar_type: i64) : i64[\(c.t)]
          %4 = index_copy(dst: %4, update: %1, indices: %8, axis: 2) : \(cache)
          %5 = index_copy(dst: %5, update: %2, indices: %8, axis: 2) : \(cache)
          %9 = arange(start: 0, stop: \(c.cells), step: 1, scalar_type: i64) : i64[\(c.cells)]
          %10 = reshape(x: %8, shape: [-1, 1]) : i64[\(c.t), 1]
          %11 = less_equal(a: %9, b: %10) : bool[\(c.t), \(c.cells)]
          %12 = sdpa(q: %0, k: %4, v: %5, scale: \(1 / Double(c.d).squareRoot()), mask: %11, causal: false) : f32[1, \(c.hq), \(c.t), \(c.d)]
          %13 = id_copy(x: %4) : \(cache)
          %14 = id_copy(x: %5) : \(cache)
        }
        outputs %12, %13, %14

        """
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(layer(c))
        let what = "hq\(c.hq) hkv\(c.hkv) d\(c.d) t\(c.t) cells \(c.cells)"
        var fused = graph
        XCTAssertEqual(try FuseKVAttention().run(&fused), 1, what, file: file, line: line)
        try Verifier.verify(fused)
        XCTAssertNil(fused.opHistogram["sdpa"], what, file: file, line: line)
        XCTAssertNil(fused.opHistogram["index_copy"], what, file: file, line: line)
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.cells / c.t, outputs: ["out", "k cache", "v cache"],
                                        tolerance: 1e-5, file: file, line: line) { call in
            [r.tensor([1, c.hq, c.t, c.d], -1, 1, .f32), r.tensor([1, c.hkv, c.t, c.d], -1, 1, .f32),
             r.tensor([1, c.hkv, c.t, c.d], -1, 1, .f32), HostTensor(dtype: .i64, shape: [1], storage: [Double(call * c.t)])]
        }
    }

    func testWhisperDecoderSelfAttentionFusesExactly() throws {
        try check(Case(), seed: 4200)                                     // the zoo's tiny Whisper: 4 heads of 16
        try check(Case(hq: 8, hkv: 8, d: 64, t: 1, cells: 24), seed: 4201)   // Whisper base's heads (8 × 64)
    }

    func testPrefillRowsAndGroupedHeads() throws {
        try check(Case(hq: 4, hkv: 2, d: 32, t: 3, cells: 12), seed: 4202)
        try check(Case(hq: 6, hkv: 1, d: 24, t: 2, cells: 10), seed: 4203)
    }
}
