import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The fused RoPE + KV-cache write + attention kernel against the unfused graph on the reference:
/// the MLX attention layer as the importer makes it (q/k/v head swaps of [B, T, H, D] projections,
/// two ropes, two in-place `index_copy` cache writes, sdpa, the output head swap), run call after
/// call so the caches carry over — prefill (T > 1) then decode (T = 1) — for GQA ratios 1 and 4,
/// traditional and split-half rope (also rope dims < head dim), head dims 16 and 64, an additive
/// mask, a bool mask, causal without a mask, and ring-buffer indices that wrap around the cache.
/// The attention output and both caches (the rotated k rows) are compared after every call; bf16
/// and f16 as well (tolerance at that test).
///
/// Tolerance: 1e-5 × max |reference|, what the separate sdpa kernel meets (vector partial sums
/// and an online softmax against the reference's ordered double sums; the rope angles are formed
/// in f64 in both); measured ≤ 2e-7. A wrong position, head, cache row or skipped key block is off by O(1).
final class JITRopeAttentionTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    enum AttentionMask { case additive, keep, causal }

    struct RopeAttentionCase {
        var hkv = 2, group = 1, d = 16, ropeDims = 16, s = 24
        var traditional = true, mask = AttentionMask.additive
        var steps = [5, 1, 1, 3, 1]
        /// Cache slots wrap (slot = position mod S), as gemma's sliding-window layers write them.
        var ring = false
        /// q, k, v, caches, output and additive mask dtype.
        var dtype = DType.f32
        /// RoPE from cos/sin tables (`rope_table`, as plain exports make it), of this dtype; random
        /// tables, so a wrong row or column shows.
        var table: DType? = nil
    }

    func checkRopeAttention(_ c: RopeAttentionCase, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        var g = RefGraph()
        let hq = c.hkv * c.group, maxT = c.steps.max()!
        let t0 = c.steps[0]
        let dt = c.dtype
        let qIn = g.input(r.tensor([1, t0, hq, c.d], -1, 1, dt), dynamic: 1, max: maxT)
        let kIn = g.input(r.tensor([1, t0, c.hkv, c.d], -1, 1, dt), dynamic: 1, max: maxT)
        let vIn = g.input(r.tensor([1, t0, c.hkv, c.d], -1, 1, dt), dynamic: 1, max: maxT)
        let pos = g.input(HostTensor.scalar(0, .i64))
        let slots = g.input(HostTensor(dtype: .i64, shape: [t0], storage: (0..<t0).map(Double.init)), dynamic: 0, max: maxT)
        var maskValue: ValueID? = nil
        switch c.mask {
        case .additive: maskValue = g.input(r.tensor([t0, c.s], -1, 0, dt), dynamic: 0, max: maxT)
        case .keep: maskValue = g.input(HostTensor(dtype: .bool, shape: [t0, c.s], repeating: 1), dynamic: 0, max: maxT)
        case .causal: break
        }
        let rows = c.steps.reduce(0, +) + 3
        let tables = c.table.map { tt in (r.tensor([rows, c.ropeDims / 2], -1, 1, tt), r.tensor([rows, c.ropeDims / 2], -1, 1, tt)) }
        var tableValues: (cos: ValueID, sin: ValueID, stop: ValueID)? = nil
        if let tables {
            tableValues = (g.input(tables.0), g.input(tables.1), g.input(HostTensor.scalar(Double(t0), .i64)))
        }
        let kc = g.graph.addValue(TensorType(dt, fixed: [1, c.hkv, c.s, c.d]), .state(initial: nil))
        let vc = g.graph.addValue(TensorType(dt, fixed: [1, c.hkv, c.s, c.d]), .state(initial: nil))
        let (q, k, v, qr, kr, o, ot) = (g.result(), g.result(), g.result(), g.result(), g.result(), g.result(), g.result())
        for (x, y) in [(qIn, q), (kIn, k), (vIn, v)] { g.append(.transpose(TransposeOp(x: x, out: y, perm: [0, 2, 1, 3]))) }
        if let tv = tableValues {
            g.append(.ropeTable(RopeTableOp(x: q, cos: tv.cos, sin: tv.sin, start: pos, stop: tv.stop, traditional: c.traditional, out: qr)))
            g.append(.ropeTable(RopeTableOp(x: k, cos: tv.cos, sin: tv.sin, start: pos, stop: tv.stop, traditional: c.traditional, out: kr)))
        } else {
            g.append(.rope(RopeOp(x: q, out: qr, dims: c.ropeDims, offset: pos, traditional: c.traditional, base: 10000)))
            g.append(.rope(RopeOp(x: k, out: kr, dims: c.ropeDims, offset: pos, traditional: c.traditional, base: 10000)))
        }
        g.append(.indexCopy(IndexCopyOp(dst: kc, update: kr, indices: slots, out: kc, axis: 2)))
        g.append(.indexCopy(IndexCopyOp(dst: vc, update: v, indices: slots, out: vc, axis: 2)))
        g.append(.sdpa(SdpaOp(q: qr, k: kc, v: vc, out: o, scale: 1 / Double(c.d).squareRoot(), mask: maskValue, causal: c.mask == .causal)))
        g.append(.transpose(TransposeOp(x: o, out: ot, perm: [0, 2, 1, 3])))
        var graph = g.graph
        graph.outputs = [ot, kc, vc]

        var calls: [[HostTensor]] = []
        var at = 0
        for t in c.steps {
            let slot = { (p: Int) in c.ring ? p % c.s : p }
            var feeds = [r.tensor([1, t, hq, c.d], -1, 1, dt), r.tensor([1, t, c.hkv, c.d], -1, 1, dt), r.tensor([1, t, c.hkv, c.d], -1, 1, dt),
                         .scalar(Double(at), .i64),
                         HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(slot(at + $0)) })]
            // Row i sees the slots written so far (the window, for a ring), the rest masked out.
            func visible(_ i: Int, _ j: Int) -> Bool {
                c.ring ? (0..<min(at + i + 1, c.s)).contains { slot(at + i - $0) == j } : j <= at + i
            }
            switch c.mask {
            case .additive:
                var m = r.tensor([t, c.s], -1, 0, dt)
                for i in 0..<t { for j in 0..<c.s where !visible(i, j) { m.storage[i * c.s + j] = -.infinity } }
                feeds.append(m)
            case .keep:
                feeds.append(HostTensor(dtype: .bool, shape: [t, c.s], storage: (0..<(t * c.s)).map { visible($0 / c.s, $0 % c.s) ? 1 : 0 }))
            case .causal: break
            }
            if let tables { feeds += [tables.0, tables.1, .scalar(Double(at + t), .i64)] }
            calls.append(feeds)
            at += t
        }

        let what = "rope_attention hkv\(c.hkv) group\(c.group) d\(c.d) rope\(c.ropeDims)\(c.traditional ? "t" : "s") s\(c.s) \(c.mask)\(c.ring ? " ring" : "") steps \(c.steps) \(dt.name)\(c.table.map { " table \($0.name)" } ?? "")"
        let reference = try ReferenceExecutor(graph: graph)
        var fused = graph
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        XCTAssertEqual(fused.opHistogram["rope_attention"], 1, what, file: file, line: line)
        let jit = try JITProgram(graph: fused, pte: Self.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("rope_attention_\(dt.name)_dk\(c.d)") }, "\(what): \(jit.kernelNames)", file: file, line: line)
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") || $0.hasPrefix("sdpa") || $0.hasPrefix("rope_\(dt.name)") },
                       "\(what): a transpose was copied or a part ran separately: \(jit.kernelNames)", file: file, line: line)
        for (k, feeds) in calls.enumerated() {
            let want = try reference.run(feeds), got = try jit.run(feeds)
            for j in want.indices {
                compare(got[j], want[j], tol: dt == .f32 ? 1e-5 : 0x1p-8, "\(what) call \(k) output \(["attention", "k cache", "v cache"][j])", file: file, line: line)
            }
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): calls left to the reference", file: file, line: line)
    }

    /// max |got − want| ≤ tol · max |want| (NaN only where the reference has NaN).
    func compare(_ got: HostTensor, _ want: HostTensor, tol: Double, _ what: String, file: StaticString, line: UInt) {
        XCTAssertEqual(got.dtype, want.dtype, "\(what): dtype", file: file, line: line)
        XCTAssertEqual(got.shape, want.shape, "\(what): shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let bound = tol * (want.storage.filter(\.isFinite).map(Swift.abs).max() ?? 0)
        for (i, (a, b)) in zip(got.storage, want.storage).enumerated() where !(a == b || (a.isNaN && b.isNaN)) {
            guard Swift.abs(a - b) <= bound else {
                return XCTFail("\(what): element \(i) is \(a), reference \(b) (bound \(bound))", file: file, line: line)
            }
        }
    }

    func testRopeAttentionDecodeAndPrefillGQA1And4() throws {
        var seed: UInt64 = 700
        for group in [1, 4] {
            for traditional in [true, false] {
                seed += 1
                try checkRopeAttention(RopeAttentionCase(group: group, traditional: traditional), seed: seed)
            }
        }
    }

    func testRopeAttentionHeadDim64WithPartialRope() throws {
        try checkRopeAttention(RopeAttentionCase(hkv: 1, group: 4, d: 64, ropeDims: 64, s: 40, steps: [9, 1, 2, 1]), seed: 710)
        try checkRopeAttention(RopeAttentionCase(hkv: 2, group: 2, d: 64, ropeDims: 32, s: 40, traditional: false, steps: [3, 1, 1]), seed: 711)
    }

    func testRopeAttentionCausalAndBoolMask() throws {
        try checkRopeAttention(RopeAttentionCase(group: 4, mask: .causal, steps: [6, 1, 1]), seed: 720)
        try checkRopeAttention(RopeAttentionCase(group: 2, traditional: false, mask: .keep), seed: 721)
    }

    /// bf16 and f16 activations and caches: f32 inside, rounded once per stored value (rotated k,
    /// rotated q in the scratch, the output) as the reference rounds each op. Tolerance 2⁻⁸ ×
    /// max |reference|, half a bf16 ulp at the largest magnitude, for an output rounded the other
    /// way after a different summation order; measured: identical on these shapes.
    func testRopeAttentionHalfPrecision() throws {
        try checkRopeAttention(RopeAttentionCase(group: 4, traditional: true, steps: [5, 1, 2], dtype: .bf16), seed: 740)
        try checkRopeAttention(RopeAttentionCase(group: 2, d: 64, ropeDims: 64, s: 40, traditional: false, steps: [3, 1], dtype: .f16), seed: 741)
    }

    /// RoPE read from cos/sin tables (plain exports' form), traditional and split-half, f32 and bf16
    /// tables, a ring buffer, and tables with more rows than positions used.
    func testRopeAttentionFromTables() throws {
        try checkRopeAttention(RopeAttentionCase(group: 2, traditional: true, table: .f32), seed: 750)
        try checkRopeAttention(RopeAttentionCase(group: 1, traditional: false, mask: .causal, steps: [4, 1, 1], table: .f32), seed: 751)
        try checkRopeAttention(RopeAttentionCase(group: 2, s: 7, traditional: false, steps: [4, 1, 1, 3, 1], ring: true, table: .f32), seed: 752)
        try checkRopeAttention(RopeAttentionCase(group: 4, traditional: true, steps: [5, 1, 2], dtype: .bf16, table: .bf16), seed: 753)
    }

    func testRopeAttentionRingBufferWraps() throws {
        // A 7-slot window over 13 positions: slots are overwritten, the mask selects the window.
        try checkRopeAttention(RopeAttentionCase(group: 2, s: 7, traditional: false, steps: [4, 1, 1, 3, 1, 1, 1, 1], ring: true), seed: 730)
    }
}
