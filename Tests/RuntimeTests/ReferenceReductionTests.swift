import XCTest
import MLXCIR
@testable import MLXCRuntime

private func T(_ xs: [Double], _ shape: [Int]? = nil, _ dtype: DType = .f32) -> HostTensor { RefGraph.tensor(xs, shape, dtype) }

private func apply(_ x: HostTensor, outType: TensorType? = nil, _ make: (ValueID, ValueID) -> Op) throws -> HostTensor {
    try RefGraph.run([x], outType: outType) { ids, out in make(ids[0], out) }
}

/// Reduction reference kernels against NumPy/PyTorch results (the expression is in the comment).
final class ReferenceReductionTests: XCTestCase {
    /// x = np.array([[1.5, -2, 3, 0.25], [4, 5.5, -6, 7], [0.5, 8, 9, -10]])
    let x = T([1.5, -2, 3, 0.25, 4, 5.5, -6, 7, 0.5, 8, 9, -10], [3, 4], .f64)

    func testSumOverAxesAllAndKeepdims() throws {
        assertRefTensor(try apply(x) { .sum(SumOp(x: $0, out: $1, axes: [0])) }, [6, 11.5, 6, -2.75], shape: [4], dtype: .f64)
        assertRefTensor(try apply(x) { .sum(SumOp(x: $0, out: $1, axes: [-1], keepdims: true)) }, [2.75, 10.5, 7.5], shape: [3, 1])
        assertRefTensor(try apply(x) { .sum(SumOp(x: $0, out: $1)) }, [20.75], shape: [])
        assertRefTensor(try apply(x) { .sum(SumOp(x: $0, out: $1, axes: [1, 0], keepdims: true)) }, [20.75], shape: [1, 1])
        let s3 = try apply(T(Array(0..<24).map(Double.init), [2, 3, 4])) { .sum(SumOp(x: $0, out: $1, axes: [0, 2])) }
        // np.arange(24).reshape(2, 3, 4).sum((0, 2)) == [60, 92, 124]
        assertRefTensor(s3, [60, 92, 124], shape: [3])
    }

    func testSumDTypes() throws {
        // Ints and bools: the declared integer type (PyTorch int64), else MLX's (int32 up to 32 bits).
        let i = T([1, 2, 3], nil, .i32)
        assertRefTensor(try apply(i, outType: TensorType(.i64, [])) { .sum(SumOp(x: $0, out: $1)) }, [6], shape: [], dtype: .i64)
        assertRefTensor(try apply(i) { .sum(SumOp(x: $0, out: $1)) }, [6], shape: [], dtype: .i32)
        assertRefTensor(try apply(T([1, 0, 1], nil, .bool)) { .sum(SumOp(x: $0, out: $1)) }, [2], shape: [], dtype: .i32)
        assertRefTensor(try apply(T([200, 100], nil, .u8)) { .sum(SumOp(x: $0, out: $1)) }, [300], shape: [], dtype: .u32)
        // bf16 sums in Double and rounds once: 256 + 1 + 1 = 258 → 258 (bf16 steps by 2 there).
        assertRefTensor(try apply(T([256, 1, 1], nil, .bf16)) { .sum(SumOp(x: $0, out: $1)) }, [258], shape: [], dtype: .bf16)
    }

    func testMeanVarStd() throws {
        assertRefTensor(try apply(x) { .mean(MeanOp(x: $0, out: $1, axes: [1])) }, [0.6875, 2.625, 1.875], shape: [3], dtype: .f64)
        assertRefTensor(try apply(x) { .mean(MeanOp(x: $0, out: $1)) }, [1.7291666666666667], shape: [], tol: 1e-15)
        // x.var(0), x.var(0, ddof=1), x.std(1, ddof=1), x.std()
        assertRefTensor(try apply(x) { .`var`(VarOp(x: $0, out: $1, axes: [0])) },
                        [2.1666666666666665, 18.055555555555557, 38.0, 48.84722222222223], shape: [4], tol: 1e-15)
        assertRefTensor(try apply(x) { .`var`(VarOp(x: $0, out: $1, axes: [0], ddof: 1)) },
                        [3.25, 27.083333333333336, 57.0, 73.27083333333334], shape: [4], tol: 1e-15)
        assertRefTensor(try apply(x) { .std(StdOp(x: $0, out: $1, axes: [1], keepdims: true, ddof: 1)) },
                        [2.115173357749509, 5.878988008152423, 8.77852493303972], shape: [3, 1], tol: 1e-15)
        assertRefTensor(try apply(x) { .std(StdOp(x: $0, out: $1)) }, [5.446193561154025], shape: [], tol: 1e-15)
        // Ints average to f32 (MLX at_least_float).
        assertRefTensor(try apply(T([1, 2], nil, .i32)) { .mean(MeanOp(x: $0, out: $1)) }, [1.5], shape: [], dtype: .f32)
        // ddof ≥ count divides by zero: inf (MLX normalizer max(n - ddof, 0)).
        assertRefTensor(try apply(T([1, 2])) { .`var`(VarOp(x: $0, out: $1, ddof: 2)) }, [.infinity], shape: [])
    }

    func testProdMaxMin() throws {
        assertRefTensor(try apply(x) { .prod(ProdOp(x: $0, out: $1, axes: [1])) }, [-2.25, -924, -360], shape: [3])
        assertRefTensor(try apply(x) { .max(MaxOp(x: $0, out: $1, axes: [0])) }, [4, 8, 9, 7], shape: [4])
        assertRefTensor(try apply(x) { .min(MinOp(x: $0, out: $1, axes: [1])) }, [-2, -6, -10], shape: [3])
        assertRefTensor(try apply(T([1, .nan, 3])) { .max(MaxOp(x: $0, out: $1)) }, [.nan], shape: [])
        assertRefTensor(try apply(T([5, -3], nil, .i32)) { .min(MinOp(x: $0, out: $1)) }, [-3], shape: [], dtype: .i32)
        assertRefError(["max", "size 0"]) { _ = try apply(T([], [0, 2])) { .max(MaxOp(x: $0, out: $1, axes: [0])) } }
        // Empty sums and products are their identities.
        assertRefTensor(try apply(T([], [0, 2])) { .sum(SumOp(x: $0, out: $1, axes: [0])) }, [0, 0], shape: [2])
        assertRefTensor(try apply(T([], [0, 2])) { .prod(ProdOp(x: $0, out: $1, axes: [0])) }, [1, 1], shape: [2])
    }

    func testMedian() throws {
        // np.median(x, 1), np.median(x, 0), np.median(x): the mean of the two middles when even (MLX and NumPy).
        assertRefTensor(try apply(x) { .median(MedianOp(x: $0, out: $1, axes: [1])) }, [0.875, 4.75, 4.25], shape: [3])
        assertRefTensor(try apply(x) { .median(MedianOp(x: $0, out: $1, axes: [0])) }, [1.5, 5.5, 3, 0.25], shape: [4])
        assertRefTensor(try apply(x) { .median(MedianOp(x: $0, out: $1)) }, [2.25], shape: [])
        assertRefTensor(try apply(T([1, .nan, 2])) { .median(MedianOp(x: $0, out: $1)) }, [.nan], shape: [])
    }

    func testLogSumExp() throws {
        // torch.logsumexp(torch.tensor(x), dim=1) and over all dims
        assertRefTensor(try apply(x) { .logSumExp(LogSumExpOp(x: $0, out: $1, axes: [1])) },
                        [3.257580508495379, 7.24131307236366, 9.31341042784845], shape: [3], tol: 1e-15)
        assertRefTensor(try apply(x) { .logSumExp(LogSumExpOp(x: $0, out: $1)) }, [9.434091977384762], shape: [], tol: 1e-15)
        // torch.logsumexp(torch.tensor([[-inf, -inf], [inf, 0.]]), dim=1) == [-inf, inf]
        assertRefTensor(try apply(T([-.infinity, -.infinity, .infinity, 0], [2, 2])) { .logSumExp(LogSumExpOp(x: $0, out: $1, axes: [1])) },
                        [-.infinity, .infinity], shape: [2])
        // Large values do not overflow.
        assertRefTensor(try apply(T([1000, 1000], nil, .f64)) { .logSumExp(LogSumExpOp(x: $0, out: $1)) },
                        [1000 + log(2.0)], shape: [], tol: 1e-15)
    }

    func testAnyAll() throws {
        let b = T([0, 1, 0, 0, 0, 0], [2, 3], .bool)
        assertRefTensor(try apply(b) { .any(AnyOp(x: $0, out: $1, axes: [1])) }, [1, 0], shape: [2], dtype: .bool)
        assertRefTensor(try apply(b) { .all(AllOp(x: $0, out: $1, axes: [0], keepdims: true)) }, [0, 0, 0], shape: [1, 3], dtype: .bool)
        assertRefTensor(try apply(T([1, 2, .nan])) { .all(AllOp(x: $0, out: $1)) }, [1], shape: [], dtype: .bool)
        assertRefTensor(try apply(T([], [0])) { .any(AnyOp(x: $0, out: $1)) }, [0], shape: [])
        assertRefTensor(try apply(T([], [0])) { .all(AllOp(x: $0, out: $1)) }, [1], shape: [])
    }

    func testArgmaxArgminFirstOccurrence() throws {
        // z = np.float32([[3, 1, 3], [2, 2, 0]]): z.argmax(1), z.argmin(1), z.argmax(0), z.argmin(0)
        let z = T([3, 1, 3, 2, 2, 0], [2, 3])
        assertRefTensor(try apply(z) { .argmax(ArgmaxOp(x: $0, out: $1, axis: 1)) }, [0, 0], shape: [2], dtype: .u32)
        assertRefTensor(try apply(z) { .argmin(ArgminOp(x: $0, out: $1, axis: -1)) }, [1, 2], shape: [2], dtype: .u32)
        assertRefTensor(try apply(z) { .argmax(ArgmaxOp(x: $0, out: $1, axis: 0, keepdims: true)) }, [0, 1, 0], shape: [1, 3])
        // The declared type wins (PyTorch's int64).
        assertRefTensor(try apply(z, outType: TensorType(.i64, [.fixed(3)])) { .argmin(ArgminOp(x: $0, out: $1, axis: 0)) },
                        [1, 0, 1], shape: [3], dtype: .i64)
        // NaN is the extreme both ways (torch.argmax / torch.argmin).
        let n = T([1, .nan, 5, .nan])
        assertRefTensor(try apply(n) { .argmax(ArgmaxOp(x: $0, out: $1)) }, [1], shape: [])
        assertRefTensor(try apply(n) { .argmin(ArgminOp(x: $0, out: $1)) }, [1], shape: [])
        assertRefError(["argmax", "empty"]) { _ = try apply(T([], [0])) { .argmax(ArgmaxOp(x: $0, out: $1)) } }
        assertRefError(["argmax", "axis 2"]) { _ = try apply(z) { .argmax(ArgmaxOp(x: $0, out: $1, axis: 2)) } }
    }

    func testCumsum() throws {
        // np.cumsum(x, 1)
        assertRefTensor(try apply(x) { .cumsum(CumsumOp(x: $0, out: $1, axis: 1)) },
                        [1.5, -0.5, 2.5, 2.75, 4, 9.5, 3.5, 10.5, 0.5, 8.5, 17.5, 7.5], shape: [3, 4])
        // np.flip(np.cumsum(np.flip(x, 0), 0), 0)
        assertRefTensor(try apply(x) { .cumsum(CumsumOp(x: $0, out: $1, axis: 0, reverse: true)) },
                        [6, 11.5, 6, -2.75, 4.5, 13.5, 3, -3, 0.5, 8, 9, -10], shape: [3, 4])
        // Exclusive: each output sums the elements strictly before it.
        assertRefTensor(try apply(T([1, 2, 3, 4])) { .cumsum(CumsumOp(x: $0, out: $1, inclusive: false)) }, [0, 1, 3, 6])
        assertRefTensor(try apply(T([1, 2, 3, 4])) { .cumsum(CumsumOp(x: $0, out: $1, reverse: true, inclusive: false)) }, [9, 7, 4, 0])
        assertRefTensor(try apply(T([1, 1, 0], nil, .bool)) { .cumsum(CumsumOp(x: $0, out: $1)) }, [1, 2, 2], dtype: .i32)
    }

    func testSortAndArgsortAreStableWithNaNLast() throws {
        let y = T([3, 1, 2, 1, .nan, 0.5])
        // np.argsort(y, kind="stable"), np.sort(y)
        assertRefTensor(try apply(y) { .argsort(ArgsortOp(x: $0, out: $1)) }, [5, 1, 3, 2, 0, 4], dtype: .u32)
        assertRefTensor(try apply(y) { .sort(SortOp(x: $0, out: $1)) }, [0.5, 1, 1, 2, 3, .nan], dtype: .f32)
        // Along axis 0: np.argsort(z, 0, kind="stable"), np.sort(z, 0)
        let z = T([3, 1, 3, 2, 2, 0], [2, 3])
        assertRefTensor(try apply(z, outType: TensorType(.i32, [.fixed(2), .fixed(3)])) { .argsort(ArgsortOp(x: $0, out: $1, axis: 0)) },
                        [1, 0, 1, 0, 1, 0], shape: [2, 3], dtype: .i32)
        assertRefTensor(try apply(z) { .sort(SortOp(x: $0, out: $1, axis: -2)) }, [2, 1, 0, 3, 2, 3], shape: [2, 3])
    }

    func testPartitionIsAValidPartition() throws {
        let y = T([5, 1, 4, 2, 3, 0], [6], .i32)
        let p = try apply(y) { .partition(PartitionOp(x: $0, out: $1, kth: .literal(2))) }
        XCTAssertEqual(p.dtype, .i32)
        XCTAssertEqual(p.storage[2], 2)
        XCTAssertTrue(p.storage[..<2].allSatisfy { $0 <= 2 } && p.storage[3...].allSatisfy { $0 >= 2 }, "\(p.storage)")
        let ap = try apply(y) { .argPartition(ArgPartitionOp(x: $0, out: $1, kth: .literal(-1))) }
        XCTAssertEqual(ap.dtype, .u32)
        XCTAssertEqual(Set(ap.storage), Set([0, 1, 2, 3, 4, 5]))
        XCTAssertEqual(y.storage[Int(ap.storage[5])], 5)
        assertRefError(["partition", "kth 6"]) { _ = try apply(y) { .partition(PartitionOp(x: $0, out: $1, kth: .literal(6))) } }
    }

    func testAxisErrorsAndRankZero() throws {
        assertRefError(["sum", "axis 2", "rank 2"]) { _ = try apply(self.x) { .sum(SumOp(x: $0, out: $1, axes: [2])) } }
        assertRefError(["mean", "twice"]) { _ = try apply(self.x) { .mean(MeanOp(x: $0, out: $1, axes: [1, -1])) } }
        let s = T([4], [])
        assertRefTensor(try apply(s) { .sum(SumOp(x: $0, out: $1)) }, [4], shape: [])
        assertRefTensor(try apply(s) { .sum(SumOp(x: $0, out: $1, axes: [0], keepdims: true)) }, [4], shape: [])
        assertRefTensor(try apply(s) { .argmax(ArgmaxOp(x: $0, out: $1)) }, [0], shape: [])
        assertRefTensor(try apply(s) { .cumsum(CumsumOp(x: $0, out: $1)) }, [4], shape: [])
    }
}
