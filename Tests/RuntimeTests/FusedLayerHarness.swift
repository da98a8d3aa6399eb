import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The numeric check the pass tests share: `graph` as written runs on the reference and `fused` (the
/// graph after the passes) on the JIT, call after call with `feeds(call)` (state carried between
/// calls by both); after every call the outputs named by `outputs` (the first ones, in order) have
/// the reference's shapes and agree within `tolerance` × max |reference| (a NaN on either side
/// fails). The JIT must compile without remarks and run without falling back to the runtime.
func assertFusedMatchesReference(_ graph: Graph, fused: Graph, what: String, calls: Int, outputs names: [String],
                                 tolerance: Double, file: StaticString = #filePath, line: UInt = #line,
                                 feeds: (Int) throws -> [HostTensor]) throws {
    let reference = try ReferenceExecutor(graph: graph)
    let jit = try JITProgram(graph: fused, pte: JITKernelTests.pte)
    XCTAssertEqual(jit.remarks, [], what, file: file, line: line)
    for call in 0..<calls {
        let x = try feeds(call)
        let want = try reference.run(x), got = try jit.run(x)
        for (j, name) in names.enumerated() {
            XCTAssertEqual(got[j].shape, want[j].shape, "\(what) call \(call) \(name)", file: file, line: line)
            let bound = tolerance * (want[j].storage.map(Swift.abs).max() ?? 0)
            if got[j].shape == want[j].shape,
               let i = want[j].storage.indices.first(where: { !(Swift.abs(got[j].storage[$0] - want[j].storage[$0]) <= bound) }) {
                XCTFail("\(what) call \(call) \(name): element \(i) is \(got[j].storage[i]), reference \(want[j].storage[i])", file: file, line: line)
            }
        }
    }
    XCTAssertEqual(jit.runtimeFallbacks, [:], what, file: file, line: line)
}
