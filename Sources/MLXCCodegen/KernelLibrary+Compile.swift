import CLLVM
import Foundation
import LLVMKit

/// What a compile did: the kernel cache's effect is visible here (and in `mlxc run --timing`,
/// `mlxc bench --json`): a start with every kernel cached runs no LLVM optimization.
public struct CompileReport: Sendable, Equatable {
    public var kernels = 0
    /// Kernels whose object code came from the cache.
    public var cached = 0
    /// Kernels that went through LLVM's optimizer and code generator in this process.
    public var optimized = 0
    /// Cache entries found damaged (deleted and compiled again).
    public var corrupt = 0
    /// Wall time of each phase: emitting the IR and looking it up, LLVM's optimizer and code
    /// generator (zero on a cached start), and linking the objects into the JIT.
    public var emitSeconds = 0.0, optimizeSeconds = 0.0, linkSeconds = 0.0
    public init() {}
}

extension KernelLibrary {
    /// Compiles every kernel into `jit`, each as its own module, and returns the entry points by name.
    ///
    /// Each kernel's unoptimized IR names its cache entry (`KernelCache.key`), so kernels shared by
    /// models, or by the same model started again, are loaded instead of optimized. The kernels that
    /// miss are optimized concurrently on `threads` threads, the largest first (LLVM's time grows
    /// with the IR; the small ones then fill in the gaps), and stored. `progress` hears one line
    /// when the LLVM work has taken longer than `progressAfter` seconds, and one when it ends.
    public func compile(into jit: JIT, machine: TargetMachine, cache: KernelCache?,
                        threads: Int = AvailableCores.count, progress: ((String) -> Void)? = nil,
                        progressAfter: Double = 1) throws -> ([String: KernelFunction], CompileReport) {
        var report = CompileReport()
        report.kernels = definitions.count
        rejected = [:]
        guard !definitions.isEmpty else { return ([:], report) }
        let host = machine.host
        let corruptBefore = cache?.stats.corrupt ?? 0

        // 1. Emit each kernel into its own context (cheap) and look its object code up.
        var clock = Date()
        func lap() -> Double { defer { clock = Date() }; return Date().timeIntervalSince(clock) }
        var units = [Unit?](repeating: nil, count: definitions.count)
        try forEachConcurrently(definitions.count, threads: threads, host: host) { i, tm in
            let single = KernelLibrary()
            single.require(self.definitions[i])
            let context = Context()
            let module = single.emitModule(context: context, name: self.definitions[i].name)
            tm.configure(module.ref)
            single.rejectInvalid(module)
            if let why = single.rejected[self.definitions[i].name] { return Unit(rejected: why) }
            let ir = module.bitcode
            let key = cache?.key(ir: ir, host: host)
            if let key, let object = cache?.load(key) { return Unit(object: object, cached: true) }
            try module.verify()   // (a hit skips it: an entry exists only for IR that verified when compiled)
            return Unit(context: context, module: module, key: key, irBytes: ir.count)
        } store: { units[$0] = $1 }
        report.emitSeconds = lap()

        // 2. Optimize and generate code for the misses, largest first.
        let misses = units.indices.filter { units[$0]?.module != nil }.sorted { units[$0]!.irBytes > units[$1]!.irBytes }
        if !misses.isEmpty {
            // Said by whichever compile thread first finds the work past `progressAfter` (no timer thread to starve).
            let notice = SlowCompileNotice(after: progressAfter, progress: progress,
                                           line: "mlxc: compiling \(misses.count) kernels with LLVM for \(host.cpuName)"
                                               + (cache.map { " (kept in \($0.directory) for the next start)" } ?? "") + "…")
            try forEachConcurrently(misses.count, threads: threads, host: host) { m, tm in
                let unit = units[misses[m]]!
                try tm.optimize(unit.module!.ref)
                let object = try tm.emit(unit.module!.ref, .object)
                if let key = unit.key { cache?.store(key, object: object) }
                notice.tick()
                return Unit(object: object, cached: false)
            } store: { units[misses[$0]] = $1 }
            notice.finish(misses.count)
            cache?.evictIfNeeded()
        }
        report.optimizeSeconds = lap()

        // 3. Link them into the JIT and look the entry points up.
        var functions: [String: KernelFunction] = [:]
        for (definition, unit) in zip(definitions, units) {
            guard let unit else { continue }
            if let why = unit.rejected { rejected[definition.name] = why; continue }
            guard let object = unit.object else { continue }
            if unit.cached { report.cached += 1 } else { report.optimized += 1 }
            try jit.addObject(object, name: definition.name)
        }
        for definition in definitions where rejected[definition.name] == nil {
            functions[definition.name] = unsafeBitCast(try jit.address(of: definition.name), to: KernelFunction.self)
        }
        report.linkSeconds = lap()
        report.corrupt = (cache?.stats.corrupt ?? 0) - corruptBefore
        return (functions, report)
    }

    /// One kernel on its way through `compile`: emitted (module), or compiled (object), or rejected.
    struct Unit: @unchecked Sendable {
        var context: Context?
        var module: Module?
        var key: String?
        var irBytes = 0
        var object: [UInt8]?
        var cached = false
        var rejected: String?

        init(context: Context, module: Module, key: String?, irBytes: Int) {
            self.context = context; self.module = module; self.key = key; self.irBytes = irBytes
        }
        init(object: [UInt8], cached: Bool) { self.object = object; self.cached = cached }
        init(rejected: String) { self.rejected = rejected }
    }

    /// Runs `work(i, machine)` for `0..<count` on up to `threads` threads (each with its own target
    /// machine: they are not shared across threads), handing results to `store` under a lock.
    func forEachConcurrently(_ count: Int, threads: Int, host: HostTarget, _ work: @escaping (Int, TargetMachine) throws -> Unit,
                             store: (Int, Unit) -> Void) throws {
        let workers = max(1, min(threads, count))
        let lock = NSLock()
        var next = 0
        var results = [Unit?](repeating: nil, count: count)
        var failure: Error?
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let tm: TargetMachine
            do { tm = try TargetMachine(host: host) } catch { lock.lock(); failure = failure ?? error; lock.unlock(); return }
            while true {
                lock.lock()
                let i = next
                next += 1
                let stop = failure != nil
                lock.unlock()
                if i >= count || stop { return }
                do {
                    let unit = try work(i, tm)
                    lock.lock(); results[i] = unit; lock.unlock()
                } catch {
                    lock.lock(); failure = failure ?? error; lock.unlock()
                }
            }
        }
        if let failure { throw failure }
        for (i, unit) in results.enumerated() { if let unit { store(i, unit) } }
    }
}

/// One line when a cold compile has run longer than `after` seconds, and one when it ends.
final class SlowCompileNotice: @unchecked Sendable {
    private let lock = NSLock()
    private let started = Date()
    private let after: Double
    private let progress: ((String) -> Void)?
    private let line: String
    private var said = false

    init(after: Double, progress: ((String) -> Void)?, line: String) {
        self.after = after
        self.progress = progress
        self.line = line
    }

    func tick() {
        guard let progress else { return }
        lock.lock(); defer { lock.unlock() }
        if !said && Date().timeIntervalSince(started) > after { said = true; progress(line) }
    }

    func finish(_ kernels: Int) {
        lock.lock(); defer { lock.unlock() }
        if said { progress?(String(format: "mlxc: compiled %d kernels in %.1f s", kernels, Date().timeIntervalSince(started))) }
    }
}
