import CLLVM

/// An LLVM context that ORC can share across threads; modules are created in it.
public final class Context: @unchecked Sendable {
    let tsc: LLVMOrcThreadSafeContextRef
    public let ref: LLVMContextRef

    public init() {
        tsc = LLVMOrcCreateNewThreadSafeContext()
        ref = LLVMOrcThreadSafeContextGetContext(tsc)
    }

    deinit { LLVMOrcDisposeThreadSafeContext(tsc) }
}

/// An LLVM module under construction. Owned until handed to the JIT (`take()`).
public final class Module: @unchecked Sendable {
    public let context: Context
    private var owned: LLVMModuleRef?

    public init(name: String, context: Context) {
        self.context = context
        owned = LLVMModuleCreateWithNameInContext(name, context.ref)
    }

    deinit { if let owned { LLVMDisposeModule(owned) } }

    public var ref: LLVMModuleRef {
        guard let owned else { preconditionFailure("module used after it was handed to the JIT") }
        return owned
    }

    func take() -> LLVMModuleRef {
        let m = ref
        owned = nil
        return m
    }

    /// The module as LLVM IR text.
    public var text: String {
        let cString = LLVMPrintModuleToString(ref)
        defer { LLVMDisposeMessage(cString) }
        return cString.map { String(cString: $0) } ?? ""
    }

    /// The module as LLVM bitcode: the same module gives the same bytes (for content keys; faster to
    /// write and smaller to hash than the text).
    public var bitcode: [UInt8] {
        guard let buffer = LLVMWriteBitcodeToMemoryBuffer(ref) else { return [] }
        defer { LLVMDisposeMemoryBuffer(buffer) }
        guard let start = LLVMGetBufferStart(buffer) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(start), count: LLVMGetBufferSize(buffer)))
    }

    /// Checks the module; throws with LLVM's explanation if it is malformed.
    public func verify() throws {
        var message: UnsafeMutablePointer<CChar>?
        let failed = LLVMVerifyModule(ref, LLVMReturnStatusAction, &message)
        defer { LLVMDisposeMessage(message) }
        if failed != 0 { throw LLVMFailure("invalid module: \(message.map { String(cString: $0) } ?? "")") }
    }

    /// A deep copy (e.g. to optimize for a dump while the original goes to the JIT).
    public func clone() -> Module {
        let copy = Module(name: "", context: context)
        LLVMDisposeModule(copy.take())
        copy.owned = LLVMCloneModule(ref)
        return copy
    }
}
