import Foundation
import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Calls of up to 4 tokens read f32 weights whose every value is an f16 from an f16 copy (`ExactHalfWeights`):
/// a fused fc1 + gelu, q/k/v siblings with biases and a vocabulary-style projection on x [1, 1, K]. The results must equal, bit for bit, the same program with the
/// copies turned off (f16 widened to f32 is the f32 weight exactly; the sums run in the same order), and the
/// reference within f32's 1e-5 × max. A weight with one value that is not an f16 has no copy.
extension JITKernelTests {
    func halfWeightGraph(_ r: inout Random, k: Int, n: Int, tokens: Dim, offHalf: Bool) -> (Graph, [HostTensor]) {
        var g = RefGraph()
        let xt = r.tensor([1, tokens.fixedValue ?? 3, k])
        let x = g.graph.addValue(TensorType(.f32, [.fixed(1), tokens, .fixed(k)]), .input(position: 0))
        g.graph.inputs.append(x)
        g.feeds.append(xt)
        func constant(_ shape: [Int], _ lo: Double, _ hi: Double, half: Bool) -> ValueID {
            var t = r.tensor(shape, lo, hi)
            if half { t.storage = t.storage.map { Double(Float(Float16(Float($0)))) } }
            if offHalf { t.storage[shape.reduce(1, *) / 2] = 1.0 / 3.0 }   // not an f16
            return g.graph.addValue(TensorType(.f32, fixed: shape), .constant(.literal(t.storage)))
        }
        func linear(_ rows: Int, bias: Bool, of input: ValueID? = nil, k: Int = k) -> ValueID {
            let w = constant([rows, k], -0.1, 0.1, half: true)
            let t = g.result(), out = g.result()
            g.append(.transpose(TransposeOp(x: w, out: t, perm: [1, 0])))
            g.append(.addmm(AddmmOp(mat1: input ?? x, mat2: t, out: out, bias: bias ? constant([rows], -0.5, 0.5, half: false) : nil, alpha: 1, beta: 1)))
            return out
        }
        let fc1 = linear(n + 5, bias: true), act = g.result()
        g.append(.gelu(GeluOp(x: fc1, out: act, approximate: "none")))
        let q = linear(n, bias: true), kk = linear(n, bias: false), v = linear(n, bias: true)
        // A vocabulary-style projection (of q: not a sibling of the others), no bias.
        let logits = linear(n * 3, bias: false, of: q, k: n)
        var graph = g.graph
        graph.outputs = [act, q, kk, v, logits]
        _ = try? FuseLinear().run(&graph)
        return (graph, g.feeds)
    }

    func testOneTokenLinearsReadExactHalfCopies() throws {
        var r = Random(77)
        var options = JITProgram.Options()
        options.exactHalfWeights = false
        // Fixed at one token, and dynamic (calls of 3 tokens read the copies, 9 tokens the f32 weights).
        for (k, n, tokens, counts) in [(256, 256, Dim.fixed(1), [1]), (232, 300, .fixed(1), [1]), (256, 256, .dynamic(min: 1, max: 16), [3, 9])] {
            let (graph, _) = halfWeightGraph(&r, k: k, n: n, tokens: tokens, offHalf: false)
            let reference = try ReferenceExecutor(graph: graph)
            let jit = try JITProgram(graph: graph, pte: Self.pte), plain = try JITProgram(graph: graph, pte: Self.pte, options: options)
            let what = "half copies k\(k) n\(n) \(tokens)"
            XCTAssertEqual(jit.remarks, [], what)
            for part in ["_gelu_", "+", "k\(n)_n\(n * 3)_"] {
                XCTAssertTrue(jit.kernelNames.contains { $0.contains(part) && $0.contains("_h16_") }, "\(what): \(part) in \(jit.kernelNames)")
            }
            XCTAssertFalse(plain.kernelNames.contains { $0.contains("_h16") }, "\(what): \(plain.kernelNames)")
            for m in counts {
                let feeds = [r.tensor([1, m, k])]
                let want = try reference.run(feeds), got = try jit.run(feeds), base = try plain.run(feeds)
                for j in want.indices {
                    compare(got[j], want[j], .scaled(1e-5), "\(what) m\(m) output \(j)", file: #filePath, line: #line)
                    compare(got[j], base[j], .exact, "\(what) m\(m) against f32 weights, output \(j)", file: #filePath, line: #line)
                }
            }
            XCTAssertEqual(jit.runtimeFallbacks, [:], what)
        }
        // One value that is not an f16: no copies.
        let (graph, feeds) = halfWeightGraph(&r, k: 256, n: 256, tokens: .fixed(1), offHalf: true)
        let jit = try JITProgram(graph: graph, pte: Self.pte)
        XCTAssertFalse(jit.kernelNames.contains { $0.contains("_h16") }, "\(jit.kernelNames)")
        let want = try ReferenceExecutor(graph: graph).run(feeds), got = try jit.run(feeds)
        for j in want.indices { compare(got[j], want[j], .scaled(1e-5), "not f16 output \(j)", file: #filePath, line: #line) }
    }
}

extension JITKernelTests {
    /// The integer check-and-convert behind the f16 copies against Swift's Float16 on every f16 value widened to f32
    /// (normals, subnormals, ±0, ±inf), their neighbours one f32 ulp away, and 200 000 random f32 bit patterns:
    /// exact exactly when Float16 round-trips the bits, with Float16's bits; NaN is never exact.
    func testExactHalfBitsMatchFloat16() {
        var patterns: [UInt32] = []
        for h in 0...UInt16.max {
            let f = Float(Float16(bitPattern: h))
            if f.isNaN { continue }
            patterns += [f.bitPattern, f.bitPattern &+ 1, f.bitPattern &- 1]
        }
        var r = Random(5)
        for _ in 0..<200_000 { patterns.append(UInt32(truncatingIfNeeded: Int(r.next() * 4294967296.0))) }
        patterns += [Float(65520).bitPattern, Float(1e-8).bitPattern, 1, 0x8000_0001, Float.nan.bitPattern, 0x7F80_0001]
        var half: UInt16 = 0
        var mismatches = 0
        for x in patterns {
            let f = Float(bitPattern: x)
            let want = !f.isNaN && Float(Float16(f)).bitPattern == x
            var source = x
            let got = ExactHalfWeights.halfBits(&source, into: &half, count: 1)
            if got != want || (want && half != Float16(f).bitPattern) {
                mismatches += 1
                if mismatches < 5 { XCTFail("f32 bits 0x\(String(x, radix: 16)): exact \(got) (Float16: \(want)), bits 0x\(String(half, radix: 16)) (Float16: 0x\(String(Float16(f).bitPattern, radix: 16)))") }
            }
        }
        XCTAssertEqual(mismatches, 0)
        // A whole tensor of f16 values (the load path): one call, every element's bits.
        let exact = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }.filter { !$0.isNaN }
        var bits = [UInt16](repeating: 0, count: exact.count)
        let ok = exact.map(\.bitPattern).withUnsafeBufferPointer { ExactHalfWeights.halfBits($0.baseAddress!, into: &bits, count: exact.count) }
        XCTAssertTrue(ok)
        XCTAssertEqual(bits, exact.map { Float16($0).bitPattern })
    }
}
