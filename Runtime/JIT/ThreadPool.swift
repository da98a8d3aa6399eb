import Atomics
import Foundation

/// A persistent pool that splits a range of work items across all threads (the caller included).
/// Each launch gives every thread one contiguous share. Workers spin for a short while between
/// launches — a decode step launches about a thousand kernels, so a sleep/wake per launch would
/// cost more than the kernels — and then sleep on a condition variable when the program is idle.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let generation = ManagedAtomic<Int>(0)
    private let remaining = ManagedAtomic<Int>(0)
    private let sleepers = ManagedAtomic<Int>(0)
    private let wake = NSCondition()
    private var body: ((Int, Int) -> Void)?
    private var total = 0
    private var grain = 1
    private var stopping = false

    /// Spin iterations before a worker sleeps (a few tens of microseconds).
    private let spinLimit = 200_000

    public init(threads: Int) {
        threadCount = max(1, threads)
        for worker in 1..<threadCount {
            let t = Thread { [unowned self] in self.workerLoop(worker) }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    deinit {
        stopping = true
        generation.wrappingIncrement(ordering: .releasing)
        wake.lock(); wake.broadcast(); wake.unlock()
    }

    /// Runs `body(begin, end)` over `0..<count`, split into one share per thread (shares are
    /// multiples of `grain` items, so kernels can assume whole blocks except at the very end).
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        guard threadCount > 1, count > grain else {
            if count > 0 { body(0, count) }
            return
        }
        self.body = body
        self.total = count
        self.grain = max(1, grain)
        remaining.store(threadCount - 1, ordering: .relaxed)
        generation.wrappingIncrement(ordering: .releasing)
        if sleepers.load(ordering: .acquiring) > 0 {
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        runShare(0)
        while remaining.load(ordering: .acquiring) > 0 { spinHint() }
        self.body = nil
    }

    private func share(_ index: Int) -> (Int, Int) {
        let blocks = (total + grain - 1) / grain
        let begin = blocks * index / threadCount * grain
        let end = min(blocks * (index + 1) / threadCount * grain, total)
        return (begin, end)
    }

    private func runShare(_ index: Int) {
        let (begin, end) = share(index)
        if begin < end, let body { body(begin, end) }
    }

    private func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < spinLimit { spinHint(); continue }
                // Idle: sleep until the next launch.
                wake.lock()
                sleepers.wrappingIncrement(ordering: .releasing)
                while generation.load(ordering: .acquiring) == seen { wake.wait() }
                sleepers.wrappingDecrement(ordering: .releasing)
                wake.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if stopping { return }
            runShare(index)
            remaining.wrappingDecrement(ordering: .releasing)
        }
    }
}

@inline(__always)
func spinHint() {
    #if arch(x86_64) || arch(i386)
    // _mm_pause is not exposed to Swift; a relaxed load loop on a shared atomic is cheap enough.
    #endif
}
