import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// The `sin` / `cos` kernels (RoPE tables are computed with them at run time: positions × inverse
/// frequencies) against the reference executor, which evaluates them in Double and rounds once.
///
/// Tolerance: f32 results within 1 ulp of the reference (the kernel reduces by π/2 in f64 and
/// evaluates f64 polynomials, then rounds once; measured max 1 ulp, almost all exact), over
/// uniform grids of growing range up to |x| = 1e9 (RoPE angles reach 1e5 and beyond at long
/// contexts), special values and near multiples of π/2 (where cancellation would show). bf16 and
/// f16 results compute in f32 and round once, as the reference rounds its Double result through
/// f32: within one result ulp (`ExportOpKernelChecks`).
final class JITSinCosTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    /// Distance in f32 units in the last place (ordered bit patterns; NaN only matches NaN).
    static func ulps(_ a: Float, _ b: Float) -> Int {
        if a.isNaN || b.isNaN { return a.isNaN && b.isNaN ? 0 : Int.max }
        func ordered(_ x: Float) -> Int {
            let bits = Int(Int32(bitPattern: x.bitPattern))
            return bits < 0 ? Int(Int32.min) - bits : bits
        }
        return Swift.abs(ordered(a) - ordered(b))
    }

    func run(_ x: HostTensor, cosine: Bool) throws -> (got: HostTensor, want: HostTensor, jit: JITProgram) {
        var g = RefGraph()
        let v = g.input(x), out = g.result()
        g.append(cosine ? .cos(CosOp(x: v, out: out)) : .sin(SinOp(x: v, out: out)))
        g.graph.outputs = [out]
        let jit = try JITProgram(graph: g.graph, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [], "\(cosine ? "cos" : "sin"): ops left to the reference")
        let want = try ReferenceExecutor(graph: g.graph).run(g.feeds)[0]
        let got = try jit.run(g.feeds)[0]
        XCTAssertEqual(jit.runtimeFallbacks, [:])
        return (got, want, jit)
    }

    func testF32WithinOneUlpOverWideRanges() throws {
        var r = Random(41)
        var values: [Double] = [0, -0.0, .infinity, -.infinity, .nan, 1e-30, -1e-20, Double(Float.leastNonzeroMagnitude),
                                Double(Float.greatestFiniteMagnitude).squareRoot(), 0.7853981633974483, 3.1415926, 1e5, -65535.5]
        // Floats nearest multiples of π/2 (up to 2^20·π/2), where sin or cos is tiny.
        for k in [1, 2, 3, 4, 7, 100, 355, 1000, 65_536, 710_000, 1 << 20] {
            let x = Float(Double(k) * Double.pi / 2)
            values += [x, x.nextUp, x.nextDown].map(Double.init)
        }
        for range in [1.0, 10, 1000, 1e5, 1e7, 1e9, 1e12, 1e20, 3e38] {
            values += (0..<4000).map { _ in range * (2 * r.next() - 1) }
        }
        let x = HostTensor(dtype: .f32, shape: [values.count], storage: values).rounded()
        for cosine in [false, true] {
            let (got, want, jit) = try run(x, cosine: cosine)
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(cosine ? "cos_f32" : "sin_f32") }, "\(jit.kernelNames)")
            var worst = 0, worstAt = 0, inexact = 0
            for i in values.indices {
                let d = Self.ulps(Float(got.storage[i]), Float(want.storage[i]))
                if d > 0 { inexact += 1 }
                if d > worst { (worst, worstAt) = (d, i) }
            }
            print("\(cosine ? "cos" : "sin") f32: max \(worst) ulp, \(inexact) of \(values.count) not correctly rounded")
            XCTAssertLessThanOrEqual(worst, 1, "\(cosine ? "cos" : "sin")(\(x.storage[worstAt])) = \(got.storage[worstAt]), reference \(want.storage[worstAt])")
        }
    }

    /// A RoPE table as plain exports compute it: positions [T, 1] × inverse frequencies [1, D/2]
    /// (broadcast multiply), then cos and sin, in f32, bf16 and f16, for odd sizes (vector tails).
    func testRopeTableShapesAndHalfPrecision() throws {
        var r = Random(42)
        for dtype in [DType.f32, .bf16, .f16] {
            var g = RefGraph()
            var outputs: [ValueID] = []
            for (t, half) in [(1, 32), (7, 17), (64, 64), (300, 3)] {
                let positions = HostTensor(dtype: dtype, shape: [t, 1], storage: (0..<t).map { Double($0 * 37 + 5) }).rounded()
                let freqs = HostTensor(dtype: dtype, shape: [1, half], storage: (0..<half).map { pow(10000, -Double($0) / Double(half)) * (0.5 + r.next()) }).rounded()
                let p = g.input(positions), f = g.input(freqs)
                let angle = g.result(), c = g.result(), s = g.result()
                g.append(.multiply(MultiplyOp(a: p, b: f, out: angle)))
                g.append(.cos(CosOp(x: angle, out: c)))
                g.append(.sin(SinOp(x: angle, out: s)))
                outputs += [c, s]
            }
            try ExportOpKernelChecks.check(g, outputs, f32Tolerance: 2e-7, kernels: ["cos_\(dtype.name)", "sin_\(dtype.name)"],
                                           "rope tables \(dtype.name)")
        }
    }
}
