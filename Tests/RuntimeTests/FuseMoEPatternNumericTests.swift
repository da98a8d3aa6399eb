import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-moe-pattern numerically: a dense MoE layer (4 experts, top-2, D 8, hidden 6) with random
/// weights, before and after the pass, on the reference executor and compiled: the gather form
/// agrees with the dense one for 1, 5 and 16 tokens, with tied router scores (argsort ties: both
/// forms read the same indices), with tokens that share experts (identical rows, every token on
/// the same two experts) and with several calls of different lengths on one program.
///
/// Tolerance: 1e-5 × max |dense reference| (f32; the forms sum the k selected experts in another
/// order than the E dense ones, and the kernels use vector partial sums).
final class FuseMoEPatternNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    let harness = JITKernelTests(name: "FuseMoEPatternNumericTests.harness", testClosure: { _ in })

    static let text = """
    graph @moe
    input %0 : f32[?1..16, 8] "x"
    const %1 : f32[4, 8] = buffer(0) "router"
    const %2 : f32[1, 8, 24] = buffer(1) "w_gate"
    const %3 : f32[1, 8, 24] = buffer(2) "w_up"
    const %4 : f32[4, 6, 8] = buffer(3) "w_down"
    const %5 : i64[4] = literal(0, 1, 2, 3)
    const %6 : i32[] = literal(0)
    const %7 : i32[] = literal(0)
    const %8 : i32[] = literal(0)
    block main {
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
      %20 = expand_dims(x: %0, axis: 0) : f32[1, ?1..16, 8]
      %21 = matmul(a: %20, b: %2) : f32[1, ?1..16, 24]
      %22 = reshape(x: %21, shape: [%9, 1, 4, 6]) : f32[?1..16, 1, 4, 6]
      %23 = transpose(x: %22, perm: [0, 2, 3, 1]) : f32[?1..16, 4, 6, 1]
      %24 = matmul(a: %20, b: %3) : f32[1, ?1..16, 24]
      %25 = reshape(x: %24, shape: [%9, 4, 6]) : f32[?1..16, 4, 6]
      %41 = reshape(x: %23, shape: [%9, 4, 6]) : f32[?1..16, 4, 6]
      %26 = sigmoid(x: %41) : f32[?1..16, 4, 6]
      %27 = multiply(a: %41, b: %26) : f32[?1..16, 4, 6]
      %28 = multiply(a: %27, b: %25) : f32[?1..16, 4, 6]
      %29 = transpose(x: %28, perm: [1, 0, 2]) : f32[4, ?1..16, 6]
      %30 = matmul(a: %29, b: %4) : f32[4, ?1..16, 8]
      %31 = transpose(x: %30, perm: [1, 0, 2]) : f32[?1..16, 4, 8]
      %32 = expand_dims(x: %16, axis: 2) : i64[?1..16, 2, 1]
      %33 = equal(a: %32, b: %5) : bool[?1..16, 2, 4]
      %34 = as_type(x: %33, scalar_type: f32) : f32[?1..16, 2, 4]
      %35 = expand_dims(x: %19, axis: 2) : f32[?1..16, 2, 1]
      %36 = multiply(a: %34, b: %35) : f32[?1..16, 2, 4]
      %37 = sum(x: %36, axes: [1], keepdims: false) : f32[?1..16, 4]
      %38 = expand_dims(x: %37, axis: 2) : f32[?1..16, 4, 1]
      %39 = multiply(a: %31, b: %38) : f32[?1..16, 4, 8]
      %40 = sum(x: %39, axes: [1], keepdims: false) : f32[?1..16, 8]
    }
    outputs %40
    """

    /// The dense graph with random literal weights (router scaled by `routerScale`, 0: all ties).
    func dense(seed: UInt64, routerScale: Double = 1, router: [Double]? = nil) throws -> Graph {
        var g = try IRParser.parse(Self.text)
        var r = Random(seed)
        func fill(_ v: Int, _ n: Int, _ scale: Double) {
            g.values[v].kind = .constant(.literal(r.tensor([n], -scale, scale).storage))
        }
        fill(1, 32, routerScale)
        if let router { g.values[1].kind = .constant(.literal(router)) }
        fill(2, 8 * 24, 0.5)
        fill(3, 8 * 24, 0.5)
        fill(4, 4 * 6 * 8, 0.5)
        return g
    }

    func check(_ g: Graph, inputs: [HostTensor], _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var fused = g
        XCTAssertEqual(try FuseMoEPattern().run(&fused), 1, what, file: file, line: line)
        try Verifier.verify(fused)
        XCTAssertEqual(fused.opHistogram["gather_mm"], 3, what, file: file, line: line)
        let denseReference = try ReferenceExecutor(graph: g), fusedReference = try ReferenceExecutor(graph: fused)
        let jit = try JITProgram(graph: fused, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        XCTAssertEqual(jit.fusionStats.fusions.moeGather, 3, what, file: file, line: line)
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("gather_mm_") && $0.contains("_ws6x24_") },
                      "\(what): the stacked weights read in place (\(jit.kernelNames))", file: file, line: line)
        for (call, x) in inputs.enumerated() {
            let want = try denseReference.run([x])[0]
            let viaGathers = try fusedReference.run([x])[0]
            let compiled = try jit.run([x])[0]
            harness.compare(viaGathers, want, .scaled(1e-5), "\(what) call \(call) (T \(x.shape[0])): reference, gather form", file: file, line: line)
            harness.compare(compiled, want, .scaled(1e-5), "\(what) call \(call) (T \(x.shape[0])): compiled gather form", file: file, line: line)
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], what, file: file, line: line)
    }

    func testGatherFormAgreesWithDenseForOneFiveAndSixteenTokens() throws {
        var r = Random(7)
        let xs = [1, 5, 16].map { r.tensor([$0, 8]) }
        try check(try dense(seed: 1), inputs: xs, "random routing")
        try check(try dense(seed: 2), inputs: xs.reversed(), "random routing, longest call first")
    }

    func testTiedRouterScores() throws {
        // A zero router: every score equal, the top-2 is the argsort's tie order (experts 0 and 1).
        var r = Random(8)
        try check(try dense(seed: 3, routerScale: 0), inputs: [1, 5, 16].map { r.tensor([$0, 8]) }, "all scores tied")
        // Half the tokens tied (x rows of zeros), half not.
        var x = r.tensor([16, 8])
        for t in stride(from: 0, to: 16, by: 2) { for d in 0..<8 { x.storage[t * 8 + d] = 0 } }
        try check(try dense(seed: 4), inputs: [x], "zero rows tie")
    }

    func testTokensSharingExperts() throws {
        var r = Random(9)
        // Identical rows: the same two experts for every token.
        let row = r.tensor([1, 8])
        let same = HostTensor(dtype: .f32, shape: [16, 8], storage: (0..<16).flatMap { _ in row.storage })
        try check(try dense(seed: 5), inputs: [same, r.tensor([5, 8])], "identical tokens")
        // A router that sends every positive token to experts 2 then 0.
        var router = [Double](repeating: 0, count: 32)
        for d in 0..<8 { router[2 * 8 + d] = 4; router[0 * 8 + d] = 2 }
        let positive = HostTensor(dtype: .f32, shape: [16, 8], storage: r.tensor([16, 8], 0.1, 1).storage)
        try check(try dense(seed: 6, router: router), inputs: [positive, HostTensor(dtype: .f32, shape: [1, 8], storage: Array(positive.storage.prefix(8)))],
                  "every token on experts 2 and 0")
    }
}
