import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Cross-call reuse (`CrossCallReuse`): steps whose results depend only on constants and on inputs byte-identical
/// to the last call's are skipped and their kept results reused. Every call is compared with the reference executor
/// run on the same calls (state carried over), so a skip that should not have happened shows as a wrong output;
/// `reusedStepRuns` shows that the skips did happen. Results are kept only once an input has been seen unchanged
/// between two calls (a program whose inputs change on every call keeps nothing): the first repeat computes and
/// keeps, the next skips.
final class CrossCallReuseTests: XCTestCase {
    static let pte = JITKernelTests.pte
    typealias Random = JITKernelTests.Random

    func constant(_ g: inout RefGraph, _ t: HostTensor) -> ValueID {
        g.graph.addValue(TensorType(t.dtype, fixed: t.shape), .constant(.literal(t.storage)))
    }

    /// Runs `calls` on the reference and compiled; `skips[k]`: whether call k must have skipped steps.
    func check(_ graph: Graph, _ calls: [[HostTensor?]], held: [Int: [HostTensor]] = [:], skips: [Bool], resetBefore: Set<Int> = [],
               file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        let reference = try ReferenceExecutor(graph: graph)
        let jit = try JITProgram(graph: graph, pte: Self.pte)
        XCTAssertGreaterThan(jit.reusableStepCount, 0, "nothing found reusable", file: file, line: line)
        var lastHeld: [Int: HostTensor] = [:]
        for (k, call) in calls.enumerated() {
            if resetBefore.contains(k) {
                try jit.resetState()
                try reference.resetState()
            }
            var feeds: [HostTensor?] = call
            for (position, tensors) in held {
                if k < tensors.count { try jit.holdInput(position, tensors[k]); lastHeld[position] = tensors[k] }
                feeds[position] = nil
            }
            let before = jit.reusedStepRuns
            let got = try jit.run(feeds)
            let want = try reference.run(feeds.enumerated().map { $0.element ?? lastHeld[$0.offset]! })
            XCTAssertEqual(jit.reusedStepRuns > before, skips[k], "call \(k): steps skipped", file: file, line: line)
            for (j, (a, b)) in zip(got, want).enumerated() {
                XCTAssertEqual(a.shape, b.shape, "call \(k) output \(j)", file: file, line: line)
                let scale = b.storage.map(Swift.abs).max() ?? 0
                let err = zip(a.storage, b.storage).map { Swift.abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-5 * max(scale, 1), "call \(k) output \(j)", file: file, line: line)
            }
        }
        return jit
    }

    /// z = x·W + t: the product depends on x only, so a call with the same x and another t reuses it.
    func testProjectionOfAnUnchangedInputIsReused() throws {
        var r = Random(11)
        var g = RefGraph()
        let x = g.input(r.tensor([24, 32])), t = g.input(r.tensor([1, 16]))
        let w = constant(&g, r.tensor([32, 16]))
        let y = g.result(), z = g.result()
        g.append(.matmul(MatmulOp(a: x, b: w, out: y)))
        g.append(.add(AddOp(a: y, b: t, out: z)))
        g.graph.outputs = [z]
        let x1 = r.tensor([24, 32]), x2 = r.tensor([24, 32]), t1 = r.tensor([1, 16]), t2 = r.tensor([1, 16])
        var x1b = x1
        x1b.storage[7] += 0.5   // one element differs: the product must be recomputed
        _ = try check(g.graph, [[x1, t1], [x1, t2], [x2, t2], [x2, t1], [x1b, t1], [x1b, t1]],
                      skips: [false, false, false, true, false, true])
    }

    /// The same projection with x held (`holdInput`, as the Whisper decoder holds the encoder's states): holding the
    /// same bytes again keeps the reuse, different bytes recompute.
    func testHeldInputVersions() throws {
        var r = Random(12)
        var g = RefGraph()
        let x = g.input(r.tensor([24, 32])), t = g.input(r.tensor([1, 16]))
        let w = constant(&g, r.tensor([32, 16]))
        let y = g.result(), z = g.result()
        g.append(.matmul(MatmulOp(a: x, b: w, out: y)))
        g.append(.add(AddOp(a: y, b: t, out: z)))
        g.graph.outputs = [z, y]
        let x1 = r.tensor([24, 32]), x2 = r.tensor([24, 32])
        let ts = (0..<5).map { _ in r.tensor([1, 16]) }
        _ = try check(g.graph, ts.map { [nil, $0] }, held: [0: [x1, x1, x2, x2, x1]],
                      skips: [false, false, false, true, false])
    }

    /// A state that one index_copy overwrites at every position (ExecuTorch's cross-attention cache, written with
    /// `arange(S)`) depends only on what is written: reused while its input is unchanged, recomputed after a change
    /// and after `resetState`. A partial write (not every position) keeps the state on every call's path.
    func testFullyOverwrittenStateIsReusedPartialIsNot() throws {
        var r = Random(13)
        // transposed: the update is written through a transpose (the scatter kernel absorbs it, as in optimum's decoder).
        // arange: the rows as the `arange` op itself (optimum's portable export) instead of a constant.
        for (full, transposed, arange) in [(true, false, false), (false, false, false), (true, true, false), (true, false, true), (false, false, true)] {
            var g = RefGraph()
            let h = g.input(r.tensor(transposed ? [1, 8, 4] : [1, 4, 8])), t = g.input(r.tensor([1, 4, 8]))
            let state = g.graph.addValue(TensorType(.f32, fixed: [1, 4, 8]), .state(initial: nil))
            let rows: [Double] = full ? [2, 0, 3, 1] : [2, 0]
            let index: ValueID
            if arange {
                index = g.result(TensorType(.i64, fixed: [rows.count]))
                g.append(.arange(ARangeOp(out: index, start: .literal(0), stop: .literal(Int64(rows.count)), step: .literal(1), scalarType: .i64)))
            } else {
                index = g.graph.addValue(TensorType(.i64, fixed: [rows.count]), .constant(.literal(rows)))
            }
            let scale = constant(&g, r.tensor(transposed ? [1, 8, 1] : [1, 1, 8]))
            var p = g.result()
            g.append(.multiply(MultiplyOp(a: h, b: scale, out: p)))
            if transposed {
                let pt = g.result(TensorType(.f32, fixed: [1, 4, 8]))
                g.append(.transpose(TransposeOp(x: p, out: pt, perm: [0, 2, 1])))
                p = pt
            }
            var update = p
            if !full {
                update = g.result()
                g.append(.slice(SliceOp(x: p, out: update, axis: .literal(1), start: .literal(0), stop: .literal(2))))
            }
            g.append(.indexCopy(IndexCopyOp(dst: state, update: update, indices: index, out: state, axis: 1)))
            let z = g.result()
            g.append(.add(AddOp(a: state, b: t, out: z)))
            g.graph.outputs = [z]
            let h1 = r.tensor(transposed ? [1, 8, 4] : [1, 4, 8]), h2 = r.tensor(transposed ? [1, 8, 4] : [1, 4, 8])
            let ts = (0..<6).map { _ in r.tensor([1, 4, 8]) }
            let calls = [[h1, ts[0]], [h1, ts[1]], [h2, ts[2]], [h2, ts[3]], [h2, ts[4]], [h1, ts[5]]]
            // The multiply by a constant is reusable either way; the state write only when it covers the state.
            // (The arange step reads nothing: skipped on every call after the first but the one after the reset.)
            let skips = arange ? [false, true, true, true, false, true] : [false, false, false, true, false, false]
            let jit = try check(g.graph, calls, skips: skips, resetBefore: [4])
            XCTAssertEqual(jit.reusableStateWrites, full ? 1 : 0, "full \(full) transposed \(transposed) arange \(arange): state write reusable")
        }
    }

    /// One compiled program's outputs handed to another in their bytes (`withOutputs`, `withOutputs(native:)`,
    /// `holdInput(native:)`: Whisper's encoder → cross-K/V → decoder) give what the decoded host tensors give, and a
    /// native hold of the same bytes again keeps what reuse computed (the decoder's cross K/V within a window).
    func testOutputsHandedOnAsBytesEqualTheHostPath() throws {
        var r = Random(17)
        // A: y = x·W (an encoder); B: its [24, 16] input held, z = y·V + t (a decoder reading the held states).
        var a = RefGraph()
        let x = a.input(r.tensor([24, 32])), w = constant(&a, r.tensor([32, 16]))
        let y = a.result()
        a.append(.matmul(MatmulOp(a: x, b: w, out: y)))
        a.graph.outputs = [y]
        var b = RefGraph()
        let held = b.input(r.tensor([24, 16])), t = b.input(r.tensor([1, 8])), v = constant(&b, r.tensor([16, 8]))
        let p = b.result(), z = b.result()
        b.append(.matmul(MatmulOp(a: held, b: v, out: p)))
        b.append(.add(AddOp(a: p, b: t, out: z)))
        b.graph.outputs = [z]
        let encoder = try JITProgram(graph: a.graph, pte: Self.pte)
        let decoder = try JITProgram(graph: b.graph, pte: Self.pte), hostDecoder = try JITProgram(graph: b.graph, pte: Self.pte)
        let relay = try JITProgram(graph: b.graph, pte: Self.pte)   // B fed natively from A's bytes, not held
        for (call, input) in [r.tensor([24, 32]), r.tensor([24, 32])].enumerated() {
            let hidden = try encoder.run([input])
            try hostDecoder.holdInput(0, hidden[0])
            try encoder.withOutputs([input]) { outs in
                XCTAssertEqual(try outs[0].host(), hidden[0], "call \(call): borrowed output = decoded output")
                try decoder.holdInput(0, native: outs[0])
                let t1 = r.tensor([1, 8])
                let bytes = UnsafeMutableRawPointer.allocate(byteCount: t1.count * 4, alignment: 64)
                defer { bytes.deallocate() }
                let native = NativeTensor(dtype: .f32, shape: t1.shape, data: bytes)
                native.store(t1)
                let relayed = try relay.withOutputs(native: [outs[0], native]) { try $0[0].host() }
                XCTAssertEqual(relayed, try hostDecoder.run([hidden[0], t1])[0], "call \(call): native inputs = host inputs")
            }
            for _ in 0..<3 {
                let t1 = r.tensor([1, 8])
                XCTAssertEqual(try decoder.run([nil, t1]), try hostDecoder.run([nil, t1]), "call \(call): native hold = host hold")
            }
            // The same bytes held again: nothing recomputed for them on the next call.
            try encoder.withOutputs([input]) { try decoder.holdInput(0, native: $0[0]) }
            let before = decoder.reusedStepRuns
            _ = try decoder.run([nil, r.tensor([1, 8])])
            XCTAssertGreaterThan(decoder.reusedStepRuns, before, "call \(call): the held projection reused")
        }
        XCTAssertThrowsError(try encoder.withOutputs([r.tensor([24, 32])]) { try decoder.holdInput(0, native: NativeTensor(dtype: .f32, shape: [24, 8], data: $0[0].data)) },
                             "a held input of the wrong shape is refused")
    }
}
