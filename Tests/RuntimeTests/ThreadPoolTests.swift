import Foundation
import XCTest
import Atomics
@testable import MLXCRuntime
@testable import MLXCCodegen

/// The kernel thread pool: every item of a launch runs exactly once, in chunks that start on a
/// grain boundary, whether the workers are spinning, asleep, or late; a worker that stops mid-chunk holds
/// back only its chunk; the pool's size comes from the cores the process may use, and from the cores other
/// processes leave free (then the workers sleep).
final class ThreadPoolTests: XCTestCase {
    func testEveryItemRunsOnceInGrainAlignedChunks() {
        for adaptive in [false, true] {
            everyItemRunsOnceInGrainAlignedChunks(ThreadPool(threads: 3, adaptive: adaptive))
        }
    }

    func everyItemRunsOnceInGrainAlignedChunks(_ pool: ThreadPool) {
        for (count, grain) in [(1, 1), (2, 1), (7, 1), (64, 4), (1000, 8), (4099, 16), (33, 32), (100_000, 1)] {
            let hits = (0..<count).map { _ in ManagedAtomic<Int>(0) }
            let misaligned = ManagedAtomic<Int>(0)
            pool.parallelFor(count, grain: grain) { begin, end in
                if begin % grain != 0 || (end != count && end % grain != 0) { misaligned.wrappingIncrement(ordering: .relaxed) }
                for i in begin..<end { hits[i].wrappingIncrement(ordering: .relaxed) }
            }
            XCTAssertEqual(hits.filter { $0.load(ordering: .relaxed) != 1 }.count, 0, "count \(count) grain \(grain)")
            XCTAssertEqual(misaligned.load(ordering: .relaxed), 0, "count \(count) grain \(grain)")
        }
    }

    func testLaunchesAfterWorkersFellAsleepStillComplete() {
        let pool = ThreadPool(threads: 2, adaptive: false)
        let total = ManagedAtomic<Int>(0)
        for round in 0..<20 {
            // Alternate back-to-back launches (workers spinning) with pauses longer than their spin (asleep).
            if round % 4 == 0 { usleep(2_000) }
            pool.parallelFor(512, grain: 4) { begin, end in
                total.wrappingIncrement(by: end - begin, ordering: .relaxed)
                if begin == 0 { usleep(50) }   // a slow chunk: the caller waits for it (spin, then sleep)
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 20 * 512)
    }

    func testBarrierStatsCountSplitLaunchesAndTheCallersWait() {
        let pool = ThreadPool(threads: 2, adaptive: false)
        pool.parallelFor(3, grain: 4) { _, _ in }   // one chunk: runs on the caller, no launch
        XCTAssertEqual(pool.barrierStats.launches, 0)
        let caller = pthread_self()
        for _ in 0..<5 {
            let workerStarted = ManagedAtomic<Bool>(false)
            pool.parallelFor(64, grain: 1) { begin, _ in
                if pthread_equal(pthread_self(), caller) == 0 {
                    workerStarted.store(true, ordering: .relaxed)
                    usleep(3_000)   // the worker's chunk outlasts the caller's spin: the caller sleeps for it
                } else if begin == 0 {
                    // The caller's first chunk holds until the worker is inside one, so that chunk is still in flight
                    // when the caller runs out of work (a worker slow to wake on a busy machine could otherwise miss
                    // every launch, and the caller would never wait).
                    let limit = Date().addingTimeInterval(2)
                    while !workerStarted.load(ordering: .relaxed), Date() < limit {}
                }
            }
        }
        let stats = pool.barrierStats
        XCTAssertEqual(stats.launches, 5)
        XCTAssertGreaterThan(stats.waitNanoseconds, 0)
        XCTAssertGreaterThan(stats.callerSleeps, 0)
    }

    /// A worker descheduled mid-chunk (here: asleep for 100 ms in its first chunk) holds back that chunk only:
    /// the caller and the other worker claim everything else meanwhile, and that chunk is a share of the launch.
    func testAStalledWorkerHoldsBackOnlyItsChunk() {
        let pool = ThreadPool(threads: 3, adaptive: false)
        let caller = pthread_self()
        let count = 3000
        let hits = (0..<count).map { _ in ManagedAtomic<Int>(0) }
        let stalled = ManagedAtomic<Int>(-1)   // the stalled chunk's first item
        let doneBeforeStallEnded = ManagedAtomic<Int>(0), doneAfter = ManagedAtomic<Int>(0)
        let stallOver = ManagedAtomic<Bool>(false)
        pool.parallelFor(count, grain: 1) { begin, end in
            if pthread_equal(pthread_self(), caller) == 0,
               stalled.compareExchange(expected: -1, desired: begin, ordering: .relaxed).exchanged {
                usleep(100_000)
                stallOver.store(true, ordering: .sequentiallyConsistent)
            } else {
                usleep(200)   // every other chunk takes a while too: the stalled worker cannot be first to claim all
            }
            for i in begin..<end { hits[i].wrappingIncrement(ordering: .relaxed) }
            if stalled.load(ordering: .relaxed) != begin {
                (stallOver.load(ordering: .sequentiallyConsistent) ? doneAfter : doneBeforeStallEnded)
                    .wrappingIncrement(by: end - begin, ordering: .relaxed)
            }
        }
        XCTAssertEqual(hits.filter { $0.load(ordering: .relaxed) != 1 }.count, 0)
        let first = stalled.load(ordering: .relaxed)
        XCTAssertGreaterThanOrEqual(first, 0, "no worker took a chunk")
        let stalledItems = count - doneBeforeStallEnded.load(ordering: .relaxed) - doneAfter.load(ordering: .relaxed)
        // The first chunks are the largest: a sixth of the launch with three threads (what is left / (2 × threads)).
        XCTAssertLessThanOrEqual(stalledItems, count / 6)
        XCTAssertEqual(doneAfter.load(ordering: .relaxed), 0, "other chunks waited for the stalled worker")
    }

    /// With every core taken by other busy threads at the pool's priority (outside the pool), an adaptive pool
    /// stops splitting launches: the caller runs them alone, in one piece, and the workers sleep instead of
    /// spinning on the cores the others need. (Only the shrinking is asserted: on a busy CI machine the cores
    /// may stay taken.)
    func testAPoolWhoseCoresAreTakenRunsLaunchesOnTheCallerAndItsWorkersSleep() throws {
        guard let machine = RunnableThreads(), ThreadRunDelay() != nil else { throw XCTSkip("no /proc/loadavg or schedstat") }
        let pool = ThreadPool(threads: 2, adaptive: true)
        let stop = ManagedAtomic<Bool>(false)
        // Four busy threads per CPU: each of the pool's threads then waits ~80% of the time for a core, whatever
        // the machine's size (one per CPU would leave it waiting only 2 / (CPUs + 2) of the time on a big one).
        let busy = (0..<(4 * machine.onlineCPUs)).map { _ in
            Thread { while !stop.load(ordering: .relaxed) {} }
        }
        busy.forEach { $0.start() }
        defer { stop.store(true, ordering: .relaxed) }
        let sink = ManagedAtomic<Int>(0)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline, pool.workersInUse > 0 || pool.barrierStats.aloneLaunches < 50 {
            pool.parallelFor(64, grain: 1) { begin, end in sink.wrappingIncrement(by: end - begin, ordering: .relaxed) }
            usleep(100)
        }
        XCTAssertEqual(pool.workersInUse, 0)
        XCTAssertGreaterThanOrEqual(pool.barrierStats.aloneLaunches, 50)
        // Alone means one piece: the whole range in one call.
        var calls = 0
        pool.parallelFor(64, grain: 1) { begin, end in
            XCTAssertEqual(begin, 0); XCTAssertEqual(end, 64); calls += 1
        }
        XCTAssertEqual(calls, 1)
        // The worker went to sleep at once rather than spinning out its budget.
        usleep(20_000)
        XCTAssertEqual(pool.awakeWorkers, 0)
    }

    func testThreadRunDelayReadsSchedstat() {
        XCTAssertEqual(ThreadRunDelay.parse("123456 7890 12\n"), 7890)
        XCTAssertEqual(ThreadRunDelay.parse("1 0 0\n"), 0)
        XCTAssertNil(ThreadRunDelay.parse("123456\n"))
        XCTAssertNil(ThreadRunDelay.parse("12 x 3\n"))
        if let mine = ThreadRunDelay() { XCTAssertNotNil(mine.nanoseconds) }
    }

    func testRunnableThreadsReadsTheLoadavgLine() {
        XCTAssertEqual(RunnableThreads.parse("0.50 0.40 0.30 3/123 4567\n"), 3)
        XCTAssertEqual(RunnableThreads.parse("12.01 9.15 5.50 14/401 30201\n"), 14)
        XCTAssertNil(RunnableThreads.parse("0.50 0.40 0.30 x/123 4567\n"))
        XCTAssertNil(RunnableThreads.parse("0.50 0.40\n"))
        if let live = RunnableThreads() {
            XCTAssertGreaterThanOrEqual(live.sample() ?? 0, 1)   // this thread is running
            XCTAssertGreaterThanOrEqual(live.onlineCPUs, 1)
        }
    }

    func testAvailableCoresReadsTheAffinityMaskAndTheCgroupQuota() throws {
        XCTAssertEqual(AvailableCores.affinityCount(status: "Name:\tx\nCpus_allowed:\tff\nCpus_allowed_list:\t0-7\n"), 8)
        XCTAssertEqual(AvailableCores.affinityCount(status: "Cpus_allowed:\t00000000,00000005\n"), 2)
        XCTAssertNil(AvailableCores.affinityCount(status: "Name:\tx\n"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-cgroup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertNil(AvailableCores.cgroupQuota(root: dir.path))
        try "max 100000\n".write(to: dir.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        XCTAssertNil(AvailableCores.cgroupQuota(root: dir.path))
        try "150000 100000\n".write(to: dir.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        XCTAssertEqual(AvailableCores.cgroupQuota(root: dir.path), 2)
        XCTAssertGreaterThanOrEqual(AvailableCores.count, 1)
        XCTAssertLessThanOrEqual(AvailableCores.count, ProcessInfo.processInfo.processorCount)
    }
}
