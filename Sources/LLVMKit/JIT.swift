import CLLVM

/// ORC LLJIT for the host CPU. Modules are handed over (the JIT owns them afterwards);
/// symbols are looked up by name and called through `@convention(c)` function types.
public final class JIT: @unchecked Sendable {
    let ref: LLVMOrcLLJITRef

    public init(machine: TargetMachine? = nil) throws {
        LLVMKit.initializeNativeTarget()
        // The builder takes ownership of a target machine of its own.
        let host = machine?.host ?? .current
        let tm = try TargetMachine(host: host)
        let builder = LLVMOrcCreateLLJITBuilder()
        let tmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm.ref)
        tm.releaseToJIT()
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, tmb)
        var jit: LLVMOrcLLJITRef?
        try LLVMFailure.check(LLVMOrcCreateLLJIT(&jit, builder), "creating LLJIT")
        guard let jit else { throw LLVMFailure("LLJIT creation returned nothing") }
        ref = jit
        // Let JIT code call into this process (libm for expf, memcpy, …).
        var generator: LLVMOrcDefinitionGeneratorRef?
        try LLVMFailure.check(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&generator, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil),
                              "process symbol generator")
        LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), generator)
    }

    deinit { _ = LLVMOrcDisposeLLJIT(ref) }

    /// Adds a module built in `context`; the JIT takes ownership of it.
    public func add(_ module: Module) throws {
        let tsm = LLVMOrcCreateNewThreadSafeModule(module.take(), module.context.tsc)
        try LLVMFailure.check(LLVMOrcLLJITAddLLVMIRModule(ref, LLVMOrcLLJITGetMainJITDylib(ref), tsm), "adding module")
    }

    /// Adds relocatable object code (an artifact's kernels), without running the optimizer.
    public func addObject(_ bytes: [UInt8], name: String) throws {
        let buffer = bytes.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                LLVMCreateMemoryBufferWithMemoryRangeCopy($0, bytes.count, name)
            }
        }
        try LLVMFailure.check(LLVMOrcLLJITAddObjectFile(ref, LLVMOrcLLJITGetMainJITDylib(ref), buffer), "adding object \(name)")
    }

    /// The address of a compiled symbol.
    public func address(of name: String) throws -> UnsafeRawPointer {
        var address: LLVMOrcExecutorAddress = 0
        try LLVMFailure.check(LLVMOrcLLJITLookup(ref, &address, name), "looking up \(name)")
        guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)) else { throw LLVMFailure("\(name) resolved to null") }
        return pointer
    }
}

extension TargetMachine {
    /// The JIT's target-machine builder took this machine; do not dispose it twice.
    func releaseToJIT() { releasedToJIT = true }
}
