import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Kernels NeMo's FastConformer encoder needed (the Parakeet TDT export): f32 `floor_divide` (its length arithmetic,
/// `div(..., rounding_mode="floor")` on float lengths) and `tile` with repeats read at run time (the attention mask
/// repeated by the traced length), each against the reference executor, bit for bit.
final class JITConformerKernelTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    func testFloatFloorDivideMatchesTheReference() throws {
        let text = """
        graph @floor_divide
        input %0 : f32[7, 33] "a"
        input %1 : f32[33] "b"
        block main {
          %2 = floor_divide(a: %0, b: %1) : ?
        }
        outputs %2

        """
        let graph = try IRParser.parse(text)
        var r = Random(11)
        try assertFusedMatchesReference(graph, fused: graph, what: "floor_divide f32", calls: 2, outputs: ["out"], tolerance: 0) { call in
            var b = r.tensor([33], -5, 5, .f32)
            // Signs both ways, exact quotients (lengths 2·k / 2.0), and quotients just around integers.
            for i in 0..<33 where abs(b.storage[i]) < 0.25 { b.storage[i] = 2 }
            var a = r.tensor([7, 33], -100, 100, .f32)
            if call == 1 { for i in 0..<33 { a.storage[i] = (b.storage[i] * Double(i - 16)).rounded(.towardZero) } }
            return [a, b]
        }
    }

    func testTileWithRunTimeRepeatsMatchesTheReference() throws {
        let text = """
        graph @tile
        input %0 : bool[1, 1, 9] "mask"
        input %1 : i64[] "n"
        block main {
          %2 = tile(x: %0, reps: [1, %1, 1]) : ?
        }
        outputs %2

        """
        let graph = try IRParser.parse(text)
        var r = Random(12)
        try assertFusedMatchesReference(graph, fused: graph, what: "tile by a run-time count", calls: 3, outputs: ["out"], tolerance: 0) { call in
            let x = r.tensor([1, 1, 9], -1, 1, .f32)
            return [HostTensor(dtype: .bool, shape: [1, 1, 9], storage: x.storage.map { $0 > 0 ? 1 : 0 }),
                    HostTensor(dtype: .i64, shape: [], storage: [Double([9, 4, 1][call])])]
        }
    }
}
