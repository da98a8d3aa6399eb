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
/// and waits only for chunks already running — a late or descheduled worker costs at most its chunk.
///
/// Sharing the machine (a laptop always has something else running):
/// - while its threads keep waiting for their cores (another busy process at the same priority), the pool
///   splits launches with fewer workers (`PoolSizing`); with none the caller runs each launch alone, in one
///   piece, and the workers sleep;
/// - an idle worker spins for a fraction of a millisecond — the gap between back-to-back kernel launches in
///   a decode step — then sleeps on its own condition variable (a futex), so an idle pool costs nothing;
///   a worker whose spins keep ending in sleep spins less;
/// - the caller, once nothing is left to claim, spins briefly for the chunks in flight, then sleeps
///   until the last one ends: a worker that another process preempted mid-chunk then gets the
///   caller's free core (the scheduler pulls it over) instead of the caller spinning beside it.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared

    /// `adaptive`: split launches with fewer workers while the pool's threads wait for their cores (`PoolSizing`);
    /// off, every launch is split with every thread (`MLXC_POOL_ADAPT=0`; tests that need a fixed split).
    public init(threads: Int, adaptive: Bool = ThreadPoolTuning.adaptive) {
        threadCount = max(1, threads)
        shared = Shared(threadCount: threadCount, adaptive: adaptive)
        for id in 1..<threadCount {
            let state = shared   // workers keep the shared state alive, not the pool
            let t = Thread { state.workerLoop(id: id) }
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

    /// Workers the next launch is split with (fewer than `threadCount - 1` while other processes take the cores).
    public var workersInUse: Int { shared.workersInUse }
    /// Workers spinning or running chunks (not asleep).
    var awakeWorkers: Int { shared.awakeWorkers }

    /// Where launches lose time outside the kernels (`MLXC_PROFILE`): launches split across threads, how long the
    /// caller waited for other threads' chunks after running out of work, how often it slept for them, how often
    /// an idle worker fell asleep (each then costs a wake-up on the next launch), launches the caller ran alone
    /// because other processes took the other cores, and how often the pool changed size.
    public var barrierStats: (launches: Int, waitNanoseconds: UInt64, callerSleeps: Int, workerSleeps: Int,
                              aloneLaunches: Int, sizeChanges: Int) {
        (shared.launches, shared.waitNanoseconds, shared.callerSleeps, shared.workerSleeps.load(ordering: .relaxed),
         shared.aloneLaunches, shared.sizing?.changes ?? 0)
    }
}

/// Tunables of the pool, in one place.
public enum ThreadPoolTuning {
    /// How long an idle worker spins before it sleeps (at most: it halves while its spins find nothing).
    static let workerSpinNanoseconds: UInt64 = knob("MLXC_POOL_WORKER_SPIN_US") ?? 300_000
    /// The least a worker spins.
    static let minWorkerSpinNanoseconds: UInt64 = min(20_000, workerSpinNanoseconds)
    /// How long the caller spins for chunks in flight before it sleeps.
    static let callerSpinNanoseconds: UInt64 = knob("MLXC_POOL_CALLER_SPIN_US") ?? 30_000
    /// Pools shrink while their threads wait for cores (`MLXC_POOL_ADAPT=0`: never).
    public static let adaptive = ProcessInfo.processInfo.environment["MLXC_POOL_ADAPT"] != "0"
    static func knob(_ name: String) -> UInt64? { ProcessInfo.processInfo.environment[name].flatMap { UInt64($0) }.map { $0 * 1000 } }
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
    /// Workers 1...workers may claim chunks (the caller always does).
    let workers: Int
    let minChunk: Int

    init(generation: UInt64, body: @escaping (Int, Int) -> Void, total: Int, grain: Int, workers: Int) {
        self.generation = generation
        self.body = body
        self.total = total
        self.grain = grain
        self.workers = workers
        blocks = (total + grain - 1) / grain
        minChunk = max(1, blocks / (4 * (workers + 1)))
    }

    /// A share of what is left from block `next`: a thread that is late or descheduled holds back little.
    func chunk(at next: Int) -> Int {
        min(blocks - next, max(minChunk, (blocks - next) / (2 * (workers + 1))))
    }
}

/// A worker's own sleep (the caller wakes exactly the workers a launch is split with) and its run-queue
/// wait, which the worker opens for itself and the caller reads (`PoolSizing`).
private final class WorkerSlot: @unchecked Sendable {
    let asleep = ManagedAtomic<Bool>(false)
    let wake = NSCondition()
    let runDelay = ManagedAtomic<ThreadRunDelay?>(nil)
    var lastRunDelay: UInt64 = 0   // the caller's
}

/// The state the caller and the workers share; it outlives the pool until every worker has exited.
private final class Shared: @unchecked Sendable {
    let threadCount: Int
    private let ticket = ManagedAtomic<UInt64>(0)
    /// Blocks of the current launch not finished yet.
    private let remaining = ManagedAtomic<Int>(0)
    private let callerSleeping = ManagedAtomic<Bool>(false)
    private let finished = NSCondition()
    /// slots[id - 1] for worker `id`.
    private let slots: [WorkerSlot]
    /// Workers 1...active take launches; the others sleep until the pool grows again.
    private let active: ManagedAtomic<Int>
    /// Workers not asleep (spinning or running chunks): this pool's own share of the machine's runnable threads.
    private let awake: ManagedAtomic<Int>
    private var generation: UInt64 = 0   // the caller's alone
    /// The caller's alone: how many workers the next launch gets; nil when not adaptive.
    private(set) var sizing: PoolSizing?
    private let runnable: RunnableThreads?
    /// The calling thread's run-queue wait (reopened if another thread calls), and where the last window began.
    private var callerRunDelay: (thread: pthread_t, delay: ThreadRunDelay, last: UInt64)?
    private var windowStart: UInt64 = 0
    // Barrier statistics (the caller's alone, but workerSleeps).
    var launches = 0, waitNanoseconds: UInt64 = 0, callerSleeps = 0, aloneLaunches = 0
    let workerSleeps = ManagedAtomic<Int>(0)
    /// The current launch: stored before its ticket, so a thread that sees the ticket finds it here;
    /// a thread holding another generation's ticket finds it does not match and claims nothing.
    private let launch = ManagedAtomic<Launch?>(nil)
    private let stopping = ManagedAtomic<Bool>(false)

    private let adaptive: Bool

    init(threadCount: Int, adaptive: Bool) {
        self.threadCount = threadCount
        self.adaptive = adaptive && threadCount > 1
        slots = (1..<max(threadCount, 1)).map { _ in WorkerSlot() }
        active = ManagedAtomic(threadCount - 1)
        awake = ManagedAtomic(threadCount - 1)
        sizing = adaptive && threadCount > 1 ? PoolSizing(maxWorkers: threadCount - 1) : nil
        runnable = sizing == nil ? nil : RunnableThreads()
    }

    var workersInUse: Int { active.load(ordering: .relaxed) }
    var awakeWorkers: Int { awake.load(ordering: .relaxed) }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        ticket.store(UInt64.max, ordering: .sequentiallyConsistent)
        for slot in slots {
            slot.wake.lock(); slot.wake.signal(); slot.wake.unlock()
        }
    }

    func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Int, Int) -> Void) {
        guard threadCount > 1, count > grain else {
            if count > 0 { body(0, count) }
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let workers = resize(now: start)
        guard workers > 0 else {
            aloneLaunches += 1
            body(0, count)   // other processes have the other cores: no split, no barrier
            return
        }
        generation += 1
        launches += 1
        let current = Launch(generation: generation, body: body, total: count, grain: max(1, grain), workers: workers)
        remaining.store(current.blocks, ordering: .relaxed)
        launch.store(current, ordering: .sequentiallyConsistent)
        ticket.store(generation << 32, ordering: .sequentiallyConsistent)
        for slot in slots.prefix(workers) where slot.asleep.load(ordering: .sequentiallyConsistent) {
            slot.wake.lock(); slot.wake.signal(); slot.wake.unlock()
        }
        claimChunks(current)
        if remaining.load(ordering: .acquiring) > 0 {
            let ownEnd = DispatchTime.now().uptimeNanoseconds
            let waited = waitForChunksInFlight(since: ownEnd)
            sizing?.observeWait(waited, ownWork: ownEnd - start)
        }
        launch.store(nil, ordering: .releasing)   // the body's captures are not kept past the call
    }

    /// Ends a sizing window when due and returns the workers this launch is split with.
    private func resize(now: UInt64) -> Int {
        guard sizing != nil else { return threadCount - 1 }
        if sizing!.windowDue(now: now) {
            let span = Double(max(1, now &- windowStart))
            windowStart = now
            // The share of the window the most delayed of the pool's working threads waited for a CPU.
            var waiting = 0.0
            let me = pthread_self()
            if callerRunDelay == nil || pthread_equal(callerRunDelay!.thread, me) == 0 {
                callerRunDelay = ThreadRunDelay().map { (me, $0, $0.nanoseconds ?? 0) }
            } else if let d = callerRunDelay!.delay.nanoseconds {
                waiting = Double(d &- callerRunDelay!.last) / span
                callerRunDelay!.last = d
            }
            for slot in slots {
                guard let delay = slot.runDelay.load(ordering: .acquiring), let d = delay.nanoseconds else { continue }
                waiting = max(waiting, Double(d &- slot.lastRunDelay) / span)
                slot.lastRunDelay = d
            }
            let offer = runnable?.sample().map { r in
                min(threadCount - 1, max(0, runnable!.onlineCPUs - 1 - max(0, r - 1 - awake.load(ordering: .relaxed))))
            }
            sizing!.observe(waitingShare: waiting, offer: offer, now: now)
        }
        let workers = sizing!.workers
        if active.load(ordering: .relaxed) != workers { active.store(workers, ordering: .relaxed) }
        return workers
    }

    /// Waits until no chunk is in flight; → nanoseconds waited.
    private func waitForChunksInFlight(since start: UInt64) -> UInt64 {
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
                break
            }
        }
        let waited = DispatchTime.now().uptimeNanoseconds - start
        waitNanoseconds &+= waited
        return waited
    }

    /// Claims and runs chunks of `l` until none is left; → whether it ran any.
    @discardableResult
    private func claimChunks(_ l: Launch) -> Bool {
        var ran = false
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> 32 == l.generation else { return ran }
            let next = Int(t & 0xFFFF_FFFF)
            guard next < l.blocks else { return ran }
            let chunk = l.chunk(at: next)
            guard ticket.compareExchange(expected: t, desired: t + UInt64(chunk), ordering: .acquiringAndReleasing).exchanged else { continue }
            l.body(next * l.grain, min((next + chunk) * l.grain, l.total))
            ran = true
            if remaining.wrappingDecrementThenLoad(by: chunk, ordering: .sequentiallyConsistent) == 0,
               callerSleeping.load(ordering: .sequentiallyConsistent) {
                finished.lock(); finished.signal(); finished.unlock()
            }
        }
    }

    func workerLoop(id: Int) {
        let slot = slots[id - 1]
        if adaptive { slot.runDelay.store(ThreadRunDelay(), ordering: .releasing) }
        var seen: UInt64 = 0
        var spinBudget = ThreadPoolTuning.workerSpinNanoseconds
        var spinStart: UInt64 = 0
        var spins = 0
        while true {
            let current = ticket.load(ordering: .acquiring) >> 32
            if stopping.load(ordering: .relaxed) { return }
            if current != seen {
                seen = current
                if let l = launch.load(ordering: .acquiring), l.generation == current, id <= l.workers, claimChunks(l) {
                    spinBudget = min(2 * spinBudget, ThreadPoolTuning.workerSpinNanoseconds)   // spinning pays
                }
                spinStart = 0
                spins = 0
                continue
            }
            spins += 1
            let benched = id > active.load(ordering: .relaxed)
            if benched || spins & 255 == 0 {
                let now = DispatchTime.now().uptimeNanoseconds
                if spinStart == 0 { spinStart = now }
                if benched || now - spinStart > spinBudget {
                    if !benched { spinBudget = max(spinBudget / 2, ThreadPoolTuning.minWorkerSpinNanoseconds) }
                    sleep(slot, id: id, seen: seen)
                    spinStart = 0
                    spins = 0
                }
            }
        }
    }

    /// Sleeps until a launch after `seen` includes worker `id`, or the pool stops.
    private func sleep(_ slot: WorkerSlot, id: Int, seen: UInt64) {
        workerSleeps.wrappingIncrement(ordering: .relaxed)
        slot.wake.lock()
        awake.wrappingDecrement(ordering: .relaxed)
        slot.asleep.store(true, ordering: .sequentiallyConsistent)
        while !stopping.load(ordering: .sequentiallyConsistent),
              ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen || id > active.load(ordering: .sequentiallyConsistent) {
            slot.wake.wait()
        }
        slot.asleep.store(false, ordering: .relaxed)
        awake.wrappingIncrement(ordering: .relaxed)
        slot.wake.unlock()
    }
}
