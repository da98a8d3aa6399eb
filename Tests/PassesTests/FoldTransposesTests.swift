import XCTest
import MLXCIR
@testable import MLXCPasses

/// fold-transposes, text in → text out: the plain export's output permute chain around attention
/// collapses to its one head swap, two transposes compose, an identity permutation and a copy of
/// a value that cannot change disappear; and what it must keep: copies and transposes of state (a
/// snapshot the next cache write must not change), and graph outputs.
final class FoldTransposesTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, ?1..8, 16] "attention"
    state %1 : f32[1, 2, 32, 16] = zeros "cache"
    input %2 : f32[4, 8] "w"

    """

    func folded(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(FoldTransposes(), on: header + "block main {\n" + body + "}\noutputs \(outputs)\n", file: file, line: line)
    }

    func testAttentionOutputChainBecomesOneHeadSwap() throws {
        let body = """
          %3 = transpose(x: %0, perm: [2, 0, 1, 3]) : f32[?1..8, 1, 4, 16]
          %4 = id_copy(x: %3) : f32[?1..8, 1, 4, 16]
          %5 = transpose(x: %4, perm: [1, 2, 0, 3]) : f32[1, 4, ?1..8, 16]
          %6 = transpose(x: %5, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
          %7 = id_copy(x: %6) : f32[1, ?1..8, 4, 16]
          %8 = reshape(x: %7, shape: [1, -1, 64]) : f32[1, ?1..8, 64]

        """
        let (text, changes) = try folded(body, outputs: "%8")
        XCTAssertGreaterThan(changes, 0)
        XCTAssertEqual(text, """
        %6 = transpose(x: %0, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
        %8 = reshape(x: %6, shape: [1, -1, 64]) : f32[1, ?1..8, 64]
        """)
    }

    func testTwoTransposesCompose() throws {
        let body = """
          %3 = transpose(x: %0, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
          %4 = transpose(x: %3, perm: [0, 1, 3, 2]) : f32[1, ?1..8, 16, 4]
          %5 = reshape(x: %4, shape: [1, -1, 64]) : f32[1, ?1..8, 64]

        """
        let (text, _) = try folded(body, outputs: "%5")
        // out dim i = x dim p[q[i]]: p = [0, 2, 1, 3], q = [0, 1, 3, 2] → [0, 2, 3, 1].
        XCTAssertEqual(text, """
        %4 = transpose(x: %0, perm: [0, 2, 3, 1]) : f32[1, ?1..8, 16, 4]
        %5 = reshape(x: %4, shape: [1, -1, 64]) : f32[1, ?1..8, 64]
        """)
    }

    func testKeepsStateCopiesAndOutputs() throws {
        let body = """
          %3 = id_copy(x: %1) : f32[1, 2, 32, 16]
          %4 = transpose(x: %1, perm: [0, 1, 3, 2]) : f32[1, 2, 16, 32]
          %5 = id_copy(x: %2) : f32[4, 8]
          %6 = transpose(x: %2, perm: [1, 0]) : f32[8, 4]
          %7 = transpose(x: %6, perm: [1, 0]) : f32[4, 8]

        """
        let (text, _) = try folded(body, outputs: "%3, %4, %5, %7")
        XCTAssertEqual(text, """
        %3 = id_copy(x: %1) : f32[1, 2, 32, 16]
        %4 = transpose(x: %1, perm: [0, 1, 3, 2]) : f32[1, 2, 16, 32]
        %5 = id_copy(x: %2) : f32[4, 8]
        %6 = transpose(x: %2, perm: [1, 0]) : f32[8, 4]
        %7 = transpose(x: %6, perm: [1, 0]) : f32[4, 8]
        """, "state copies, state transposes and graph outputs stay")
    }

    func testIdentityWithinTheGraphGoes() throws {
        let body = """
          %3 = transpose(x: %2, perm: [1, 0]) : f32[8, 4]
          %4 = transpose(x: %3, perm: [1, 0]) : f32[4, 8]
          %5 = add(a: %4, b: %2) : f32[4, 8]

        """
        let (text, _) = try folded(body, outputs: "%5")
        XCTAssertEqual(text, "%5 = add(a: %2, b: %2) : f32[4, 8]")
    }

    /// etLLM's GatedDeltaNet state reset and write-back, functionalized (`state[:1].mul_(keep)`,
    /// `state[:1].copy_(new)` on a batch of 1): slice_updates over the whole state and a copy_into of a same-typed
    /// source are their update / source; the state's own write-back (result = dst) stays.
    func testWholeSliceUpdatesAndCopiesAreTheirSource() throws {
        let body = """
          %3 = multiply(a: %1, b: %1) : f32[1, 2, 32, 16]
          %4 = slice_update(dst: %1, update: %3, axis: 0, start: 0, stop: 1, step: 1) : f32[1, 2, 32, 16]
          %5 = transpose(x: %4, perm: [0, 1, 3, 2]) : f32[1, 2, 16, 32]
          %6 = transpose(x: %5, perm: [0, 1, 3, 2]) : f32[1, 2, 32, 16]
          %7 = copy_into(dst: %4, src: %6) : f32[1, 2, 32, 16]
          %8 = slice_update(dst: %4, update: %7, axis: 0, start: 0, stop: 9223372036854775807, step: 1) : f32[1, 2, 32, 16]
          %1 = copy_into(dst: %1, src: %8) : f32[1, 2, 32, 16]

        """
        let (text, changes) = try folded(body, outputs: "%0")
        XCTAssertGreaterThan(changes, 0)
        XCTAssertEqual(text, """
        %3 = multiply(a: %1, b: %1) : f32[1, 2, 32, 16]
        %1 = copy_into(dst: %1, src: %3) : f32[1, 2, 32, 16]
        """)
    }

    /// What must stay: a slice_update over part of dst (a step, an offset, a shorter stop, a broadcast update), a
    /// copy_into that broadcasts its source.
    func testPartialSliceUpdatesAndConvertingCopiesStay() throws {
        let body = """
          %3 = multiply(a: %1, b: %1) : f32[1, 2, 32, 16]
          %9 = slice(x: %3, axis: 2, start: 0, stop: 16, step: 1) : f32[1, 2, 16, 16]
          %4 = slice_update(dst: %1, update: %9, axis: 2, start: 0, stop: 16, step: 1) : f32[1, 2, 32, 16]
          %5 = slice_update(dst: %1, update: %3, axis: 0, start: 1, stop: 2, step: 1) : f32[1, 2, 32, 16]
          %6 = copy_into(dst: %1, src: %9) : f32[1, 2, 32, 16]
          %7 = add(a: %4, b: %5) : f32[1, 2, 32, 16]
          %8 = add(a: %7, b: %6) : f32[1, 2, 32, 16]

        """
        let (text, _) = try folded(body, outputs: "%8")
        XCTAssertTrue(text.contains("slice_update(dst: %1, update: %9"), text)
        XCTAssertTrue(text.contains("slice_update(dst: %1, update: %3, axis: 0, start: 1"), text)
        XCTAssertTrue(text.contains("copy_into(dst: %1, src: %9)"), text)
    }
}
