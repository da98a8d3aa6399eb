import XCTest
import MLXCIR
@testable import MLXCPasses

/// merge-constants, text in → text out: per-layer values of one buffer become one value (and then
/// `cse` merges what the layers compute from it); constants of different buffers, literals of
/// different values, or the same buffer viewed with another type stay apart.
final class MergeConstantsTests: XCTestCase {
    func testSameBufferSameTypeIsOneValue() throws {
        var g = try IRParser.parse("""
        graph @f
        input %0 : i64[4, 1] "positions"
        const %1 : i64[1, 8] = buffer(3) "layer0.kpos"
        const %2 : i64[1, 8] = buffer(3) "layer1.kpos"
        const %3 : i64[1, 8] = buffer(4) "other"
        const %4 : f32[] = literal(2.0)
        const %5 : f32[] = literal(2.0)
        const %6 : f32[] = literal(3.0)
        const %7 : i32[1, 16] = buffer(3) "same_bytes_other_type"
        block main {
          %8 = less_equal(a: %1, b: %0) : bool[4, 8]
          %9 = less_equal(a: %2, b: %0) : bool[4, 8]
          %10 = less_equal(a: %3, b: %0) : bool[4, 8]
          %11 = add(a: %4, b: %5) : f32[]
          %12 = add(a: %6, b: %5) : f32[]
          %13 = id_copy(x: %7) : i32[1, 16]
        }
        outputs %8, %9, %10, %11, %12, %13
        """)
        XCTAssertEqual(try MergeConstants().run(&g), 2)
        _ = try CommonSubexpressionElimination().run(&g)
        try Verifier.verify(g)
        let nodes = IRPrinter.print(g, origins: false).components(separatedBy: "\n").filter { $0.hasPrefix("  ") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(nodes, [
            "%8 = less_equal(a: %1, b: %0) : bool[4, 8]",
            "%10 = less_equal(a: %3, b: %0) : bool[4, 8]",
            "%11 = add(a: %4, b: %4) : f32[]",
            "%12 = add(a: %6, b: %4) : f32[]",
            "%13 = id_copy(x: %7) : i32[1, 16]",
        ])
        XCTAssertTrue(IRPrinter.print(g, origins: false).contains("outputs %8, %8, %10, %11, %12, %13"))
    }
}
