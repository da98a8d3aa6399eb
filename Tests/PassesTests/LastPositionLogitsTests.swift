import XCTest
import MLXCIR
@testable import MLXCPasses

/// last-position-logits, text in → text out: the row-wise tail of the network gets the last row.
final class LastPositionLogitsTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "h"
    const %1 : f32[64] = named("norm")
    const %2 : u32[256, 8] = named("w")
    const %3 : f32[256, 2] = named("s")
    const %4 : f32[256, 2] = named("b")
    const %5 : f32[] = literal(0.5)
    const %6 : f32[3, 256] = named("not_per_feature")

    """

    func run(_ body: String, outputs: String = "%9") throws -> (text: String, changes: Int) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try LastPositionLogits().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(IRPrinter.print(g)), g)
        return (text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
                    .joined(separator: "\n"), changes)
    }

    let tail = """
      %7 = add(a: %0, b: %0) : f32[1, ?1..8, 64]
      %8 = rms_norm(x: %7, weight: %1, eps: 1e-05) : ?
      %9 = quantized_matmul(x: %8, w: %2, scales: %3, biases: %4, group_size: 32, bits: 4, mode: "affine", transpose: true) : ?
      %10 = multiply(a: %9, b: %5) : ?

    """

    func testNormProjectionAndScaleGetTheLastRow() throws {
        let (text, changes) = try run(tail, outputs: "%10")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %7 = add(a: %0, b: %0) : f32[1, ?1..8, 64]
        %11 = slice(x: %7, axis: 1, start: -1, stop: 9223372036854775807, step: 1) : f32[1, 1, 64]
        %8 = rms_norm(x: %11, weight: %1, eps: 1e-05) : ?
        %9 = quantized_matmul(x: %8, w: %2, scales: %3, biases: %4, group_size: 32, bits: 4, mode: "affine", transpose: true) : ?
        %10 = multiply(a: %9, b: %5) : ?
        """)
    }

    func testStopsAtAValueWithAnotherReader() throws {
        // The normed rows are also an output: the slice goes after the norm, before the projection.
        let (text, _) = try run(tail, outputs: "%10, %8")
        XCTAssertTrue(text.contains("%11 = slice(x: %8,"), text)
        XCTAssertTrue(text.contains("%8 = rms_norm(x: %7,"), text)
    }

    func testConstantsThatAreNotPerFeatureStopTheWalk() throws {
        let body = tail.replacingOccurrences(of: "multiply(a: %9, b: %5)", with: "multiply(a: %9, b: %6)")
        let (text, changes) = try run(body, outputs: "%10")
        XCTAssertEqual(changes, 0)
        XCTAssertFalse(text.contains("slice"))
    }
}
