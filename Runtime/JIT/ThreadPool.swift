import Atomics
import Foundation

/// A persistent pool that splits a range of work items across all threads (the caller included).
///
/// A launch publishes a ticket `(generation << 32) | next share`; every thread claims shares with a
/// compare-and-swap until none are left, so the caller never waits for a worker that is slow to
/// wake — it simply runs the remaining shares itself. Workers spin for a couple of milliseconds
/// between launches (a decode step launches hundreds of kernels back to back), then sleep.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared

    public init(threads: Int) {
        threadCount = max(1, threads)
        shared = Shared(threadCount: threadCount)
        for _ in 1..<threadCount {
            let state = shared   // workers keep the shared state alive, not the pool
            let t = Thread { state.workerLoop() }
            t.stackSize = 8 << 20   // kernels keep per-call scratch (permuted activations) on the stack
            t.start()
        }
    }

    deinit { shared.stop() }

    /// Runs `body(begin, end)` over `0..<count` in shares that are multiples of `grain` items
    /// (kernels may assume whole blocks except at the very end).
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        shared.parallelFor(count, grain: grain, body)
    }
}

/// The state the caller and the workers share; it outlives the pool until every worker has exited.
private final class Shared: @unchecked Sendable {
    let threadCount: Int
    private let ticket = ManagedAtomic<UInt64>(0)
    private let completed = ManagedAtomic<Int>(0)
    private let sleepers = ManagedAtomic<Int>(0)
    private let wake = NSCondition()
    private var generation: UInt64 = 0
    // Published before the ticket (release) and read after it (acquire).
    private var body: ((Int, Int) -> Void)?
    private var total = 0
    private var grain = 1
    private var shareCount = 0
    private var stopping = false

    /// How long an idle worker spins before it sleeps.
    private let spinNanoseconds: UInt64 = 2_000_000

    init(threadCount: Int) { self.threadCount = threadCount }

    func stop() {
        wake.lock()
        stopping = true
        ticket.store(UInt64.max, ordering: .releasing)
        wake.broadcast()
        wake.unlock()
    }

    func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        guard threadCount > 1, count > grain else {
            if count > 0 { body(0, count) }
            return
        }
        self.body = body
        self.total = count
        self.grain = max(1, grain)
        let blocks = (count + self.grain - 1) / self.grain
        shareCount = min(blocks, 2 * threadCount)
        completed.store(0, ordering: .relaxed)
        generation += 1
        ticket.store(generation << 32, ordering: .releasing)
        if sleepers.load(ordering: .acquiring) > 0 {
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        claimShares(of: generation)
        while completed.load(ordering: .acquiring) < shareCount {}
        self.body = nil
    }

    private func claimShares(of gen: UInt64) {
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> 32 == gen else { return }
            let index = Int(t & 0xFFFF_FFFF)
            guard index < shareCount else { return }
            guard ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing).exchanged else { continue }
            let blocks = (total + grain - 1) / grain
            let begin = blocks * index / shareCount * grain
            let end = min(blocks * (index + 1) / shareCount * grain, total)
            if begin < end, let body { body(begin, end) }
            completed.wrappingIncrement(ordering: .releasing)
        }
    }

    func workerLoop() {
        var seen: UInt64 = 0
        while true {
            var spinStart: UInt64 = 0
            var spins = 0
            var current = ticket.load(ordering: .acquiring) >> 32
            while current == seen {
                spins += 1
                if spins & 255 == 0 {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if spinStart == 0 { spinStart = now }
                    if now - spinStart > spinNanoseconds {
                        wake.lock()
                        sleepers.wrappingIncrement(ordering: .releasing)
                        while ticket.load(ordering: .acquiring) >> 32 == seen && !stopping { wake.wait() }
                        sleepers.wrappingDecrement(ordering: .releasing)
                        wake.unlock()
                        spinStart = 0
                    }
                }
                current = ticket.load(ordering: .acquiring) >> 32
            }
            if stopping { return }
            seen = current
            claimShares(of: current)
        }
    }
}
