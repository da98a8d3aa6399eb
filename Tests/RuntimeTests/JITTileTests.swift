import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The `tile` copy kernel against the reference: reps longer and shorter than x's rank, all-ones reps (the identity
/// tile Whisper's XNNPACK export writes), and reps that repeat inner and outer axes; f32 and i64.
final class JITTileTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    func check(_ shape: [Int], reps: [Int], dtype: DType = .f32, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let t = dtype == .f32 ? "f32" : "i64"
        let text = """
        graph @tile
        input %0 : \(t)[\(shape.map(String.init).joined(separator: ", "))] "x"
        block main {
          %1 = tile(x: %0, reps: [\(reps.map(String.init).joined(separator: ", "))]) : ?
        }
        outputs %1

        """
        let graph = try IRParser.parse(text)
        try assertFusedMatchesReference(graph, fused: graph, what: "tile \(shape) × \(reps) \(t)", calls: 1, outputs: ["out"],
                                        tolerance: 0, file: file, line: line) { _ in
            let x = r.tensor(shape, -4, 4, .f32)
            return [dtype == .f32 ? x : HostTensor(dtype: .i64, shape: shape, storage: x.storage.map { $0.rounded() })]
        }
    }

    func testTileMatchesTheReference() throws {
        try check([1, 1], reps: [1, 1], dtype: .i64, seed: 1)      // Whisper XNNPACK's positions: a copy
        try check([2, 3], reps: [2, 3], seed: 2)
        try check([3, 1, 5], reps: [1, 4, 1], seed: 3)
        try check([4, 2], reps: [3, 1, 2], seed: 4)                 // reps longer than the rank
        try check([2, 3, 4], reps: [2], seed: 5)                    // shorter: the last axis
    }
}
