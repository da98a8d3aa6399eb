import CLLVM

/// The machine the JIT compiles for: LLVM's view of the host CPU.
public struct HostTarget: Sendable {
    public let triple: String
    public let cpuName: String
    public let features: String

    public static let current: HostTarget = {
        LLVMKit.initializeNativeTarget()
        return HostTarget(triple: takeString(LLVMGetDefaultTargetTriple()),
                          cpuName: takeString(LLVMGetHostCPUName()),
                          features: takeString(LLVMGetHostCPUFeatures()))
    }()

    /// Widest vector register the features allow (AVX-512 → 512, AVX2 → 256, SSE/NEON → 128).
    public var vectorBits: Int {
        let set = Set(features.split(separator: ",").map(String.init))
        if set.contains("+avx512f") { return 512 }
        if set.contains("+avx2") || set.contains("+avx") { return 256 }
        return 128
    }
}

/// Copies and frees a C string that LLVM allocated.
func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    defer { LLVMDisposeMessage(pointer) }
    return String(cString: pointer)
}

public enum LLVMKit {
    private static let initialized: Bool = {
        return LLVMInitializeNativeTarget() == 0 && LLVMInitializeNativeAsmPrinter() == 0
    }()

    /// Registers the host target with LLVM once per process.
    @discardableResult
    public static func initializeNativeTarget() -> Bool { initialized }
}
