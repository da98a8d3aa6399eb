import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-attention-pattern keeps what the program computes: the graph before the pass and after it
/// (one sdpa per layer, intermediates removed) give the same outputs on random inputs, on the
/// reference executor and on the JIT — every plain fixture with attention (llama and moe: GQA 2
/// over a 96-slot cache; gemma: a sliding window over a 15-slot ring buffer; whisper's encoder: no
/// mask, no cache), call after call so the caches carry over, and a hand-written layer with fully
/// masked rows (where the guard's 0 and sdpa's 0 must agree) under every mask form.
///
/// Tolerance: 1e-5 × max |reference before the pass| (the reference sums in Double in both forms;
/// the JIT's matmul/softmax kernels and its sdpa kernel sum in f32 in different orders, and the
/// scale is applied once instead of to q and kᵀ separately). A wrong head, key or scale is off by O(1).
final class FuseAttentionPatternNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func sdpaCount(_ g: Graph) -> Int { g.opHistogram["sdpa"] ?? 0 }

    func assertClose(_ got: [HostTensor], _ want: [HostTensor], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (j, (a, b)) in zip(got, want).enumerated() {
            XCTAssertEqual(a.shape, b.shape, "\(what) output \(j)", file: file, line: line)
            guard a.shape == b.shape else { continue }
            let scale = max(b.storage.map(abs).max() ?? 0, 1e-30)
            let err = zip(a.storage, b.storage).map { abs($0 - $1) }.max() ?? 0
            XCTAssertFalse(a.storage.contains { !$0.isFinite }, "\(what) output \(j): non-finite values", file: file, line: line)
            XCTAssertLessThanOrEqual(err, 1e-5 * scale, "\(what) output \(j): max error \(err), scale \(scale)", file: file, line: line)
        }
    }

    /// Runs both graphs on both engines over `calls` (one fresh executor each, so state carries
    /// call to call) and compares everything with the reference run of `before`.
    func compare(before: Graph, after: Graph, pte: PTEFile, calls: [[HostTensor]], _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) throws {
        let engines: [(String, any ProgramExecutor)] = [
            ("reference after", try ReferenceExecutor(graph: after, pte: pte)),
            ("jit before", try JITProgram(graph: before, pte: pte)),
            ("jit after", try JITProgram(graph: after, pte: pte)),
        ]
        for (name, engine) in engines {
            if let jit = engine as? JITProgram {
                XCTAssertEqual(jit.remarks, [], "\(what) \(name): ops left to the reference", file: file, line: line)
            }
            let oracle = try ReferenceExecutor(graph: before, pte: pte)
            for (k, feeds) in calls.enumerated() {
                assertClose(try engine.run(feeds), try oracle.run(feeds), "\(what) \(name) call \(k)", file: file, line: line)
            }
        }
        if let jit = engines[2].1 as? JITProgram {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("sdpa") }, "\(what): no sdpa kernel in \(jit.kernelNames)", file: file, line: line)
        }
    }

    // MARK: the fixtures

    func testPlainFixturesBeforeAndAfterThePass() throws {
        let pipeline = PassRegistry.defaultPipeline
        let at = try XCTUnwrap(pipeline.firstIndex(of: "fuse-attention-pattern"))
        let prefix = Array(pipeline[..<at])
        for (name, layers) in [("llama_plain", 2), ("gemma_sliding_plain", 2), ("moe_plain", 2), ("whisper_encoder_plain", 2)] {
            let pte = try PTEFile(path: Self.root.appendingPathComponent("\(name)/model.pte").path)
            let before = try ProgramLoader.prepare(pte, method: nil, passes: try PassManager(pipeline: prefix))
            let after = try ProgramLoader.prepare(pte, method: nil, passes: try PassManager(pipeline: prefix + ["fuse-attention-pattern", "dce"]))
            XCTAssertEqual(sdpaCount(before), 0, name)
            XCTAssertEqual(sdpaCount(after), layers, "\(name): one sdpa per attention layer")
            XCTAssertEqual(after.opHistogram["matmul"] ?? 0, (before.opHistogram["matmul"] ?? 0) - 2 * layers, "\(name): both attention matmuls gone")
            // The fixture's own calls (prefill, then decode steps at its positions), with random
            // tokens and random float inputs of the same shapes.
            var r = Random(UInt64(name.count))
            var calls: [[HostTensor]] = []
            for k in 0... {
                var feeds: [HostTensor] = []
                for i in 0... {
                    let path = Self.root.appendingPathComponent("\(name)/step\(k).input\(i).npy").path
                    guard FileManager.default.fileExists(atPath: path) else { break }
                    let t = try TensorFiles.readNPY(path)
                    if t.dtype.isFloatingPoint { feeds.append(r.tensor(t.shape, -1, 1, t.dtype)) }
                    else if t.rank == 2 { feeds.append(r.ints(t.shape, 0, 255, t.dtype)) }   // token ids (vocab 256)
                    else { feeds.append(t) }                                               // start positions
                }
                if feeds.isEmpty { break }
                calls.append(feeds)
            }
            XCTAssertFalse(calls.isEmpty, name)
            try compare(before: before, after: after, pte: pte, calls: calls, name)
        }
    }

    // MARK: a hand-written layer

    enum MaskForm { case none, additive, keep, fill }

    /// llama_plain's layer as IR text: x [1, T, Hq·16] → q, caches [1, Hkv, S, 16] (inputs), the
    /// mask an input [T, S]; q and kᵀ scaled by 0.5 and 0.6.
    func layer(hq: Int, hkv: Int, s: Int, mask: MaskForm, guarded: Bool) -> String {
        var next = 7, body: [String] = []
        func add(_ op: String, _ type: String) -> String {
            let id = "%\(next)"
            next += 1
            body.append("  \(id) = \(op) : \(type)")
            return id
        }
        let n = hq / hkv
        let maskType = mask == .additive ? "f32" : "bool"
        let bhts = "f32[1, \(hq), ?1..8, \(s)]"
        let t = add("sym_size(a: %0, dim: 1)", "i64[]")
        let r = add("reshape(x: %0, shape: [1, \(t), \(hq), 16])", "f32[1, ?1..8, \(hq), 16]")
        let q = add("transpose(x: \(r), perm: [0, 2, 1, 3])", "f32[1, \(hq), ?1..8, 16]")
        func repeated(_ cache: String) -> String {
            guard hq != hkv else { return cache }
            let c = add("id_copy(x: \(cache))", "f32[1, \(hkv), \(s), 16]")
            let e = add("expand_dims(x: \(c), axis: 2)", "f32[1, \(hkv), 1, \(s), 16]")
            let b = add("broadcast_to(x: \(e), shape: [1, \(hkv), \(n), \(s), 16])", "f32[1, \(hkv), \(n), \(s), 16]")
            let kr = add("id_copy(x: \(b))", "f32[1, \(hkv), \(n), \(s), 16]")
            return add("reshape(x: \(kr), shape: [1, \(hq), \(s), 16])", "f32[1, \(hq), \(s), 16]")
        }
        let k4 = repeated("%1"), v4 = repeated("%2")
        let qs = add("multiply(a: \(q), b: %4)", "f32[1, \(hq), ?1..8, 16]")
        let kt = add("transpose(x: \(k4), perm: [0, 1, 3, 2])", "f32[1, \(hq), 16, \(s)]")
        let ks = add("multiply(a: \(kt), b: %5)", "f32[1, \(hq), 16, \(s)]")
        let qb = add("broadcast_to(x: \(qs), shape: [1, \(hq), \(t), 16])", "f32[1, \(hq), ?1..8, 16]")
        let q3 = add("reshape(x: \(qb), shape: [\(hq), \(t), 16])", "f32[\(hq), ?1..8, 16]")
        let kb = add("broadcast_to(x: \(ks), shape: [1, \(hq), 16, \(s)])", "f32[1, \(hq), 16, \(s)]")
        let k3 = add("reshape(x: \(kb), shape: [\(hq), 16, \(s)])", "f32[\(hq), 16, \(s)]")
        let mm = add("matmul(a: \(q3), b: \(k3))", "f32[\(hq), ?1..8, \(s)]")
        var scores = add("reshape(x: \(mm), shape: [1, \(hq), \(t), \(s)])", bhts)
        switch mask {
        case .none: break
        case .additive: scores = add("add(a: \(scores), b: %3)", bhts)
        case .keep: scores = add("where(condition: %3, x: \(scores), y: %6)", bhts)
        case .fill: scores = add("where(condition: %3, x: %6, y: \(scores))", bhts)
        }
        var p = add("softmax(x: \(scores), axis: 3, precise: true)", bhts)
        if guarded {
            let eq = add("equal(a: \(scores), b: %6)", "bool[1, \(hq), ?1..8, \(s)]")
            let n1 = add("logical_not(x: \(eq))", "bool[1, \(hq), ?1..8, \(s)]")
            let an = add("any(x: \(n1), axes: [3], keepdims: true)", "bool[1, \(hq), ?1..8, 1]")
            let n2 = add("logical_not(x: \(an))", "bool[1, \(hq), ?1..8, 1]")
            let z = add("full_like(x: \(p), v: 0.0, scalar_type: f32)", bhts)
            p = add("where(condition: \(n2), x: \(z), y: \(p))", bhts)
        }
        let pb = add("broadcast_to(x: \(p), shape: [1, \(hq), \(t), \(s)])", bhts)
        let p3 = add("reshape(x: \(pb), shape: [\(hq), \(t), \(s)])", "f32[\(hq), ?1..8, \(s)]")
        let vb = add("broadcast_to(x: \(v4), shape: [1, \(hq), \(s), 16])", "f32[1, \(hq), \(s), 16]")
        let v3 = add("reshape(x: \(vb), shape: [\(hq), \(s), 16])", "f32[\(hq), \(s), 16]")
        let o3 = add("matmul(a: \(p3), b: \(v3))", "f32[\(hq), ?1..8, 16]")
        let o = add("reshape(x: \(o3), shape: [1, \(hq), \(t), 16])", "f32[1, \(hq), ?1..8, 16]")
        let out = add("transpose(x: \(o), perm: [0, 2, 1, 3])", "f32[1, ?1..8, \(hq), 16]")
        return """
        graph @layer
        input %0 : f32[1, ?1..8, \(hq * 16)] "x"
        input %1 : f32[1, \(hkv), \(s), 16] "k_cache"
        input %2 : f32[1, \(hkv), \(s), 16] "v_cache"
        input %3 : \(maskType)[?1..8, \(s)] "mask"
        const %4 : f32[] = literal(0.5)
        const %5 : f32[] = literal(0.6)
        const %6 : f32[] = literal(-inf)
        block main {
        \(body.joined(separator: "\n"))
        }
        outputs \(out)

        """
    }

    func testLayerWithFullyMaskedRowsUnderEveryMaskForm() throws {
        let cases: [(hq: Int, hkv: Int, mask: MaskForm, guarded: Bool)] = [
            (4, 2, .additive, true), (4, 4, .additive, true), (4, 1, .additive, true),
            (4, 2, .keep, true), (4, 2, .fill, true), (4, 2, .none, true), (2, 2, .none, false),
        ]
        let s = 24
        for (index, c) in cases.enumerated() {
            let what = "Hq \(c.hq) Hkv \(c.hkv) mask \(c.mask) guarded \(c.guarded)"
            var before = try IRParser.parse(layer(hq: c.hq, hkv: c.hkv, s: s, mask: c.mask, guarded: c.guarded))
            var after = before
            XCTAssertEqual(try FuseAttentionPattern().run(&after), 1, what)
            _ = try DeadCodeElimination().run(&after)
            try Verifier.verify(after)
            _ = ShapeInference.annotate(&before)
            _ = ShapeInference.annotate(&after)
            XCTAssertEqual(after.opHistogram["matmul"], nil, "\(what): attention left unfused")
            var r = Random(UInt64(100 + index))
            var calls: [[HostTensor]] = []
            for t in [5, 1, 3] {
                // Row 1 (when there is one) sees no key at all; elsewhere about a third are hidden.
                var hidden = (0..<(t * s)).map { _ in r.next() < 0.35 }
                if t > 1 { for j in 0..<s { hidden[s + j] = true } }
                let maskTensor: HostTensor
                switch c.mask {
                case .additive:
                    let values = hidden.map { $0 ? -Double.infinity : -r.next() }
                    maskTensor = HostTensor(dtype: .f32, shape: [t, s], storage: values)
                case .keep, .none: maskTensor = HostTensor(dtype: .bool, shape: [t, s], storage: hidden.map { $0 ? 0 : 1 })
                case .fill: maskTensor = HostTensor(dtype: .bool, shape: [t, s], storage: hidden.map { $0 ? 1 : 0 })
                }
                calls.append([r.tensor([1, t, c.hq * 16]), r.tensor([1, c.hkv, s, 16]), r.tensor([1, c.hkv, s, 16]), maskTensor])
            }
            try compare(before: before, after: after, pte: JITKernelTests.pte, calls: calls, what)
        }
    }
}
