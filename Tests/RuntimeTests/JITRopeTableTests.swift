import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// The `rope_table` row kernel (plain exports' RoPE from cos/sin tables) against the reference:
/// traditional and split-half pairs, x as [B, H, T, D] or read through the head swap of a
/// [B, T, H, D] projection, f32 / bf16 / f16 activations and tables, table rows starting past 0,
/// and a table narrower than x (features past 2h pass through). Random tables, so a wrong row,
/// column or pairing is off by O(1). A call whose rows [start, stop) do not match T is left to the
/// reference, which reports it.
///
/// Tolerance: f32 1e-6 × max |reference| (two products and a sum per element against the
/// reference's doubles, rounded once); bf16/f16 one result ulp (2⁻⁷ / 2⁻¹⁰ relative at the largest magnitude).
final class JITRopeTableTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case {
        var b = 1, h = 3, t = 5, d = 16, half = 8, rows = 40, start = 7
        var traditional = true, headSwap = false
        var dtype = DType.f32, table = DType.f32
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        var g = RefGraph()
        let x = g.input(r.tensor(c.headSwap ? [c.b, c.t, c.h, c.d] : [c.b, c.h, c.t, c.d], -1, 1, c.dtype))
        let cosT = g.input(r.tensor([c.rows, c.half], -1, 1, c.table)), sinT = g.input(r.tensor([c.rows, c.half], -1, 1, c.table))
        let start = g.input(.scalar(Double(c.start), .i64)), stop = g.input(.scalar(Double(c.start + c.t), .i64))
        var rotated = x
        if c.headSwap {
            rotated = g.result()
            g.append(.transpose(TransposeOp(x: x, out: rotated, perm: [0, 2, 1, 3])))
        }
        let out = g.result()
        g.append(.ropeTable(RopeTableOp(x: rotated, cos: cosT, sin: sinT, start: start, stop: stop, traditional: c.traditional, out: out)))
        var graph = g.graph
        graph.outputs = [out]
        let what = "rope_table \(c)"
        let want = try ReferenceExecutor(graph: graph).run(g.feeds)
        let jit = try JITProgram(graph: graph, pte: Self.pte)
        XCTAssertEqual(jit.remarks, [], what, file: file, line: line)
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("rope_\(c.dtype.name)_rope\(2 * c.half)") && $0.contains("_table") },
                      "\(what): \(jit.kernelNames)", file: file, line: line)
        if c.headSwap { XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "\(what): transpose copied", file: file, line: line) }
        let got = try jit.run(g.feeds)
        XCTAssertEqual(jit.runtimeFallbacks, [:], what, file: file, line: line)
        XCTAssertEqual(got[0].shape, want[0].shape, what, file: file, line: line)
        let tol = c.dtype == .f32 ? 1e-6 : (c.dtype == .bf16 ? 0x1p-7 : 0x1p-10)
        let bound = tol * (want[0].storage.map(Swift.abs).max() ?? 0)
        for (i, (a, e)) in zip(got[0].storage, want[0].storage).enumerated() where Swift.abs(a - e) > bound {
            return XCTFail("\(what): element \(i) is \(a), reference \(e)", file: file, line: line)
        }
        // Rows that are not the call's T positions: the reference runs it and names the mismatch.
        var feeds = g.feeds
        feeds[4] = .scalar(Double(c.start + c.t + 1), .i64)
        XCTAssertThrowsError(try jit.run(feeds), what, file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains("rope_table"), "\(error)", file: file, line: line)
        }
    }

    func testTraditionalAndSplitHalf() throws {
        try check(Case(traditional: true), seed: 900)
        try check(Case(traditional: false), seed: 901)
        try check(Case(b: 2, h: 2, t: 1, d: 64, half: 32, rows: 8, start: 7, traditional: false), seed: 902)
    }

    func testThroughTheHeadSwapAndPartialRotation() throws {
        try check(Case(h: 4, t: 6, headSwap: true), seed: 910)
        try check(Case(t: 3, d: 24, half: 8, traditional: false, headSwap: true), seed: 911)
        try check(Case(t: 2, d: 20, half: 6, traditional: true), seed: 912)
    }

    func testHalfPrecision() throws {
        try check(Case(t: 4, dtype: .bf16, table: .bf16), seed: 920)
        try check(Case(t: 4, traditional: false, dtype: .f16, table: .f32), seed: 921)
    }
}
