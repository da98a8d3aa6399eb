import Foundation
import XCTest
import Atomics
@testable import MLXCRuntime
@testable import MLXCCodegen

/// The kernel thread pool: every item of a launch runs exactly once, in chunks that start on a
/// grain boundary, whether the workers are spinning, asleep, or late; the pool's size comes from
/// the cores the process may use.
final class ThreadPoolTests: XCTestCase {
    func testEveryItemRunsOnceInGrainAlignedChunks() {
        let pool = ThreadPool(threads: 3)
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
        let pool = ThreadPool(threads: 2)
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
        let pool = ThreadPool(threads: 2)
        pool.parallelFor(3, grain: 4) { _, _ in }   // one chunk: runs on the caller, no launch
        XCTAssertEqual(pool.barrierStats.launches, 0)
        for _ in 0..<5 {
            pool.parallelFor(64, grain: 1) { begin, _ in
                if begin != 0 { usleep(3_000) }   // other threads' chunks outlast the caller's spin: it sleeps
            }
        }
        let stats = pool.barrierStats
        XCTAssertEqual(stats.launches, 5)
        XCTAssertGreaterThan(stats.waitNanoseconds, 0)
        XCTAssertGreaterThan(stats.callerSleeps, 0)
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
