import XCTest
import MLXCIR
@testable import MLXCPasses

/// row-take-as-slice, text in → text out: a static-shape export's `freqs_cos[input_pos]` (a constant
/// table taken at a one-element index) becomes the row slice at `input_pos[0]` that dynamic exports
/// write (then `cse` shares the position with the cache writes); other takes stay.
final class RowTakeAsSliceTests: XCTestCase {
    let graph = """
    graph @f
    input %0 : i64[1] "input_pos"
    input %1 : i64[3] "three_positions"
    const %2 : f32[64, 8] = buffer(1) "freqs_cos"
    input %3 : f32[64, 8] "not_a_constant"
    const %4 : f32[64] = buffer(2) "rank1_table"
    block main {
      %5 = take(x: %2, index: %0, axis: 0) : f32[1, 8]
      %6 = take(x: %2, index: %1, axis: 0) : f32[3, 8]
      %7 = take(x: %3, index: %0, axis: 0) : f32[1, 8]
      %8 = take(x: %4, index: %0, axis: 0) : f32[1]
      %9 = take(x: %2, index: %0, axis: 1) : f32[64, 1]
    }
    outputs %5, %6, %7, %8, %9
    """

    func testOneElementIndexIntoAConstantTableIsARowSlice() throws {
        let (text, changes) = try runPass(RowTakeAsSlice(), on: graph)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text.components(separatedBy: "\n"), [
            "%10 = take(x: %0, index: 0, axis: 0) : i64[]",
            "%11 = item_int(x: %10) : i64[]",
            "%12 = add_int(a: %11, b: 1) : i64[]",
            "%5 = slice(x: %2, axis: 0, start: %11, stop: %12, step: 1) : f32[1, 8]",
            "%6 = take(x: %2, index: %1, axis: 0) : f32[3, 8]",
            "%7 = take(x: %3, index: %0, axis: 0) : f32[1, 8]",
            "%8 = take(x: %4, index: %0, axis: 0) : f32[1]",
            "%9 = take(x: %2, index: %0, axis: 1) : f32[64, 1]",
        ])
    }

    func testNothingToDoWithoutAOneElementIndex() throws {
        try assertPassLeavesUnchanged(RowTakeAsSlice(), on: """
        graph @f
        input %0 : i64[?1..4] "positions"
        const %1 : f32[64, 8] = buffer(1) "freqs_cos"
        block main {
          %2 = take(x: %1, index: %0, axis: 0) : f32[?1..4, 8]
        }
        outputs %2
        """, "an index of run-time length may hold several positions")
    }
}
