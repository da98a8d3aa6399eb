/// How many of the pool's workers the next launch is split with: fewer while the pool's threads keep waiting
/// for their cores, all again once the cores are free.
///
/// Why: a launch ends at a barrier. A worker that shares its core with another busy process is descheduled
/// for a scheduler slice (milliseconds) now and then; if it holds a chunk at that moment the whole launch
/// waits for it, and a decode step is ~40 launches of ~50 µs. With a busy process on one core of two, the
/// caller alone on the other core is faster than two threads in lockstep with a third.
///
/// Read by the caller every `window` of launches (no locks):
/// - how much of the window the pool's threads spent runnable but waiting for a CPU (`ThreadRunDelay`: the
///   scheduler's own account, so a nice-19 build or a SCHED_IDLE job beside the pool does not count, a busy
///   process at the same priority does). Two windows in a row in which a thread waited more than
///   `contendedShare` of the time — or in which the caller waited for a chunk far longer than its own work
///   took (a worker lost its core mid-chunk) — take one worker off;
/// - coming back: at once when the machine's runnable threads (`RunnableThreads`) leave a core free for 8
///   windows in a row (the other process ended); otherwise one worker is tried again after `firstProbe`,
///   and if the cores are still contended, after twice as long each time (up to `maxProbe`), so a lasting
///   neighbour costs a 2-window probe every 1.6 s.
struct PoolSizing {
    static let window: UInt64 = 5_000_000
    static let contendedShare = 0.2
    static let firstProbe: UInt64 = 100_000_000
    static let maxProbe: UInt64 = 1_600_000_000

    let maxWorkers: Int
    /// Workers the next launch is split with (0: the caller runs it alone, in one piece).
    private(set) var workers: Int
    private var lastWindow: UInt64 = 0
    private var contendedWindows = 0
    /// A stall seen since the last window.
    private var stalled = false
    /// Free workers the machine's runnable threads offered in recent windows, newest last.
    private var offers: [Int] = []
    private var probe = PoolSizing.firstProbe
    private var nextProbe: UInt64 = 0
    /// When the last grow by probe happened (0: none pending judgement).
    private var probedAt: UInt64 = 0
    /// How often the pool shrank or grew (for `MLXC_PROFILE`).
    private(set) var changes = 0

    init(maxWorkers: Int) {
        self.maxWorkers = maxWorkers
        workers = maxWorkers
    }

    /// Whether a window ended at `now`.
    func windowDue(now: UInt64) -> Bool { now &- lastWindow >= Self.window }

    /// One window: the largest share of it any of the pool's working threads spent waiting for a CPU, and the
    /// workers the machine's runnable threads leave room for (nil: unknown).
    mutating func observe(waitingShare: Double, offer: Int?, now: UInt64) {
        lastWindow = now
        if let offer {
            offers.append(offer)
            if offers.count > 8 { offers.removeFirst() }
        }
        let contended = stalled || (workers > 0 && waitingShare > Self.contendedShare)
        stalled = false
        contendedWindows = contended ? contendedWindows + 1 : 0
        if contendedWindows >= 2, workers > 0 {
            contendedWindows = 0
            // A probe that found the cores still taken: wait twice as long before the next one.
            probe = probedAt != 0 ? min(2 * probe, Self.maxProbe) : Self.firstProbe
            probedAt = 0
            nextProbe = now &+ probe
            set(workers - 1)
            return
        }
        if probedAt != 0, now &- probedAt >= 4 * Self.window {
            probedAt = 0   // the probe held: the cores are free again
            probe = Self.firstProbe
        }
        guard workers < maxWorkers, !contended else { return }
        if offers.count == 8, let least = offers.min(), least > workers {
            set(least)   // the other processes are gone: every window offered a core
        } else if now >= nextProbe {
            probedAt = now
            set(workers + 1)
        }
    }

    /// The caller waited `waited` ns for chunks in flight after running its own for `ownWork` ns.
    mutating func observeWait(_ waited: UInt64, ownWork: UInt64) {
        // A running worker's last chunk is no longer than the caller's share; a descheduled one costs a slice.
        if waited > 2 * ownWork + 500_000 { stalled = true }
    }

    private mutating func set(_ n: Int) {
        guard n != workers else { return }
        workers = n
        changes += 1
    }
}
