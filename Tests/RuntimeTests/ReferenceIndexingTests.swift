import XCTest
import MLXCIR
@testable import MLXCRuntime

final class ReferenceIndexingTests: XCTestCase {
    typealias K = KernelGraph

    func take(_ x: HostTensor, _ index: HostTensor, axis: Int) throws -> HostTensor {
        try K.eval([x, index]) { g, ids, out in g.op(.take(TakeOp(x: ids[0], out: out, index: .value(ids[1]), axis: axis))) }
    }

    func testTakeScalarRemovesTheAxis() throws {
        let x = K.iota([2, 3])
        let lit = try K.eval([x]) { g, ids, out in g.op(.take(TakeOp(x: ids[0], out: out, index: .literal(-1), axis: 1))) }
        assertTensor(lit, [2], [2, 5])
        assertTensor(try take(x, K.t([], [1], .i64), axis: 0), [3], [3, 4, 5])      // rank-0 value: x[1]
        assertTensor(try take(x, K.t([1], [1], .i64), axis: 0), [1, 3], [3, 4, 5])  // a [1] tensor keeps the axis
        assertThrows(try self.take(x, K.t([], [3], .i64), axis: 1), mentioning: ["take", "index 3", "size 3"])
        assertThrows(try K.eval([x]) { g, ids, out in g.op(.take(TakeOp(x: ids[0], out: out, index: .literal(2), axis: 2))) },
                     mentioning: ["take", "axis 2"])
    }

    func testTakeTensorReplacesTheAxis() throws {
        // np.take(np.arange(6).reshape(3,2), [[2,0],[-1,1]], axis=0)
        let r = try take(K.iota([3, 2]), K.t([2, 2], [2, 0, -1, 1], .i32), axis: 0)
        assertTensor(r, [2, 2, 2], [4, 5, 0, 1, 4, 5, 2, 3])
        // Along a middle axis: x[:, idx, :].
        let y = try take(K.iota([2, 3, 2]), K.t([2], [2, 2], .i64), axis: -2)
        assertTensor(y, [2, 2, 2], [4, 5, 4, 5, 10, 11, 10, 11])
        assertThrows(try self.take(K.iota([3, 2]), K.t([2], [0, -4], .i64), axis: 0), mentioning: ["take", "-4"])
    }

    func testTakeAlongAxis() throws {
        let x = K.t([2, 3], [0, 10, 20, 30, 40, 50])
        let ta = { (i: HostTensor, axis: Int) in
            try K.eval([x, i]) { g, ids, out in g.op(.takeAlongAxis(TakeAlongAxisOp(x: ids[0], indices: ids[1], out: out, axis: axis))) }
        }
        assertTensor(try ta(K.t([2, 2], [0, 2, 1, 1], .i64), 1), [2, 2], [0, 20, 40, 40])     // np.take_along_axis(x, [[0,2],[1,1]], 1)
        assertTensor(try ta(K.t([1, 2], [2, -1], .i64), -1), [2, 2], [20, 20, 50, 50])        // indices broadcast off the axis
        assertThrows(try ta(K.t([2], [0, 1], .i64), 1), mentioning: ["take_along_axis", "rank"])
        assertThrows(try ta(K.t([1, 1], [3], .i64), 1), mentioning: ["take_along_axis", "index 3"])
    }

    func testGather() throws {
        // x = np.arange(24).reshape(2,3,4); out[b] = x[i0[b], 0:3, i2[b]] with slice sizes [1, 3, 1].
        let x = K.iota([2, 3, 4])
        let i0 = K.t([3], [0, 1, 1], .i32), i2 = K.t([3], [3, 0, -2], .i32)
        let r = try K.eval([x, i0, i2]) { g, ids, out in
            g.op(.gather(GatherOp(x: ids[0], indices: [ids[1], ids[2]], out: out, axes: [0, 2], sliceSizes: [1, 3, 1])))
        }
        assertTensor(r, [3, 1, 3, 1], [3, 7, 11, 12, 16, 20, 14, 18, 22])
        // A multi-element slice: np.arange(16).reshape(4,4)[1:3, 0:3].
        let s = try K.eval([K.iota([4, 4]), K.t([], [1], .i64)]) { g, ids, out in
            g.op(.gather(GatherOp(x: ids[0], indices: [ids[1]], out: out, axes: [0], sliceSizes: [2, 3])))
        }
        assertTensor(s, [2, 3], [4, 5, 6, 8, 9, 10])
        // Index 3 with a slice of 2 runs past the axis.
        assertThrows(try K.eval([K.iota([4, 4]), K.t([1], [3], .i64)]) { g, ids, out in
            g.op(.gather(GatherOp(x: ids[0], indices: [ids[1]], out: out, axes: [0], sliceSizes: [2, 4])))
        }, mentioning: ["gather", "index 3"])
        assertThrows(try K.eval([K.iota([4, 4]), K.t([1], [0], .i64)]) { g, ids, out in
            g.op(.gather(GatherOp(x: ids[0], indices: [ids[1]], out: out, axes: [0], sliceSizes: [1])))
        }, mentioning: ["gather", "slice sizes"])
    }

    func testScatterAdd() throws {
        let sa = { (x: HostTensor, i: HostTensor, u: HostTensor, axis: Int) in
            try K.eval([x, i, u]) { g, ids, out in
                g.op(.scatterAdd(ScatterAddOp(x: ids[0], indices: ids[1], updates: ids[2], out: out, axis: axis)))
            }
        }
        // torch.zeros(3,2).scatter_add(0, [[0,1],[0,2]], [[1,2],[3,4]])
        assertTensor(try sa(K.t([3, 2], [0, 0, 0, 0, 0, 0]), K.t([2, 2], [0, 1, 0, 2], .i64), K.t([2, 2], [1, 2, 3, 4]), 0),
                     [3, 2], [4, 0, 0, 2, 0, 4])
        // torch.ones(2,4).scatter_add(1, [[3,3,0],[1,2,1]], [[1,2,3],[4,5,6]])
        assertTensor(try sa(K.t([2, 4], [1, 1, 1, 1, 1, 1, 1, 1]), K.t([2, 3], [3, 3, 0, 1, 2, 1], .i64),
                            K.t([2, 3], [1, 2, 3, 4, 5, 6]), 1),
                     [2, 4], [4, 1, 1, 4, 1, 11, 6, 1])
        assertThrows(try sa(K.t([2], [0, 0]), K.t([1], [2], .i64), K.t([1], [1]), 0), mentioning: ["scatter_add", "index 2"])
    }

    func sliceUpdate(_ dst: HostTensor, _ update: HostTensor, axis: Int64, _ start: Int64, _ stop: Int64, _ step: Int) throws -> HostTensor {
        try K.eval([dst, update]) { g, ids, out in
            g.op(.sliceUpdate(SliceUpdateOp(dst: ids[0], update: ids[1], out: out, axis: .literal(axis), start: .literal(start),
                                            stop: .literal(stop), step: step)))
        }
    }

    func testSliceUpdate() throws {
        let dst = K.t([4, 2], [Double](repeating: 0, count: 8))
        assertTensor(try sliceUpdate(dst, K.t([2, 2], [1, 2, 3, 4]), axis: 0, 1, 3, 1), [4, 2], [0, 0, 1, 2, 3, 4, 0, 0])
        // Step 2, update broadcast from [1, 2]: dst[0:4:2] = [5, 6].
        assertTensor(try sliceUpdate(dst, K.t([1, 2], [5, 6]), axis: 0, 0, 4, 2), [4, 2], [5, 6, 0, 0, 5, 6, 0, 0])
        // Negative start, "to the end" stop, negative axis: dst[:, -1:] = 7.
        assertTensor(try sliceUpdate(dst, K.t([], [7]), axis: -1, -1, .max, 1), [4, 2], [0, 7, 0, 7, 0, 7, 0, 7])
        // Bounds clamp: dst[3:10] = [8, 9].
        assertTensor(try sliceUpdate(dst, K.t([2], [8, 9]), axis: 0, 3, 10, 1), [4, 2], [0, 0, 0, 0, 0, 0, 8, 9])
        // The result keeps dst's dtype.
        let ints = try sliceUpdate(K.t([3], [0, 0, 0], .i32), K.t([1], [2.7]), axis: 0, 1, 2, 1)
        assertTensor(ints, [3], [0, 2, 0], .i32)
        assertThrows(try self.sliceUpdate(dst, K.t([3, 2], [Double](repeating: 1, count: 6)), axis: 0, 0, 2, 1),
                     mentioning: ["slice_update", "[3, 2]"])
        assertThrows(try self.sliceUpdate(dst, K.t([], [1]), axis: 0, 0, 2, 0), mentioning: ["slice_update", "step"])
    }

    func testSliceUpdateWritesStateInPlace() throws {
        // A KV-cache style write: cache[:, pos:pos+1] = value, kept across calls.
        var g = K()
        let cache = g.state(.f32, [1, 3])
        let value = g.input(K.t([1, 1], [0]))
        let pos = g.input(K.t([], [0], .i64)), end = g.input(K.t([], [1], .i64))
        g.op(.sliceUpdate(SliceUpdateOp(dst: cache, update: value, out: cache, axis: .literal(1), start: .value(pos),
                                        stop: .value(end), step: 1)))
        var graph = g.graph
        graph.outputs = [cache]
        let executor = try ReferenceExecutor(graph: graph)
        _ = try executor.run([K.t([1, 1], [5]), K.t([], [0], .i64), K.t([], [1], .i64)])
        let second = try executor.run([K.t([1, 1], [6]), K.t([], [2], .i64), K.t([], [3], .i64)])
        assertTensor(second[0], [1, 3], [5, 0, 6])
        XCTAssertEqual(executor.state[cache]?.storage, [5, 0, 6])
    }

    func testIndexCopy() throws {
        let ic = { (dst: HostTensor, upd: HostTensor, idx: HostTensor, axis: Int) in
            try K.eval([dst, upd, idx]) { g, ids, out in
                g.op(.indexCopy(IndexCopyOp(dst: ids[0], update: ids[1], indices: ids[2], out: out, axis: axis)))
            }
        }
        let dst = K.t([2, 4], [Double](repeating: 0, count: 8))
        // torch.zeros(2,4).index_copy(1, [3, 0], [[1,2],[3,4]])
        assertTensor(try ic(dst, K.t([2, 2], [1, 2, 3, 4]), K.t([2], [3, 0], .i64), 1), [2, 4], [2, 0, 0, 1, 4, 0, 0, 3])
        assertTensor(try ic(dst, K.t([1, 4], [1, 2, 3, 4]), K.t([1], [-1], .i64), 0), [2, 4], [0, 0, 0, 0, 1, 2, 3, 4])
        assertThrows(try ic(dst, K.t([2, 1], [1, 2]), K.t([1], [4], .i64), 1), mentioning: ["index_copy", "index 4"])
        assertThrows(try ic(dst, K.t([2, 2], [1, 2, 3, 4]), K.t([1], [0], .i64), 1), mentioning: ["index_copy", "[2, 2]"])
    }

    func indexPut(_ x: HostTensor, _ indices: [HostTensor], axes: [Int], _ values: HostTensor, accumulate: Bool = false) throws -> HostTensor {
        try K.eval([x, values] + indices) { g, ids, out in
            g.op(.indexPut(IndexPutOp(x: ids[0], indices: Array(ids[2...]), indexAxes: axes, values: ids[1], accumulate: accumulate, out: out)))
        }
    }

    func testIndexPut() throws {
        let zeros = K.t([2, 3, 4], [Double](repeating: 0, count: 24))
        // x[:, [0, 2]] = torch.arange(16.).reshape(2,2,4)
        assertTensor(try indexPut(zeros, [K.t([2], [0, 2], .i64)], axes: [1], K.iota([2, 2, 4])), [2, 3, 4],
                     [0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 12, 13, 14, 15])
        // Non-adjacent axes put the index dims first: x[[0,1], :, [1,3]] = torch.arange(6.).reshape(2,3)
        assertTensor(try indexPut(zeros, [K.t([2], [0, 1], .i64), K.t([2], [1, 3], .i64)], axes: [0, 2], K.iota([2, 3])), [2, 3, 4],
                     [0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5])
        // Index tensors broadcast together: x = zeros(2,3,2); x[:, [[0],[2]], [1,0]] = torch.arange(8.).reshape(2,2,2)
        assertTensor(try indexPut(K.t([2, 3, 2], [Double](repeating: 0, count: 12)), [K.t([2, 1], [0, 2], .i64), K.t([2], [1, 0], .i64)],
                                  axes: [1, 2], K.iota([2, 2, 2])),
                     [2, 3, 2], [1, 0, 0, 0, 3, 2, 5, 4, 0, 0, 7, 6])
        // accumulate adds every duplicate: zeros(4).index_put_(([0,2,0,-1],), [1,2,3,4], accumulate=True)
        assertTensor(try indexPut(K.t([4], [0, 0, 0, 0]), [K.t([4], [0, 2, 0, -1], .i64)], axes: [0], K.t([4], [1, 2, 3, 4]), accumulate: true),
                     [4], [4, 0, 2, 4])
        // A bool mask over two dims: x = arange(6.).reshape(2,3); x[mask] = [10, 20, 30]
        assertTensor(try indexPut(K.iota([2, 3]), [K.t([2, 3], [1, 0, 1, 0, 1, 0], .bool)], axes: [0], K.t([3], [10, 20, 30])),
                     [2, 3], [10, 1, 20, 3, 30, 5])
        // A scalar value broadcasts over the indexed positions.
        assertTensor(try indexPut(K.iota([3]), [K.t([2], [0, 2], .i64)], axes: [0], K.t([], [9])), [3], [9, 1, 9])
        assertThrows(try self.indexPut(K.iota([3]), [K.t([1], [3], .i64)], axes: [0], K.t([], [9])), mentioning: ["index_put", "index 3"])
        assertThrows(try self.indexPut(K.iota([3]), [K.t([2], [0, 1], .i64)], axes: [0], K.t([3], [1, 2, 3])), mentioning: ["index_put", "[3]"])
    }

    func testCopyIntoBroadcastsAndCasts() throws {
        var g = K()
        let dst = g.state(.f32, [2, 3])
        let src = g.input(K.t([3], [1, 2, 3], .i32))
        g.op(.copyInto(CopyIntoOp(dst: dst, src: src, out: dst)))
        var graph = g.graph
        graph.outputs = [dst]
        let executor = try ReferenceExecutor(graph: graph)
        let r = try executor.run(g.feeds)[0]
        assertTensor(r, [2, 3], [1, 2, 3, 1, 2, 3], .f32)
        XCTAssertEqual(executor.state[dst]?.storage, [1, 2, 3, 1, 2, 3])

        let copy = try K.eval([K.t([2], [0, 0], .i32), K.t([1], [2.5])]) { g, ids, out in
            g.op(.copyInto(CopyIntoOp(dst: ids[0], src: ids[1], out: out)))
        }
        assertTensor(copy, [2], [2, 2], .i32)
        assertThrows(try K.eval([K.t([2], [0, 0]), K.t([3], [1, 2, 3])]) { g, ids, out in
            g.op(.copyInto(CopyIntoOp(dst: ids[0], src: ids[1], out: out)))
        }, mentioning: ["copy_into", "[3]", "[2]"])
    }
}
