import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Kernels Phi-4's longrope program needed, against the reference executor:
/// - integer `max` / `min` over adjacent axes (max(position_ids) + 1 picks the short or long
///   factors): exact, signed and unsigned, the types' extremes, every axis and all axes;
/// - `base ** y` for a constant scalar base (the in-graph inv_freq), ≤ 2e-6 relative.
final class JITIntegerReductionAndPowerTests: XCTestCase {
    func testIntegerMaxMinAreExact() throws {
        var r = JITKernelTests.Random(91)
        let extremes: [DType: (Double, Double)] = [.i64: (-9.2e18, 9.2e18), .i32: (Double(Int32.min), Double(Int32.max)),
                                                    .u8: (0, 255), .i8: (-128, 127)]
        for dtype in [DType.i64, .i32, .u8, .i8] {
            for (shape, axes) in [([3, 37], [1]), ([2, 5, 33], [1]), ([4, 1, 20], [1, 2]), ([5, 9], [0]), ([1, 300], []), ([1, 7], [-1])] {
                var x = r.ints(shape, -100, 100, dtype)
                if dtype == .u8 { x.storage = x.storage.map { abs($0) } }
                let (lo, hi) = extremes[dtype]!
                x.storage[0] = lo
                x.storage[x.count - 1] = hi
                var g = RefGraph()
                let v = g.input(x)
                let mx = g.result(), mn = g.result(), mk = g.result()
                g.append(.max(MaxOp(x: v, out: mx, axes: axes, keepdims: false)))
                g.append(.min(MinOp(x: v, out: mn, axes: axes, keepdims: false)))
                g.append(.max(MaxOp(x: v, out: mk, axes: axes, keepdims: true)))
                try ExportOpKernelChecks.check(g, [mx, mn, mk], f32Tolerance: 0,
                                               kernels: ["reduce_max_\(dtype.name)", "reduce_min_\(dtype.name)"],
                                               "integer max/min \(dtype.name) \(shape) axes \(axes)")
            }
        }
    }

    func testPowerOfAConstantBase() throws {
        var r = JITKernelTests.Random(92)
        for base in [10000.0, 500000.0, 2.0, 0.5] {
            var g = RefGraph()
            let b = g.literal(base, .f32)
            let y = g.input(r.tensor([37], -1, 1))
            let out = g.result()
            g.append(.power(PowerOp(a: b, b: y, out: out)))
            try ExportOpKernelChecks.check(g, [out], f32Tolerance: 2e-6, kernels: ["pow_base"], "\(base) ** y")
        }
    }
}
