import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// User Metal kernels (MLX's `metal_kernel` with its own source) compiled for the CPU as the Metal subset:
/// hand-written kernels whose meaning is computed here in Swift — the reference interpreter must give it, and the
/// compiled kernel the reference's results (f32 within 1e-6 of the largest value: the vector exp/tanh against libm's;
/// half within one half ulp step) — and constructs outside the subset refused with one line naming the kernel, its
/// fingerprint and the construct.
final class MetalSubsetTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Kernel {
        var name = "k", source: String
        var inputs: [(String, HostTensor)]
        var outputs: [(String, DType, [Int])]
        var grid: [Int], group = [32, 1, 1]
        var template: [(String, Int, Int)] = []   // name, kind (0 int, 1 bool, 2 dtype), value
        var initValue: Double? = nil

        func op(_ inputIDs: [ValueID], _ outIDs: [ValueID]) -> MetalKernelOp {
            MetalKernelOp(name: name, source: source, inputs: inputIDs, outputs: outIDs, grid: grid.map { .literal(Int64($0)) },
                          threadgroup: group.map { .literal(Int64($0)) }, inputNames: inputs.map(\.0), outputNames: outputs.map(\.0),
                          outputShapesFlat: outputs.flatMap { $0.2.map { .literal(Int64($0)) } }, outputShapeLengths: outputs.map(\.2.count),
                          outputDtypes: outputs.map(\.1), templateArgNames: template.map(\.0), templateArgKinds: template.map(\.1),
                          templateArgValues: template.map(\.2), initValue: initValue)
        }

        /// The reference's outputs, after checking the compiled kernel against them.
        func run(halfScaled: Double? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> [HostTensor] {
            var g = RefGraph()
            let ids = inputs.map { g.input($0.1) }
            let outs = outputs.map { g.result(TensorType($0.1, fixed: $0.2)) }
            g.append(.metalKernel(op(ids, outs)))
            try ExportOpKernelChecks.check(g, outs, f32Tolerance: 1e-6, halfScaled: halfScaled, kernels: ["metal_subset_\(name)_"],
                                           name, file: file, line: line)
            return try g.run(outs)
        }
    }

    func assertEqual(_ got: HostTensor, _ want: [Double], tolerance: Double = 0, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.storage.count, want.count, what, file: file, line: line)
        let scale = max(want.map(abs).max() ?? 1, 1e-30)
        for (i, (g, w)) in zip(got.storage, want).enumerated() where !(abs(g - w) <= tolerance * scale) {
            return XCTFail("\(what)[\(i)]: \(g), expected \(w)", file: file, line: line)
        }
    }

    /// A 2-D grid wider than the data (threads past the end return), shapes read from `a_shape`, float literals.
    func testElementwiseOverATwoDimensionalGrid() throws {
        var r = Random(1)
        let a = r.tensor([5, 7]), b = r.tensor([5, 7])
        let k = Kernel(name: "axpy2d", source: """
            uint x = thread_position_in_grid.x;
            uint y = thread_position_in_grid.y;
            if (x >= a_shape[1] || y >= uint(a_shape[0])) { return; }
            uint i = y * a_shape[1] + x;
            out[i] = a[i] * 2.0f + b[i];   // row-major
            """, inputs: [("a", a), ("b", b)], outputs: [("out", .f32, [5, 7])], grid: [9, 6, 1], group: [4, 2, 1])
        let out = try k.run()[0]
        assertEqual(out, zip(a.storage, b.storage).map { Double(Float(Float($0) * 2) + Float($1)) }, "2a + b")
    }

    /// A loop per thread with a template constant, `continue`, `break`, compound assignment, `++j`.
    func testRowSumsWithLoopControl() throws {
        var r = Random(2)
        var x = r.tensor([6, 10], -1, 1)
        x.storage[13] = 50   // row 1 stops at its 4th element
        let k = Kernel(name: "rowsum", source: """
            const uint row = thread_position_in_grid.x;
            float s = 0.0f;
            for (int j = 0; j < N; ++j) {
                float v = x[row * N + j];
                if (v < 0.0f) continue;   // negatives skipped
                if (v > 10.0f) { break; }
                s += v;
            }
            out[row] = s;
            """, inputs: [("x", x)], outputs: [("out", .f32, [6])], grid: [6, 1, 1], template: [("N", 0, 10)])
        var want: [Double] = []
        for row in 0..<6 {
            var s: Float = 0
            for j in 0..<10 {
                let v = Float(x.storage[row * 10 + j])
                if v < 0 { continue }
                if v > 10 { break }
                s += v
            }
            want.append(Double(s))
        }
        assertEqual(try k.run()[0], want, "row sums")
    }

    /// half in and out through a dtype template parameter, `?:`, casts, exp and tanh; a while loop.
    func testHalfMathWithADTypeTemplate() throws {
        var r = Random(3)
        let x = r.tensor([40], -3, 3, .f16)
        let k = Kernel(name: "halfmath", source: """
            uint i = thread_position_in_grid.x;
            T v = x[i];
            float w = v > T(0) ? metal::exp((float)v) : tanh(float(v));
            int n = 0;
            while (w > 2.0f) { w = w * 0.5f; n += 1; }
            out[i] = static_cast<T>(w + n);
            """, inputs: [("x", x)], outputs: [("out", .f16, [40])], grid: [40, 1, 1], template: [("T", 2, Int(DType.f16.rawValue))])
        let want = x.storage.map { v -> Double in
            var w = v > 0 ? Float(exp(v)) : Float(tanh(v))
            var n = 0
            while w > 2 { w *= 0.5; n += 1 }
            return Double(Float16(w + Float(n)))
        }
        assertEqual(try k.run(halfScaled: 0x1p-10)[0], want, tolerance: 0x1p-10, "half math")
    }

    /// int32 arithmetic as C does it: truncating division and remainder, shifts, bitwise ops, unsigned conversion.
    func testIntegerArithmetic() throws {
        let values: [Double] = [-17, -5, -1, 0, 1, 2, 7, 100, 12345, -40000, 2_000_000_000, -2_000_000_000]
        let a = HostTensor(dtype: .i32, shape: [values.count], storage: values)
        let k = Kernel(name: "ints", source: """
            uint i = thread_position_in_grid.x;
            int v = a[i];
            int q = v / 3 + (v % 5) * 7 - (v >> 1);
            uint u = (uint)v & 0xFFu;
            out[i] = q ^ (v << 2) + (int)u;   // '+' binds tighter than '^'
            big[i] = v * 3;                   // wraps
            """, inputs: [("a", a)], outputs: [("out", .i32, [values.count]), ("big", .i32, [values.count])], grid: [values.count, 1, 1])
        let outs = try k.run()
        let want = values.map { d -> Double in
            let v = Int32(d)
            let q = v / 3 &+ (v % 5) &* 7 &- (v >> 1)
            let u = UInt32(bitPattern: v) & 0xFF
            return Double(q ^ ((v &<< 2) &+ Int32(bitPattern: u)))
        }
        assertEqual(outs[0], want, "int arithmetic")
        assertEqual(outs[1], values.map { Double(Int32(d: $0) &* 3) }, "int wrap")
    }

    /// Threadgroup builtins from the grid and group sizes; an init value for elements no thread writes.
    func testThreadgroupBuiltinsAndInitValue() throws {
        let a = HostTensor(dtype: .f32, shape: [1], storage: [0])
        let k = Kernel(name: "groups", source: """
            uint i = thread_position_in_grid.x;
            out[2 * i] = threadgroup_position_in_grid.x * 1000 + thread_position_in_threadgroup.x
                       + 100 * (threads_per_threadgroup.x + threadgroups_per_grid.x) + 0 * a[0];
            """, inputs: [("a", a)], outputs: [("out", .f32, [24])], grid: [10, 1, 1], group: [4, 1, 1], initValue: 7)
        let want = (0..<24).map { j -> Double in
            guard j % 2 == 0, j / 2 < 10 else { return 7 }
            let i = j / 2
            return Double((i / 4) * 1000 + i % 4 + 100 * (4 + 3))
        }
        assertEqual(try k.run()[0], want, "builtins")
    }

    /// What is outside the subset: one line naming the kernel, its fingerprint and the construct, from the program
    /// builder (which `mlxc conformance` reports as the skip reason) and from the reference.
    func testConstructsOutsideTheSubsetAreNamed() throws {
        let x = HostTensor(dtype: .f32, shape: [4], storage: [1, 2, 3, 4])
        let cases: [(String, String)] = [
            ("threadgroup float tile[32]; out[0] = x[0];", "threadgroup memory"),
            ("threadgroup_barrier(mem_flags::mem_threadgroup); out[0] = x[0];", "barriers"),
            ("out[0] = simd_sum(x[thread_position_in_grid.x]);", "simd-group functions"),
            ("out[0] = x[0] + thread_index_in_simdgroup;", "simd-group builtins"),
            ("atomic_fetch_add_explicit(out, 1.0f, memory_order_relaxed);", "atomics"),
            ("out[0] = my_helper(x[0]);", "function 'my_helper'"),
            ("x[0] = 1.0f;", "input 'x' is read-only"),
            ("float v[4]; out[0] = x[0];", "thread-local arrays"),
            ("out[0] = *x;", "pointer operations"),
            ("out[0] = x[0] % 2.0f;", "'%' on floating-point operands"),
        ]
        for (source, construct) in cases {
            var g = RefGraph()
            let input = g.input(x), out = g.result(TensorType(.f32, fixed: [4]))
            let k = Kernel(name: "bad", source: source, inputs: [("x", x)], outputs: [("out", .f32, [4])], grid: [4, 1, 1])
            let op = k.op([input], [out])
            XCTAssertThrowsError(try op.subsetProgram(inputTypes: [TensorType(.f32, fixed: [4])]), construct) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("metal_kernel \"bad\" (source fingerprint \(op.fingerprint)): "), message)
                XCTAssertTrue(message.contains(construct), "\(construct): \(message)")
                XCTAssertFalse(message.contains("\n"), message)
            }
            g.append(.metalKernel(op))
            XCTAssertThrowsError(try g.run([out])) { XCTAssertTrue("\($0)".contains(construct), "\($0)") }
        }
    }
}

private extension Int32 {
    init(d: Double) { self = Int32(d) }
}
