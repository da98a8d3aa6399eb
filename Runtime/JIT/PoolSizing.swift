/// How many of the pool's workers the next launch is split with: as many as there are cores that other
/// processes leave free, and fewer for a while when workers keep stalling launches.
///
/// Why: a launch ends at a barrier. A worker that shares its core with another busy process is descheduled
/// for a scheduler slice (milliseconds) now and then; if it holds a chunk at that moment the whole launch
/// waits for it, and a decode step is a hundred launches of ~50 µs. Such a worker also spins on the core
/// the other process needs. With another process on one core of two, the caller alone on the free core is
/// faster than two threads in lockstep with a third — so the pool shrinks to the cores actually free.
///
/// Two signals, both read by the caller only (no locks):
/// - every `sampleInterval` of launches, the machine's runnable threads (`RunnableThreads`) minus this
///   pool's own awake threads: the other processes' demand for cores. The pool shrinks when at least 3 of
///   the last 4 samples say so (a kernel thread waking for a moment does not count) and grows back when all
///   of the last 8 do (about 16 ms after the other process stops);
/// - stalls: the caller waited for chunks in flight far longer than it took to run its own (a worker lost
///   its core mid-chunk: what the first signal cannot see — another VM, a cgroup quota). Two within
///   `stallWindow` take one worker off for `holdNanoseconds`, doubling while stalls recur.
struct PoolSizing {
    static let sampleInterval: UInt64 = 2_000_000
    static let stallWindow: UInt64 = 100_000_000
    static let firstHold: UInt64 = 100_000_000
    static let maxHold: UInt64 = 1_600_000_000

    let maxWorkers: Int
    /// Workers the next launch is split with (0: the caller runs it alone, in one piece).
    private(set) var workers: Int
    /// Free workers the recent samples offered, newest last.
    private var offers: [Int] = []
    private var lastSample: UInt64 = 0
    private var lastStall: UInt64 = 0
    private var holdUntil: UInt64 = 0
    private var hold = PoolSizing.firstHold
    /// How often the pool shrank or grew (for `MLXC_PROFILE`).
    private(set) var changes = 0

    init(maxWorkers: Int) {
        self.maxWorkers = maxWorkers
        workers = maxWorkers
    }

    /// Whether a new sample of the machine is due at `now`.
    func wantsSample(now: UInt64) -> Bool { now &- lastSample >= Self.sampleInterval }

    /// One sample: `runnable` threads on a machine of `cpus`, `ours` of them this pool's (caller included).
    mutating func observe(runnable: Int, ours: Int, cpus: Int, now: UInt64) {
        lastSample = now
        let others = max(0, runnable - ours)
        let offer = min(maxWorkers, max(0, cpus - 1 - others))
        offers.append(offer)
        if offers.count > 8 { offers.removeFirst() }
        let recent = offers.suffix(4).sorted()
        if recent.count == 4, recent[2] < workers {
            set(recent[2], now: now)   // 3 of the last 4 offered at most this
        } else if offers.count == 8, now >= holdUntil, let least = offers.min(), least > workers {
            set(least, now: now)       // all of the last 8 offered more
        }
    }

    /// The caller waited `waited` ns for chunks in flight after running its own for `ownWork` ns.
    mutating func observeWait(_ waited: UInt64, ownWork: UInt64, now: UInt64) {
        // A running worker's last chunk is no longer than the caller's share; a descheduled one costs a slice.
        guard waited > 2 * ownWork + 500_000 else { return }
        defer { lastStall = now }
        guard lastStall != 0, now &- lastStall < Self.stallWindow else { return }
        // Stalls keep coming: stop handing work to one worker for a while (longer each time it recurs).
        hold = now < holdUntil &+ Self.stallWindow ? min(2 * hold, Self.maxHold) : Self.firstHold
        holdUntil = now &+ hold
        lastStall = 0
        if workers > 0 { set(workers - 1, now: now) }
    }

    private mutating func set(_ n: Int, now: UInt64) {
        guard n != workers else { return }
        workers = n
        changes += 1
    }
}
