import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rms-norm-pattern, text in → text out: the plain export's RMSNorm (with and without the
/// weight, operands in either order, x² spelled as power/multiply/square, axis -1 or rank − 1),
/// and the cases it must leave alone: an intermediate with another reader or that is an output,
/// eps that is not a literal, a mean over another axis or without keepdims, x² of another value,
/// a weight of another shape.
final class FuseRMSNormPatternTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "x"
    const %1 : f32[] = literal(2.0)
    const %2 : f32[] = literal(1e-05)
    const %3 : f32[64] = buffer(0) "w"
    const %4 : f32[] = buffer(1) "eps_in_file"
    input %5 : f32[1, ?1..8, 64] "other"
    const %6 : f32[32] = buffer(2) "short_w"
    input %7 : f32[1] "unused7"
    input %8 : f32[1] "unused8"
    input %9 : f32[1] "unused9"

    """

    func norm(x: Int = 0, square: String? = nil, axes: String = "[-1]", keepdims: Bool = true, eps: Int = 2,
              epsFirst: Bool = false, xFirst: Bool = true, weight: Int? = 3, weightFirst: Bool = true) -> String {
        let sq = square ?? "power(a: %\(x), b: %1)"
        let add = epsFirst ? "add(a: %\(eps), b: %11)" : "add(a: %11, b: %\(eps))"
        let y = xFirst ? "multiply(a: %\(x), b: %13)" : "multiply(a: %13, b: %\(x))"
        var text = """
          %10 = \(sq) : f32[1, ?1..8, 64]
          %11 = mean(x: %10, axes: \(axes), keepdims: \(keepdims)) : f32[1, ?1..8, 1]
          %12 = \(add) : f32[1, ?1..8, 1]
          %13 = rsqrt(x: %12) : f32[1, ?1..8, 1]
          %14 = \(y) : f32[1, ?1..8, 64]

        """
        if let weight {
            text += "  %15 = " + (weightFirst ? "multiply(a: %\(weight), b: %14)" : "multiply(a: %14, b: %\(weight))") + " : f32[1, ?1..8, 64]\n"
        }
        return text
    }

    func fused(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try FuseRMSNormPattern().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        let nodes = text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        return (nodes.joined(separator: "\n"), changes)
    }

    func assertUnchanged(_ body: String, outputs: String = "%15", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (text, changes) = try fused(body, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        let want = body.components(separatedBy: "\n").filter { !$0.isEmpty }.map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(text, want.joined(separator: "\n"), why, file: file, line: line)
    }

    let withWeight = "%15 = rms_norm(x: %0, weight: %3, eps: 1e-05) : f32[1, ?1..8, 64]"

    func testLlamaPlainNormBecomesOneOp() throws {
        let (text, changes) = try fused(norm(), outputs: "%15")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, withWeight)
    }

    func testOperandOrdersAndSpellingsOfTheSquare() throws {
        let variants = [
            norm(epsFirst: true), norm(xFirst: false), norm(weightFirst: false), norm(axes: "[2]"),
            norm(square: "multiply(a: %0, b: %0)"), norm(square: "square(x: %0)"),
        ]
        for body in variants {
            let (text, changes) = try fused(body, outputs: "%15")
            XCTAssertEqual(changes, 1, body)
            XCTAssertEqual(text, withWeight, body)
        }
    }

    func testWithoutWeightTheNormalizedValueIsTheResult() throws {
        let (text, changes) = try fused(norm(weight: nil) + "  %15 = add(a: %14, b: %5) : f32[1, ?1..8, 64]\n", outputs: "%15")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%14 = rms_norm(x: %0, weight: none, eps: 1e-05) : f32[1, ?1..8, 64]\n%15 = add(a: %14, b: %5) : f32[1, ?1..8, 64]")
    }

    func testIntermediatesWithOtherReadersAreLeftAlone() throws {
        try assertUnchanged(norm(), outputs: "%15, %11", "the mean is also an output")
        try assertUnchanged(norm() + "  %16 = add(a: %13, b: %13) : f32[1, ?1..8, 1]\n", outputs: "%15, %16", "rsqrt has another reader")
        try assertUnchanged(norm() + "  %16 = add(a: %10, b: %10) : f32[1, ?1..8, 64]\n", outputs: "%15, %16", "x² has another reader")
    }

    func testNormalizedValueWithAnotherReaderKeepsTheWeightMultiply() throws {
        let (text, changes) = try fused(norm(), outputs: "%15, %14")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%14 = rms_norm(x: %0, weight: none, eps: 1e-05) : f32[1, ?1..8, 64]\n%15 = multiply(a: %3, b: %14) : f32[1, ?1..8, 64]")
    }

    func testOtherShapesOfThePatternAreLeftAlone() throws {
        try assertUnchanged(norm(eps: 4), "eps is not a literal")
        try assertUnchanged(norm(axes: "[1]"), "mean over another axis")
        try assertUnchanged(norm(keepdims: false), "mean without keepdims")
        try assertUnchanged(norm(square: "power(a: %5, b: %1)"), "the square of another value")
        try assertUnchanged(norm(square: "power(a: %0, b: %2)"), "another exponent")
    }

    func testWeightOfAnotherShapeStaysAMultiply() throws {
        let (text, changes) = try fused(norm(weight: 6), outputs: "%15")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%14 = rms_norm(x: %0, weight: none, eps: 1e-05) : f32[1, ?1..8, 64]\n%15 = multiply(a: %6, b: %14) : f32[1, ?1..8, 64]")
    }

    /// A portable program's dynamic-bound input, [1, ?T, ?D] as ExecuTorch declares it (Voxtral Realtime's input
    /// embeddings): the weight [D] is absorbed when D is the features' bound (the kernel then has a static feature
    /// size and checks each call's), not for another bound.
    func testWeightOfTheFeaturesBoundIsAbsorbedForADynamicBoundInput() throws {
        for (bound, absorbed) in [(64, true), (128, false)] {
            let header = self.header.replacingOccurrences(of: "input %0 : f32[1, ?1..8, 64] \"x\"", with: "input %0 : f32[1, ?1..8, ?1..\(bound)] \"x\"")
            var g = try IRParser.parse(header + "block main {\n" + norm() + "}\noutputs %15\n")
            XCTAssertEqual(try FuseRMSNormPattern().run(&g), 1)
            let text = IRPrinter.print(g, origins: false)
            XCTAssertEqual(text.contains("rms_norm(x: %0, weight: %3"), absorbed, "bound \(bound): \(text)")
        }
    }
}
