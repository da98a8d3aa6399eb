import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rope-pattern, text in → text out: plain exports' RoPE from cos/sin tables — interleaved
/// (step-2 halves, expand_dims + concatenate + reshape) and split-half (two halves, concatenate) —
/// with products and sums in either operand order and table slices shared by q and k; and the
/// cases it must leave alone: a half or product with another reader, tables sliced at different
/// rows, a sum that is not the rotation's, a step-2 half that starts at 2, tables too narrow for x, a
/// state table.
final class FuseRopePatternTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, ?1..8, 16] "q"
    input %1 : i64[] "start"
    input %2 : i64[] "stop"
    const %3 : f32[64, 8] = buffer(0) "cos"
    const %4 : f32[64, 8] = buffer(1) "sin"
    input %5 : i64[] "other_start"
    const %6 : f32[64, 4] = buffer(2) "narrow"
    state %7 : f32[64, 8] = zeros "state_table"
    input %8 : f32[1, 2, ?1..8, 16] "k"
    input %9 : f32[1] "unused"

    """

    /// c = %10, s = %11: the table slices.
    func tables(cos: Int = 3, sin: Int = 4, sinStart: Int = 1) -> String {
        """
          %10 = slice(x: %\(cos), axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 8]
          %11 = slice(x: %\(sin), axis: 0, start: %\(sinStart), stop: %2, step: 1) : f32[?1..8, 8]

        """
    }

    /// The rotation of x = %\(x) into a = %16, b = %19 from halves %12, %13.
    func rotation(x: Int = 0, halves: (String, String), swapProducts: Bool = false, c: Int = 10, s: Int = 11, cInB: Int? = nil,
                  h: String = "1, 4, ?1..8, 8") -> String {
        let p14 = swapProducts ? "multiply(a: %\(c), b: %12)" : "multiply(a: %12, b: %\(c))"
        let c2 = cInB ?? c
        let p18 = swapProducts ? "multiply(a: %13, b: %\(c2))" : "multiply(a: %\(c2), b: %13)"
        return """
          %12 = \(halves.0) : f32[\(h)]
          %13 = \(halves.1) : f32[\(h)]
          %14 = \(p14) : f32[\(h)]
          %15 = multiply(a: %13, b: %\(s)) : f32[\(h)]
          %16 = subtract(a: %14, b: %15) : f32[\(h)]
          %17 = multiply(a: %12, b: %\(s)) : f32[\(h)]
          %18 = \(p18) : f32[\(h)]
          %19 = add(a: \(swapProducts ? "%18, b: %17" : "%17, b: %18")) : f32[\(h)]

        """
    }

    let interleaved = ("slice(x: %0, axis: 3, start: 0, stop: 9223372036854775807, step: 2)",
                       "slice(x: %0, axis: 3, start: 1, stop: 9223372036854775807, step: 2)")
    let splitHalf = ("slice(x: %0, axis: -1, start: 0, stop: 8, step: 1)", "slice(x: %0, axis: -1, start: 8, stop: 16, step: 1)")

    var interleave: String {
        """
          %20 = expand_dims(x: %16, axis: 4) : f32[1, 4, ?1..8, 8, 1]
          %21 = expand_dims(x: %19, axis: 4) : f32[1, 4, ?1..8, 8, 1]
          %22 = concatenate(tensors: [%20, %21], axis: 4) : f32[1, 4, ?1..8, 8, 2]
          %23 = reshape(x: %22, shape: [1, 4, -1, 16]) : f32[1, 4, ?1..8, 16]

        """
    }

    let concatHalves = "  %20 = concatenate(tensors: [%16, %19], axis: -1) : f32[1, 4, ?1..8, 16]\n"

    func program(_ body: String, _ outputs: String) -> String { header + "block main {\n" + body + "}\noutputs \(outputs)\n" }

    func fused(_ body: String, outputs: String = "%23", file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(FuseRopePattern(), on: program(body, outputs), file: file, line: line)
    }

    func assertUnchanged(_ body: String, outputs: String = "%23", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertPassLeavesUnchanged(FuseRopePattern(), on: program(body, outputs), why, file: file, line: line)
    }

    /// Which table is which comes from the rotation's structure, not from names.
    func testTablesTakeTheirRoleFromTheRotation() throws {
        let (text, changes) = try fused(tables() + rotation(halves: interleaved, c: 11, s: 10) + interleave)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%23 = rope_table(x: %0, cos: %4, sin: %3, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]")
    }

    func testInterleavedRopeBecomesOneTraditionalRopeTable() throws {
        let (text, changes) = try fused(tables() + rotation(halves: interleaved) + interleave)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%23 = rope_table(x: %0, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]")
    }

    /// XNNPACK delegates append the unit axis with a StaticReshape (the bench's XNNPACK export): the
    /// same interleave. A reshape that is not exactly x's shape + [1] is not.
    func testUnitAxisAppendedByAReshapeIsTheInterleave() throws {
        let xnn = interleave.replacingOccurrences(of: "expand_dims(x: %16, axis: 4)", with: "reshape(x: %16, shape: [1, 4, -1, 8, 1])")
            .replacingOccurrences(of: "expand_dims(x: %19, axis: 4)", with: "reshape(x: %19, shape: [1, 4, -1, 8, 1])")
        let (text, changes) = try fused(tables() + rotation(halves: interleaved) + xnn)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%23 = rope_table(x: %0, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]")
        let moved = xnn.replacingOccurrences(of: "reshape(x: %19, shape: [1, 4, -1, 8, 1])", with: "reshape(x: %19, shape: [1, -1, 4, 8, 1])")
            .replacingOccurrences(of: "%21 = reshape(x: %19, shape: [1, -1, 4, 8, 1]) : f32[1, 4, ?1..8, 8, 1]", with: "%21 = reshape(x: %19, shape: [1, -1, 4, 8, 1]) : f32[1, ?1..8, 4, 8, 1]")
        XCTAssertNotEqual(moved, xnn)
        try assertUnchanged(tables() + rotation(halves: interleaved) + moved, "the second half's reshape moves the heads")
    }

    func testSplitHalfRopeWithProductsInTheOtherOrder() throws {
        let (text, changes) = try fused(tables() + rotation(halves: splitHalf, swapProducts: true) + concatHalves, outputs: "%20")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%20 = rope_table(x: %0, cos: %3, sin: %4, start: %1, stop: %2, traditional: false) : f32[1, 4, ?1..8, 16]")
    }

    /// The k rotation's reshape goes straight to the cache-write shape: it then reads the rope.
    func testInterleaveReshapedToAnotherShapeReadsTheRope() throws {
        let body = tables() + rotation(halves: interleaved) + interleave.replacingOccurrences(of: "shape: [1, 4, -1, 16]) : f32[1, 4, ?1..8, 16]",
                                                                                                  with: "shape: [4, -1, 16]) : f32[4, ?1..8, 16]")
        let (text, changes) = try fused(body)
        XCTAssertEqual(changes, 1)
        let lines = text.components(separatedBy: "\n")
        XCTAssertEqual(lines.count, 2, text)
        XCTAssertTrue(lines[0].contains("= rope_table(x: %0, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]"), text)
        let rotated = lines[0].components(separatedBy: " = ")[0]
        XCTAssertEqual(lines[1], "%23 = reshape(x: \(rotated), shape: [4, -1, 16]) : f32[4, ?1..8, 16]")
    }

    /// q and k share the table slices (CSE merged them): both fuse, the slices go.
    func testQAndKSharingTheTableSlicesBothFuse() throws {
        let k = rotation(x: 8, halves: (interleaved.0.replacingOccurrences(of: "%0", with: "%8"), interleaved.1.replacingOccurrences(of: "%0", with: "%8")),
                         h: "1, 2, ?1..8, 8")
        var kBody = k
        for n in (12...19).reversed() { kBody = kBody.replacingOccurrences(of: "%\(n) ", with: "%\(n + 12) ").replacingOccurrences(of: "%\(n),", with: "%\(n + 12),").replacingOccurrences(of: "%\(n))", with: "%\(n + 12))") }
        kBody += """
          %32 = expand_dims(x: %28, axis: 4) : f32[1, 2, ?1..8, 8, 1]
          %33 = expand_dims(x: %31, axis: 4) : f32[1, 2, ?1..8, 8, 1]
          %34 = concatenate(tensors: [%32, %33], axis: 4) : f32[1, 2, ?1..8, 8, 2]
          %35 = reshape(x: %34, shape: [1, 2, -1, 16]) : f32[1, 2, ?1..8, 16]

        """
        let (text, changes) = try fused(tables() + rotation(halves: interleaved) + interleave + kBody, outputs: "%23, %35")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %23 = rope_table(x: %0, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]
        %35 = rope_table(x: %8, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 2, ?1..8, 16]
        """)
    }

    func testLeavesAloneWhatIsNotRope() throws {
        let layer = tables() + rotation(halves: interleaved) + interleave
        try assertUnchanged(layer, outputs: "%23, %14", "a product is also an output")
        try assertUnchanged(layer + "  %24 = add(a: %12, b: %12) : f32[1, 4, ?1..8, 8]\n", outputs: "%23, %24", "a half has a third reader")
        try assertUnchanged(tables(sinStart: 5) + rotation(halves: interleaved) + interleave, "cos and sin sliced at different rows")
        try assertUnchanged(tables() + rotation(halves: interleaved, cInB: 11) + interleave, "b = x1·s + x2·s: not a rotation")
        try assertUnchanged(tables() + rotation(halves: (interleaved.0, interleaved.1.replacingOccurrences(of: "start: 1", with: "start: 2"))) + interleave,
                            "the odd half starts at 2")
        try assertUnchanged(tables() + rotation(halves: interleaved) + concatHalves, outputs: "%20", "interleaved halves joined as split halves")
        try assertUnchanged(tables() + rotation(halves: splitHalf) + interleave, "split halves joined as an interleave")
        try assertUnchanged(tables(cos: 7) + rotation(halves: interleaved) + interleave, "the cosine table is state")
        let narrow = tables(cos: 6, sin: 6).replacingOccurrences(of: "f32[?1..8, 8]", with: "f32[?1..8, 4]")
        try assertUnchanged(narrow + rotation(halves: interleaved) + interleave, "one table for both, and too narrow for x")
    }
}
