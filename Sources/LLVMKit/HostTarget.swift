import CLLVM
import Foundation

/// The machine the JIT compiles for: LLVM's view of the host CPU.
public struct HostTarget: Sendable {
    public let triple: String
    public let cpuName: String
    public let features: String

    public init(triple: String, cpuName: String, features: String) {
        self.triple = triple
        self.cpuName = cpuName
        self.features = features
    }

    public static let current: HostTarget = {
        LLVMKit.initializeNativeTarget()
        let native = HostTarget(triple: takeString(LLVMGetDefaultTargetTriple()),
                                cpuName: takeString(LLVMGetHostCPUName()),
                                features: takeString(LLVMGetHostCPUFeatures()))
        return native.limited(to: ProcessInfo.processInfo.environment["MLXC_ISA"])
    }()

    /// The host with its wider instruction sets switched off: `MLXC_ISA=avx2` compiles as for an
    /// AVX2 + FMA machine (Zen 3, Haswell…) on an AVX-512 host, so the AVX2 kernels are tested and
    /// measured wherever the suite runs; `MLXC_ISA=avx512bw` drops only the VNNI dot products. A subset of the host's features always runs on it.
    public func limited(to isa: String?) -> HostTarget {
        guard let isa = isa?.lowercased(), !isa.isEmpty, isa != "native" else { return self }
        let dropped: (String) -> Bool
        switch isa {
        // Zen 3 has no GFNI either (LLVM shifts bytes with vgf2p8affineqb when it may).
        case "avx2": dropped = { $0.hasPrefix("avx512") || $0 == "evex512" || $0.hasPrefix("amx") || $0 == "avxvnni" || $0 == "gfni" }
        // AVX-512 without the dot-product extensions (Skylake-X class): the int8 kernels' non-VNNI forms.
        case "avx512bw": dropped = { $0.contains("vnni") }
        case "sse4.2", "sse": dropped = { $0.hasPrefix("avx") || $0 == "evex512" || $0.hasPrefix("amx") || $0 == "fma" || $0 == "f16c" }
        default: return self
        }
        let limited = features.split(separator: ",").map { f -> String in
            let name = f.dropFirst()
            return f.hasPrefix("+") && dropped(String(name)) ? "-" + name : String(f)
        }
        return HostTarget(triple: triple, cpuName: cpuName, features: limited.joined(separator: ","))
    }

    /// Widest vector register the features allow (AVX-512 → 512, AVX2 → 256, SSE/NEON → 128;
    /// ARM64 is NEON's 128 bits: the kernels do not use SVE).
    public var vectorBits: Int {
        if isAArch64 { return 128 }
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

    /// The LLVM library's version ("19.1.7"), part of the kernel cache's keys.
    public static let version: String = {
        var major: UInt32 = 0, minor: UInt32 = 0, patch: UInt32 = 0
        LLVMGetVersion(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }()

    /// Registers the host target with LLVM once per process.
    @discardableResult
    public static func initializeNativeTarget() -> Bool { initialized }
}
