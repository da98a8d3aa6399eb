import XCTest
import MLXCIR
@testable import MLXCRuntime

/// A hand-built graph for kernel tests: typed inputs fed in order, untyped computed values, run by
/// the reference executor (no program file).
struct KernelGraph {
    var graph = Graph(name: "test")
    var feeds: [HostTensor] = []

    static func t(_ shape: [Int], _ values: [Double], _ dtype: DType = .f32) -> HostTensor {
        HostTensor(dtype: dtype, shape: shape, storage: values)
    }

    /// 0, 1, 2, ... in `shape`.
    static func iota(_ shape: [Int], _ dtype: DType = .f32) -> HostTensor {
        HostTensor(dtype: dtype, shape: shape, storage: (0..<shape.reduce(1, *)).map(Double.init))
    }

    mutating func input(_ t: HostTensor) -> ValueID {
        let v = graph.addValue(TensorType(t.dtype, fixed: t.shape), .input(position: feeds.count))
        graph.inputs.append(v)
        feeds.append(t)
        return v
    }

    mutating func value() -> ValueID { graph.addValue(nil, .computed) }

    mutating func state(_ dtype: DType, _ shape: [Int]) -> ValueID {
        graph.addValue(TensorType(dtype, fixed: shape), .state(initial: nil))
    }

    mutating func op(_ op: Op) { graph.append(op) }

    func run(_ outputs: [ValueID]) throws -> [HostTensor] {
        var g = graph
        g.outputs = outputs
        return try ReferenceExecutor(graph: g).run(feeds)
    }

    /// Builds a graph with one input per tensor, lets `build` emit ops and name the one output, runs it.
    static func eval(_ inputs: [HostTensor], _ build: (inout KernelGraph, [ValueID], ValueID) -> Void) throws -> HostTensor {
        var g = KernelGraph()
        let ids = inputs.map { g.input($0) }
        let out = g.value()
        build(&g, ids, out)
        return try g.run([out])[0]
    }
}

func assertTensor(_ t: HostTensor, _ shape: [Int], _ values: [Double], _ dtype: DType? = nil, accuracy: Double = 0,
                  file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(t.shape, shape, "shape", file: file, line: line)
    if let dtype { XCTAssertEqual(t.dtype, dtype, "dtype", file: file, line: line) }
    XCTAssertEqual(t.storage.count, values.count, "element count", file: file, line: line)
    for (i, (a, b)) in zip(t.storage, values).enumerated() where abs(a - b) > accuracy {
        XCTFail("element \(i): got \(a), expected \(b) (all: \(t.storage))", file: file, line: line)
        return
    }
}

func assertThrows(_ body: @autoclosure () throws -> Any, mentioning words: [String],
                  file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        let text = "\(error)"
        for w in words { XCTAssertTrue(text.contains(w), "\"\(text)\" does not mention \(w)", file: file, line: line) }
    }
}

final class ReferenceShapeTests: XCTestCase {
    typealias K = KernelGraph

    func one(_ x: HostTensor, _ make: (ValueID, ValueID) -> Op) throws -> HostTensor {
        try K.eval([x]) { g, ids, out in g.op(make(ids[0], out)) }
    }

    func testReshapeInfersOneDim() throws {
        let x = K.iota([2, 3])
        let r = try one(x) { .reshape(ReshapeOp(x: $0, out: $1, shape: [.literal(3), .literal(-1)])) }
        assertTensor(r, [3, 2], [0, 1, 2, 3, 4, 5])
        // A run-time dim.
        var g = K()
        let xi = g.input(x), n = g.input(K.t([], [6], .i64)), out = g.value()
        g.op(.reshape(ReshapeOp(x: xi, out: out, shape: [.value(n), .literal(1)])))
        assertTensor(try g.run([out])[0], [6, 1], [0, 1, 2, 3, 4, 5])
        assertThrows(try self.one(x) { .reshape(ReshapeOp(x: $0, out: $1, shape: [.literal(4), .literal(-1)])) }, mentioning: ["reshape", "[2, 3]"])
        assertThrows(try self.one(x) { .reshape(ReshapeOp(x: $0, out: $1, shape: [.literal(-1), .literal(-1)])) }, mentioning: ["reshape"])
        assertThrows(try self.one(x) { .reshape(ReshapeOp(x: $0, out: $1, shape: [.literal(5)])) }, mentioning: ["reshape"])
    }

    func testTranspose() throws {
        // np.arange(24).reshape(2,3,4).transpose(2,0,1)
        let r = try one(K.iota([2, 3, 4])) { .transpose(TransposeOp(x: $0, out: $1, perm: [2, 0, 1])) }
        assertTensor(r, [4, 2, 3], [0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23])
        assertThrows(try self.one(K.iota([2, 3])) { .transpose(TransposeOp(x: $0, out: $1, perm: [0, 0])) }, mentioning: ["transpose"])
        assertThrows(try self.one(K.iota([2, 3])) { .transpose(TransposeOp(x: $0, out: $1, perm: [0, 2])) }, mentioning: ["transpose", "axis 2"])
    }

    func testExpandDimsAndSqueeze() throws {
        let x = K.iota([2, 3])
        XCTAssertEqual(try one(x) { .expandDims(ExpandDimsOp(x: $0, out: $1, axis: -1)) }.shape, [2, 3, 1])
        XCTAssertEqual(try one(x) { .expandDims(ExpandDimsOp(x: $0, out: $1, axis: 0)) }.shape, [1, 2, 3])
        XCTAssertEqual(try one(x) { .expandDims(ExpandDimsOp(x: $0, out: $1, axis: 2)) }.shape, [2, 3, 1])
        XCTAssertEqual(try one(x) { .expandDims(ExpandDimsOp(x: $0, out: $1, axis: -3)) }.shape, [1, 2, 3])
        assertThrows(try self.one(x) { .expandDims(ExpandDimsOp(x: $0, out: $1, axis: 3)) }, mentioning: ["expand_dims"])

        let y = K.iota([1, 3, 1])
        assertTensor(try one(y) { .squeeze(SqueezeOp(x: $0, out: $1, dims: [])) }, [3], [0, 1, 2])
        // A dim whose size is not 1 is left alone (PyTorch); negative dims count from the end.
        XCTAssertEqual(try one(y) { .squeeze(SqueezeOp(x: $0, out: $1, dims: [0, 1])) }.shape, [3, 1])
        XCTAssertEqual(try one(y) { .squeeze(SqueezeOp(x: $0, out: $1, dims: [-1])) }.shape, [1, 3])
        assertThrows(try self.one(y) { .squeeze(SqueezeOp(x: $0, out: $1, dims: [5])) }, mentioning: ["squeeze", "axis 5"])
    }

    func testBroadcastToKeepsMinusOneDims() throws {
        let x = K.t([3, 1], [1, 2, 3])
        let r = try one(x) { .broadcastTo(BroadcastToOp(x: $0, out: $1, shape: [.literal(2), .literal(-1), .literal(2)])) }
        assertTensor(r, [2, 3, 2], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        assertThrows(try self.one(x) { .broadcastTo(BroadcastToOp(x: $0, out: $1, shape: [.literal(2), .literal(2)])) }, mentioning: ["[3, 1]"])
    }

    func slice(_ x: HostTensor, axis: Int64 = 0, _ start: Int64, _ stop: Int64, _ step: Int) throws -> HostTensor {
        try one(x) { .slice(SliceOp(x: $0, out: $1, axis: .literal(axis), start: .literal(start), stop: .literal(stop), step: step)) }
    }

    func testSliceFollowsPythonSlicing() throws {
        let x = K.iota([10])
        assertTensor(try slice(x, 8, 2, -2), [3], [8, 6, 4])          // x[8:2:-2]
        assertTensor(try slice(x, -3, .max, 1), [3], [7, 8, 9])       // x[-3:]
        assertTensor(try slice(x, 1, 8, 3), [3], [1, 4, 7])           // x[1:8:3]
        assertTensor(try slice(x, -1, -11, -1), [10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]) // x[::-1]
        assertTensor(try slice(x, -100, 3, 1), [3], [0, 1, 2])        // x[-100:3]
        assertTensor(try slice(x, 5, 100, -1), [0], [])               // x[5:100:-1]
        assertTensor(try slice(x, 7, 3, 1), [0], [])                  // x[7:3]
        // np.arange(8).reshape(2,4)[:, 1:-1]
        assertTensor(try slice(K.iota([2, 4]), axis: -1, 1, -1, 1), [2, 2], [1, 2, 5, 6])
        assertThrows(try self.slice(x, 0, 3, 0), mentioning: ["slice", "step"])
        assertThrows(try self.slice(x, axis: 1, 0, 3, 1), mentioning: ["slice", "axis 1"])

        // Run-time axis, start and stop.
        var g = K()
        let xi = g.input(K.iota([2, 4])), a = g.input(K.t([], [1], .i64)), s = g.input(K.t([], [2], .i64)), out = g.value()
        g.op(.slice(SliceOp(x: xi, out: out, axis: .value(a), start: .value(s), stop: .literal(.max), step: 1)))
        assertTensor(try g.run([out])[0], [2, 2], [2, 3, 6, 7])
    }

    func testConcatenateSplitStack() throws {
        let a = K.t([2, 1], [1, 2], .i32), b = K.t([2, 2], [3, 4, 5, 6])
        let c = try K.eval([a, b]) { g, ids, out in g.op(.concatenate(ConcatenateOp(tensors: ids, out: out, axis: -1))) }
        assertTensor(c, [2, 3], [1, 3, 4, 2, 5, 6], .f32)
        assertThrows(try K.eval([a, b]) { g, ids, out in g.op(.concatenate(ConcatenateOp(tensors: ids, out: out, axis: 0))) },
                     mentioning: ["concatenate"])

        let x = K.iota([5, 2])
        var g = K()
        let xi = g.input(x), s1 = g.value(), s2 = g.value(), o1 = g.value(), o2 = g.value(), o3 = g.value()
        g.op(.split(SplitOp(x: xi, outs: [s1, s2], sizes: [.literal(2), .literal(3)], axis: 0)))
        g.op(.split(SplitOp(x: xi, outs: [o1, o2, o3], sizes: [.literal(2)], axis: -2)))   // chunks of 2: 2, 2, 1
        let parts = try g.run([s1, s2, o1, o2, o3])
        assertTensor(parts[0], [2, 2], [0, 1, 2, 3])
        assertTensor(parts[1], [3, 2], [4, 5, 6, 7, 8, 9])
        assertTensor(parts[2], [2, 2], [0, 1, 2, 3])
        assertTensor(parts[3], [2, 2], [4, 5, 6, 7])
        assertTensor(parts[4], [1, 2], [8, 9])
        var bad = K()
        let bx = bad.input(x), b1 = bad.value(), b2 = bad.value()
        bad.op(.split(SplitOp(x: bx, outs: [b1, b2], sizes: [.literal(2), .literal(2)], axis: 0)))
        assertThrows(try bad.run([b1]), mentioning: ["split", "[2, 2]"])

        let p = K.t([2], [1, 2]), q = K.t([2], [3, 4])
        let s = try K.eval([p, q]) { g, ids, out in g.op(.stack(StackOp(tensors: ids, out: out, axis: -1))) }
        assertTensor(s, [2, 2], [1, 3, 2, 4])
        let s0 = try K.eval([p, q]) { g, ids, out in g.op(.stack(StackOp(tensors: ids, out: out, axis: 0))) }
        assertTensor(s0, [2, 2], [1, 2, 3, 4])
    }

    func testTileAndRepeat() throws {
        let x = K.t([2, 2], [1, 2, 3, 4])
        // np.tile([[1,2],[3,4]], (2,1,2))
        assertTensor(try one(x) { .tile(TileOp(x: $0, out: $1, reps: [.literal(2), .literal(1), .literal(2)])) },
                     [2, 2, 4], [1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4])
        // np.tile([1,2,3], 2); reps shorter than the rank pad with leading 1s.
        assertTensor(try one(K.t([3], [1, 2, 3])) { .tile(TileOp(x: $0, out: $1, reps: [.literal(2)])) }, [6], [1, 2, 3, 1, 2, 3])
        assertTensor(try one(x) { .tile(TileOp(x: $0, out: $1, reps: [.literal(2)])) }, [2, 4], [1, 2, 1, 2, 3, 4, 3, 4])

        assertTensor(try one(x) { .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(2), axis: 1)) }, [2, 4], [1, 1, 2, 2, 3, 3, 4, 4])
        assertTensor(try one(x) { .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(2), axis: -2)) }, [4, 2], [1, 2, 1, 2, 3, 4, 3, 4])
        assertTensor(try one(x) { .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(0), axis: 0)) }, [0, 2], [])
        assertThrows(try self.one(x) { .repeat(RepeatOp(x: $0, out: $1, repeats: .literal(-1), axis: 0)) }, mentioning: ["repeat"])
    }

    func testPad() throws {
        let x = K.iota([2, 3])
        // np.pad(x, ((1,0),(0,2)), constant_values=9)
        let c = try one(x) { .pad(PadOp(x: $0, out: $1, padWidth: [1, 0, 0, 2].map { .literal($0) }, mode: "constant", constantValue: 9)) }
        assertTensor(c, [3, 5], [9, 9, 9, 9, 9, 0, 1, 2, 9, 9, 3, 4, 5, 9, 9])
        // np.pad(x, ((1,1),(2,1)), mode='edge')
        let e = try one(x) { .pad(PadOp(x: $0, out: $1, padWidth: [1, 1, 2, 1].map { .literal($0) }, mode: "edge", constantValue: 0)) }
        assertTensor(e, [4, 6], [0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 2, 2, 3, 3, 3, 4, 5, 5, 3, 3, 3, 4, 5, 5])
        assertThrows(try self.one(x) { .pad(PadOp(x: $0, out: $1, padWidth: [1, 1].map { .literal($0) }, mode: "constant", constantValue: 0)) },
                     mentioning: ["pad", "[2, 3]"])
        assertThrows(try self.one(x) { .pad(PadOp(x: $0, out: $1, padWidth: [0, 0, 1, 1].map { .literal($0) }, mode: "reflect", constantValue: 0)) },
                     mentioning: ["pad", "reflect"])
    }

    func testFlipAndRoll() throws {
        let x = K.iota([2, 3])
        assertTensor(try one(x) { .flip(FlipOp(x: $0, out: $1, axes: [1])) }, [2, 3], [2, 1, 0, 5, 4, 3])
        assertTensor(try one(x) { .flip(FlipOp(x: $0, out: $1, axes: [0, -1])) }, [2, 3], [5, 4, 3, 2, 1, 0])
        assertTensor(try one(x) { .flip(FlipOp(x: $0, out: $1, axes: [])) }, [2, 3], [0, 1, 2, 3, 4, 5])

        let y = K.iota([2, 5])
        // np.roll(np.arange(10).reshape(2,5), (1,-2), axis=(0,1))
        assertTensor(try one(y) { .roll(RollOp(x: $0, out: $1, shift: [.literal(1), .literal(-2)], axes: [0, 1])) },
                     [2, 5], [7, 8, 9, 5, 6, 2, 3, 4, 0, 1])
        // np.roll(..., 7, axis=1)
        assertTensor(try one(y) { .roll(RollOp(x: $0, out: $1, shift: [.literal(7)], axes: [-1])) },
                     [2, 5], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7])
        assertThrows(try self.one(y) { .roll(RollOp(x: $0, out: $1, shift: [.literal(1)], axes: [2])) }, mentioning: ["roll", "axis 2"])
    }

    func testAsStrided() throws {
        // np.lib.stride_tricks.as_strided(np.arange(10)[1:], shape=(3,3), strides=(2,1) elements)
        let x = K.iota([10])
        let r = try one(x) { .asStrided(AsStridedOp(x: $0, out: $1, shape: [.literal(3), .literal(3)], strides: [.literal(2), .literal(1)], offset: 1)) }
        assertTensor(r, [3, 3], [1, 2, 3, 3, 4, 5, 5, 6, 7])
        // The view reaches element 10 of 10: an error, not a trap.
        assertThrows(try self.one(x) { .asStrided(AsStridedOp(x: $0, out: $1, shape: [.literal(3), .literal(3)], strides: [.literal(4), .literal(1)], offset: 0)) },
                     mentioning: ["as_strided", "10"])
        // Over the flattened input, whatever its shape.
        let y = try one(K.iota([2, 3])) { .asStrided(AsStridedOp(x: $0, out: $1, shape: [.literal(3), .literal(2)], strides: [.literal(1), .literal(3)], offset: 0)) }
        assertTensor(y, [3, 2], [0, 3, 1, 4, 2, 5])
    }

    func testTrilTriu() throws {
        let x = K.iota([3, 4])
        assertTensor(try one(x) { .tril(TrilOp(x: $0, out: $1, k: 1)) }, [3, 4], [0, 1, 0, 0, 4, 5, 6, 0, 8, 9, 10, 11])   // np.tril(x, 1)
        assertTensor(try one(x) { .triu(TriuOp(x: $0, out: $1, k: -1)) }, [3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11])  // np.triu(x, -1)
        let y = K.iota([2, 2, 3])
        assertTensor(try one(y) { .tril(TrilOp(x: $0, out: $1, k: 0)) }, [2, 2, 3], [0, 0, 0, 3, 4, 0, 6, 0, 0, 9, 10, 0])  // np.tril(y)
        assertTensor(try one(y) { .triu(TriuOp(x: $0, out: $1, k: 1)) }, [2, 2, 3], [0, 1, 2, 0, 0, 5, 0, 7, 8, 0, 0, 11])  // np.triu(y, 1)
        assertThrows(try self.one(K.iota([3])) { .tril(TrilOp(x: $0, out: $1, k: 0)) }, mentioning: ["tril"])
    }

    func testResultsRoundToTheirDtype() throws {
        // bf16 holds 8 significant bits: 257 is not representable and rounds to 256 on the way out.
        let x = K.t([2], [257, 1], .bf16)
        let r = try one(x) { .reshape(ReshapeOp(x: $0, out: $1, shape: [.literal(1), .literal(2)])) }
        XCTAssertEqual(r.dtype, .bf16)
        XCTAssertEqual(r.storage, [256, 1])
    }
}
