import Atomics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A persistent pool that splits a range of work items across its threads (the caller included).
///
/// A launch publishes a ticket `(generation << 32) | next block`; threads claim chunks of blocks
/// with a compare-and-swap, each chunk a share of what is left (big chunks first, small ones at the
/// end), so the caller never waits for a worker to start: it runs whatever nobody claimed itself,
/// and waits only for chunks already running.
///
/// Sharing the machine (a laptop always has something else running):
/// - an idle worker spins for a fraction of a millisecond — the gap between back-to-back kernel
///   launches in a decode step — then sleeps on a condition variable, so an idle pool costs nothing;
/// - the caller, once nothing is left to claim, spins briefly for the chunks in flight, then sleeps
///   until the last one ends: a worker that another process preempted mid-chunk then gets the
///   caller's free core (the scheduler pulls it over) instead of the caller spinning beside it;
/// - a worker that keeps being preempted (its involuntary context switches climb: another process
///   wants its core) stops taking work for a while, so the caller runs alone on a core of its own
///   rather than in lockstep with a thread that gets half a core; it comes back and looks again.
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

    /// Runs `body(begin, end)` over `0..<count` in chunks that are multiples of `grain` items
    /// (kernels may assume whole blocks except at the very end).
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        shared.parallelFor(count, grain: grain, body)
    }

    /// How often workers stood back because another process was taking their core (for tests and stats).
    public var backoffs: Int { shared.backoffs.load(ordering: .relaxed) }

    /// Where launches lose time outside the kernels (`MLXC_PROFILE`): launches split across threads, how long the
    /// caller waited for other threads' chunks after running out of work, how often it slept for them, and how
    /// often an idle worker fell asleep (each then costs a wake-up on the next launch).
    public var barrierStats: (launches: Int, waitNanoseconds: UInt64, callerSleeps: Int, workerSleeps: Int) {
        (shared.launches, shared.waitNanoseconds, shared.callerSleeps, shared.workerSleeps.load(ordering: .relaxed))
    }
}

/// Tunables of the pool, in one place.
enum ThreadPoolTuning {
    /// How long an idle worker spins before it sleeps.
    static let workerSpinNanoseconds: UInt64 = knob("MLXC_POOL_WORKER_SPIN_US") ?? 300_000
    /// How long the caller spins for chunks in flight before it sleeps.
    static let callerSpinNanoseconds: UInt64 = knob("MLXC_POOL_CALLER_SPIN_US") ?? 30_000
    static func knob(_ name: String) -> UInt64? { ProcessInfo.processInfo.environment[name].flatMap { UInt64($0) }.map { $0 * 1000 } }
    /// A worker looks at its involuntary context switches this often…
    static let preemptionWindowNanoseconds: UInt64 = 20_000_000
    /// …and stands back when it was preempted at least this many times in the window.
    static let preemptionsForBackoff = 3
    /// How long it stands back (doubling while the contention lasts, up to the maximum).
    static let backoffNanoseconds: UInt64 = 50_000_000
    static let maxBackoffNanoseconds: UInt64 = 800_000_000
}

/// One launch's parameters, immutable and published as a whole (ThreadSanitizer, issue 17: with them in
/// plain fields, a worker that had just read the previous launch's exhausted ticket could read the next
/// launch's `blocks` while the caller wrote them, take a chunk of the new body against the old ticket,
/// run it twice and count it off `remaining` — letting the caller return with chunks still running).
private final class Launch: AtomicReference, @unchecked Sendable {
    let generation: UInt64
    let body: (Int, Int) -> Void
    let total: Int
    let grain: Int
    let blocks: Int
    let minChunk: Int

    init(generation: UInt64, body: @escaping (Int, Int) -> Void, total: Int, grain: Int, threadCount: Int) {
        self.generation = generation
        self.body = body
        self.total = total
        self.grain = grain
        blocks = (total + grain - 1) / grain
        minChunk = max(1, blocks / (4 * threadCount))
    }
}

/// The state the caller and the workers share; it outlives the pool until every worker has exited.
private final class Shared: @unchecked Sendable {
    let threadCount: Int
    private let ticket = ManagedAtomic<UInt64>(0)
    /// Blocks of the current launch not finished yet.
    private let remaining = ManagedAtomic<Int>(0)
    private let sleepers = ManagedAtomic<Int>(0)
    private let callerSleeping = ManagedAtomic<Bool>(false)
    let backoffs = ManagedAtomic<Int>(0)
    private let wake = NSCondition()
    private let finished = NSCondition()
    private var generation: UInt64 = 0   // the caller's alone
    // Barrier statistics (the caller's alone, but workerSleeps).
    var launches = 0, waitNanoseconds: UInt64 = 0, callerSleeps = 0
    let workerSleeps = ManagedAtomic<Int>(0)
    /// The current launch: stored before its ticket, so a thread that sees the ticket finds it here;
    /// a thread holding another generation's ticket finds it does not match and claims nothing.
    private let launch = ManagedAtomic<Launch?>(nil)
    private let stopping = ManagedAtomic<Bool>(false)

    init(threadCount: Int) { self.threadCount = threadCount }

    func stop() {
        wake.lock()
        stopping.store(true, ordering: .sequentiallyConsistent)
        ticket.store(UInt64.max, ordering: .sequentiallyConsistent)
        wake.broadcast()
        wake.unlock()
    }

    func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        guard threadCount > 1, count > grain else {
            if count > 0 { body(0, count) }
            return
        }
        generation += 1
        launches += 1
        let current = Launch(generation: generation, body: body, total: count, grain: max(1, grain), threadCount: threadCount)
        remaining.store(current.blocks, ordering: .relaxed)
        launch.store(current, ordering: .sequentiallyConsistent)
        ticket.store(generation << 32, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        claimChunks(current)
        waitForChunksInFlight()
        launch.store(nil, ordering: .releasing)   // the body's captures are not kept past the call
    }

    private func waitForChunksInFlight() {
        guard remaining.load(ordering: .acquiring) > 0 else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { waitNanoseconds &+= DispatchTime.now().uptimeNanoseconds &- start }
        var spins = 0
        while remaining.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins & 63 == 0, DispatchTime.now().uptimeNanoseconds - start > ThreadPoolTuning.callerSpinNanoseconds {
                callerSleeps += 1
                finished.lock()
                callerSleeping.store(true, ordering: .sequentiallyConsistent)
                while remaining.load(ordering: .sequentiallyConsistent) > 0 { finished.wait() }
                callerSleeping.store(false, ordering: .relaxed)
                finished.unlock()
                return
            }
        }
    }

    private func claimChunks(_ l: Launch) {
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> 32 == l.generation else { return }
            let next = Int(t & 0xFFFF_FFFF)
            guard next < l.blocks else { return }
            // A share of what is left: a thread that is late or preempted holds back little.
            let chunk = min(l.blocks - next, max(l.minChunk, (l.blocks - next) / (2 * threadCount)))
            guard ticket.compareExchange(expected: t, desired: t + UInt64(chunk), ordering: .acquiringAndReleasing).exchanged else { continue }
            l.body(next * l.grain, min((next + chunk) * l.grain, l.total))
            if remaining.wrappingDecrementThenLoad(by: chunk, ordering: .sequentiallyConsistent) == 0,
               callerSleeping.load(ordering: .sequentiallyConsistent) {
                finished.lock(); finished.signal(); finished.unlock()
            }
        }
    }

    func workerLoop() {
        var seen: UInt64 = 0
        var monitor = PreemptionMonitor()
        var backoff = ThreadPoolTuning.backoffNanoseconds
        while true {
            var spinStart: UInt64 = 0
            var spins = 0
            var current = ticket.load(ordering: .acquiring) >> 32
            while current == seen {
                spins += 1
                if spins & 255 == 0 {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if spinStart == 0 { spinStart = now }
                    if now - spinStart > ThreadPoolTuning.workerSpinNanoseconds {
                        workerSleeps.wrappingIncrement(ordering: .relaxed)
                        wake.lock()
                        sleepers.wrappingIncrement(ordering: .sequentiallyConsistent)
                        while ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen && !stopping.load(ordering: .sequentiallyConsistent) { wake.wait() }
                        sleepers.wrappingDecrement(ordering: .sequentiallyConsistent)
                        wake.unlock()
                        spinStart = 0
                        monitor.restart()   // time asleep says nothing about contention
                    }
                }
                current = ticket.load(ordering: .acquiring) >> 32
            }
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            seen = current
            if let l = launch.load(ordering: .acquiring), l.generation == current { claimChunks(l) }
            switch monitor.check() {
            case .contended:
                // Another process wants this core: leave the work to the caller for a while.
                backoffs.wrappingIncrement(ordering: .relaxed)
                wake.lock()
                _ = wake.wait(until: Date(timeIntervalSinceNow: Double(backoff) / 1e9))
                let quit = stopping.load(ordering: .sequentiallyConsistent)
                wake.unlock()
                if quit { return }
                backoff = min(2 * backoff, ThreadPoolTuning.maxBackoffNanoseconds)
                seen = ticket.load(ordering: .acquiring) >> 32   // a launch that started meanwhile is the caller's
                monitor.restart()
            case .quiet:
                backoff = ThreadPoolTuning.backoffNanoseconds
            case .measuring:
                break
            }
        }
    }
}

/// Counts this thread's involuntary context switches (the kernel took the core away for another
/// runnable thread) over a window of busy time.
struct PreemptionMonitor {
    private var windowStart: UInt64 = 0
    private var switchesAtStart = 0

    enum Verdict { case measuring, quiet, contended }

    mutating func restart() {
        windowStart = DispatchTime.now().uptimeNanoseconds
        switchesAtStart = Self.involuntarySwitches()
    }

    mutating func check() -> Verdict {
        let now = DispatchTime.now().uptimeNanoseconds
        if windowStart == 0 { restart(); return .measuring }
        guard now - windowStart >= ThreadPoolTuning.preemptionWindowNanoseconds else { return .measuring }
        let switches = Self.involuntarySwitches() - switchesAtStart
        restart()
        return switches >= ThreadPoolTuning.preemptionsForBackoff ? .contended : .quiet
    }

    static func involuntarySwitches() -> Int {
        #if os(Linux)
        var usage = rusage()
        let rusageThread: Int32 = 1   // RUSAGE_THREAD (Linux; Swift's Glibc hides it behind _GNU_SOURCE)
        guard getrusage(.init(rusageThread), &usage) == 0 else { return 0 }
        return usage.ru_nivcsw
        #else
        return 0
        #endif
    }
}
