import XCTest
import MLXCIR
@testable import MLXCRuntime

/// A small graph built by hand around one or a few ops, run by the reference executor without a
/// `.pte`: operands are graph inputs (or literal constants), results are graph outputs.
struct RefGraph {
    var graph = Graph(name: "test")
    var feeds: [HostTensor] = []

    /// A graph input holding `t`.
    mutating func input(_ t: HostTensor) -> ValueID {
        let v = graph.addValue(TensorType(t.dtype, fixed: t.shape), .input(position: feeds.count))
        graph.inputs.append(v)
        feeds.append(t)
        return v
    }

    /// A graph input holding `t` whose dim `axis` varies between calls (min…max).
    mutating func input(_ t: HostTensor, dynamic axis: Int, min: Int = 0, max: Int) -> ValueID {
        var shape = t.shape.map { Dim.fixed($0) }
        shape[axis] = .dynamic(min: min, max: max)
        let v = graph.addValue(TensorType(t.dtype, shape), .input(position: feeds.count))
        graph.inputs.append(v)
        feeds.append(t)
        return v
    }

    /// A rank-0 literal constant (a scalar operand as the importers make them).
    mutating func literal(_ x: Double, _ dtype: DType) -> ValueID {
        graph.addValue(TensorType(dtype, []), .constant(.literal([x])))
    }

    /// A result value, with the declared type the graph would carry (nil: none, like an MLX temporary).
    mutating func result(_ type: TensorType? = nil) -> ValueID {
        graph.addValue(type, .computed)
    }

    mutating func append(_ op: Op) { graph.append(op) }

    /// Runs the graph and returns the values of `outputs`.
    mutating func run(_ outputs: [ValueID]) throws -> [HostTensor] {
        graph.outputs = outputs
        return try ReferenceExecutor(graph: graph).run(feeds)
    }

    /// One op on inputs `xs`: `make(inputIDs, out)`; returns the single result.
    static func run(_ xs: [HostTensor], outType: TensorType? = nil, _ make: ([ValueID], ValueID) -> Op) throws -> HostTensor {
        var g = RefGraph()
        let ids = xs.map { g.input($0) }
        let out = g.result(outType)
        g.append(make(ids, out))
        return try g.run([out])[0]
    }
}

extension RefGraph {
    /// A tensor of `dtype` holding `xs` (rounded to the dtype, as a real buffer would be).
    static func tensor(_ xs: [Double], _ shape: [Int]? = nil, _ dtype: DType = .f32) -> HostTensor {
        HostTensor(dtype: dtype, shape: shape ?? [xs.count], storage: xs).rounded()
    }
}

/// Asserts dtype, shape and values (exact unless `tol`: |a − b| ≤ tol · max(1, |b|); NaN equals NaN).
func assertRefTensor(_ t: HostTensor, _ expected: [Double], shape: [Int]? = nil, dtype: DType? = nil, tol: Double = 0,
                  file: StaticString = #filePath, line: UInt = #line) {
    if let dtype { XCTAssertEqual(t.dtype, dtype, "dtype", file: file, line: line) }
    XCTAssertEqual(t.shape, shape ?? [expected.count], "shape", file: file, line: line)
    XCTAssertEqual(t.count, expected.count, "element count", file: file, line: line)
    for (i, (a, b)) in zip(t.storage, expected).enumerated() {
        if a.isNaN && b.isNaN { continue }
        if a == b { continue }
        let ok = tol > 0 && abs(a - b) <= tol * max(1, abs(b))
        XCTAssertTrue(ok, "element \(i): got \(a), expected \(b) (all: \(t.storage))", file: file, line: line)
    }
}

/// Asserts that `body` throws a `ReferenceError` whose message contains every one of `words`.
func assertRefError(_ words: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected a ReferenceError mentioning \(words)", file: file, line: line)
    } catch let e as ReferenceError {
        for w in words {
            XCTAssertTrue(e.message.contains(w), "\"\(e.message)\" should mention \(w)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a ReferenceError, got \(error)", file: file, line: line)
    }
}
