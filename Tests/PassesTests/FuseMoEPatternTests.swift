import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-moe-pattern, text in → text out: the plain export's dense MoE (4 experts, top-2, D 8,
/// hidden 6, T dynamic) becomes expert gathers over tokens sorted by expert; spellings it accepts
/// (silu or g·sigmoid(g), operand orders, indices with or without the i64 cast, the views the
/// export uses); and what it must leave alone: a one-hot along another axis, an arange that is
/// not 0..E-1 (or not a literal), gate columns hidden-major, the final sum over another axis,
/// indices that are not a top-k of the router (no range guarantee), a router on other rows,
/// expert weights that are not constants, and intermediates with another reader.
final class FuseMoEPatternTests: XCTestCase {
    static let header = """
    graph @moe
    input %0 : f32[?1..16, 8] "x"
    const %1 : f32[4, 8] = buffer(0) "router"
    const %2 : f32[1, 8, 24] = buffer(1) "w_gate"
    const %3 : f32[1, 8, 24] = buffer(2) "w_up"
    const %4 : f32[4, 6, 8] = buffer(3) "w_down"
    const %5 : i64[4] = literal(0, 1, 2, 3)
    input %6 : f32[?1..16, 8] "other"
    input %7 : i64[?1..16, 2] "indices"
    const %8 : i64[4] = buffer(4) "arange_in_file"

    """

    /// The dense layer with knobs for the variants; the result is %40.
    struct Dense {
        var routerInput = "%0"
        var silu = "%26 = sigmoid(x: %23) : f32[?1..16, 4, 6]\n  %27 = multiply(a: %23, b: %26) : f32[?1..16, 4, 6]"
        var hidden = "multiply(a: %27, b: %25)"
        var gateSplit = "%22 = reshape(x: %21, shape: [%9, 1, 4, 6]) : f32[?1..16, 1, 4, 6]\n  %23 = squeeze(x: %22, dims: [1]) : f32[?1..16, 4, 6]"
        var up = "%3"
        var indices = "%16"
        var oneHot = "%32 = expand_dims(x: %16, axis: 2) : i64[?1..16, 2, 1]\n  %33 = equal(a: %32, b: %5) : bool[?1..16, 2, 4]"
        var routing = "%36 = multiply(a: %34, b: %35) : f32[?1..16, 2, 4]\n  %37 = sum(x: %36, axes: [1], keepdims: false) : f32[?1..16, 4]"
        var finalSum = "sum(x: %39, axes: [1], keepdims: false) : f32[?1..16, 8]"
        var extra = ""

        var text: String {
            """
              %9 = sym_size(a: %0, dim: 0) : i64[]
              %10 = transpose(x: %1, perm: [1, 0]) : f32[8, 4]
              %11 = addmm(mat1: \(routerInput), mat2: %10, bias: none, alpha: 1.0, beta: 1.0) : f32[?1..16, 4]
              %12 = softmax(x: %11, axis: 1, precise: true) : f32[?1..16, 4]
              %13 = neg(x: %12) : f32[?1..16, 4]
              %14 = argsort(x: %13, axis: 1) : i32[?1..16, 4]
              %15 = slice(x: %14, axis: 1, start: 0, stop: 2, step: 1) : i32[?1..16, 2]
              %16 = as_type(x: %15, scalar_type: i64) : i64[?1..16, 2]
              %17 = take_along_axis(x: %12, indices: %15, axis: 1) : f32[?1..16, 2]
              %18 = sum(x: %17, axes: [1], keepdims: true) : f32[?1..16, 1]
              %19 = divide(a: %17, b: %18) : f32[?1..16, 2]
              %20 = expand_dims(x: %0, axis: 0) : f32[1, ?1..16, 8]
              %21 = matmul(a: %20, b: %2) : f32[1, ?1..16, 24]
              \(gateSplit)
              %24 = matmul(a: %20, b: \(up)) : f32[1, ?1..16, 24]
              %25 = reshape(x: %24, shape: [%9, 4, 6]) : f32[?1..16, 4, 6]
              \(silu)
              %28 = \(hidden) : f32[?1..16, 4, 6]
              %29 = transpose(x: %28, perm: [1, 0, 2]) : f32[4, ?1..16, 6]
              %30 = matmul(a: %29, b: %4) : f32[4, ?1..16, 8]
              %31 = transpose(x: %30, perm: [1, 0, 2]) : f32[?1..16, 4, 8]
              \(oneHot)
              %34 = as_type(x: %33, scalar_type: f32) : f32[?1..16, 2, 4]
              %35 = expand_dims(x: %19, axis: 2) : f32[?1..16, 2, 1]
              \(routing)
              %38 = expand_dims(x: %37, axis: 2) : f32[?1..16, 4, 1]
              %39 = multiply(a: %31, b: %38) : f32[?1..16, 4, 8]
              %40 = \(finalSum)
            \(extra)
            """
        }
    }

    func run(_ body: String, outputs: String = "%40", file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int, graph: Graph) {
        var g = try IRParser.parse(Self.header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        try Verifier.verify(g)
        let changes = try FuseMoEPattern().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(text), g, "round trip", file: file, line: line)
        return (text, changes, g)
    }

    func nodes(_ text: String) -> [String] {
        text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    func assertUnchanged(_ d: Dense, outputs: String = "%40", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try IRParser.parse(Self.header + "block main {\n" + d.text + "}\noutputs \(outputs)\n")
        let (_, changes, after) = try run(d.text, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        XCTAssertEqual(after, before, why, file: file, line: line)
    }

    /// The router stays; the experts become three gathers over the tokens sorted by expert.
    static let fused = """
    %9 = sym_size(a: %0, dim: 0) : i64[]
    %10 = transpose(x: %1, perm: [1, 0]) : f32[8, 4]
    %11 = addmm(mat1: %0, mat2: %10, bias: none, alpha: 1.0, beta: 1.0) : f32[?1..16, 4]
    %12 = softmax(x: %11, axis: 1, precise: true) : f32[?1..16, 4]
    %13 = neg(x: %12) : f32[?1..16, 4]
    %14 = argsort(x: %13, axis: 1) : i32[?1..16, 4]
    %15 = slice(x: %14, axis: 1, start: 0, stop: 2, step: 1) : i32[?1..16, 2]
    %16 = as_type(x: %15, scalar_type: i64) : i64[?1..16, 2]
    %17 = take_along_axis(x: %12, indices: %15, axis: 1) : f32[?1..16, 2]
    %18 = sum(x: %17, axes: [1], keepdims: true) : f32[?1..16, 1]
    %19 = divide(a: %17, b: %18) : f32[?1..16, 2]
    %41 = reshape(x: %16, shape: [-1]) : i64[?2..32]
    %42 = argsort(x: %41, axis: 0) : i32[?2..32]
    %43 = argsort(x: %42, axis: 0) : i32[?2..32]
    %44 = take(x: %41, index: %42, axis: 0) : i64[?2..32]
    %46 = floor_divide(a: %42, b: %45) : i32[?2..32]
    %47 = expand_dims(x: %0, axis: 1) : f32[?1..16, 1, 8]
    %53 = transpose(x: %52, perm: [1, 0, 2]) : f32[4, 8, 6]
    %48 = gather_mm(a: %47, b: %53, lhs_indices: %46, rhs_indices: %44, sorted_indices: true, sorted_indices_flag: none) : f32[?2..32, 1, 6]
    %55 = transpose(x: %54, perm: [1, 0, 2]) : f32[4, 8, 6]
    %49 = gather_mm(a: %47, b: %55, lhs_indices: %46, rhs_indices: %44, sorted_indices: true, sorted_indices_flag: none) : f32[?2..32, 1, 6]
    %50 = silu(x: %48) : f32[?2..32, 1, 6]
    %51 = multiply(a: %50, b: %49) : f32[?2..32, 1, 6]
    %56 = gather_mm(a: %51, b: %4, lhs_indices: none, rhs_indices: %44, sorted_indices: true, sorted_indices_flag: none) : f32[?2..32, 1, 8]
    %57 = take(x: %56, index: %43, axis: 0) : f32[?2..32, 1, 8]
    %58 = reshape(x: %57, shape: [-1, 2, 8]) : f32[?1..16, 2, 8]
    %59 = expand_dims(x: %19, axis: 2) : f32[?1..16, 2, 1]
    %60 = multiply(a: %58, b: %59) : f32[?1..16, 2, 8]
    %40 = sum(x: %60, axes: [1], keepdims: false) : f32[?1..16, 8]
    """

    func testDenseMoEBecomesExpertGathers() throws {
        let (text, changes, _) = try run(Dense().text)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(nodes(text).joined(separator: "\n"), Self.fused)
        // The per-expert weights: the stacked constants' own bytes as [D, E, H] (no copy in the graph).
        XCTAssertTrue(text.contains("const %52 : f32[8, 4, 6] = buffer(1) \"w_gate\""), text)
        XCTAssertTrue(text.contains("const %54 : f32[8, 4, 6] = buffer(2) \"w_up\""), text)
        XCTAssertTrue(text.contains("const %45 : i32[] = literal(2"), text)
    }

    func testOtherSpellingsAndOperandOrders() throws {
        var silu = Dense()
        silu.silu = "%26 = sigmoid(x: %0) : f32[?1..16, 8]\n  %27 = silu(x: %23) : f32[?1..16, 4, 6]"
        var swapped = Dense()
        swapped.silu = "%26 = sigmoid(x: %23) : f32[?1..16, 4, 6]\n  %27 = multiply(a: %26, b: %23) : f32[?1..16, 4, 6]"
        swapped.hidden = "multiply(a: %25, b: %27)"
        swapped.oneHot = "%32 = expand_dims(x: %16, axis: -1) : i64[?1..16, 2, 1]\n  %33 = equal(a: %5, b: %32) : bool[?1..16, 2, 4]"
        swapped.routing = "%36 = multiply(a: %35, b: %34) : f32[?1..16, 2, 4]\n  %37 = sum(x: %36, axes: [-2], keepdims: false) : f32[?1..16, 4]"
        var uncast = Dense()
        uncast.oneHot = "%32 = expand_dims(x: %15, axis: 2) : i32[?1..16, 2, 1]\n  %33 = equal(a: %32, b: %5) : bool[?1..16, 2, 4]"
        for (d, what) in [(silu, "silu op"), (swapped, "operands swapped"), (uncast, "i32 indices")] {
            let (text, changes, g) = try run(d.text)
            XCTAssertEqual(changes, 1, what)
            XCTAssertEqual(g.opHistogram["gather_mm"], 3, what)
            XCTAssertEqual(g.opHistogram["matmul"], nil, "\(what): \(text)")
            XCTAssertEqual(g.opHistogram["equal"], nil, what)
        }
    }

    func testOneHotAlongAnotherAxisIsLeftAlone() throws {
        // The same routing spelled [T, E, k] (the arange as a column): not the layout checked.
        var d = Dense()
        d.oneHot = "%32 = expand_dims(x: %16, axis: 1) : i64[?1..16, 1, 2]\n  %33 = equal(a: %32, b: %41) : bool[?1..16, 4, 2]"
        d.routing = "%36 = multiply(a: %34, b: %35) : f32[?1..16, 4, 2]\n  %37 = sum(x: %36, axes: [2], keepdims: false) : f32[?1..16, 4]"
        d.extra = ""
        let body = "  %41 = reshape(x: %5, shape: [4, 1]) : i64[4, 1]\n" + d.text
            .replacingOccurrences(of: "%34 = as_type(x: %33, scalar_type: f32) : f32[?1..16, 2, 4]", with: "%34 = as_type(x: %33, scalar_type: f32) : f32[?1..16, 4, 2]")
            .replacingOccurrences(of: "%35 = expand_dims(x: %19, axis: 2) : f32[?1..16, 2, 1]", with: "%35 = expand_dims(x: %19, axis: 1) : f32[?1..16, 1, 2]")
        let (_, changes, _) = try run(body)
        XCTAssertEqual(changes, 0, "one-hot along axis 1")
        // The final reduction over D instead of the experts.
        var wrongSum = Dense()
        wrongSum.finalSum = "sum(x: %39, axes: [2], keepdims: false) : f32[?1..16, 4]"
        try assertUnchanged(wrongSum, "sum over D")
        // The routing sum over the experts instead of k (then broadcast back).
        var wrongRouting = Dense()
        wrongRouting.routing = "%36 = multiply(a: %34, b: %35) : f32[?1..16, 2, 4]\n  %37 = sum(x: %36, axes: [2], keepdims: true) : f32[?1..16, 2, 1]"
        wrongRouting.extra = ""
        let body2 = wrongRouting.text
            .replacingOccurrences(of: "%38 = expand_dims(x: %37, axis: 2) : f32[?1..16, 4, 1]", with: "%38 = reshape(x: %37, shape: [%9, 2, 1]) : f32[?1..16, 2, 1]")
            .replacingOccurrences(of: "%39 = multiply(a: %31, b: %38) : f32[?1..16, 4, 8]", with: "%39 = multiply(a: %19, b: %19) : f32[?1..16, 2]")
            .replacingOccurrences(of: "%40 = sum(x: %39, axes: [1], keepdims: false) : f32[?1..16, 8]", with: "%40 = sum(x: %38, axes: [1], keepdims: false) : f32[?1..16, 1]")
        let (_, c2, _) = try run(body2, outputs: "%40, %31, %39")
        XCTAssertEqual(c2, 0, "no one-hot routing sum")
    }

    func testArangeMustBeZeroToEMinusOne() throws {
        for arange in ["literal(1, 2, 3, 4)", "literal(0, 1, 2, 2)", "literal(3, 2, 1, 0)"] {
            let body = Dense().text.replacingOccurrences(of: "%33 = equal(a: %32, b: %5)", with: "%33 = equal(a: %32, b: %41)")
            var g = try IRParser.parse(Self.header.replacingOccurrences(of: "const %8", with: "const %41 : i64[4] = \(arange)\nconst %8")
                                       + "block main {\n" + body + "}\noutputs %40\n")
            XCTAssertEqual(try FuseMoEPattern().run(&g), 0, arange)
        }
        var inFile = Dense()
        inFile.oneHot = "%32 = expand_dims(x: %16, axis: 2) : i64[?1..16, 2, 1]\n  %33 = equal(a: %32, b: %8) : bool[?1..16, 2, 4]"
        try assertUnchanged(inFile, "arange values unknown (a buffer)")
    }

    func testGateColumnsHiddenMajorAreLeftAlone() throws {
        // Columns as h·E + e: [T, H, E] transposed to [T, E, H] — the same shape, another weight layout.
        var d = Dense()
        d.gateSplit = "%22 = reshape(x: %21, shape: [%9, 6, 4]) : f32[?1..16, 6, 4]\n  %23 = transpose(x: %22, perm: [0, 2, 1]) : f32[?1..16, 4, 6]"
        try assertUnchanged(d, "hidden-major gate columns")
    }

    func testIndicesWithoutARangeGuaranteeAreLeftAlone() throws {
        var input = Dense()
        input.oneHot = "%32 = expand_dims(x: %7, axis: 2) : i64[?1..16, 2, 1]\n  %33 = equal(a: %32, b: %5) : bool[?1..16, 2, 4]"
        try assertUnchanged(input, "indices from an input")
        var otherRows = Dense()
        otherRows.routerInput = "%6"
        try assertUnchanged(otherRows, "router on other rows than the experts' x")
        var notConstant = Dense()
        notConstant.up = "%41"
        let body = "  %41 = multiply(a: %3, b: %3) : f32[1, 8, 24]\n" + notConstant.text
        var g = try IRParser.parse(Self.header + "block main {\n" + body + "}\noutputs %40\n")
        XCTAssertEqual(try FuseMoEPattern().run(&g), 0, "up weights computed")
    }

    func testIntermediatesWithAnotherReaderAreLeftAlone() throws {
        try assertUnchanged(Dense(), outputs: "%40, %31", "expert outputs are also an output")
        var routing = Dense()
        routing.extra = "  %41 = add(a: %37, b: %37) : f32[?1..16, 4]\n"
        try assertUnchanged(routing, outputs: "%40, %41", "routing matrix has another reader")
        var gate = Dense()
        gate.extra = "  %41 = add(a: %23, b: %23) : f32[?1..16, 4, 6]\n"
        try assertUnchanged(gate, outputs: "%40, %41", "gate projection has another reader")
        var view = Dense()
        view.extra = "  %41 = add(a: %20, b: %20) : f32[1, ?1..16, 8]\n"
        try assertUnchanged(view, outputs: "%40, %41", "the x view has another reader")
    }

    func testTwoLayersAreBothRewritten() throws {
        // A second layer on the first one's output: values from %9 on shifted by 32, x = %40.
        let first = Dense().text
        var layer2 = ""
        var i = first.startIndex
        while let r = first.range(of: #"%\d+"#, options: .regularExpression, range: i..<first.endIndex) {
            layer2 += first[i..<r.lowerBound]
            let n = Int(first[r].dropFirst())!
            layer2 += n == 0 ? "%40" : n >= 9 ? "%\(n + 32)" : "%\(n)"
            i = r.upperBound
        }
        layer2 += first[i...]
        let (_, changes, g) = try run(Dense().text + layer2, outputs: "%72")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(g.opHistogram["gather_mm"], 6)
        XCTAssertEqual(g.opHistogram["matmul"], nil)
    }
}
