import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The MoE router's small ops against the reference executor, all exact: sorts (argsort, sort,
/// partition and arg_partition, which the reference defines as the stable full sort, NaN last)
/// on lanes full of ties, NaNs and signed zeros, along the last axis and an outer one, float and
/// integer keys, u32 (MLX) and i32 (declared, plain programs) indices; take_along_axis with
/// negative indices; repeat; integer floor_divide with negative operands and divisors.
final class JITMoERouterTests: XCTestCase {
    typealias Random = JITKernelTests.Random
    /// The kernel tests' run-and-compare helpers (failures are recorded against the running test).
    let harness = JITKernelTests(name: "JITMoERouterTests.harness", testClosure: { _ in })

    /// Values drawn from a few keys, so most lanes hold ties (and NaN, -0 and +0 among them).
    func tied(_ r: inout Random, _ shape: [Int], _ dtype: DType = .f32) -> HostTensor {
        let keys: [Double] = [-1, 0, -0.0, 0.5, 1, .nan]
        let n = shape.reduce(1, *)
        return HostTensor(dtype: dtype, shape: shape, storage: (0..<n).map { _ in keys[Int(r.next() * Double(keys.count))] })
    }

    func checkOne(_ x: HostTensor, outType: TensorType? = nil, kernel: String, _ what: String, _ make: (ValueID, ValueID) -> Op,
                  file: StaticString = #filePath, line: UInt = #line) throws {
        var g = RefGraph()
        let v = g.input(x)
        let out = g.result(outType)
        g.append(make(v, out))
        try harness.check(g, [out], .exact, kernels: [kernel], what, file: file, line: line)
    }

    func testSortsWithTiesAndNaN() throws {
        var r = Random(1)
        for (shape, axis) in [([6, 5], -1), ([6, 5], 0), ([3, 4, 2], 1), ([64], 0), ([7, 2], -1)] {
            for dtype in [DType.f32, .bf16] {
                let x = tied(&r, shape, dtype)
                let what = "\(dtype.name) \(shape) axis \(axis)"
                try checkOne(x, kernel: "argsort_\(dtype.name)_to_u32", "argsort \(what)") { .argsort(ArgsortOp(x: $0, out: $1, axis: axis)) }
                try checkOne(x, kernel: "sort_\(dtype.name)", "sort \(what)") { .sort(SortOp(x: $0, out: $1, axis: axis)) }
                let size = shape[axis < 0 ? axis + shape.count : axis]
                try checkOne(x, kernel: "sort_\(dtype.name)", "partition \(what)") {
                    .partition(PartitionOp(x: $0, out: $1, kth: .literal(Int64(-min(2, size))), axis: axis))
                }
                try checkOne(x, kernel: "argsort_\(dtype.name)_to_u32", "arg_partition \(what)") {
                    .argPartition(ArgPartitionOp(x: $0, out: $1, kth: .literal(1), axis: axis))
                }
                // A plain program's argsort declares i32 indices.
                try checkOne(x, outType: TensorType(.i32, fixed: shape), kernel: "argsort_\(dtype.name)_to_i32", "argsort i32 \(what)") {
                    .argsort(ArgsortOp(x: $0, out: $1, axis: axis))
                }
            }
        }
    }

    /// A partition whose kth is a run-time value (a dynamic top-k): the kernel must not write over
    /// the kth operand, and the value read after it (the slice start) must be intact.
    func testPartitionWithRunTimeKth() throws {
        var r = Random(4)
        var g = RefGraph()
        let x = g.input(tied(&r, [4, 8], .f32)), kth = g.input(HostTensor.scalar(-3, .i64))
        let parted = g.result(), top = g.result()
        g.append(.partition(PartitionOp(x: x, out: parted, kth: .value(kth), axis: -1)))
        g.append(.slice(SliceOp(x: parted, out: top, axis: .literal(-1), start: .value(kth), stop: .literal(8))))
        try harness.check(g, [parted, top], .exact, kernels: ["sort_f32_skip1"], "partition with kth as a value")
    }

    /// The router sorts expert ids (u32, then i32 positions) to group tokens by expert.
    func testIntegerArgsort() throws {
        var r = Random(2)
        try checkOne(r.ints([64], 0, 7, .u32), kernel: "argsort_u32_to_u32", "u32 expert ids") { .argsort(ArgsortOp(x: $0, out: $1)) }
        try checkOne(r.ints([33], -5, 5, .i32), kernel: "argsort_i32_to_u32", "i32 keys") { .argsort(ArgsortOp(x: $0, out: $1)) }
        try checkOne(r.ints([4, 9], -3, 3, .i64), kernel: "sort_i64", "i64 sort") { .sort(SortOp(x: $0, out: $1, axis: -1)) }
    }

    func testTakeAlongAxis() throws {
        var r = Random(3)
        for (xShape, iShape, axis, lo, dtype) in [([5, 4], [5, 2], -1, 0, DType.u32), ([5, 4], [5, 3], 1, -4, .i32),
                                                   ([4, 3], [2, 3], 0, -4, .i64), ([2, 6, 3], [2, 2, 3], 1, -6, .i64)] {
            var g = RefGraph()
            let x = g.input(r.tensor(xShape))
            let idx = g.input(r.ints(iShape, lo, xShape[axis < 0 ? axis + xShape.count : axis] - 1, dtype))
            let out = g.result()
            g.append(.takeAlongAxis(TakeAlongAxisOp(x: x, indices: idx, out: out, axis: axis)))
            try harness.check(g, [out], .exact, kernels: ["take_along_axis_b32_\(dtype.name)index"], "take_along_axis \(xShape) \(iShape) axis \(axis)")
        }
    }

    func testRepeat() throws {
        var r = Random(4)
        try checkOne(r.tensor([5, 8]), kernel: "strided_copy", "repeat rows") { .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(2), axis: 0)) }
        try checkOne(r.ints([2, 3, 4], -9, 9, .i32), kernel: "strided_copy", "repeat middle") {
            .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(3), axis: 1))
        }
        try checkOne(r.tensor([3, 5], -1, 1, .bf16), kernel: "strided_copy", "repeat last") {
            .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(4), axis: -1))
        }
    }

    func testIntegerFloorDivide() throws {
        var r = Random(5)
        for dtype in [DType.i32, .i64] {
            for divisor in [2.0, -3, 1, -1] {
                var g = RefGraph()
                let a = g.input(r.ints([7, 9], -50, 50, dtype))
                let b = g.literal(divisor, dtype)
                let out = g.result()
                g.append(.floorDivide(FloorDivideOp(a: a, b: b, out: out)))
                try harness.check(g, [out], .exact, kernels: ["floor_divide_\(dtype.name)"], "floor_divide \(dtype.name) by \(divisor)")
            }
            // A tensor divisor broadcast over rows, mixed signs.
            var g = RefGraph()
            let a = g.input(r.ints([4, 6], -20, 20, dtype))
            let b = g.graph.addValue(TensorType(dtype, fixed: [6]), .constant(.literal([3, -2, 7, -7, 1, -1])))
            let out = g.result()
            g.append(.floorDivide(FloorDivideOp(a: a, b: b, out: out)))
            try harness.check(g, [out], .exact, kernels: ["floor_divide_\(dtype.name)"], "floor_divide \(dtype.name) by a row")
        }
    }
}
