import XCTest
@testable import MLXCRuntime

/// The per-call arena keeps the chunks a call needed and walks them again on the next call: the same sequence of
/// allocations gets the same addresses (no page is faulted in again), a bigger call only adds chunks, and every
/// allocation is 64-byte aligned and disjoint from the others of its call.
final class ArenaTests: XCTestCase {
    func testCallsReuseTheirChunksInOrder() {
        let arena = Arena()
        let call = [300 << 10, 2 << 20, 700 << 10, 5 << 20, 1, 64, 3 << 20]
        func run(_ sizes: [Int]) -> [UnsafeMutableRawPointer] {
            arena.reset()
            let ps = sizes.map { arena.allocate($0) }
            for (p, n) in zip(ps, sizes) {
                XCTAssertEqual(Int(bitPattern: p) % 64, 0)
                XCTAssertTrue(arena.contains(p) && arena.contains(p + (n - 1)), "allocation inside the arena")
                p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: n)   // every byte writable
            }
            let spans = zip(ps, sizes).map { (Int(bitPattern: $0), Int(bitPattern: $0) + $1) }.sorted { $0.0 < $1.0 }
            for (a, b) in zip(spans, spans.dropFirst()) { XCTAssertLessThanOrEqual(a.1, b.0, "allocations overlap") }
            return ps
        }
        let first = run(call)
        XCTAssertEqual(run(call), first, "the same call again: the same addresses")
        _ = run(call + [40 << 20])   // a bigger call grows the arena
        XCTAssertEqual(run(call), first, "the first call's allocations still come first")
        XCTAssertFalse(arena.contains(UnsafeRawPointer(bitPattern: 64)!))
    }
}
