import XCTest
@testable import MLXCRuntime

/// PoolSizing's decisions from synthetic samples of the machine (runnable threads, this pool's own) and
/// of the caller's waits: it shrinks to the cores other processes leave free when they stay taken, ignores a
/// moment's blip, grows back once they stay free, and takes a worker off for a while when stalls recur.
final class PoolSizingTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    /// Feeds samples 2 ms apart from `t`; → the time after the last one.
    func feed(_ s: inout PoolSizing, others: [Int], ours: Int = 2, cpus: Int = 2, from t: UInt64) -> UInt64 {
        var now = t
        for o in others {
            XCTAssertTrue(s.wantsSample(now: now))
            s.observe(runnable: ours + o, ours: ours, cpus: cpus, now: now)
            now += 2 * ms
        }
        return now
    }

    func testAnIdleMachineKeepsEveryWorker() {
        var s = PoolSizing(maxWorkers: 1)
        _ = feed(&s, others: Array(repeating: 0, count: 50), from: 1_000 * ms)
        XCTAssertEqual(s.workers, 1)
        XCTAssertEqual(s.changes, 0)
    }

    func testABusyProcessOnOneOfTwoCoresLeavesTheCallerAlone() {
        var s = PoolSizing(maxWorkers: 1)
        var t = feed(&s, others: [0, 0, 0, 0, 1, 1], from: 1_000 * ms)
        XCTAssertEqual(s.workers, 1, "two samples are not yet 3 of 4")
        t = feed(&s, others: [1], from: t)
        XCTAssertEqual(s.workers, 0)
        XCTAssertFalse(s.wantsSample(now: t - 2 * ms + ms), "samples 2 ms apart")
    }

    func testAMomentaryBlipChangesNothing() {
        var s = PoolSizing(maxWorkers: 1)
        _ = feed(&s, others: [0, 0, 0, 1, 0, 0, 2, 0, 0, 1, 1, 0, 0, 0], from: 1_000 * ms)
        XCTAssertEqual(s.workers, 1)
    }

    func testWorkersComeBackOnlyOnceTheCoresStayFree() {
        var s = PoolSizing(maxWorkers: 1)
        var t = feed(&s, others: [1, 1, 1, 1, 1], from: 1_000 * ms)
        XCTAssertEqual(s.workers, 0)
        t = feed(&s, others: Array(repeating: 0, count: 7), ours: 1, from: t)   // alone: the worker sleeps, ours = 1
        XCTAssertEqual(s.workers, 0, "7 free samples are not 8")
        _ = feed(&s, others: [0], ours: 1, from: t)
        XCTAssertEqual(s.workers, 1)
        XCTAssertEqual(s.changes, 2)
    }

    func testOnABiggerMachineThePoolKeepsTheCoresLeftFree() {
        var s = PoolSizing(maxWorkers: 7)   // 8 threads on 8 CPUs; 3 other busy processes leave 5 cores: caller + 4
        _ = feed(&s, others: [3, 3, 3, 3], ours: 8, cpus: 8, from: 1_000 * ms)
        XCTAssertEqual(s.workers, 4)
    }

    func testRecurringStallsTakeAWorkerOffForAWhile() {
        var s = PoolSizing(maxWorkers: 2)
        var t = 1_000 * ms
        s.observeWait(3 * ms, ownWork: 5 * ms, now: t)   // no stall: the caller's own share took longer
        s.observeWait(3 * ms, ownWork: 5 * ms, now: t + ms)
        XCTAssertEqual(s.workers, 2)
        s.observeWait(2 * ms, ownWork: 50_000, now: t)    // a stall (a worker lost its core mid-chunk)...
        XCTAssertEqual(s.workers, 2, "one stall is not yet a pattern")
        s.observeWait(2 * ms, ownWork: 50_000, now: t + 10 * ms)
        XCTAssertEqual(s.workers, 1)
        // Free-looking samples do not bring it back before the hold (100 ms) is over…
        t = feed(&s, others: Array(repeating: 0, count: 20), ours: 3, cpus: 3, from: t + 12 * ms)
        XCTAssertEqual(s.workers, 1)
        // …but do after it.
        _ = feed(&s, others: Array(repeating: 0, count: 40), ours: 3, cpus: 3, from: t)
        XCTAssertEqual(s.workers, 2)
    }
}
