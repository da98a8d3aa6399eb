import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-linear, text in → text out: bias adds, SwiGLU (silu and x·sigmoid(x)), GeGLU, activations of
/// lone linears, residual adds,
/// linears sharing x (with mixed biases), and what it must leave alone (a gate read elsewhere, a
/// different x, runtime weights, state as x, broadcast residuals, mixed weight dtypes).
final class FuseLinearTests: XCTestCase {
    /// x, a skip value, f32 weights [128, 64] (gate, up) and [32, 64] (k), a bias [128], a bf16
    /// weight, and values the negative cases need.
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "x"
    input %1 : f32[1, ?1..8, 128] "skip"
    const %2 : f32[128, 64] = named("wg")
    const %3 : f32[128, 64] = named("wu")
    const %4 : f32[32, 64] = named("wk")
    const %5 : f32[128] = named("bias")
    const %6 : bf16[128, 64] = named("wbf")
    input %7 : f32[128, 64] "runtime_w"
    state %8 : f32[1, ?1..8, 64] = zeros "state_x"
    input %9 : f32[1, ?1..8, 64] "other_x"
    input %10 : f32[1, 1, 128] "row_skip"
    input %11 : f32[128] "runtime_bias"

    """

    /// The nodes of block main, numbered densely after the header's values.
    final class Body {
        var text = ""
        var next = 12

        /// `x·Wᵀ` as the importers write it, a transpose of the weight then addmm; returns (transpose, product).
        @discardableResult
        func linear(x: Int = 0, w: Int, bias: Int? = nil) -> (t: Int, out: Int) {
            let t = next, out = next + 1
            next += 2
            text += "  %\(t) = transpose(x: %\(w), perm: [1, 0]) : ?\n"
            text += "  %\(out) = addmm(mat1: %\(x), mat2: %\(t), bias: \(bias.map { "%\($0)" } ?? "none"), alpha: 1.0, beta: 1.0) : ?\n"
            return (t, out)
        }

        /// One node `op` (its operands spelled out); returns its result.
        @discardableResult
        func node(_ op: String) -> Int {
            defer { next += 1 }
            text += "  %\(next) = \(op) : ?\n"
            return next
        }
    }

    func parse(_ body: Body, outputs: [Int]) throws -> Graph {
        try IRParser.parse(header + "block main {\n" + body.text + "}\noutputs " + outputs.map { "%\($0)" }.joined(separator: ", ") + "\n")
    }

    /// Runs the pass on `body` and returns the printed main block's nodes.
    func fused(_ body: Body, outputs: [Int], file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        var g = try parse(body, outputs: outputs)
        return try run(&g, file: file, line: line)
    }

    func run(_ g: inout Graph, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        let changes = try FuseLinear().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        let nodes = text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        // The printed result parses back (the fused op round-trips through the text form).
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        return (nodes.joined(separator: "\n"), changes)
    }

    /// Declares `values` as [1, T, 128] f32, T as x's (imports carry such types; broadcasts are seen on them).
    func declareRows(_ g: inout Graph, _ values: [Int]) {
        for v in values { g[ValueID(v)].type = TensorType(.f32, [.fixed(1), g[ValueID(0)].type!.shape[1], .fixed(128)]) }
    }

    func testSwiGLUWithResidualBecomesOneOpAndTheTransposesGo() throws {
        let b = Body()
        let gate = b.linear(w: 2).out, act = b.node("silu(x: %\(gate))"), up = b.linear(w: 3).out
        let prod = b.node("multiply(a: %\(act), b: %\(up))"), sum = b.node("add(a: %1, b: %\(prod))")
        let (text, changes) = try fused(b, outputs: [sum])
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %\(sum) = fused_linear(x: %0, w: [%2, %3], biases: [], bias_of: [], epilogue: "swiglu", residual: %1) : ?
        """)
    }

    func testSiluSpelledOutAsXTimesSigmoidInEitherOrder() throws {
        let b = Body()
        let up = b.linear(w: 3).out, gate = b.linear(w: 2).out
        let sig = b.node("sigmoid(x: %\(gate))"), act = b.node("multiply(a: %\(sig), b: %\(gate))")
        let prod = b.node("multiply(a: %\(up), b: %\(act))")
        let (text, changes) = try fused(b, outputs: [prod])
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %\(prod) = fused_linear(x: %0, w: [%2, %3], biases: [], bias_of: [], epilogue: "swiglu", residual: none) : ?
        """)
    }

    func testGeGLUTanhAndErf() throws {
        for (approximate, epilogue) in [("tanh", "geglu_tanh"), ("none", "geglu")] {
            let b = Body()
            let gate = b.linear(w: 2).out, act = b.node("gelu(x: %\(gate), approximate: \"\(approximate)\")"), up = b.linear(w: 3).out
            let prod = b.node("multiply(a: %\(act), b: %\(up))")
            let (text, _) = try fused(b, outputs: [prod])
            XCTAssertEqual(text, """
            %\(prod) = fused_linear(x: %0, w: [%2, %3], biases: [], bias_of: [], epilogue: "\(epilogue)", residual: none) : ?
            """)
        }
    }

    func testBiasAddBecomesTheLinearsBiasAndJoinsTheGate() throws {
        // gate + bias (a broadcast [128] constant): the linear's bias, then SwiGLU with the up projection.
        let b = Body()
        let gate = b.linear(w: 2).out, biased = b.node("add(a: %\(gate), b: %5)"), act = b.node("silu(x: %\(biased))")
        let up = b.linear(w: 3).out, prod = b.node("multiply(a: %\(act), b: %\(up))")
        let (text, changes) = try fused(b, outputs: [prod])
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %\(prod) = fused_linear(x: %0, w: [%2, %3], biases: [%5], bias_of: [0], epilogue: "swiglu", residual: none) : ?
        """)
        // Alone, the bias joins the addmm (no fused op for a lone linear).
        let lone = Body()
        let (t, product) = lone.linear(w: 2)
        let sum = lone.node("add(a: %5, b: %\(product))")
        XCTAssertEqual(try fused(lone, outputs: [sum]).text, """
        %\(t) = transpose(x: %2, perm: [1, 0]) : ?
        %\(sum) = addmm(mat1: %0, mat2: %\(t), bias: %5, alpha: 1.0, beta: 1.0) : ?
        """)
    }

    func testLinearsReadingTheSameXShareOneOpWithMixedBiases() throws {
        // q with a bias, k without, v with (Whisper's k_proj has none); the exp of q stays outside.
        let b = Body()
        let q = b.linear(w: 2, bias: 5).out, k = b.linear(w: 4).out, act = b.node("exp(x: %\(q))"), v = b.linear(w: 3, bias: 5).out
        let (text, changes) = try fused(b, outputs: [act, k, v])
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %\(q), %\(k), %\(v) = fused_linear(x: %0, w: [%2, %4, %3], biases: [%5, %5], bias_of: [0, 2], epilogue: "none", residual: none) : (?, ?, ?)
        %\(act) = exp(x: %\(q)) : ?
        """)
    }

    func testGateReadElsewhereIsNotAbsorbed() throws {
        // The gate's product is also an output: no SwiGLU; gate and up still share x.
        let b = Body()
        let gate = b.linear(w: 2).out, act = b.node("silu(x: %\(gate))"), up = b.linear(w: 3).out
        let prod = b.node("multiply(a: %\(act), b: %\(up))")
        let (text, _) = try fused(b, outputs: [prod, gate])
        XCTAssertEqual(text, """
        %\(gate), %\(up) = fused_linear(x: %0, w: [%2, %3], biases: [], bias_of: [], epilogue: "none", residual: none) : (?, ?)
        %\(act) = silu(x: %\(gate)) : ?
        %\(prod) = multiply(a: %\(act), b: %\(up)) : ?
        """)
        // Spelled-out silu whose gate has a third reader.
        let s = Body()
        let g2 = s.linear(w: 2).out, sig = s.node("sigmoid(x: %\(g2))"), act2 = s.node("multiply(a: %\(g2), b: %\(sig))")
        let up2 = s.linear(w: 3).out, prod2 = s.node("multiply(a: %\(act2), b: %\(up2))"), other = s.node("exp(x: %\(g2))")
        XCTAssertFalse(try fused(s, outputs: [prod2, other]).text.contains("swiglu"))
    }

    func testGateAndUpOfDifferentXAreLeftApart() throws {
        // No SwiGLU across two x: the gate keeps only its own silu, the up projection stays a linear.
        let b = Body()
        let gate = b.linear(w: 2).out, act = b.node("silu(x: %\(gate))"), (t, up) = b.linear(x: 9, w: 3)
        let prod = b.node("multiply(a: %\(act), b: %\(up))")
        let (text, changes) = try fused(b, outputs: [prod])
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %\(act) = fused_linear(x: %0, w: [%2], biases: [], bias_of: [], epilogue: "silu", residual: none) : ?
        %\(t) = transpose(x: %3, perm: [1, 0]) : ?
        %\(up) = addmm(mat1: %9, mat2: %\(t), bias: none, alpha: 1.0, beta: 1.0) : ?
        %\(prod) = multiply(a: %\(act), b: %\(up)) : ?
        """)
    }

    func testActivationOfALoneLinearBecomesItsEpilogue() throws {
        // fc1 + bias + gelu (erf), then fc2 + residual; and silu spelled out on a lone linear.
        let b = Body()
        let fc1 = b.linear(w: 2, bias: 5).out, act = b.node("gelu(x: %\(fc1), approximate: \"none\")")
        let g = b.linear(x: 9, w: 3).out, sig = b.node("sigmoid(x: %\(g))"), silu = b.node("multiply(a: %\(g), b: %\(sig))")
        let (text, changes) = try fused(b, outputs: [act, silu])
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %\(act) = fused_linear(x: %0, w: [%2], biases: [%5], bias_of: [0], epilogue: "gelu", residual: none) : ?
        %\(silu) = fused_linear(x: %9, w: [%3], biases: [], bias_of: [], epilogue: "silu", residual: none) : ?
        """)
    }

    func testRuntimeWeightsStateInputsAndMixedDTypesAreLeftAlone() throws {
        // A weight that is an input, x that is state (its reads cannot move), and an f32 + bf16 pair.
        let b = Body()
        let r1 = b.linear(w: 7).out, r2 = b.linear(w: 7).out, sum = b.node("add(a: %1, b: %\(r2))")
        let s1 = b.linear(x: 8, w: 2).out, s2 = b.linear(x: 8, w: 3).out, f = b.linear(w: 2).out, h = b.linear(w: 6).out
        let (text, changes) = try fused(b, outputs: [r1, sum, s1, s2, f, h])
        XCTAssertEqual(changes, 0)
        XCTAssertFalse(text.contains("fused_linear"))
    }

    func testBroadcastResidualsAndRuntimeBiasesStayAdds() throws {
        // [1, 1, 128] and a runtime [128] vector broadcast over the tokens: not a residual, and a
        // non-constant vector is not a bias.
        let b = Body()
        let p1 = b.linear(w: 2).out, s1 = b.node("add(a: %10, b: %\(p1))"), p2 = b.linear(w: 3).out, s2 = b.node("add(a: %\(p2), b: %11)")
        var g = try parse(b, outputs: [s1, s2])
        declareRows(&g, [p1, s1, p2, s2])
        let (text, changes) = try run(&g)
        XCTAssertEqual(changes, 1, text)   // only the two linears sharing x
        XCTAssertFalse(text.contains("residual: %"), text)
        XCTAssertTrue(text.contains("add(a: %10, b: %\(p1))") && text.contains("add(a: %\(p2), b: %11)"), text)
    }

    func testScalarSkipStaysAnAddEvenWhenTheSumIsUntyped() throws {
        // Voxtral Realtime's adaptive norm: `1.0 + linear(t_cond)`, the sum untyped in MLX's graph. The kernel
        // takes only residuals of the sum's shape: folded, every call would go to the reference.
        let b = Body()
        b.next = 13
        let p = b.linear(w: 2).out, sum = b.node("add(a: %\(p), b: %12)")
        var g = try IRParser.parse(header + "const %12 : f32[] = literal(1.0) \"one\"\nblock main {\n" + b.text + "}\noutputs %\(sum)\n")
        let (text, _) = try run(&g)
        XCTAssertFalse(text.contains("residual: %12"), text)
        XCTAssertTrue(text.contains("add(a: %"), text)
    }

    func testResidualFoldsWhenTheSkipHasTheSumsShape() throws {
        let b = Body()
        let p = b.linear(w: 2).out, sum = b.node("add(a: %\(p), b: %1)")
        var g = try parse(b, outputs: [sum])
        declareRows(&g, [p, sum])
        let (text, changes) = try run(&g)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %\(sum) = fused_linear(x: %0, w: [%2], biases: [], bias_of: [], epilogue: "none", residual: %1) : f32[1, ?1..8, 128]
        """)
    }

    func testTransposesWithOtherReadersStay() throws {
        let b = Body()
        let (t1, p1) = b.linear(w: 2), (t2, p2) = b.linear(w: 3)
        let other = b.node("exp(x: %\(t1))")
        let (text, _) = try fused(b, outputs: [p1, p2, other])
        XCTAssertTrue(text.contains("%\(t1) = transpose(x: %2, perm: [1, 0])"), text)
        XCTAssertFalse(text.contains("%\(t2) = transpose"), text)
        XCTAssertTrue(text.contains("fused_linear(x: %0, w: [%2, %3]"), text)
    }

    func testUnfusedDefinitionTypesMatchTheOriginalOps() throws {
        // The fused op's declared types come from its definition: bf16 x · bf16 W with an f32 bias is f32.
        let g = try IRParser.parse("""
        graph @f
        input %0 : bf16[1, 3, 64] "x"
        const %1 : bf16[128, 64] = named("wg")
        const %2 : bf16[128, 64] = named("wu")
        const %3 : f32[128] = named("b")
        input %4 : bf16[1, 3, 128] "skip"
        block main {
          %5 = fused_linear(x: %0, w: [%1, %2], biases: [%3], bias_of: [1], epilogue: "swiglu", residual: %4) : ?
        }
        outputs %5
        """)
        let types = ShapeInference.infer(g).types
        XCTAssertEqual(types[5], TensorType(.f32, fixed: [1, 3, 128]))
    }
}
