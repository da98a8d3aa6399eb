import CLLVM

/// An error reported by LLVM, turned into a Swift error at the C API boundary.
public struct LLVMFailure: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "LLVM: \(message)" }

    /// Consumes an `LLVMErrorRef` (nil means success) and throws its message.
    static func check(_ error: LLVMErrorRef?, _ what: String) throws {
        guard let error else { return }
        let cMessage = LLVMGetErrorMessage(error)
        defer { LLVMDisposeErrorMessage(cMessage) }
        throw LLVMFailure("\(what): \(cMessage.map { String(cString: $0) } ?? "unknown error")")
    }
}
