import CLLVM
import Foundation
import LLVMKit

/// Every compiled kernel has one C signature, so the scheduler can launch any of them the same way:
///
///     void kernel(void **buffers, const int64_t *dims, int64_t begin, int64_t end)
///
/// `buffers` holds the base pointers of the op's tensors (operands, then results), `dims` the
/// run-time integers it needs (sizes that are only known per call, scalar values such as a
/// position), and `[begin, end)` is this thread's share of the kernel's work items (rows, heads, …).
public typealias KernelFunction = @convention(c) (UnsafePointer<UnsafeMutableRawPointer?>, UnsafePointer<Int64>, Int64, Int64) -> Void

/// A kernel to compile: a unique name that spells out what it computes (it is also the dump file
/// name and the dedup key) and the code that emits its body.
public struct KernelDefinition {
    public let name: String
    /// The emitter spells out its own register tiles and unrolled groups: LLVM must not unroll its loops
    /// again (`Builder.unrollLoops`).
    public let unrollsItself: Bool
    public let emitBody: (KernelEmitter) -> Void

    public init(name: String, unrollsItself: Bool = false, emitBody: @escaping (KernelEmitter) -> Void) {
        self.name = name
        self.unrollsItself = unrollsItself
        self.emitBody = emitBody
    }
}

/// What a kernel body is written against: the builder plus its four ABI parameters.
public struct KernelEmitter {
    public let b: Builder
    public let function: IRValue
    let buffers: IRValue
    let dimsPointer: IRValue
    public let begin: IRValue
    public let end: IRValue

    /// Base pointer of buffer `i`.
    public func buffer(_ i: Int) -> IRValue { b.load(b.ptr, b.gep(b.ptr, buffers, b.i64(i)), align: 8) }
    /// Run-time integer `i`.
    public func dim(_ i: Int) -> IRValue { b.load(b.i64, b.gep(b.i64, dimsPointer, b.i64(i)), align: 8) }
}

/// Collects kernel definitions (deduplicated by name), emits them into one module, optimizes it
/// for the host and hands it to the JIT; or emits an object file for an ahead-of-time artifact.
public final class KernelLibrary {
    public private(set) var definitions: [KernelDefinition] = []
    /// Kernels dropped at compile time, with the reason.
    public internal(set) var rejected: [String: String] = [:]
    private var names: Set<String> = []

    public init() {}

    /// Adds a kernel unless one with the same name is there already; returns its name.
    @discardableResult
    public func require(_ definition: KernelDefinition) -> String {
        if names.insert(definition.name).inserted { definitions.append(definition) }
        return definition.name
    }

    /// Emits every kernel into a fresh module (unoptimized).
    public func emitModule(context: Context, name: String = "mlxc_kernels") -> Module {
        let module = Module(name: name, context: context)
        let b = Builder(module: module)
        for definition in definitions {
            let f = b.function(definition.name, [b.ptr, b.ptr, b.i64, b.i64])
            let emitter = KernelEmitter(b: b, function: f, buffers: b.param(f, 0), dimsPointer: b.param(f, 1),
                                        begin: b.param(f, 2), end: b.param(f, 3))
            b.unrollLoops = !definition.unrollsItself
            definition.emitBody(emitter)
            b.unrollLoops = true
            b.retVoid()
        }
        return module
    }

    /// Stages of compilation a caller may want to see (`--emit llvm|opt-llvm|asm`).
    public struct Dumps {
        public init() {}
        public var llvm: String?
        public var optimizedLLVM: String?
        public var assembly: String?
    }

    /// Optimized object code of every kernel, for an ahead-of-time artifact.
    public func objectCode(machine: TargetMachine) throws -> [UInt8] {
        let context = Context()
        let module = emitModule(context: context)
        machine.configure(module.ref)
        try module.verify()
        try machine.optimize(module.ref)
        return try machine.emit(module.ref, .object)
    }

    /// Each kernel on its own: LLVM IR as emitted, after `default<O3>`, and assembly (for dumps).
    public func perKernelDumps(machine: TargetMachine) throws -> [(name: String, llvm: String, optimized: String, assembly: String)] {
        try definitions.map { definition in
            let single = KernelLibrary()
            single.require(definition)
            let context = Context()
            let module = single.emitModule(context: context, name: definition.name)
            machine.configure(module.ref)
            let llvm = module.text
            try module.verify()
            try machine.optimize(module.ref)
            let optimized = module.text
            let assembly = String(decoding: try machine.emit(module.ref, .assembly), as: UTF8.self)
            return (definition.name, llvm, optimized, assembly)
        }
    }

    /// Looks up already-compiled kernels (from an artifact's object code added to `jit`).
    public func lookup(in jit: JIT) throws -> [String: KernelFunction] {
        var functions: [String: KernelFunction] = [:]
        for definition in definitions {
            functions[definition.name] = unsafeBitCast(try jit.address(of: definition.name), to: KernelFunction.self)
        }
        return functions
    }

    /// Compiles every kernel into `jit` and returns their entry points by name: each kernel as its
    /// own module, on `partitions` threads (`compile(into:machine:cache:)`, without a cache). Dumps
    /// need the whole module's text, so `keepDumps` compiles one module.
    public func compile(into jit: JIT, machine: TargetMachine, keepDumps: Bool = false,
                        partitions: Int = AvailableCores.count) throws -> ([String: KernelFunction], Dumps) {
        var dumps = Dumps()
        guard keepDumps else {
            return (try compile(into: jit, machine: machine, cache: nil, threads: partitions).0, dumps)
        }
        guard !definitions.isEmpty else { return ([:], dumps) }
        rejected = [:]
        let context = Context()
        let module = emitModule(context: context)
        machine.configure(module.ref)
        dumps.llvm = module.text
        rejectInvalid(module)
        try module.verify()
        try machine.optimize(module.ref)
        dumps.optimizedLLVM = module.text
        dumps.assembly = String(decoding: try machine.emit(module.ref, .assembly), as: UTF8.self)
        try jit.add(module)
        var functions: [String: KernelFunction] = [:]
        for definition in definitions where rejected[definition.name] == nil {
            functions[definition.name] = unsafeBitCast(try jit.address(of: definition.name), to: KernelFunction.self)
        }
        return (functions, dumps)
    }

    /// A kernel that LLVM rejects is a compiler bug, but it must not take the program down: drop
    /// it (its nodes run on the reference executor) and say why.
    func rejectInvalid(_ module: Module) {
        for definition in definitions {
            guard let f = LLVMGetNamedFunction(module.ref, definition.name),
                  LLVMVerifyFunction(f, LLVMReturnStatusAction) != 0 else { continue }
            rejected[definition.name] = "LLVM rejected the emitted IR (invalid types or control flow)"
            LLVMDeleteFunction(f)
        }
    }
}
