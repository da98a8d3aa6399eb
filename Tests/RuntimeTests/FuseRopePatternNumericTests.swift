import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-rope-pattern and inplace-state-writes on numbers: a plain export's RoPE of q and k (cos/sin
/// table slices at the call's positions, halves, products, concatenate — interleaved or
/// split-half) and its cache write (index_put into state, then copy_ back), built op by op as the
/// importer makes them, run call after call on the reference as written and on the JIT after the
/// two passes: the rotated q and the cache (the rotated k rows at their positions) agree after
/// every call. Several head counts, head dims, prefill/decode steps, f32 and bf16; random tables,
/// so a wrong row, column or pairing shows. Tolerance: f32 1e-6 × max |reference|, bf16 2⁻⁷.
final class FuseRopePatternNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var h = 2, d = 16, s = 24, steps = [5, 1, 2], traditional = true, dtype = DType.f32 }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        var g = RefGraph()
        let half = c.d / 2, maxT = c.steps.max()!, rows = c.steps.reduce(0, +)
        func dynamic(_ t: HostTensor, _ axis: Int) -> ValueID { g.input(t, dynamic: axis, min: 1, max: maxT) }
        let q = dynamic(r.tensor([1, c.h, c.steps[0], c.d], -1, 1, c.dtype), 2)
        let k = dynamic(r.tensor([1, c.h, c.steps[0], c.d], -1, 1, c.dtype), 2)
        let cosTable = r.tensor([rows, half], -1, 1, c.dtype), sinTable = r.tensor([rows, half], -1, 1, c.dtype)
        let cosT = g.input(cosTable), sinT = g.input(sinTable)
        let start = g.input(.scalar(0, .i64)), stop = g.input(.scalar(Double(c.steps[0]), .i64))
        let positions = dynamic(HostTensor(dtype: .i64, shape: [c.steps[0]], storage: (0..<c.steps[0]).map(Double.init)), 0)
        let cache = g.graph.addValue(TensorType(c.dtype, fixed: [1, c.h, c.s, c.d]), .state(initial: nil))
        let tType = { (last: Int) in TensorType(c.dtype, [.fixed(1), .fixed(c.h), .dynamic(min: 1, max: maxT), .fixed(last)]) }
        let slice = { (x: ValueID, axis: Int64, from: IntOrValue, to: IntOrValue, step: Int, type: TensorType) -> ValueID in
            let out = g.result(type)
            g.append(.slice(SliceOp(x: x, out: out, axis: .literal(axis), start: from, stop: to, step: step)))
            return out
        }
        let tableRows = TensorType(c.dtype, [.dynamic(min: 1, max: maxT), .fixed(half)])
        let cs = slice(cosT, 0, .value(start), .value(stop), 1, tableRows), sn = slice(sinT, 0, .value(start), .value(stop), 1, tableRows)
        func rotate(_ x: ValueID) -> ValueID {
            let (x1, x2) = c.traditional
                ? (slice(x, 3, .literal(0), .literal(Int64.max), 2, tType(half)), slice(x, 3, .literal(1), .literal(Int64.max), 2, tType(half)))
                : (slice(x, -1, .literal(0), .literal(Int64(half)), 1, tType(half)), slice(x, -1, .literal(Int64(half)), .literal(Int64(c.d)), 1, tType(half)))
            let p = (0..<4).map { _ in g.result(tType(half)) }
            g.append(.multiply(MultiplyOp(a: x1, b: cs, out: p[0])))
            g.append(.multiply(MultiplyOp(a: sn, b: x2, out: p[1])))
            g.append(.multiply(MultiplyOp(a: x1, b: sn, out: p[2])))
            g.append(.multiply(MultiplyOp(a: x2, b: cs, out: p[3])))
            let a = g.result(tType(half)), b = g.result(tType(half))
            g.append(.subtract(SubtractOp(a: p[0], b: p[1], out: a)))
            g.append(.add(AddOp(a: p[3], b: p[2], out: b)))
            if !c.traditional {
                let out = g.result(tType(c.d))
                g.append(.concatenate(ConcatenateOp(tensors: [a, b], out: out, axis: -1)))
                return out
            }
            let pair = TensorType(c.dtype, [.fixed(1), .fixed(c.h), .dynamic(min: 1, max: maxT), .fixed(half), .fixed(1)])
            let ea = g.result(pair), eb = g.result(pair)
            g.append(.expandDims(ExpandDimsOp(x: a, out: ea, axis: 4)))
            g.append(.expandDims(ExpandDimsOp(x: b, out: eb, axis: 4)))
            let joined = g.result(TensorType(c.dtype, [.fixed(1), .fixed(c.h), .dynamic(min: 1, max: maxT), .fixed(half), .fixed(2)]))
            g.append(.concatenate(ConcatenateOp(tensors: [ea, eb], out: joined, axis: 4)))
            let out = g.result(tType(c.d))
            g.append(.reshape(ReshapeOp(x: joined, out: out, shape: [.literal(1), .literal(Int64(c.h)), .literal(-1), .literal(Int64(c.d))])))
            return out
        }
        let qr = rotate(q), kr = rotate(k)
        let written = g.result(TensorType(c.dtype, fixed: [1, c.h, c.s, c.d]))
        g.append(.indexPut(IndexPutOp(x: cache, indices: [positions], indexAxes: [2], values: kr, out: written)))
        let snapshot = g.result(TensorType(c.dtype, fixed: [1, c.h, c.s, c.d]))
        g.append(.idCopy(IdCopyOp(x: written, out: snapshot)))
        g.append(.copyInto(CopyIntoOp(dst: cache, src: written, out: cache)))
        var graph = g.graph
        graph.outputs = [qr, snapshot]

        let what = "rope pattern h\(c.h) d\(c.d) \(c.traditional ? "interleaved" : "split-half") steps \(c.steps) \(c.dtype.name)"
        var fused = graph
        XCTAssertEqual(try FuseRopePattern().run(&fused), 2, what, file: file, line: line)
        XCTAssertEqual(try InPlaceStateWrites().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertEqual(fused.opHistogram["rope_table"], 2, what, file: file, line: line)
        XCTAssertEqual(fused.opHistogram["index_copy"], 1, what, file: file, line: line)
        XCTAssertNil(fused.opHistogram["concatenate"], what, file: file, line: line)
        var at = 0
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.steps.count, outputs: ["rotated q", "cache"],
                                        tolerance: c.dtype == .f32 ? 1e-6 : 0x1p-7, file: file, line: line) { call in
            let t = c.steps[call]
            defer { at += t }
            return [r.tensor([1, c.h, t, c.d], -1, 1, c.dtype), r.tensor([1, c.h, t, c.d], -1, 1, c.dtype), cosTable, sinTable,
                    .scalar(Double(at), .i64), .scalar(Double(at + t), .i64),
                    HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(at + $0) })]
        }
    }

    func testInterleavedAndSplitHalf() throws {
        try check(Case(traditional: true), seed: 1000)
        try check(Case(traditional: false), seed: 1001)
        try check(Case(h: 4, d: 64, s: 40, steps: [9, 1, 1], traditional: true), seed: 1002)
        try check(Case(h: 1, d: 32, steps: [1, 1, 3], traditional: false), seed: 1003)
    }

    func testBF16() throws {
        try check(Case(steps: [4, 1], traditional: true, dtype: .bf16), seed: 1010)
        try check(Case(steps: [3, 2], traditional: false, dtype: .bf16), seed: 1011)
    }
}
