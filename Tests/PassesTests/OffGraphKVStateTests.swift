import XCTest
import MLXCIR
@testable import MLXCPasses

/// offgraph-kv-state, text in → text out: `update_and_attend` of a flat layer becomes in-place writes
/// into [B, Hkv, capacity, D] state at the positions and an sdpa with keep j ≤ p_i; a ring layer's
/// writes go to p mod cells and its keep mask is the window over each cell's newest position; layers
/// share positions and masks. Left alone: a layer the layout does not name, an output dtype other
/// than q's, heads known only at run time.
final class OffGraphKVStateTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, ?1..4, 16] "q"
    input %1 : f32[1, 2, ?1..4, 16] "k"
    input %2 : f32[1, 2, ?1..4, 16] "v"
    input %3 : i64[?1..4] "cache_position"
    input %4 : f32[1, ?1..8, ?1..4, 16] "k_dynamic_heads"
    block main {
      %5 = reshape(x: %3, shape: [-1, 1]) : i64[?1..4, 1]

    """

    func attend(_ out: Int, layer: Int, k: Int = 1, dtype: String = "f32") -> String {
        "  %\(out) = update_and_attend(q: %0, k: %\(k), v: %2, position: %5, layer_id: \(layer), scale: 0.25, out_dtype: \(dtype)) : \(dtype)[1, 4, ?1..4, 16]\n"
    }

    let layout = OffGraphKVLayout(windows: [0, 3, 0], capacity: 32, maxWrite: 4)

    func testFlatAndRingLayersBecomeStateWritesAndMaskedAttention() throws {
        let text = header + attend(6, layer: 0) + attend(7, layer: 1) + attend(8, layer: 2) + "}\noutputs %6, %7, %8\n"
        let (out, changes) = try runPass(OffGraphKVState(layout: layout), on: text)
        XCTAssertEqual(changes, 3)
        XCTAssertEqual(out, """
        %5 = reshape(x: %3, shape: [-1, 1]) : i64[?1..4, 1]
        %9 = reshape(x: %5, shape: [-1]) : i64[?1..4]
        %10 = reshape(x: %9, shape: [-1, 1]) : i64[?1..4, 1]
        %11 = arange(start: 0, stop: 32, step: 1, scalar_type: i64) : i64[32]
        %12 = less_equal(a: %11, b: %10) : bool[?1..4, 32]
        %13 = index_copy(dst: %13, update: %1, indices: %9, axis: 2) : f32[1, 2, 32, 16]
        %14 = index_copy(dst: %14, update: %2, indices: %9, axis: 2) : f32[1, 2, 32, 16]
        %6 = sdpa(q: %0, k: %13, v: %14, scale: 0.25, mask: %12, causal: false) : f32[1, 4, ?1..4, 16]
        %15 = arange(start: 0, stop: 6, step: 1, scalar_type: i64) : i64[6]
        %16 = remainder(a: %9, b: %17) : i64[?1..4]
        %19 = subtract(a: %10, b: %15) : i64[?1..4, 6]
        %20 = remainder(a: %19, b: %23) : i64[?1..4, 6]
        %21 = less(a: %20, b: %24) : bool[?1..4, 6]
        %22 = less_equal(a: %20, b: %10) : bool[?1..4, 6]
        %18 = logical_and(a: %21, b: %22) : bool[?1..4, 6]
        %25 = index_copy(dst: %25, update: %1, indices: %16, axis: 2) : f32[1, 2, 6, 16]
        %26 = index_copy(dst: %26, update: %2, indices: %16, axis: 2) : f32[1, 2, 6, 16]
        %7 = sdpa(q: %0, k: %25, v: %26, scale: 0.25, mask: %18, causal: false) : f32[1, 4, ?1..4, 16]
        %27 = index_copy(dst: %27, update: %1, indices: %9, axis: 2) : f32[1, 2, 32, 16]
        %28 = index_copy(dst: %28, update: %2, indices: %9, axis: 2) : f32[1, 2, 32, 16]
        %8 = sdpa(q: %0, k: %27, v: %28, scale: 0.25, mask: %12, causal: false) : f32[1, 4, ?1..4, 16]
        """)
    }

    func testLeavesAloneWhatTheLayoutCannotHold() throws {
        for (body, why) in [(attend(6, layer: 3), "layer 3 is not in the layout"),
                            (attend(6, layer: 0, dtype: "bf16"), "the output dtype is not q's"),
                            (attend(6, layer: 0, k: 4), "k's heads are known only at run time")] {
            try assertPassLeavesUnchanged(OffGraphKVState(layout: layout), on: header + body + "}\noutputs %6\n", why)
        }
    }
}
