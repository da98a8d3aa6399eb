import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rotate-half-rope, text in → text out: Hugging Face RoPE as ExecuTorch's export scripts
/// write it (cos/sin computed from positions × inv_freq in the graph, `rotate_half` with slices,
/// neg and concatenate) — q and k sharing one cos/sin, operands in the other order, the halves as
/// a split, partial rotary (phi3), bf16 casts after cos/sin — and what it must leave alone: tables
/// whose halves are not provably equal, a scale that is not one number, rotate_half in the wrong
/// order, a half with another reader, a table of another dtype, a table with fixed rows ≠ x's rows.
final class FuseRotateHalfRopeTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, ?1..8, 16] "q"
    input %1 : f32[1, 2, ?1..8, 16] "k"
    input %2 : f32[1, ?1..8, 1] "positions"
    input %3 : f32[8] "inv_freq"
    input %4 : f32[] "attention_scaling"
    input %5 : f32[1, ?1..8, 8] "other"
    input %6 : f32[1, ?1..8, 16] "scale_per_row"
    input %7 : f32[6] "partial_inv_freq"
    input %8 : bf16[1, 4, ?1..8, 16] "q_bf16"
    input %9 : f32[1, 4, 1, 16] "one_row"

    """

    /// cos/sin as HF computes them: %16 = expand_dims(cos), %17 = expand_dims(sin).
    func tables(second: Int = 10, scale: Int = 4) -> String {
        """
          %10 = multiply(a: %2, b: %3) : f32[1, ?1..8, 8]
          %11 = concatenate(tensors: [%10, %\(second)], axis: -1) : f32[1, ?1..8, 16]
          %12 = cos(x: %11) : f32[1, ?1..8, 16]
          %13 = multiply(a: %12, b: %\(scale)) : f32[1, ?1..8, 16]
          %14 = sin(x: %11) : f32[1, ?1..8, 16]
          %15 = multiply(a: %14, b: %4) : f32[1, ?1..8, 16]
          %16 = expand_dims(x: %13, axis: 1) : f32[1, 1, ?1..8, 16]
          %17 = expand_dims(x: %15, axis: 1) : f32[1, 1, ?1..8, 16]

        """
    }

    /// y = x·C + rotate_half(x)·S for x = %\(x) with `heads` heads, values numbered from `first`.
    func rotation(x: Int, heads: Int, first n: Int, swap: Bool = false, halves: String? = nil, catOrder: String? = nil) -> String {
        let t = "f32[1, \(heads), ?1..8, 16]", h = "f32[1, \(heads), ?1..8, 8]"
        let split = halves ?? """
          %\(n + 1) = slice(x: %\(x), axis: 3, start: 0, stop: 8, step: 1) : \(h)
          %\(n + 2) = slice(x: %\(x), axis: 3, start: 8, stop: 9223372036854775807, step: 1) : \(h)
        """
        return """
          %\(n) = multiply(a: \(swap ? "%16, b: %\(x)" : "%\(x), b: %16")) : \(t)
        \(split)
          %\(n + 3) = neg(x: %\(n + 2)) : \(h)
          %\(n + 4) = concatenate(tensors: [\(catOrder ?? "%\(n + 3), %\(n + 1)")], axis: -1) : \(t)
          %\(n + 5) = multiply(a: \(swap ? "%17, b: %\(n + 4)" : "%\(n + 4), b: %17")) : \(t)
          %\(n + 6) = add(a: \(swap ? "%\(n + 5), b: %\(n)" : "%\(n), b: %\(n + 5)")) : \(t)

        """
    }

    func program(_ body: String, _ outputs: String) -> String { header + "block main {\n" + body + "}\noutputs \(outputs)\n" }

    func fused(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(FuseRotateHalfRope(), on: program(body, outputs), file: file, line: line)
    }

    func assertUnchanged(_ body: String, outputs: String = "%24", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertPassLeavesUnchanged(FuseRotateHalfRope(), on: program(body, outputs), why, file: file, line: line)
    }

    /// What stays of the cos/sin computation, then the table views (made once, before the first rope).
    let cosSin = """
    %10 = multiply(a: %2, b: %3) : f32[1, ?1..8, 8]
    %11 = concatenate(tensors: [%10, %10], axis: -1) : f32[1, ?1..8, 16]
    %12 = cos(x: %11) : f32[1, ?1..8, 16]
    %13 = multiply(a: %12, b: %4) : f32[1, ?1..8, 16]
    %14 = sin(x: %11) : f32[1, ?1..8, 16]
    %15 = multiply(a: %14, b: %4) : f32[1, ?1..8, 16]
    %16 = expand_dims(x: %13, axis: 1) : f32[1, 1, ?1..8, 16]
    %17 = expand_dims(x: %15, axis: 1) : f32[1, 1, ?1..8, 16]
    %32 = slice(x: %16, axis: -1, start: 0, stop: 8, step: 1) : f32[1, 1, ?1..8, 8]
    %33 = reshape(x: %32, shape: [-1, 8]) : f32[?1..8, 8]
    %34 = sym_size(a: %33, dim: 0) : i64[]
    %35 = slice(x: %17, axis: -1, start: 0, stop: 8, step: 1) : f32[1, 1, ?1..8, 8]
    %36 = reshape(x: %35, shape: [-1, 8]) : f32[?1..8, 8]
    """

    func testQAndKShareOneCosSinAndBecomeRopeTables() throws {
        let (text, changes) = try fused(tables() + rotation(x: 0, heads: 4, first: 18) + rotation(x: 1, heads: 2, first: 25), outputs: "%24, %31")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, cosSin + """

        %24 = rope_table(x: %0, cos: %33, sin: %36, start: %38, stop: %34, traditional: false) : f32[1, 4, ?1..8, 16]
        %31 = rope_table(x: %1, cos: %33, sin: %36, start: %38, stop: %34, traditional: false) : f32[1, 2, ?1..8, 16]
        """)
    }

    func testOperandsInTheOtherOrderAndHalvesFromASplit() throws {
        let split = "  %19, %20 = split(x: %0, sizes: [8], axis: -1) : (f32[1, 4, ?1..8, 8], f32[1, 4, ?1..8, 8])"
        let (text, changes) = try fused(tables() + rotation(x: 0, heads: 4, first: 18, swap: true, halves: split), outputs: "%24")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text.components(separatedBy: "\n").last,
                       "%24 = rope_table(x: %0, cos: %26, sin: %29, start: %31, stop: %27, traditional: false) : f32[1, 4, ?1..8, 16]")
    }

    /// phi3: only the first 12 of 16 features turn; the rope reads the whole row, the rest passes through.
    func testPartialRotaryReadsTheWholeRow() throws {
        let body = """
          %10 = multiply(a: %2, b: %7) : f32[1, ?1..8, 6]
          %11 = concatenate(tensors: [%10, %10], axis: -1) : f32[1, ?1..8, 12]
          %12 = cos(x: %11) : f32[1, ?1..8, 12]
          %13 = sin(x: %11) : f32[1, ?1..8, 12]
          %14 = expand_dims(x: %12, axis: 1) : f32[1, 1, ?1..8, 12]
          %15 = expand_dims(x: %13, axis: 1) : f32[1, 1, ?1..8, 12]
          %16 = slice(x: %0, axis: 3, start: 0, stop: 12, step: 1) : f32[1, 4, ?1..8, 12]
          %17 = slice(x: %0, axis: 3, start: 12, stop: 9223372036854775807, step: 1) : f32[1, 4, ?1..8, 4]
          %18 = multiply(a: %16, b: %14) : f32[1, 4, ?1..8, 12]
          %19 = slice(x: %16, axis: 3, start: 0, stop: 6, step: 1) : f32[1, 4, ?1..8, 6]
          %20 = slice(x: %16, axis: 3, start: 6, stop: 9223372036854775807, step: 1) : f32[1, 4, ?1..8, 6]
          %21 = neg(x: %20) : f32[1, 4, ?1..8, 6]
          %22 = concatenate(tensors: [%21, %19], axis: -1) : f32[1, 4, ?1..8, 12]
          %23 = multiply(a: %22, b: %15) : f32[1, 4, ?1..8, 12]
          %24 = add(a: %18, b: %23) : f32[1, 4, ?1..8, 12]
          %25 = concatenate(tensors: [%24, %17], axis: -1) : f32[1, 4, ?1..8, 16]

        """
        let (text, changes) = try fused(body, outputs: "%25")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text.components(separatedBy: "\n").last,
                       "%25 = rope_table(x: %0, cos: %27, sin: %30, start: %32, stop: %28, traditional: false) : f32[1, 4, ?1..8, 16]")
        XCTAssertFalse(text.contains("slice(x: %0"), text)
    }

    /// llama bf16: cos/sin rounded to bf16 before the products; x and the tables then agree in dtype.
    func testBF16CastsAfterCosSin() throws {
        let body = """
          %10 = multiply(a: %2, b: %3) : f32[1, ?1..8, 8]
          %11 = concatenate(tensors: [%10, %10], axis: -1) : f32[1, ?1..8, 16]
          %12 = cos(x: %11) : f32[1, ?1..8, 16]
          %13 = multiply(a: %12, b: %4) : f32[1, ?1..8, 16]
          %14 = sin(x: %11) : f32[1, ?1..8, 16]
          %15 = multiply(a: %14, b: %4) : f32[1, ?1..8, 16]
          %18 = as_type(x: %13, scalar_type: bf16) : bf16[1, ?1..8, 16]
          %19 = as_type(x: %15, scalar_type: bf16) : bf16[1, ?1..8, 16]
          %16 = expand_dims(x: %18, axis: 1) : bf16[1, 1, ?1..8, 16]
          %17 = expand_dims(x: %19, axis: 1) : bf16[1, 1, ?1..8, 16]

        """ + rotation(x: 8, heads: 4, first: 20).replacingOccurrences(of: "f32[", with: "bf16[")
        let (text, changes) = try fused(body, outputs: "%26")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text.components(separatedBy: "\n").last,
                       "%26 = rope_table(x: %8, cos: %28, sin: %31, start: %33, stop: %29, traditional: false) : bf16[1, 4, ?1..8, 16]")
        // A bf16 x against f32 tables computes in f32 (a product of mixed dtypes): not this rope.
        try assertUnchanged(tables() + rotation(x: 8, heads: 4, first: 18).replacingOccurrences(of: "f32[1, 4", with: "bf16[1, 4"),
                            outputs: "%24", "bf16 x, f32 cos/sin")
    }

    func testLeavesAloneWhatIsNotThisRope() throws {
        let q = rotation(x: 0, heads: 4, first: 18)
        try assertUnchanged(tables(second: 5) + q, "the table's halves come from two values: they may differ")
        try assertUnchanged(tables(scale: 6) + q, "cos scaled per row, not by one number")
        try assertUnchanged(tables() + rotation(x: 0, heads: 4, first: 18, catOrder: "%19, %21"), "concatenate([x1, -x2]) turns the other way")
        try assertUnchanged(tables() + q + "  %25 = add(a: %19, b: %19) : f32[1, 4, ?1..8, 8]\n", outputs: "%24, %25", "a half has another reader")
        try assertUnchanged(tables() + q, outputs: "%24, %18", "a product is an output")
        let oneRow = """
          %18 = multiply(a: %9, b: %16) : f32[1, 4, ?1..8, 16]
          %19 = slice(x: %9, axis: 3, start: 0, stop: 8, step: 1) : f32[1, 4, 1, 8]
          %20 = slice(x: %9, axis: 3, start: 8, stop: 16, step: 1) : f32[1, 4, 1, 8]
          %21 = neg(x: %20) : f32[1, 4, 1, 8]
          %22 = concatenate(tensors: [%21, %19], axis: -1) : f32[1, 4, 1, 16]
          %23 = multiply(a: %22, b: %17) : f32[1, 4, ?1..8, 16]
          %24 = add(a: %18, b: %23) : f32[1, 4, ?1..8, 16]

        """
        try assertUnchanged(tables() + oneRow, "x has one row, the tables T: the products broadcast x's row")
    }
}
