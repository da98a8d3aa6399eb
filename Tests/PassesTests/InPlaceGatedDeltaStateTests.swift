import XCTest
import MLXCIR
@testable import MLXCPasses

/// inplace-gated-delta-state, text in → text out: etLLM's reset (state × keep) and copy back around a heads-first
/// gated delta rule fold into the rule, which then redefines the state in place; what it must keep: a state read
/// between the rule and the copy, a multiplier of more than one element, the time-first form.
final class InPlaceGatedDeltaStateTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 2, 1, 8] "q"
    input %1 : f32[1, 2, 1, 8] "k"
    input %2 : f32[1, 2, 1, 4] "v"
    input %3 : f32[1, 2, 1] "g"
    input %4 : f32[1, 2, 1] "beta"
    input %5 : f32[] "keep"
    input %6 : f32[1, 2, 8, 4] "mask"
    state %7 : f32[1, 2, 8, 4] = zeros "state"

    """

    func run(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(InPlaceGatedDeltaState(), on: header + "block main {\n" + body + "}\noutputs \(outputs)\n", file: file, line: line)
    }

    func testResetAndCopyBackFoldIntoTheRule() throws {
        let body = """
          %8 = multiply(a: %7, b: %5) : f32[1, 2, 8, 4]
          %9, %10 = gated_delta_rule(q: %0, k: %1, v: %2, g: %3, beta: %4, state: %8, heads_first: true) : (f32[1, 2, 1, 4], f32[1, 2, 8, 4])
          %7 = copy_into(dst: %7, src: %10) : f32[1, 2, 8, 4]

        """
        let (text, changes) = try run(body, outputs: "%9")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %9, %7 = gated_delta_rule(q: %0, k: %1, v: %2, g: %3, beta: %4, state: %7, heads_first: true, state_scale: %5) : (f32[1, 2, 1, 4], f32[1, 2, 8, 4])
        """)
    }

    func testWhatMustStay() throws {
        let readBetween = """
          %8 = multiply(a: %5, b: %7) : f32[1, 2, 8, 4]
          %9, %10 = gated_delta_rule(q: %0, k: %1, v: %2, g: %3, beta: %4, state: %8, heads_first: true) : (f32[1, 2, 1, 4], f32[1, 2, 8, 4])
          %11 = add(a: %7, b: %7) : f32[1, 2, 8, 4]
          %7 = copy_into(dst: %7, src: %10) : f32[1, 2, 8, 4]

        """
        let wholeTensor = """
          %8 = multiply(a: %7, b: %6) : f32[1, 2, 8, 4]
          %9, %10 = gated_delta_rule(q: %0, k: %1, v: %2, g: %3, beta: %4, state: %8, heads_first: true) : (f32[1, 2, 1, 4], f32[1, 2, 8, 4])
          %7 = copy_into(dst: %7, src: %10) : f32[1, 2, 8, 4]

        """
        for (what, body, outputs) in [("a read of the state before the copy", readBetween, "%9, %11"),
                                      ("a multiplier of many elements", wholeTensor, "%9")] {
            XCTAssertEqual(try run(body, outputs: outputs).changes, 0, what)
        }
    }
}
