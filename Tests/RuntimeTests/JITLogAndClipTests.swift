import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Kernels the mel preprocessor program (ExecuTorch's export_processor: log10 of the clamped mel power) needed,
/// against the reference executor (double, rounded once):
/// - `log` and `log10` of f32 (Cephes logf, inline and vectorized): within 2 ulp-sized steps (2.4e-7 relative,
///   1.2e-7 absolute near 1) over 1e-45…3e38 including subnormals; 0 → −inf, +inf → +inf, negative and NaN → NaN;
/// - `clip` with both bounds, one bound, broadcast tensor bounds, f32 and i32: exact, NaN stays NaN (torch.clamp).
final class JITLogAndClipTests: XCTestCase {
    func run(_ g: RefGraph, _ outputs: [ValueID]) throws -> (got: [HostTensor], want: [HostTensor], jit: JITProgram) {
        var graph = g.graph
        graph.outputs = outputs
        let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [], "ops left to the reference")
        let got = try jit.run(g.feeds), want = try ReferenceExecutor(graph: graph).run(g.feeds)
        XCTAssertEqual(jit.runtimeFallbacks, [:])
        return (got, want, jit)
    }

    func testLogAndLog10() throws {
        var r = JITKernelTests.Random(7)
        var values: [Double] = [0, 1, 2, 10, 0.5, 1e-10, 1e-38, 1e-40, 1.4e-45, 3.4e38, .infinity, -1, -.infinity, .nan,
                                1 + 1e-7, 1 - 1e-7, 0.7071067, 0.7071068, 1.4142135]
        for _ in 0..<2000 { values.append(Double(Float(pow(10, r.tensor([1], -44, 38).storage[0])))) }
        for _ in 0..<500 { values.append(Double(Float(r.tensor([1], 0.5, 2).storage[0]))) }
        values = values.map { Double(Float($0)) }   // what an f32 tensor holds
        var g = RefGraph()
        let x = g.input(HostTensor(dtype: .f32, shape: [values.count], storage: values))
        let ln = g.result(), lg = g.result()
        g.append(.log(LogOp(x: x, out: ln)))
        g.append(.log10(Log10Op(x: x, out: lg)))
        let (got, want, jit) = try run(g, [ln, lg])
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("log_f32") } && jit.kernelNames.contains { $0.hasPrefix("log10_f32") }, "\(jit.kernelNames)")
        for (k, name) in ["log", "log10"].enumerated() {
            var worst = 0.0
            for (i, (a, b)) in zip(got[k].storage, want[k].storage).enumerated() {
                if b.isNaN { XCTAssertTrue(a.isNaN, "\(name)(\(values[i])) = \(a), want NaN"); continue }
                if b.isInfinite { XCTAssertEqual(a, b, "\(name)(\(values[i]))"); continue }
                let err = abs(a - b) / max(abs(b), 0.5)
                worst = max(worst, err)
                XCTAssertLessThanOrEqual(err, 2.4e-7, "\(name)(\(values[i])) = \(a), reference \(b)")
            }
            XCTAssertGreaterThan(worst, 0, "\(name): every value exact is suspicious")
        }
    }

    /// log1p (softplus's log(1 + e^x) in etLLM's GatedDeltaNet decay): within 2.4e-7 relative over −1 < x ≤ 3e38,
    /// tiny x included (where log(1 + x) in f32 would lose every digit); −1 → −inf, +inf → +inf, < −1 and NaN → NaN.
    func testLog1p() throws {
        var r = JITKernelTests.Random(9)
        var values: [Double] = [0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-4, -0.5, -0.999999, -1, -2, 0.5, 1, 20, 88, 3.4e38,
                                .infinity, -.infinity, .nan, 1.4e-45]
        for _ in 0..<1000 { values.append(pow(10, r.tensor([1], -30, 30).storage[0])) }
        for _ in 0..<1000 { values.append(r.tensor([1], -0.9999, 4).storage[0]) }
        values = values.map { Double(Float($0)) }
        var g = RefGraph()
        let x = g.input(HostTensor(dtype: .f32, shape: [values.count], storage: values))
        let y = g.result()
        g.append(.log1p(Log1pOp(x: x, out: y)))
        let (got, want, jit) = try run(g, [y])
        XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("log1p_f32") }, "\(jit.kernelNames)")
        var worst = 0.0
        for (i, (a, b)) in zip(got[0].storage, want[0].storage).enumerated() {
            if b.isNaN { XCTAssertTrue(a.isNaN, "log1p(\(values[i])) = \(a), want NaN"); continue }
            if b.isInfinite { XCTAssertEqual(a, b, "log1p(\(values[i]))"); continue }
            let err = abs(a - b) / max(abs(b), 1e-300)
            worst = max(worst, err)
            XCTAssertLessThanOrEqual(err, 2.4e-7, "log1p(\(values[i])) = \(a), reference \(b)")
        }
        XCTAssertGreaterThan(worst, 0, "every value exact is suspicious")
    }

    func testClipIsExact() throws {
        var r = JITKernelTests.Random(8)
        for dtype in [DType.f32, .i32] {
            var x = dtype == .f32 ? r.tensor([3, 41], -5, 5) : r.ints([3, 41], -50, 50, .i32)
            if dtype == .f32 { x.storage[5] = .nan; x.storage[6] = .infinity; x.storage[7] = -.infinity }
            var g = RefGraph()
            let v = g.input(x)
            let lo = g.literal(dtype == .f32 ? -1.5 : -7, dtype), hi = g.literal(dtype == .f32 ? 2.25 : 9, dtype)
            let rowLo = g.input(dtype == .f32 ? r.tensor([3, 1], -3, 0) : r.ints([3, 1], -30, 0, .i32))
            let both = g.result(), onlyLo = g.result(), onlyHi = g.result(), rows = g.result()
            g.append(.clip(ClipOp(x: v, out: both, aMin: lo, aMax: hi)))
            g.append(.clip(ClipOp(x: v, out: onlyLo, aMin: lo, aMax: nil)))
            g.append(.clip(ClipOp(x: v, out: onlyHi, aMin: nil, aMax: hi)))
            g.append(.clip(ClipOp(x: v, out: rows, aMin: rowLo, aMax: hi)))
            let (got, want, jit) = try run(g, [both, onlyLo, onlyHi, rows])
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("clip_lo_hi_\(dtype.name)") }, "\(jit.kernelNames)")
            for k in 0..<4 {
                for (a, b) in zip(got[k].storage, want[k].storage) {
                    XCTAssertTrue(a == b || (a.isNaN && b.isNaN), "clip \(dtype.name) output \(k): \(a) vs \(b)")
                }
            }
        }
    }
}
