import XCTest
import MLXCIR
@testable import MLXCPasses

/// inplace-rolled-state-writes, text in → text out: transformers' full sliding-window cache as
/// optimum's portable Gemma 3 export traces it (the cache rolled left by `take` at fmod(arange(8) + 1, 8),
/// spelled as the importer writes fmod; the new row put at [-1]; the result read by attention and
/// copied back) becomes the roll copied into the cache and one in-place `index_copy` at the last row;
/// and the cases it must leave alone.
final class InPlaceRolledStateWritesTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 2, 1, 16] "k"
    input %1 : i64[1] "row"
    state %2 : f32[1, 2, 8, 16] = zeros "k_cache"
    const %3 : i64[] = literal(1.0)
    const %4 : i64[] = literal(8.0)
    const %5 : i64[] = literal(0.0)
    const %6 : i64[1] = literal(-1.0)
    input %7 : f32[1, 2, 8, 16] "not_state"
    const %8 : i64[1] = literal(8.0)

    """

    /// The roll's index vector %15 and the rolled cache %16 (of `source`, along `axis`).
    func roll(source: Int = 2, axis: Int = 2) -> String {
        """
          %9 = arange(start: 0, stop: 8, step: 1, scalar_type: i64) : i64[8]
          %10 = add(a: %9, b: %3) : i64[8]
          %11 = abs(x: %10) : i64[8]
          %12 = remainder(a: %11, b: %4) : i64[8]
          %13 = neg(x: %12) : i64[8]
          %14 = less(a: %10, b: %5) : bool[8]
          %15 = where(condition: %14, x: %13, y: %12) : i64[8]
          %16 = take(x: %\(source), index: %15, axis: \(axis)) : f32[1, 2, 8, 16]

        """
    }

    /// The put of k (reshaped as the export does) at `row` into %16, read by %19.
    func put(row: Int = 6, accumulate: Bool = false) -> String {
        """
          %17 = reshape(x: %0, shape: [2, 1, 16]) : f32[2, 1, 16]
          %18 = index_put(x: %16, indices: [%\(row)], index_axes: [2], values: %17, accumulate: \(accumulate)) : f32[1, 2, 8, 16]
          %19 = id_copy(x: %18) : f32[1, 2, 8, 16]

        """
    }
    let copy = "  %2 = copy_into(dst: %2, src: %18) : f32[1, 2, 8, 16]\n"

    func program(_ body: String, _ outputs: String = "%19") -> String { header + "block main {\n" + body + "}\noutputs \(outputs)\n" }

    func testRollThenPutLastBecomesRollIntoCacheAndOneRowWrite() throws {
        let (text, changes) = try runPass(InPlaceRolledStateWrites(), on: program(roll() + put() + copy))
        XCTAssertEqual(changes, 1)
        let lines = text.components(separatedBy: "\n")
        XCTAssertEqual(Array(lines.prefix(8)), """
        %9 = arange(start: 0, stop: 8, step: 1, scalar_type: i64) : i64[8]
        %10 = add(a: %9, b: %3) : i64[8]
        %11 = abs(x: %10) : i64[8]
        %12 = remainder(a: %11, b: %4) : i64[8]
        %13 = neg(x: %12) : i64[8]
        %14 = less(a: %10, b: %5) : bool[8]
        %15 = where(condition: %14, x: %13, y: %12) : i64[8]
        %16 = take(x: %2, index: %15, axis: 2) : f32[1, 2, 8, 16]
        """.components(separatedBy: "\n"), text)
        XCTAssertEqual(lines.count, 11, text)
        XCTAssertEqual(lines[8], "%2 = copy_into(dst: %2, src: %16) : f32[1, 2, 8, 16]")
        // Row -1 folded to 7; the values read without the export's reshape; readers of the put read the cache.
        let last = lines[9].components(separatedBy: "indices: ")[1].components(separatedBy: ",")[0]
        XCTAssertEqual(lines[9], "%2 = index_copy(dst: %2, update: %0, indices: \(last), axis: 2) : f32[1, 2, 8, 16]")
        var g = try IRParser.parse(program(roll() + put() + copy))
        _ = try InPlaceRolledStateWrites().run(&g)
        let id = Int(last.dropFirst())!
        guard case .constant(.literal(let xs)) = g.values[id].kind else { return XCTFail("row \(last) is not a literal") }
        XCTAssertEqual(xs, [7])
        XCTAssertEqual(lines[10], "%19 = id_copy(x: %2) : f32[1, 2, 8, 16]")
    }

    func testRowsOnlyKnownPerCallCountFromTheEndAtRunTime() throws {
        let (text, changes) = try runPass(InPlaceRolledStateWrites(), on: program(roll() + put(row: 1) + copy))
        XCTAssertEqual(changes, 1)
        let lines = Array(text.components(separatedBy: "\n").dropFirst(8))
        XCTAssertEqual(lines.count, 6, text)
        XCTAssertTrue(lines[0].contains("= less(a: %1, b: %") && lines[0].hasSuffix(": bool[1]"), text)
        XCTAssertTrue(lines[1].contains("= add(a: %1, b: %"), text)
        XCTAssertTrue(lines[2].contains("= where(condition: "), text)
        let row = lines[2].components(separatedBy: " = ")[0]
        XCTAssertEqual(lines[3], "%2 = copy_into(dst: %2, src: %16) : f32[1, 2, 8, 16]")
        XCTAssertEqual(lines[4], "%2 = index_copy(dst: %2, update: %0, indices: \(row), axis: 2) : f32[1, 2, 8, 16]")
    }

    func testLeavesAloneWhatIsNotAnInPlaceRolledWrite() throws {
        func unchanged(_ body: String, outputs: String = "%19", _ why: String) throws {
            try assertPassLeavesUnchanged(InPlaceRolledStateWrites(), on: program(body, outputs), why)
        }
        let oldRead = "  %20 = id_copy(x: %2) : f32[1, 2, 8, 16]\n"
        try unchanged(roll() + put() + oldRead + copy, outputs: "%19, %20", "the old cache is read before the copy back")
        try unchanged(roll() + oldRead + put() + copy, outputs: "%19, %20", "the old cache is read between the roll and the put")
        try unchanged(roll() + put(), "never copied back")
        try unchanged(roll() + put(accumulate: true) + copy, "accumulate adds to the rows")
        try unchanged(roll(source: 7) + put() + "  %7 = copy_into(dst: %7, src: %18) : f32[1, 2, 8, 16]\n", "not state")
        try unchanged(roll(axis: 3).replacingOccurrences(of: "stop: 8", with: "stop: 16")
                        .replacingOccurrences(of: "i64[8]", with: "i64[16]").replacingOccurrences(of: "bool[8]", with: "bool[16]") + put() + copy,
                      "reordered along another axis than the put's")
        try unchanged(roll() + put(row: 8) + copy, "row 8 is past the cache's end: index_put refuses it")
        try unchanged(roll() + put() + copy + "  %2 = copy_into(dst: %2, src: %7) : f32[1, 2, 8, 16]\n",
                      "another write to the cache after the copy back")
    }
}
