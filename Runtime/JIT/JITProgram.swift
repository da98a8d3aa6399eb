import Foundation
import LLVMKit
import MLXCCodegen
import MLXCFrontend
import MLXCIR

/// A program compiled for the host CPU: an execution plan of JIT-compiled kernels over native
/// buffers, with the reference executor as the fallback for ops that have no kernel yet.
/// State (KV caches) lives in persistent buffers; intermediate values in a per-call arena.
public final class JITProgram {
    public struct Options {
        public var threads: Int = AvailableCores.count
        /// Launches are split with fewer threads while the threads wait for their cores (`PoolSizing`: another busy
        /// process); off: always with all of them (tests of a fixed split). `MLXC_POOL_ADAPT=0` turns it off.
        public var adaptiveThreads = ThreadPoolTuning.adaptive
        public var keepDumps = false
        /// Compiled kernels kept between runs (`mlxc run` and `bench` use one unless `--no-cache`).
        public var kernelCache: KernelCache?
        /// Hears a line on stderr's behalf when a cold compile takes longer than a second.
        public var compileProgress: ((String) -> Void)?
        /// Object code from a `mlxc compile` artifact: load it instead of running LLVM's optimizer.
        public var precompiledObject: [UInt8]?
        /// Plans kernels for this machine's vector width and features instead of the host's. A
        /// target other than the host (`mlxc compile --target aarch64-linux-gnu`) only plans: its
        /// kernels are in `library` for `objectCode`/`perKernelDumps`, the program cannot run here.
        public var target: HostTarget?
        /// Compiles the kernels planned for `target` for the host and runs them here (their IR is
        /// portable): the ARM64 emulation check runs the aarch64 plan on x86 to have its results.
        public var runPlanOnHost = false
        /// Hears every kernel launch with its buffers before and after (`KernelLaunchTrace`).
        public var trace: KernelLaunchTrace?
        /// One-token linears read an f16 copy of f32 weights whose every value is an f16 (`ExactHalfWeights`:
        /// the same results, half the bytes). Off: every f32 weight is read as f32.
        public var exactHalfWeights = true
        /// Steps whose results depend only on constants and on inputs byte-identical to the last call's are
        /// skipped, their results kept between calls (`CrossCallReuse`). `MLXC_NO_REUSE=1` turns it off.
        public var crossCallReuse = ProcessInfo.processInfo.environment["MLXC_NO_REUSE"] == nil
        /// Large constants are copied out of the file mapping into 2 MiB pages at load (`HugePageWeights`: decode
        /// streams them faster; the mapping's pages are released, so they are resident once). `MLXC_HUGEPAGE_WEIGHTS=1`: on.
        public var hugePageWeights = HugePageWeights.enabled
        public init() {}
    }

    public let graph: Graph
    let pte: PTEFile
    let options: Options
    let machine: TargetMachine
    let jit: JIT
    /// The machine the kernels are planned for (the host unless `Options.target` names another).
    let planTarget: HostTarget
    /// Planned for another machine and not compiled here (`Options.target`): the program cannot run.
    var plannedOnly: Bool { !planTarget.isHost && !options.runPlanOnHost }
    /// Planned for another machine: the kernel each `.skip` step stands for (block → step → name).
    var crossKernels: [Int: [Int: String]] = [:]
    let pool: ThreadPool
    /// Plans per block (main, init, branch bodies).
    var plans: [Int: [Step]] = [:]
    /// Constants, state and init results: the values every call starts from.
    var baseValues: [NativeTensor?]
    /// 4-bit dynamic-quant linears repacked for the int8 GEMM kernel, by the op's result (`PackedDynamicQuant`).
    var dynamicQuantPacks: [ValueID: PackedDynamicQuant] = [:]
    var values: [NativeTensor?] = []
    let arena = Arena()
    /// Results kept between calls for steps whose inputs did not change (`CrossCallReuse`); nil: none.
    var reuse: ReuseState?
    /// Per held input position: bumped whenever `holdInput` stores different bytes.
    var heldVersions: [Int: Int] = [:]
    /// Owned buffers (state, literal constants, init results) freed with the program.
    var owned: [UnsafeMutableRawPointer] = []
    /// The huge-page region holding the large constants (freed with the program).
    var hugePages: [HugePageWeights] = []
    /// Bytes of constants the program reads from huge pages instead of the file mapping.
    public var hugePageBytes: Int { hugePages.reduce(0) { $0 + $1.placedBytes } }
    /// The f16 copies one-token linears read (made while planning).
    let halfWeights = ExactHalfWeights()
    /// The reference executor that runs fallback ops (its graph has no state: state stays native).
    let reference: ReferenceExecutor
    public internal(set) var dumps = KernelLibrary.Dumps()
    /// Why each op fell back to the reference executor (for `--remarks`).
    public internal(set) var remarks: [String] = []
    public internal(set) var kernelNames: [String] = []
    /// Calls of each kernel that ran on the reference instead (operand dtypes or a layout it has no code for).
    public internal(set) var runtimeFallbacks: [String: Int] = [:]
    /// The kernels this program uses (for artifacts and dumps).
    public internal(set) var library = KernelLibrary()
    /// One line per step: what runs for each node (kernel name, view, scalar, fallback).
    public internal(set) var planSummary: [String] = []
    /// Per-step time totals when `MLXC_PROFILE` is set (printed by `profileReport`).
    var profile: [String: (count: Int, nanoseconds: UInt64)]? = ProcessInfo.processInfo.environment["MLXC_PROFILE"] != nil ? [:] : nil

    func record(_ step: Step, since start: UInt64) {
        let key: String
        switch step {
        case .kernel(let l): key = "kernel " + l.name
        case .scalar(let n): key = "scalar " + n.op.name
        case .view(let n): key = "view " + n.op.name
        case .fallback(let n, _): key = "fallback " + n.op.name
        case .branch: key = "branch"
        case .skip: return
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        let old = profile?[key] ?? (0, 0)
        profile?[key] = (old.count + 1, old.nanoseconds + elapsed)
    }

    /// Where the time went, per step kind, most expensive first.
    public var profileReport: String {
        guard let profile else { return "" }
        let total = profile.values.reduce(0) { $0 + $1.nanoseconds }
        let reused = reuse.map { r in
            String(format: "\ncross-call reuse: %d of %d steps reusable, %d step runs skipped; input checks %.2f ms over %.1f MB",
                   r.analysis.reusableSteps, r.analysis.stepInputs.count, r.skippedSteps, Double(r.compareNanoseconds) / 1e6,
                   Double(r.comparedBytes) / 1e6)
        } ?? ""
        let pooled = pool.barrierStats
        let barrier = String(format: "\nthread pool: %d launches split across up to %d threads; the caller waited %.2f ms for others' chunks (%d times asleep); workers fell asleep %d times; %d launches run by the caller alone (other processes had the other cores), %d size changes",
                             pooled.launches, pool.threadCount, Double(pooled.waitNanoseconds) / 1e6, pooled.callerSleeps, pooled.workerSleeps,
                             pooled.aloneLaunches, pooled.sizeChanges)
        return profile.sorted { $0.value.nanoseconds > $1.value.nanoseconds }.prefix(40).map { key, v in
            String(format: "%8.2f ms %5.1f%% %7d× %@", Double(v.nanoseconds) / 1e6, 100 * Double(v.nanoseconds) / Double(max(total, 1)), v.count, key)
        }.joined(separator: "\n") + reused + barrier
    }

    /// Seconds spent emitting, optimizing and compiling kernels.
    public internal(set) var compileSeconds = 0.0
    /// How many kernels came from the cache and how many LLVM optimized.
    public internal(set) var compileReport = CompileReport()

    public init(graph: Graph, pte: PTEFile, options: Options = Options()) throws {
        self.graph = graph
        self.pte = pte
        self.options = options
        machine = try TargetMachine()
        jit = try JIT(machine: machine)
        planTarget = options.target ?? machine.host
        pool = ThreadPool(threads: options.threads, adaptive: options.adaptiveThreads)
        var stateless = graph
        for i in stateless.values.indices {
            if case .state = stateless.values[i].kind { stateless.values[i].kind = .computed }
        }
        let packs = Self.takePackNodes(&stateless)   // repacked natively below, not by the reference
        let ggufPacks = Self.takeGGUFPackNodes(&stateless)
        reference = try ReferenceExecutor(graph: stateless, pte: pte)
        baseValues = [NativeTensor?](repeating: nil, count: graph.values.count)
        try loadConstantsAndState()
        try packAffineWeights(packs)
        try packGGUFWeights(ggufPacks)
        try packDynamicQuantWeights()
        try buildPlans()
        buildReuse()
    }

    deinit { for p in owned { p.deallocate() } }

    func allocateOwned(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(bytes, 1))
        owned.append(p)
        return p
    }

    /// Constants become views into the mapped file (no copy); state gets zeroed or initialized
    /// buffers; values the init block computed are converted once.
    func loadConstantsAndState() throws {
        // Large file-backed constants go to huge pages (`HugePageWeights`): sized first, then placed as they load.
        var hugeTotal = 0
        if options.hugePageWeights {
            for info in graph.values {
                guard case .constant(let source) = info.kind, let type = info.type, let shape = type.staticShape else { continue }
                if case .literal = source { continue }
                let bytes = shape.reduce(1, *) * type.dtype.byteSize
                if bytes >= HugePageWeights.minimumBytes { hugeTotal += HugePageWeights.rounded(bytes) }
            }
        }
        let huge = HugePageWeights(total: hugeTotal)
        if let huge { hugePages.append(huge) }
        for (i, info) in graph.values.enumerated() {
            let id = ValueID(i)
            switch info.kind {
            case .constant(let source):
                guard let type = info.type, let shape = type.staticShape else { continue }
                let bytes = shape.reduce(1, *) * type.dtype.byteSize
                switch source {
                case .literal:
                    let host = try reference.constant(id)
                    let p = allocateOwned(host.count * host.dtype.byteSize)
                    let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: p)
                    t.store(host)
                    baseValues[i] = t
                default:
                    let view: ByteView
                    switch source {
                    case .constantBuffer(let index): view = try pte.constantData(index: index, length: bytes, "constant \(id)")
                    case .namedData(let key): view = try pte.namedData(key)
                    case .mutableData(let index): view = try pte.mutableData(index: index, length: bytes, "constant \(id)")
                    case .literal: continue
                    }
                    guard view.count >= bytes else { throw ReferenceError("constant \(id) holds \(view.count) bytes, \(bytes) needed") }
                    if bytes >= HugePageWeights.minimumBytes, let huge, let p = huge.place(view.base, bytes: bytes, release: { pte.releasePages($0, $1) }) {
                        baseValues[i] = NativeTensor(dtype: type.dtype, shape: shape, data: p)
                    } else if Int(bitPattern: view.base) % max(type.dtype.byteSize, 1) == 0 {
                        baseValues[i] = NativeTensor(dtype: type.dtype, shape: shape, data: UnsafeMutableRawPointer(mutating: view.base))
                    } else {
                        let p = allocateOwned(bytes)
                        p.copyMemory(from: view.base, byteCount: bytes)
                        baseValues[i] = NativeTensor(dtype: type.dtype, shape: shape, data: p)
                    }
                }
            case .state(let initial):
                guard let type = info.type, let shape = type.staticShape else {
                    throw ReferenceError("state \(id) (\(info.name ?? "")) needs a static type, has \(info.type?.description ?? "none")")
                }
                let bytes = shape.reduce(1, *) * type.dtype.byteSize
                let p = allocateOwned(bytes)
                if let initial {
                    let host = try reference.loadConstant(initial, type: TensorType(type.dtype, fixed: shape), name: info.name ?? "\(id)")
                    NativeTensor(dtype: type.dtype, shape: shape, data: p).store(host)
                }
                baseValues[i] = NativeTensor(dtype: type.dtype, shape: shape, data: p)
            default:
                break
            }
        }
        for (id, host) in reference.initValues {
            let p = allocateOwned(host.count * host.dtype.byteSize)
            let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: p)
            t.store(host)
            baseValues[id.index] = t
        }
    }

    /// Zeroes the state again (a new conversation).
    public func resetState() throws {
        invalidateReuse()
        for (i, info) in graph.values.enumerated() {
            guard case .state(let initial) = info.kind, let t = baseValues[i] else { continue }
            t.data.initializeMemory(as: UInt8.self, repeating: 0, count: t.byteCount)
            if let initial {
                t.store(try reference.loadConstant(initial, type: TensorType(t.dtype, fixed: t.shape), name: info.name ?? ""))
            }
        }
    }

    // MARK: running

    /// Runs the main block on `inputs` (one per graph input) and returns the outputs.
    public func run(_ inputs: [HostTensor]) throws -> [HostTensor] {
        try run(inputs.map { Optional($0) })
    }

    func tensor(_ v: ValueID, _ step: String) throws -> NativeTensor {
        guard let t = values[v.index] else { throw ReferenceError("\(step): \(v) has no value yet") }
        return t
    }

    func run(plan block: Int) throws {
        guard let steps = plans[block] else { throw ReferenceError("no plan for block \(block)") }
        let reusing = block == 0 ? reuse : nil
        for (k, step) in steps.enumerated() {
            if let reusing, reusing.skips(k) { continue }
            let started = profile != nil ? DispatchTime.now().uptimeNanoseconds : 0
            defer { if profile != nil { record(step, since: started) } }
            switch step {
            case .kernel(let launch): try execute(launch)
            case .scalar(let node): try executeScalar(node)
            case .view(let node): try executeView(node)
            case .fallback(let node, _): try executeFallback(node)
            case .branch(let op, let origin):
                let cond = try intValue(op.cond, origin ?? "if")
                try run(plan: cond != 0 ? op.thenChainIdx : op.elseChainIdx)
            case .skip: break
            }
            if reusing?.analysis.kept[k] != nil { try keepResults(of: k) }
        }
    }

    func intValue(_ x: IntOrValue, _ what: String) throws -> Int {
        switch x {
        case .literal(let n): return Int(n)
        case .value(let v): return try tensor(v, what).intValue()
        }
    }

    func execute(_ launch: KernelLaunch) throws {
        var inputs: [NativeTensor] = []
        inputs.reserveCapacity(launch.operands.count)
        for (i, v) in launch.operands.enumerated() {
            if i < launch.constantOperands.count, let t = launch.constantOperands[i] { inputs.append(t) } else { inputs.append(try tensor(v, launch.name)) }
        }
        for (t, expected) in zip(inputs, launch.operandDTypes) where expected != nil && t.dtype != expected {
            runtimeFallbacks[launch.name, default: 0] += 1
            for node in launch.fallbackNodes { try executeFallback(node) }
            return
        }
        let shapes: [[Int]], dims: [Int64], work: Int
        if let layout = launch.layout {
            // One layout lookup per call (a decode step runs ~50 launches: this path is per-token overhead).
            guard let p = layout(inputs), launch.check?(inputs) ?? true else {
                runtimeFallbacks[launch.name, default: 0] += 1
                for node in launch.fallbackNodes { try executeFallback(node) }
                return
            }
            (shapes, dims, work) = (p.shapes, p.dims, p.work)
        } else {
            if let accepts = launch.accepts, !accepts(inputs) {
                runtimeFallbacks[launch.name, default: 0] += 1
                for node in launch.fallbackNodes { try executeFallback(node) }
                return
            }
            shapes = try launch.resultShapes(inputs)
            dims = launch.dims(inputs)
            work = launch.work(inputs)
        }
        var slot = 0
        for t in inputs { launch.bufferSlots[slot] = t.data; slot += 1 }
        for (r, id) in launch.results.enumerated() {
            let t: NativeTensor
            if let source = launch.inPlace[r] {
                t = NativeTensor(dtype: launch.resultDTypes[r], shape: shapes[r], data: inputs[source].data)
            } else {
                let bytes = shapes[r].reduce(1, *) * launch.resultDTypes[r].byteSize
                t = NativeTensor(dtype: launch.resultDTypes[r], shape: shapes[r], data: arena.allocate(bytes))
            }
            values[id.index] = t
            launch.bufferSlots[slot] = t.data
            slot += 1
        }
        if dims.count > launch.dimCapacity {
            launch.dimSlots.deallocate()
            launch.dimSlots = .allocate(capacity: dims.count)
            launch.dimCapacity = dims.count
        }
        for (i, d) in dims.enumerated() { launch.dimSlots[i] = d }
        let function = launch.function, buffers = UnsafePointer(launch.bufferSlots), dimPointer = UnsafePointer(launch.dimSlots)
        let traced = options.trace?.before(launch.name, buffers: buffers, sizes: inputs.map(\.byteCount)
                                               + launch.results.map { values[$0.index]!.byteCount },
                                           results: launch.results.map { values[$0.index]!.dtype },
                                           dims: dims, work: work)
        defer { if let traced { options.trace?.after(traced, buffers: buffers) } }
        if work <= launch.grain || pool.threadCount == 1 {
            if work > 0 { function(buffers, dimPointer, 0, Int64(work)) }   // one chunk: no pool launch
            return
        }
        pool.parallelFor(work, grain: launch.grain) { begin, end in
            function(buffers, dimPointer, Int64(begin), Int64(end))
        }
    }

    /// Runs one op on the reference executor: operands converted in, results converted back out.
    func executeFallback(_ node: Node) throws {
        var env = Environment(executor: reference)
        env.location = node.origin ?? node.op.name
        for v in node.op.operands where env.values[v] == nil {
            if case .constant = graph[v].kind { continue } // the reference decodes (and caches) constants itself
            env.values[v] = try tensor(v, node.op.name).host()
        }
        do {
            try env.execute(node.op)
        } catch let e as ReferenceError {
            throw ReferenceError("\(node.origin ?? node.op.name): \(e.message)")
        }
        if case .if = node.op { return }
        for r in node.op.results {
            let host = try env.tensor(r)
            if case .state = graph[r].kind, let buffer = values[r.index] ?? baseValues[r.index] {
                guard buffer.shape == host.shape else {
                    throw ReferenceError("\(node.op.name) changed the shape of state \(r) from \(buffer.shape) to \(host.shape)")
                }
                buffer.store(host)
                values[r.index] = buffer
            } else {
                let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: arena.allocate(host.count * host.dtype.byteSize))
                t.store(host)
                values[r.index] = t
            }
        }
    }
}
