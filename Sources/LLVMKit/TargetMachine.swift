import CLLVM

/// A target machine for the host CPU (its name and features), used to optimize modules with
/// the `default<O3>` pipeline, emit objects for artifacts and assembly for dumps, and to build the JIT.
public final class TargetMachine: @unchecked Sendable {
    public let ref: LLVMTargetMachineRef
    public let host: HostTarget

    public init(host: HostTarget = .current) throws {
        LLVMKit.initializeNativeTarget()
        if !host.isHost { LLVMKit.initializeAllTargets() }
        self.host = host
        var target: LLVMTargetRef?
        var error: UnsafeMutablePointer<CChar>?
        guard LLVMGetTargetFromTriple(host.triple, &target, &error) == 0, let target else {
            defer { LLVMDisposeMessage(error) }
            throw LLVMFailure("no target for \(host.triple): \(error.map { String(cString: $0) } ?? "")")
        }
        guard let tm = LLVMCreateTargetMachine(target, host.triple, host.cpuName, host.features,
                                               LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault) else {
            throw LLVMFailure("cannot create a target machine for \(host.cpuName)")
        }
        ref = tm
    }

    /// Set when the JIT's target-machine builder took ownership.
    var releasedToJIT = false

    deinit { if !releasedToJIT { LLVMDisposeTargetMachine(ref) } }

    /// Sets the module's triple and data layout to this machine's, and asks LLVM's vectorizers for
    /// the full register width on every function: LLVM tunes some CPUs (Intel server parts such as
    /// Sapphire Rapids) to prefer 256-bit vectors, which would halve what the auto-vectorized
    /// kernels do per instruction next to the explicit 512-bit ones.
    public func configure(_ module: LLVMModuleRef) {
        LLVMSetTarget(module, host.triple)
        let layout = LLVMCreateTargetDataLayout(ref)
        LLVMSetModuleDataLayout(module, layout)
        LLVMDisposeTargetData(layout)
        guard host.vectorBits > 128 else { return }
        let context = LLVMGetModuleContext(module)
        let key = "prefer-vector-width", value = String(host.vectorBits)
        var f = LLVMGetFirstFunction(module)
        while let function = f {
            if LLVMCountBasicBlocks(function) > 0 {
                let attribute = LLVMCreateStringAttribute(context, key, UInt32(key.utf8.count), value, UInt32(value.utf8.count))
                LLVMAddAttributeAtIndex(function, LLVMAttributeIndex(bitPattern: Int32(LLVMAttributeFunctionIndex)), attribute)
            }
            f = LLVMGetNextFunction(function)
        }
    }

    /// Runs a new-pass-manager pipeline (e.g. `default<O3>`) over the module.
    public func optimize(_ module: LLVMModuleRef, pipeline: String = "default<O3>") throws {
        let options = LLVMCreatePassBuilderOptions()
        defer { LLVMDisposePassBuilderOptions(options) }
        LLVMPassBuilderOptionsSetLoopVectorization(options, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(options, 1)
        LLVMPassBuilderOptionsSetLoopUnrolling(options, 1)
        try LLVMFailure.check(LLVMRunPasses(module, pipeline, ref, options), "pass pipeline \(pipeline)")
    }

    public enum FileKind { case assembly, object }

    /// Machine code for the module, as assembly text or an object file.
    public func emit(_ module: LLVMModuleRef, _ kind: FileKind) throws -> [UInt8] {
        var buffer: LLVMMemoryBufferRef?
        var error: UnsafeMutablePointer<CChar>?
        let fileType = kind == .assembly ? LLVMAssemblyFile : LLVMObjectFile
        guard LLVMTargetMachineEmitToMemoryBuffer(ref, module, fileType, &error, &buffer) == 0, let buffer else {
            defer { LLVMDisposeMessage(error) }
            throw LLVMFailure("code generation failed: \(error.map { String(cString: $0) } ?? "")")
        }
        defer { LLVMDisposeMemoryBuffer(buffer) }
        let start = LLVMGetBufferStart(buffer)!
        let size = LLVMGetBufferSize(buffer)
        return [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(start), count: size))
    }
}
