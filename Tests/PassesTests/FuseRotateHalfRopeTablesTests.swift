import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rotate-half-rope on etLLM's HF variant (`rope.py` hf_apply_rotary_emb / hf_apply_rotary_emb_to_k),
/// text in → text out: x [1, T, H, D], precomputed tables sliced at the call's rows and spelled with
/// their halves duplicated (as DuplicatedHalfTables writes what the file holds), unsqueezed to
/// [T, 1, D], and the rotated x passed through a one-tensor concatenate (partial rotary with nothing
/// left) → a rope_table of x with its rows moved to axis −2 and back. Left alone: tables whose halves
/// are not shown equal, a table spread over two axes.
final class FuseRotateHalfRopeTablesTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 4, 16] "q"
    input %1 : i64[] "start"
    input %2 : i64[] "stop"
    input %3 : f32[64, 16] "freqs_cos"
    input %4 : f32[64, 16] "freqs_sin"

    """

    /// C = %11, S = %12 ([T, 1, 16]); `spelled`: the halves duplicated.
    func tables(spelled: Bool = true, view: String = "expand_dims(x: %7, axis: 1) : f32[?1..8, 1, 16]") -> String {
        let cat = { (r: Int, half: Int) in spelled ? "concatenate(tensors: [%\(half), %\(half)], axis: -1)" : "neg(x: %\(r))" }
        return """
          %5 = slice(x: %3, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 16]
          %6 = slice(x: %5, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 8]
          %7 = \(cat(5, 6)) : f32[?1..8, 16]
          %8 = slice(x: %4, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 16]
          %9 = slice(x: %8, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 8]
          %10 = \(cat(8, 9)) : f32[?1..8, 16]
          %11 = \(view)
          %12 = \(view.replacingOccurrences(of: "%7", with: "%10"))

        """
    }

    let rotation = """
      %13 = multiply(a: %0, b: %11) : f32[1, ?1..8, 4, 16]
      %14 = slice(x: %0, axis: 3, start: 0, stop: 8, step: 1) : f32[1, ?1..8, 4, 8]
      %15 = slice(x: %0, axis: 3, start: 8, stop: 9223372036854775807, step: 1) : f32[1, ?1..8, 4, 8]
      %16 = neg(x: %15) : f32[1, ?1..8, 4, 8]
      %17 = concatenate(tensors: [%16, %14], axis: 3) : f32[1, ?1..8, 4, 16]
      %18 = multiply(a: %17, b: %12) : f32[1, ?1..8, 4, 16]
      %19 = add(a: %13, b: %18) : f32[1, ?1..8, 4, 16]
      %20 = concatenate(tensors: [%19], axis: 3) : f32[1, ?1..8, 4, 16]

    """

    func program(_ body: String) -> String { header + "block main {\n" + body + "}\noutputs %20\n" }

    func testPrecomputedTablesOverRowsAtAxisOne() throws {
        let (text, changes) = try runPass(FuseRotateHalfRope(), on: program(tables() + rotation))
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %5 = slice(x: %3, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 16]
        %6 = slice(x: %5, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 8]
        %7 = concatenate(tensors: [%6, %6], axis: -1) : f32[?1..8, 16]
        %8 = slice(x: %4, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 16]
        %9 = slice(x: %8, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 8]
        %10 = concatenate(tensors: [%9, %9], axis: -1) : f32[?1..8, 16]
        %11 = expand_dims(x: %7, axis: 1) : f32[?1..8, 1, 16]
        %12 = expand_dims(x: %10, axis: 1) : f32[?1..8, 1, 16]
        %21 = slice(x: %11, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 1, 8]
        %22 = reshape(x: %21, shape: [-1, 8]) : f32[?1..8, 8]
        %23 = sym_size(a: %22, dim: 0) : i64[]
        %24 = slice(x: %12, axis: -1, start: 0, stop: 8, step: 1) : f32[?1..8, 1, 8]
        %25 = reshape(x: %24, shape: [-1, 8]) : f32[?1..8, 8]
        %28 = transpose(x: %0, perm: [0, 2, 1, 3]) : f32[1, 4, ?1..8, 16]
        %29 = rope_table(x: %28, cos: %22, sin: %25, start: %27, stop: %23, traditional: false) : f32[1, 4, ?1..8, 16]
        %20 = transpose(x: %29, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
        """)
    }

    func testLeavesAloneWhatIsNotShownToHaveEqualHalves() throws {
        try assertPassLeavesUnchanged(FuseRotateHalfRope(), on: program(tables(spelled: false) + rotation), "the tables' halves are not shown equal")
        let spread = "reshape(x: %7, shape: [-1, 2, 16]) : f32[?1..8, 2, 16]"
        try assertPassLeavesUnchanged(FuseRotateHalfRope(), on: program(tables(view: spread) + rotation), "a table over two axes")
    }
}
