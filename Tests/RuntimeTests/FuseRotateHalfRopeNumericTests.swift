import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// fuse-rotate-half-rope then fuse-rope-attention on numbers: an attention layer as ExecuTorch's
/// Hugging Face export writes it (positions × inv_freq, concatenate([f, f]), cos/sin × a scale,
/// optional bf16 cast, rotate_half on q and k — whole or partial rotary — the cache writes at the
/// positions, sdpa with the keep mask j ≤ position) run call after call (prefill, then decode) on
/// the reference as written and on the JIT after the two passes: the output and both caches agree
/// after every call. Random q/k/v, inv_freq and scale, so a wrong row, column, pairing or half
/// shows. Tolerance: f32 1e-5 × max |reference| (the JIT's cos/sin kernels against the
/// reference's), bf16 2⁻⁶ (the rotation rounds once instead of after each product).
final class FuseRotateHalfRopeNumericTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    static var pte: PTEFile { JITKernelTests.pte }

    struct Case { var hq = 4, hkv = 2, d = 16, rotary = 16, s = 24, steps = [5, 1, 2], dtype = DType.f32 }

    /// The layer as IR text: inputs q, k, v, positions, inv_freq, scale; outputs out and the caches.
    func layer(_ c: Case) -> String {
        let t = "?1..\(c.steps.max()!)", dt = c.dtype.name, h = c.rotary / 2, pass = c.d - c.rotary
        var n = 10
        var body: [String] = []
        func emit(_ op: String, _ type: String) -> String {
            body.append("  %\(n) = \(op) : \(type)")
            n += 1
            return "%\(n - 1)"
        }
        let p1 = emit("expand_dims(x: %3, axis: 0)", "i64[1, \(t)]")
        let p2 = emit("expand_dims(x: \(p1), axis: 2)", "i64[1, \(t), 1]")
        let pf = emit("as_type(x: \(p2), scalar_type: f32)", "f32[1, \(t), 1]")
        let f = emit("multiply(a: \(pf), b: %4)", "f32[1, \(t), \(h)]")
        let e = emit("concatenate(tensors: [\(f), \(f)], axis: -1)", "f32[1, \(t), \(c.rotary)]")
        func table(_ fn: String) -> String {
            var v = emit("\(fn)(x: \(e))", "f32[1, \(t), \(c.rotary)]")
            v = emit("multiply(a: \(v), b: %5)", "f32[1, \(t), \(c.rotary)]")
            if c.dtype != .f32 { v = emit("as_type(x: \(v), scalar_type: \(dt))", "\(dt)[1, \(t), \(c.rotary)]") }
            return emit("expand_dims(x: \(v), axis: 1)", "\(dt)[1, 1, \(t), \(c.rotary)]")
        }
        let cosB = table("cos"), sinB = table("sin")
        func rotate(_ x: String, heads: Int) -> String {
            let shape = { (w: Int) in "\(dt)[1, \(heads), \(t), \(w)]" }
            let xr = pass == 0 ? x : emit("slice(x: \(x), axis: 3, start: 0, stop: \(c.rotary), step: 1)", shape(c.rotary))
            let a = emit("multiply(a: \(xr), b: \(cosB))", shape(c.rotary))
            let x1 = emit("slice(x: \(xr), axis: 3, start: 0, stop: \(h), step: 1)", shape(h))
            let x2 = emit("slice(x: \(xr), axis: 3, start: \(h), stop: 9223372036854775807, step: 1)", shape(h))
            let ng = emit("neg(x: \(x2))", shape(h))
            let rh = emit("concatenate(tensors: [\(ng), \(x1)], axis: -1)", shape(c.rotary))
            let b = emit("multiply(a: \(rh), b: \(sinB))", shape(c.rotary))
            let y = emit("add(a: \(a), b: \(b))", shape(c.rotary))
            guard pass > 0 else { return y }
            let rest = emit("slice(x: \(x), axis: 3, start: \(c.rotary), stop: 9223372036854775807, step: 1)", shape(pass))
            return emit("concatenate(tensors: [\(y), \(rest)], axis: -1)", shape(c.d))
        }
        let qr = rotate("%0", heads: c.hq), kr = rotate("%1", heads: c.hkv)
        let cache = "\(dt)[1, \(c.hkv), \(c.s), \(c.d)]"
        body.append("  %6 = index_copy(dst: %6, update: \(kr), indices: %3, axis: 2) : \(cache)")
        body.append("  %7 = index_copy(dst: %7, update: %2, indices: %3, axis: 2) : \(cache)")
        let keys = emit("arange(start: 0, stop: \(c.s), step: 1, scalar_type: i64)", "i64[\(c.s)]")
        let k2 = emit("expand_dims(x: \(keys), axis: 0)", "i64[1, \(c.s)]")
        let p3 = emit("expand_dims(x: %3, axis: 1)", "i64[\(t), 1]")
        let mask = emit("less_equal(a: \(k2), b: \(p3))", "bool[\(t), \(c.s)]")
        let out = emit("sdpa(q: \(qr), k: %6, v: %7, scale: 0.25, mask: \(mask), causal: false)", "\(dt)[1, \(c.hq), \(t), \(c.d)]")
        let kSnap = emit("id_copy(x: %6)", cache), vSnap = emit("id_copy(x: %7)", cache)
        return """
        graph @layer
        input %0 : \(dt)[1, \(c.hq), \(t), \(c.d)] "q"
        input %1 : \(dt)[1, \(c.hkv), \(t), \(c.d)] "k"
        input %2 : \(dt)[1, \(c.hkv), \(t), \(c.d)] "v"
        input %3 : i64[\(t)] "positions"
        input %4 : f32[\(h)] "inv_freq"
        input %5 : f32[] "attention_scaling"
        state %6 : \(cache) = zeros "k_cache"
        state %7 : \(cache) = zeros "v_cache"
        const %8 : f32[] = literal(0) "unused0"
        const %9 : f32[] = literal(0) "unused1"
        block main {
        \(body.joined(separator: "\n"))
        }
        outputs \(out), \(kSnap), \(vSnap)

        """
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let graph = try IRParser.parse(layer(c))
        let what = "rotate-half rope attention hq\(c.hq) hkv\(c.hkv) d\(c.d) rotary\(c.rotary) steps \(c.steps) \(c.dtype.name)"
        var fused = graph
        XCTAssertEqual(try FuseRotateHalfRope().run(&fused), 2, what, file: file, line: line)
        XCTAssertEqual(try FuseRopeAttention().run(&fused), 1, what, file: file, line: line)
        _ = try DeadCodeElimination().run(&fused)
        try Verifier.verify(fused)
        XCTAssertEqual(fused.opHistogram["rope_attention"], 1, what, file: file, line: line)
        XCTAssertNil(fused.opHistogram["neg"], what, file: file, line: line)
        let invFreq = HostTensor(dtype: .f32, shape: [c.rotary / 2], storage: (0..<(c.rotary / 2)).map {
            pow(10000, -2 * Double($0) / Double(c.rotary)) * (0.5 + r.next())
        }).rounded()
        let scale = HostTensor.scalar(0.5 + r.next(), .f32).rounded()
        var at = 0
        try assertFusedMatchesReference(graph, fused: fused, what: what, calls: c.steps.count, outputs: ["out", "k cache", "v cache"],
                                        tolerance: c.dtype == .f32 ? 1e-5 : 0x1p-6, file: file, line: line) { call in
            let t = c.steps[call]
            defer { at += t }
            return [r.tensor([1, c.hq, t, c.d], -1, 1, c.dtype), r.tensor([1, c.hkv, t, c.d], -1, 1, c.dtype),
                    r.tensor([1, c.hkv, t, c.d], -1, 1, c.dtype),
                    HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(at + $0) }), invFreq, scale]
        }
    }

    func testWholeAndPartialRotary() throws {
        try check(Case(), seed: 2000)
        try check(Case(hq: 4, hkv: 4, d: 32, rotary: 32, s: 20, steps: [7, 1]), seed: 2001)
        try check(Case(rotary: 12), seed: 2002)   // phi3: 75% of the head turns
    }

    func testBF16() throws {
        try check(Case(steps: [4, 1], dtype: .bf16), seed: 2010)
    }
}
