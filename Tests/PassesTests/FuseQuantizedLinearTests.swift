import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-quantized-linear, text in → text out: SwiGLU, residual adds, linears sharing x, and the
/// cases it must leave alone (an intermediate read twice, state as x, runtime weights).
final class FuseQuantizedLinearTests: XCTestCase {
    /// The values every snippet uses: x, three 4-bit weights [n, 64] with scales and biases, a skip value.
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "x"
    input %1 : f32[1, ?1..8, 128] "skip"
    const %2 : u32[128, 8] = named("wg")
    const %3 : f32[128, 2] = named("sg")
    const %4 : f32[128, 2] = named("bg")
    const %5 : u32[128, 8] = named("wu")
    const %6 : f32[128, 2] = named("su")
    const %7 : f32[128, 2] = named("bu")
    const %8 : u32[32, 8] = named("wk")
    const %9 : f32[32, 2] = named("sk")
    const %10 : f32[32, 2] = named("bk")
    state %11 : f32[1, ?1..8, 64] = zeros "state_x"
    input %12 : u32[128, 8] "runtime_w"

    """

    func qmm(_ out: Int, x: Int = 0, w: Int, s: Int, b: Int) -> String {
        "  %\(out) = quantized_matmul(x: %\(x), w: %\(w), scales: %\(s), biases: %\(b), group_size: 32, bits: 4, mode: \"affine\", transpose: true) : ?\n"
    }

    /// Runs the pass on `body` (nodes of block main) and returns the printed main block's nodes.
    func fused(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try FuseQuantizedLinear().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        let nodes = text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        // The printed result parses back (the fused op round-trips through the text form).
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        return (nodes.joined(separator: "\n"), changes)
    }

    func testSwiGLUWithResidualBecomesOneOp() throws {
        let body = qmm(13, w: 2, s: 3, b: 4) + "  %14 = silu(x: %13) : ?\n" + qmm(15, w: 5, s: 6, b: 7)
            + "  %16 = multiply(a: %14, b: %15) : ?\n  %17 = add(a: %1, b: %16) : ?\n"
        let (text, changes) = try fused(body, outputs: "%17")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %17 = fused_quantized_linear(x: %0, w: [%2, %5], scales: [%3, %6], biases: [%4, %7], group_size: 32, bits: 4, epilogue: "swiglu", residual: %1) : ?
        """)
    }

    func testGateAndUpInEitherOrder() throws {
        let body = qmm(13, w: 5, s: 6, b: 7) + qmm(14, w: 2, s: 3, b: 4) + "  %15 = silu(x: %14) : ?\n  %16 = multiply(a: %13, b: %15) : ?\n"
        let (text, _) = try fused(body, outputs: "%16")
        XCTAssertEqual(text, """
        %16 = fused_quantized_linear(x: %0, w: [%2, %5], scales: [%3, %6], biases: [%4, %7], group_size: 32, bits: 4, epilogue: "swiglu", residual: none) : ?
        """)
    }

    /// XNNPACK 8da4w delegates write SiLU as Sigmoid then Multiply: `g · sigmoid(g)`, either side.
    func testSiluSpelledAsSigmoidProductIsSwiGLU() throws {
        for product in ["%13, b: %14", "%14, b: %13"] {
            let body = qmm(13, w: 2, s: 3, b: 4) + "  %14 = sigmoid(x: %13) : ?\n  %15 = multiply(a: \(product)) : ?\n" + qmm(16, w: 5, s: 6, b: 7)
                + "  %17 = multiply(a: %15, b: %16) : ?\n"
            let (text, changes) = try fused(body, outputs: "%17")
            XCTAssertEqual(changes, 1)
            XCTAssertEqual(text, """
            %17 = fused_quantized_linear(x: %0, w: [%2, %5], scales: [%3, %6], biases: [%4, %7], group_size: 32, bits: 4, epilogue: "swiglu", residual: none) : ?
            """)
        }
        // The gate's product read by a third node: the spelled silu is not absorbed.
        let body = qmm(13, w: 2, s: 3, b: 4) + "  %14 = sigmoid(x: %13) : ?\n  %15 = multiply(a: %13, b: %14) : ?\n" + qmm(16, w: 5, s: 6, b: 7)
            + "  %17 = multiply(a: %15, b: %16) : ?\n"
        let (text, _) = try fused(body, outputs: "%17, %13")
        XCTAssertTrue(text.contains("epilogue: \"none\"") && text.contains("sigmoid"), text)
    }

    func testLinearsReadingTheSameXShareOneOp() throws {
        let body = qmm(13, w: 2, s: 3, b: 4) + qmm(14, w: 8, s: 9, b: 10) + "  %15 = silu(x: %13) : ?\n" + qmm(16, w: 5, s: 6, b: 7)
        let (text, changes) = try fused(body, outputs: "%15, %14, %16")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %13, %14, %16 = fused_quantized_linear(x: %0, w: [%2, %8, %5], scales: [%3, %9, %6], biases: [%4, %10, %7], group_size: 32, bits: 4, epilogue: "none", residual: none) : (?, ?, ?)
        %15 = silu(x: %13) : ?
        """)
    }

    func testIntermediateWithAnotherReaderIsNotAbsorbed() throws {
        // The gate's product is also an output: the SwiGLU cannot absorb it; the two linears still share x.
        let body = qmm(13, w: 2, s: 3, b: 4) + "  %14 = silu(x: %13) : ?\n" + qmm(15, w: 5, s: 6, b: 7) + "  %16 = multiply(a: %14, b: %15) : ?\n"
        let (text, _) = try fused(body, outputs: "%16, %13")
        XCTAssertEqual(text, """
        %13, %15 = fused_quantized_linear(x: %0, w: [%2, %5], scales: [%3, %6], biases: [%4, %7], group_size: 32, bits: 4, epilogue: "none", residual: none) : (?, ?)
        %14 = silu(x: %13) : ?
        %16 = multiply(a: %14, b: %15) : ?
        """)
    }

    func testStateInputsAndRuntimeWeightsAreLeftAlone() throws {
        let body = qmm(13, x: 11, w: 8, s: 9, b: 10) + qmm(14, x: 11, w: 8, s: 9, b: 10)
            + qmm(15, w: 12, s: 9, b: 10) + "  %16 = add(a: %1, b: %15) : ?\n"
        let (text, changes) = try fused(body, outputs: "%13, %14, %16")
        XCTAssertEqual(changes, 0)
        XCTAssertEqual(text.components(separatedBy: "\n").count, 4)
        XCTAssertFalse(text.contains("fused_quantized_linear"))
    }
}
