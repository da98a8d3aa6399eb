import XCTest
import MLXCIR
@testable import MLXCPasses

/// Runs `pass` on the IR `text` (then `dce` when `dce`), verifies the result and that its printed
/// form parses back to the same graph; → the printed nodes, one per line, and the pass's change count.
func runPass(_ pass: any GraphPass, on text: String, dce: Bool = true,
             file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
    var g = try IRParser.parse(text)
    let changes = try pass.run(&g)
    if dce { _ = try DeadCodeElimination().run(&g) }
    try Verifier.verify(g)
    let printed = IRPrinter.print(g, origins: false)
    XCTAssertEqual(try IRParser.parse(printed), g, file: file, line: line)
    let nodes = printed.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
    return (nodes.joined(separator: "\n"), changes)
}

/// `pass` reports no change on the IR `text` and leaves it printing exactly as before.
func assertPassLeavesUnchanged(_ pass: any GraphPass, on text: String, _ why: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
    var g = try IRParser.parse(text)
    let before = IRPrinter.print(g, origins: false)
    XCTAssertEqual(try pass.run(&g), 0, why, file: file, line: line)
    XCTAssertEqual(IRPrinter.print(g, origins: false), before, why, file: file, line: line)
}
