import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// offgraph-kv-state then fuse-rope-attention on numbers: an off-graph-cache layer (MLX rope of q and
/// k at the call's offset, `update_and_attend`) run call after call on the reference with its pools
/// sized from the layout, and on the JIT after the passes (one `rope_attention` over graph state):
/// outputs agree after every call — prefill chunks, decode, a ring that wraps, a rewind of a flat
/// layer (the pool keeps what follows; the state too), and a reset to position 0 (the reference
/// pool is cleared, the state is not: its stale cells must stay unseen). Tolerance 1e-5 × max |reference|.
final class OffGraphKVStateNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var hq = 4, hkv = 2, d = 16, window = 0, capacity = 24, maxWrite = 4
        /// Calls as (first position, tokens).
        var calls: [(Int, Int)] = [(0, 4), (4, 1), (5, 3), (8, 1)] }

    func layer(_ c: Case) -> String {
        let t = "?1..\(c.maxWrite)", rope = "dims: \(c.d), offset: %5, freqs: none, traditional: false, base: 10000.0, scale: 1.0"
        return """
        graph @layer
        input %0 : f32[1, \(c.hq), \(t), \(c.d)] "q"
        input %1 : f32[1, \(c.hkv), \(t), \(c.d)] "k"
        input %2 : f32[1, \(c.hkv), \(t), \(c.d)] "v"
        input %3 : i64[\(t)] "cache_position"
        block main {
          %4 = take(x: %3, index: 0, axis: 0) : i64[]
          %5 = item_int(x: %4) : i64[]
          %6 = rope(x: %0, \(rope)) : f32[1, \(c.hq), \(t), \(c.d)]
          %7 = rope(x: %1, \(rope)) : f32[1, \(c.hkv), \(t), \(c.d)]
          %8 = reshape(x: %3, shape: [-1, 1]) : i64[\(t), 1]
          %9 = update_and_attend(q: %6, k: %7, v: %2, position: %8, layer_id: 0, scale: 0.25, out_dtype: f32) : f32[1, \(c.hq), \(t), \(c.d)]
        }
        outputs %9

        """
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(layer(c))
        let what = "window \(c.window) capacity \(c.capacity) maxWrite \(c.maxWrite) calls \(c.calls)"
        let layout = OffGraphKVLayout(windows: [c.window], capacity: c.capacity, maxWrite: c.maxWrite)
        var fused = graph
        XCTAssertEqual(try OffGraphKVState(layout: layout).run(&fused), 1, what, file: file, line: line)
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertNil(fused.opHistogram["update_and_attend"], what, file: file, line: line)
        let reference = try ReferenceExecutor(graph: graph)
        reference.offGraphCache.capacity = c.capacity
        reference.offGraphCache.maxWrite = c.maxWrite
        reference.offGraphCache.windows = c.window > 0 ? [0: c.window] : [:]
        let jit = try JITProgram(graph: fused, pte: Self.pte)
        XCTAssertEqual(jit.remarks, [], what, file: file, line: line)
        var last = -1
        for (call, (first, t)) in c.calls.enumerated() {
            // A ring cannot rewind: the runtime resets it and feeds from 0 again.
            if first == 0 || (c.window > 0 && first <= last) { reference.offGraphCache.clear() }
            let feeds: [HostTensor] = [r.tensor([1, c.hq, t, c.d], -1, 1, .f32), r.tensor([1, c.hkv, t, c.d], -1, 1, .f32),
                                       r.tensor([1, c.hkv, t, c.d], -1, 1, .f32),
                                       HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(first + $0) })]
            let want = try reference.run(feeds)[0], got = try jit.run(feeds)[0]
            XCTAssertEqual(got.shape, want.shape, "\(what) call \(call)", file: file, line: line)
            let bound = 1e-5 * (want.storage.map(Swift.abs).max() ?? 0)
            if got.shape == want.shape, let i = want.storage.indices.first(where: { Swift.abs(got.storage[$0] - want.storage[$0]) > bound }) {
                XCTFail("\(what) call \(call): element \(i) is \(got.storage[i]), reference \(want.storage[i])", file: file, line: line)
            }
            last = first + t - 1
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], what, file: file, line: line)
    }

    func testFlatLayerWithRewindAndReset() throws {
        try check(Case(calls: [(0, 4), (4, 1), (5, 3), (8, 1), (6, 2), (8, 4), (0, 3), (3, 1)]), seed: 4200)
    }

    /// Window 5, chunk 4: 8 cells; the writes wrap from the third call, then a reset.
    func testRingLayerWrapsAndResets() throws {
        try check(Case(window: 5, calls: [(0, 4), (4, 4), (8, 1), (9, 3), (12, 4), (16, 1), (17, 2), (0, 2), (2, 4), (6, 1)]), seed: 4210)
        try check(Case(hq: 2, hkv: 2, d: 32, window: 3, maxWrite: 2, calls: [(0, 2), (2, 1), (3, 2), (5, 2), (7, 1), (0, 1), (1, 2)]), seed: 4211)
    }
}
