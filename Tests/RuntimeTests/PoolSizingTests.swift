import XCTest
@testable import MLXCRuntime

/// PoolSizing's decisions from synthetic windows (the share of a window the pool's threads waited for a CPU,
/// the workers the machine's runnable threads leave room for) and from the caller's waits: it takes a worker
/// off after two contended windows, ignores one, comes back at once when the machine shows free cores, and
/// otherwise probes again after 100 ms, then twice as long each time the cores are still taken.
final class PoolSizingTests: XCTestCase {
    let ms: UInt64 = 1_000_000
    let window = PoolSizing.window

    /// Feeds windows from `t` (waiting shares, one offer for all); → the time after the last one.
    func feed(_ s: inout PoolSizing, _ shares: [Double], offer: Int? = nil, from t: UInt64) -> UInt64 {
        var now = t
        for w in shares {
            XCTAssertTrue(s.windowDue(now: now))
            s.observe(waitingShare: w, offer: offer, now: now)
            now += window
        }
        return now
    }

    func testThreadsThatGetTheirCoresKeepEveryWorker() {
        var s = PoolSizing(maxWorkers: 1)
        _ = feed(&s, Array(repeating: 0.05, count: 200), offer: 0, from: 1_000 * ms)   // a nice-19 neighbour: offers 0, no wait
        XCTAssertEqual(s.workers, 1)
        XCTAssertEqual(s.changes, 0)
    }

    func testTwoContendedWindowsTakeAWorkerOffAndOneDoesNot() {
        var s = PoolSizing(maxWorkers: 1)
        var t = feed(&s, [0, 0.5, 0, 0.6, 0], from: 1_000 * ms)
        XCTAssertEqual(s.workers, 1, "contended windows not in a row")
        t = feed(&s, [0.5, 0.5], from: t)
        XCTAssertEqual(s.workers, 0)
        XCTAssertFalse(s.windowDue(now: t - window + ms))
    }

    func testStallsCountAsContendedWindows() {
        var s = PoolSizing(maxWorkers: 2)
        s.observeWait(3 * ms, ownWork: 5 * ms)   // no stall: the caller's own share took longer
        var t = feed(&s, [0], from: 1_000 * ms)
        s.observeWait(3 * ms, ownWork: 5 * ms)
        t = feed(&s, [0], from: t)
        XCTAssertEqual(s.workers, 2)
        s.observeWait(2 * ms, ownWork: 50_000)   // a worker lost its core mid-chunk…
        t = feed(&s, [0], from: t)
        s.observeWait(2 * ms, ownWork: 50_000)   // …and again in the next window
        _ = feed(&s, [0], from: t)
        XCTAssertEqual(s.workers, 1)
    }

    func testProbesBackOffWhileTheCoresStayTaken() {
        var s = PoolSizing(maxWorkers: 1)
        var t = feed(&s, [0.5, 0.5], offer: 0, from: 1_000 * ms)
        XCTAssertEqual(s.workers, 0)
        let alone = { (s: PoolSizing) in s.workers == 0 }
        // Alone, no thread waits; the first probe comes 100 ms after the shrink.
        var probes: [UInt64] = []
        let start = t - window
        while t - start < 4_000 * ms {
            let wasAlone = alone(s)
            t = feed(&s, [wasAlone ? 0 : 0.5], offer: 0, from: t)
            if wasAlone && !alone(s) { probes.append((t - window - start) / ms) }
        }
        // Each probe found the cores taken (two windows at 50%): the gaps double, 100 → 200 → … → 1600 ms at most.
        let gaps = zip(probes.dropFirst(), probes).map { $0 - $1 }
        XCTAssertEqual(probes.first, 100)
        XCTAssertTrue(gaps.count >= 3, "\(probes)")
        for (a, b) in zip(gaps, gaps.dropFirst()) { XCTAssertGreaterThanOrEqual(b, a, "\(probes)") }
        XCTAssertLessThanOrEqual(gaps.max() ?? 0, 1_600 + 3 * window / ms)
        XCTAssertGreaterThanOrEqual(gaps.last ?? 0, 800)
    }

    func testAProbeThatHoldsKeepsTheWorker() {
        var s = PoolSizing(maxWorkers: 1)
        var t = feed(&s, [0.5, 0.5], offer: 0, from: 1_000 * ms)
        t = feed(&s, Array(repeating: 0, count: 20), offer: 0, from: t)   // 100 ms alone
        XCTAssertEqual(s.workers, 1, "probed")
        _ = feed(&s, Array(repeating: 0.02, count: 400), offer: 0, from: t)   // the neighbour was a low-priority job
        XCTAssertEqual(s.workers, 1)
    }

    func testFreeCoresBringWorkersBackBeforeTheProbe() {
        var s = PoolSizing(maxWorkers: 3)
        var t = feed(&s, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], offer: 0, from: 1_000 * ms)
        XCTAssertEqual(s.workers, 0)
        t = feed(&s, Array(repeating: 0, count: 7), offer: 3, from: t)
        XCTAssertEqual(s.workers, 0, "7 windows with free cores are not 8")
        _ = feed(&s, [0], offer: 3, from: t)
        XCTAssertEqual(s.workers, 3)
    }
}
