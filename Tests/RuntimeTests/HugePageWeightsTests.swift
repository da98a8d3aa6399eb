import Foundation
import XCTest
import MLXCFrontend
import MLXCPasses
@testable import MLXCRuntime

/// Large constants copied into a 2 MiB-page region at load (`HugePageWeights`): the region is huge-page
/// aligned and holds exact copies; a program reading its weights from it computes the same logits,
/// bit for bit, as one reading the file mapping.
final class HugePageWeightsTests: XCTestCase {
    func testRegionIsHugePageAlignedAndHoldsExactCopies() throws {
        let sizes = [300_000, 1 << 20, 777_777]
        let region = try XCTUnwrap(HugePageWeights(total: sizes.map(HugePageWeights.rounded).reduce(0, +)))
        XCTAssertEqual(Int(bitPattern: region.start) % HugePageWeights.hugePage, 0)
        var released: [Int] = []
        for (i, size) in sizes.enumerated() {
            let source = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
            let placed = try XCTUnwrap(source.withUnsafeBytes { raw in
                region.place(raw.baseAddress!, bytes: size, release: { _, n in released.append(n) })
            })
            XCTAssertEqual(Int(bitPattern: placed) % 64, 0)
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: placed, count: size)), source, "tensor \(i)")
        }
        XCTAssertEqual(released, sizes, "each source is released once, after its copy")
        // The region was sized for these tensors (rounded up to whole huge pages); a tensor past that is refused.
        let big = [UInt8](repeating: 1, count: 4 << 20)
        XCTAssertNil(big.withUnsafeBytes { region.place($0.baseAddress!, bytes: big.count) })
    }

    func testDemoModelGivesTheSameLogitsFromHugePages() throws {
        let path = DemoModelTests.demo.appendingPathComponent("demo_fp32.pte").path
        var logits: [[Float]] = []
        for huge in [false, true] {
            var options = JITProgram.Options()
            options.hugePageWeights = huge
            let loaded = try ProgramLoader.load(path, engine: .jit, options: options, mlxcVersion: "test",
                                                passes: try PassManager(pipeline: PassRegistry.generationPipeline))
            let program = try XCTUnwrap(loaded.executor as? JITProgram)
            if huge { XCTAssertGreaterThan(program.hugePageBytes, 1 << 20) } else { XCTAssertEqual(program.hugePageBytes, 0) }
            let model = try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte)
            var all = try model.feed([1, 45, 96, 38])
            for token in [71, 13] { all += try model.feed([token]) }
            logits.append(all)
        }
        XCTAssertEqual(logits[0].count, logits[1].count)
        XCTAssertTrue(logits[0] == logits[1], "huge-page weights changed the logits")
    }
}
