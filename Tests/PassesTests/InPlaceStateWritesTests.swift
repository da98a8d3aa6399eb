import XCTest
import MLXCIR
@testable import MLXCPasses

/// inplace-state-writes, text in → text out: a plain export's `index_put` into a KV cache plus its
/// `copy_into` back becomes one in-place `index_copy` (values already in the slot's shape, made by
/// a reshape of such a value, or reshaped to it), and the cases it must leave alone: the old cache
/// read between the write and the copy, another write to the cache, a put that is never copied
/// back, accumulate, a non-state destination, values that would broadcast.
final class InPlaceStateWritesTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 2, ?1..8, 16] "k"
    input %1 : i64[?1..8] "positions"
    state %2 : f32[1, 2, 32, 16] = zeros "k_cache"
    input %3 : f32[1, 2, 32, 16] "not_state"
    input %4 : f32[2, ?1..8, 16] "k_flat"
    input %5 : f32[1, 1, ?1..8, 16] "one_head"
    input %6 : f32[1] "unused6"
    input %7 : f32[1] "unused7"
    input %8 : f32[1] "unused8"

    """

    func program(_ body: String, _ outputs: String) -> String { header + "block main {\n" + body + "}\noutputs \(outputs)\n" }

    func rewritten(_ body: String, outputs: String = "%11", file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(InPlaceStateWrites(), on: program(body, outputs), file: file, line: line)
    }

    func assertUnchanged(_ body: String, outputs: String = "%11", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertPassLeavesUnchanged(InPlaceStateWrites(), on: program(body, outputs), why, file: file, line: line)
    }

    /// The write (%10), after a filler %9 unless the test defines %9 itself.
    func put(_ values: Int, x: Int = 2, accumulate: Bool = false, filler: Bool = true) -> String {
        (filler ? "  %9 = id_copy(x: %6) : f32[1]\n" : "") + "  %10 = index_put(x: %\(x), indices: [%1], index_axes: [2], values: %\(values), accumulate: \(accumulate)) : f32[1, 2, 32, 16]\n"
    }
    let read = "  %11 = id_copy(x: %10) : f32[1, 2, 32, 16]\n"
    let copy = "  %2 = copy_into(dst: %2, src: %10) : f32[1, 2, 32, 16]\n"

    func testPutAndCopyBackBecomeOneInPlaceWrite() throws {
        let (text, changes) = try rewritten(put(0) + read + copy)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %2 = index_copy(dst: %2, update: %0, indices: %1, axis: 2) : f32[1, 2, 32, 16]
        %11 = id_copy(x: %2) : f32[1, 2, 32, 16]
        """)
    }

    func testValuesMadeByAReshapeReadItsSource() throws {
        let body = "  %9 = reshape(x: %0, shape: [2, -1, 16]) : f32[2, ?1..8, 16]\n" + put(9, filler: false) + read + copy
        let (text, changes) = try rewritten(body)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %2 = index_copy(dst: %2, update: %0, indices: %1, axis: 2) : f32[1, 2, 32, 16]
        %11 = id_copy(x: %2) : f32[1, 2, 32, 16]
        """)
    }

    func testValuesWithoutTheLeadingOneAreReshapedToTheSlot() throws {
        let (text, changes) = try rewritten(put(4) + read + copy)
        XCTAssertEqual(changes, 1)
        let lines = text.components(separatedBy: "\n")
        XCTAssertEqual(lines.count, 3, text)
        XCTAssertTrue(lines[0].hasSuffix("= reshape(x: %4, shape: [1, 2, -1, 16]) : f32[1, 2, ?1..8, 16]"), text)
        let update = lines[0].components(separatedBy: " = ")[0]
        XCTAssertEqual(lines[1], "%2 = index_copy(dst: %2, update: \(update), indices: %1, axis: 2) : f32[1, 2, 32, 16]")
    }

    func testLeavesAloneWhatIsNotAnInPlaceWrite() throws {
        let oldRead = "  %12 = id_copy(x: %2) : f32[1, 2, 32, 16]\n"
        try assertUnchanged(put(0) + oldRead + read + copy, outputs: "%11, %12", "the old cache is read before the copy")
        try assertUnchanged(put(0) + read, "never copied back")
        try assertUnchanged(put(0, accumulate: true) + read + copy, "accumulate adds to the rows")
        try assertUnchanged(put(0, x: 3) + read + "  %3 = copy_into(dst: %3, src: %10) : f32[1, 2, 32, 16]\n", "not state")
        try assertUnchanged(put(5) + read + copy, "one head broadcast to two")
        try assertUnchanged(put(0) + read + copy + "  %2 = copy_into(dst: %2, src: %3) : f32[1, 2, 32, 16]\n",
                            "another write to the cache after the copy")
    }
}
