import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-dequant-matmul, text in → text out: the plain export's weight-only quantized linear
/// (dequantize_affine → transpose → matmul, or addmm with a bias), 8- and 4-bit, with and without
/// zero points, and the cases it must leave alone: a weight that is not a constant, blocks that are
/// not groups along K (or do not match the scales), a dequantized weight with another reader (or an
/// output), a transpose that is not [1, 0], a scaled addmm, a non-f32 dequantization.
final class FuseDequantMatmulTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[?1..8, 64] "x"
    const %1 : i8[32, 64] = buffer(1) "q"
    const %2 : f32[32, 2] = buffer(2) "scale"
    const %3 : i8[32, 2] = buffer(3) "zero_point"
    input %4 : i8[32, 64] "runtime_q"
    const %5 : f32[32, 1] = buffer(4) "scale_g64"
    const %6 : f32[32] = buffer(5) "bias"
    const %7 : f32[16, 2] = buffer(6) "short_scale"
    input %8 : f32[1] "unused8"
    input %9 : f32[1] "unused9"
    value %10 : f32[32, 64]
    value %11 : f32[64, 32]
    value %12 : f32[?1..8, 32]

    """

    func dq(q: Int = 1, block: String = "[1, 32]", scale: Int = 2, zero: String = "%3", range: (Int, Int) = (-8, 7), dtype: String = "f32") -> String {
        "  %10 = dequantize_affine(x: %\(q), block_size: \(block), scale: %\(scale), zero_point: \(zero), quant_min: \(range.0), quant_max: \(range.1), dtype: \(dtype)) : f32[32, 64]\n"
    }
    let transpose = "  %11 = transpose(x: %10, perm: [1, 0]) : f32[64, 32]\n"
    let mm = "  %12 = matmul(a: %0, b: %11) : f32[?1..8, 32]\n"

    /// Runs the pass; returns the printed nodes of block main and of the init block (if any).
    func fused(_ body: String, outputs: String = "%12", file: StaticString = #filePath, line: UInt = #line)
        throws -> (main: String, initBlock: String, changes: Int) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try FuseDequantMatmul().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        var blocks: [String: [String]] = [:], current = ""
        for line in text.components(separatedBy: "\n") {
            if line.hasPrefix("block ") { current = line.hasSuffix(" init {") ? "init" : String(line.dropFirst(6).prefix { $0 != " " }) }
            else if line.hasPrefix("  ") { blocks[current, default: []].append(line.trimmingCharacters(in: .whitespaces)) }
        }
        func nodes(_ name: String) -> String { (blocks[name] ?? []).joined(separator: "\n") }
        return (nodes("main"), nodes("init"), changes)
    }

    func assertUnchanged(_ body: String, outputs: String = "%12", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (main, initBlock, changes) = try fused(body, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        XCTAssertEqual(initBlock, "", why, file: file, line: line)
        XCTAssertEqual(main, body.components(separatedBy: "\n").filter { !$0.isEmpty }.map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: "\n"), why, file: file, line: line)
    }

    func test4BitGroupWiseLinearBecomesAQuantizedMatmulOverARepackedWeight() throws {
        let (main, initBlock, changes) = try fused(dq() + transpose + mm)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(initBlock, """
        %13, %14, %15 = pack_affine_weight(q: %1, scale: %2, zero_point: %3, quant_min: -8, bits: 4, group_size: 32) : (u32[32, 8], f32[32, 2], f32[32, 2])
        """)
        XCTAssertEqual(main, """
        %12 = quantized_matmul(x: %0, w: %13, scales: %14, biases: %15, group_size: 32, bits: 4, mode: "affine", transpose: true) : f32[?1..8, 32]
        """)
    }

    func test8BitWithoutZeroPointsAndGroupsOf64() throws {
        let (main, initBlock, changes) = try fused(dq(block: "[1, 64]", scale: 5, zero: "none", range: (-128, 127)) + transpose + mm)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(initBlock, """
        %13, %14, %15 = pack_affine_weight(q: %1, scale: %5, zero_point: none, quant_min: -128, bits: 8, group_size: 64) : (u32[32, 16], f32[32, 1], f32[32, 1])
        """)
        XCTAssertEqual(main, """
        %12 = quantized_matmul(x: %0, w: %13, scales: %14, biases: %15, group_size: 64, bits: 8, mode: "affine", transpose: true) : f32[?1..8, 32]
        """)
    }

    func testAddmmKeepsItsBiasAsAnAdd() throws {
        let (main, _, changes) = try fused(dq() + transpose + "  %12 = addmm(mat1: %0, mat2: %11, bias: %6, alpha: 1.0, beta: 1.0) : f32[?1..8, 32]\n")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(main, """
        %16 = quantized_matmul(x: %0, w: %13, scales: %14, biases: %15, group_size: 32, bits: 4, mode: "affine", transpose: true) : f32[?1..8, 32]
        %12 = add(a: %16, b: %6) : f32[?1..8, 32]
        """)
    }

    func testABiasIsNotTakenForAResidual() throws {
        // fuse-quantized-linear after this pass: the bias [32] broadcast over [?, 32] is not a residual of the kernel.
        var g = try IRParser.parse(header + "block main {\n" + dq() + transpose
                                   + "  %12 = addmm(mat1: %0, mat2: %11, bias: %6, alpha: 1.0, beta: 1.0) : f32[?1..8, 32]\n}\noutputs %12\n")
        XCTAssertEqual(try FuseDequantMatmul().run(&g), 1)
        XCTAssertEqual(try FuseQuantizedLinear().run(&g), 0)
        XCTAssertEqual(g.opHistogram["add"], 1)
    }

    func testAnUntypedBiasAddIsNotTakenForAResidualEither() throws {
        // MLX temporaries carry no type: fuse-quantized-linear infers them (bias [32] vs result [1, ?, 32]).
        var g = try IRParser.parse("""
        graph @f
        input %0 : f32[1, ?1..8, 64] "x"
        const %1 : u32[32, 8] = named("w")
        const %2 : f32[32, 2] = named("s")
        const %3 : f32[32, 2] = named("b")
        const %4 : f32[32] = named("bias")
        input %5 : f32[1, ?1..8, 32] "skip"
        block main {
          %6 = quantized_matmul(x: %0, w: %1, scales: %2, biases: %3, group_size: 32, bits: 4, mode: "affine", transpose: true) : ?
          %7 = add(a: %6, b: %4) : ?
          %8 = quantized_matmul(x: %0, w: %1, scales: %2, biases: %3, group_size: 32, bits: 4, mode: "affine", transpose: true) : ?
          %9 = add(a: %5, b: %8) : ?
        }
        outputs %7, %9

        """)
        XCTAssertEqual(try FuseQuantizedLinear().run(&g), 1)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertTrue(text.contains("%7 = add(a: %6, b: %4)"), text)
        XCTAssertTrue(text.contains("residual: %5"), text)
    }

    func testWeightThatIsNotAConstantIsLeftAlone() throws {
        try assertUnchanged(dq(q: 4) + transpose + mm, "codes computed at run time (a graph input)")
    }

    func testGroupMismatchIsLeftAlone() throws {
        try assertUnchanged(dq(block: "[1, 64]") + transpose + mm, "block_size [1, 64] but scales for groups of 32")
        try assertUnchanged(dq(block: "[1, 16]") + transpose + mm, "groups of 16 (not a multiple of 32)")
        try assertUnchanged(dq(block: "[2, 32]", scale: 7) + transpose + mm, "blocks that span rows")
        try assertUnchanged(dq(scale: 7, zero: "none") + transpose + mm, "scales for 16 rows of a 32-row weight")
    }

    func testDequantizedWeightWithAnotherReaderIsLeftAlone() throws {
        let other = "  %13 = sum(x: %10, axes: [1], keepdims: false) : f32[32]\n"
        try assertUnchanged(dq() + transpose + mm + other, outputs: "%12, %13", "the dequantized weight is also summed")
        try assertUnchanged(dq() + transpose + mm, outputs: "%12, %10", "the dequantized weight is an output")
        try assertUnchanged(dq() + transpose + mm, outputs: "%12, %11", "the transposed weight is an output")
    }

    func testOtherFormsAreLeftAlone() throws {
        try assertUnchanged(dq() + "  %11 = reshape(x: %10, shape: [64, 32]) : f32[64, 32]\n" + mm, "a reshape is not a transpose")
        try assertUnchanged(dq() + transpose + "  %12 = addmm(mat1: %0, mat2: %11, bias: %6, alpha: 2.0, beta: 1.0) : f32[?1..8, 32]\n",
                            "alpha ≠ 1")
        try assertUnchanged(dq(dtype: "bf16") + transpose + mm, "a bf16 weight (the kernel would change its rounding)")
        try assertUnchanged(dq(range: (-128, 127 + 256)) + transpose + mm, "more codes than 8 bits hold")
    }

    // MARK: the export's views around mm, and its SiLU

    let viewHeader = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "x"
    const %1 : i8[32, 64] = buffer(1) "q"
    const %2 : f32[32, 2] = buffer(2) "scale"
    const %3 : i8[32, 2] = buffer(3) "zero_point"
    input %4 : f32[1, ?1..8, 32] "skip"
    input %5 : f32[1, ?1..8, 4, 16] "heads"

    """

    func viewed(_ x: Int, back: String = "[1, %6, 32]", tail: String = "  %12 = add(a: %4, b: %11) : f32[1, ?1..8, 32]\n") -> String {
        """
          %6 = sym_size(a: %0, dim: 1) : i64[]
          %7 = reshape(x: %\(x), shape: [%6, 64]) : f32[?1..8, 64]
          %8 = dequantize_affine(x: %1, block_size: [1, 32], scale: %2, zero_point: %3, quant_min: -8, quant_max: 7, dtype: f32) : f32[32, 64]
          %9 = transpose(x: %8, perm: [1, 0]) : f32[64, 32]
          %10 = matmul(a: %7, b: %9) : f32[?1..8, 32]
          %11 = reshape(x: %10, shape: \(back)) : f32[1, ?1..8, 32]

        """ + tail
    }

    func run(_ body: String, outputs: String, passes: [any GraphPass]) throws -> String {
        var g = try IRParser.parse(viewHeader + "block main {\n" + body + "}\noutputs \(outputs)\n")
        for p in passes { _ = try p.run(&g) }
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(text), g)
        var lines: [String] = [], inMain = false
        for line in text.components(separatedBy: "\n") {
            if line.hasPrefix("block ") { inMain = line.hasPrefix("block main") } else if inMain, line.hasPrefix("  ") {
                lines.append(line.trimmingCharacters(in: .whitespaces))
            }
        }
        return lines.joined(separator: "\n")
    }

    func testTheViewBackIsWrittenDirectlySoTheResidualAddFuses() throws {
        let main = try run(viewed(0), outputs: "%12", passes: [FuseDequantMatmul()])
        XCTAssertEqual(main, """
        %6 = sym_size(a: %0, dim: 1) : i64[]
        %7 = reshape(x: %0, shape: [%6, 64]) : f32[?1..8, 64]
        %11 = quantized_matmul(x: %0, w: %13, scales: %14, biases: %15, group_size: 32, bits: 4, mode: "affine", transpose: true) : f32[1, ?1..8, 32]
        %12 = add(a: %4, b: %11) : f32[1, ?1..8, 32]
        """)
        let fused = try run(viewed(0), outputs: "%12", passes: [FuseDequantMatmul(), FuseQuantizedLinear()])
        XCTAssertTrue(fused.contains("%12 = fused_quantized_linear(x: %0, w: [%13], scales: [%14], biases: [%15], group_size: 32, bits: 4, epilogue: \"none\", residual: %4)"), fused)
    }

    func testMergedHeadsAreViewedToTheResultsLeadingDims() throws {
        // x [1, T, 4, 16] flattened to [T, 64]: the linear reads it viewed as [1, T, 64].
        let main = try run(viewed(5), outputs: "%12", passes: [FuseDequantMatmul()])
        XCTAssertEqual(main, """
        %6 = sym_size(a: %0, dim: 1) : i64[]
        %7 = reshape(x: %5, shape: [%6, 64]) : f32[?1..8, 64]
        %16 = reshape(x: %7, shape: [1, %6, 64]) : f32[1, ?1..8, 64]
        %11 = quantized_matmul(x: %16, w: %13, scales: %14, biases: %15, group_size: 32, bits: 4, mode: "affine", transpose: true) : f32[1, ?1..8, 32]
        %12 = add(a: %4, b: %11) : f32[1, ?1..8, 32]
        """)
    }

    func testAViewBackToOtherDimsKeepsTheFlatResult() throws {
        // The result is split into heads ([1, T, 2, 16]): the linear reads the unflattened x and views its result flat again.
        let main = try run(viewed(0, back: "[1, %6, 2, 16]", tail: ""), outputs: "%11", passes: [FuseDequantMatmul()])
        XCTAssertEqual(main, """
        %6 = sym_size(a: %0, dim: 1) : i64[]
        %7 = reshape(x: %0, shape: [%6, 64]) : f32[?1..8, 64]
        %15 = quantized_matmul(x: %0, w: %12, scales: %13, biases: %14, group_size: 32, bits: 4, mode: "affine", transpose: true) : f32[1, ?1..8, 32]
        %10 = reshape(x: %15, shape: [%6, 32]) : f32[?1..8, 32]
        %11 = reshape(x: %10, shape: [1, %6, 2, 16]) : f32[1, ?1..8, 32]
        """)
    }

    func testSigmoidTimesTheLinearIsItsSilu() throws {
        let body = viewed(0, tail: "  %12 = sigmoid(x: %11) : f32[1, ?1..8, 32]\n  %13 = multiply(a: %11, b: %12) : f32[1, ?1..8, 32]\n")
        let main = try run(body, outputs: "%13", passes: [FuseDequantMatmul()])
        XCTAssertTrue(main.hasSuffix("%13 = silu(x: %11) : f32[1, ?1..8, 32]"), main)
        XCTAssertFalse(main.contains("sigmoid"), main)
        // A sigmoid with another reader stays (and so does the multiply).
        let kept = try run(body, outputs: "%13, %12", passes: [FuseDequantMatmul()])
        XCTAssertTrue(kept.contains("%12 = sigmoid(x: %11)") && kept.contains("%13 = multiply(a: %11, b: %12)"), kept)
    }
}
