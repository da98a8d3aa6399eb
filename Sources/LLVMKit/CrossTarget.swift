import CLLVM
import Foundation

/// Machines other than the host that `mlxc compile --target` writes kernels for. Only ARM64
/// (AArch64 Linux) for now: NEON's 128-bit vectors, so every kernel is planned with 4 f32 lanes.
///
/// LLVM's C API cannot list the features a named CPU implies, so each CPU we accept carries the
/// features it is known to have (its Arm architecture manual / LLVM's processor table): they are
/// passed to the target machine explicitly and printed by `mlxc host --target`.
extension HostTarget {
    /// ARM64 CPUs by name, with the features that decide code generation: half-precision
    /// arithmetic (fullfp16), bf16 conversions and dot products (bf16), integer dot products
    /// (dotprod: `sdot`/`udot`), 8-bit integer matrix multiply (i8mm: `smmla`).
    public static let aarch64CPUs: [(name: String, features: [String])] = [
        ("generic", ["+neon", "+fp-armv8"]),
        ("neoverse-n1", ["+neon", "+fp-armv8", "+fullfp16", "+dotprod", "+rcpc", "+lse", "+crc"]),
        ("apple-m1", ["+neon", "+fp-armv8", "+fullfp16", "+fp16fml", "+dotprod", "+rcpc", "+lse", "+crc", "+sha3"]),
        ("neoverse-v1", ["+neon", "+fp-armv8", "+fullfp16", "+fp16fml", "+dotprod", "+bf16", "+i8mm", "+rcpc", "+lse", "+crc"]),
    ]

    /// The target a `--target TRIPLE [--cpu NAME]` pair names; nil triple or "native" is the host.
    /// Throws one line naming what is not supported.
    public static func named(triple: String?, cpu: String?) throws -> HostTarget {
        guard let triple, triple != "native", triple != HostTarget.current.triple else {
            if let cpu, cpu != HostTarget.current.cpuName {
                throw TargetChoiceError("--cpu \(cpu) needs --target (the host is \(HostTarget.current.cpuName))")
            }
            return .current
        }
        let arch = triple.split(separator: "-").first.map(String.init) ?? triple
        guard arch == "aarch64" || arch == "arm64" else {
            throw TargetChoiceError("--target \(triple): only aarch64-linux-gnu (ARM64) is supported besides the host")
        }
        guard triple.contains("linux") else {
            throw TargetChoiceError("--target \(triple): only Linux (aarch64-linux-gnu) is supported for ARM64")
        }
        let name = cpu ?? "generic"
        guard let entry = aarch64CPUs.first(where: { $0.name == name }) else {
            throw TargetChoiceError("--cpu \(name): not one of \(aarch64CPUs.map(\.name).joined(separator: ", ")) for \(triple)")
        }
        // LLVM's canonical spelling (aarch64-unknown-linux-gnu) keeps object files and cache keys alike.
        let normalized = takeString(LLVMNormalizeTargetTriple("aarch64-" + triple.split(separator: "-").dropFirst().joined(separator: "-")))
        return HostTarget(triple: normalized, cpuName: entry.name, features: entry.features.joined(separator: ","))
    }

    /// Whether this is the machine mlxc runs on (its kernels can be JIT-compiled and run here).
    public var isHost: Bool { triple == HostTarget.current.triple }

    public var isAArch64: Bool { triple.hasPrefix("aarch64") || triple.hasPrefix("arm64") }

    /// Whether the target has a feature ("dotprod", "avx2"…) switched on.
    public func has(_ feature: String) -> Bool {
        features.split(separator: ",").contains { $0 == "+" + feature }
    }
}

extension LLVMKit {
    private static let allTargets: Bool = {
        LLVMInitializeAllTargetInfos()
        LLVMInitializeAllTargets()
        LLVMInitializeAllTargetMCs()
        LLVMInitializeAllAsmPrinters()
        return true
    }()

    /// Registers every target this LLVM was built with (AArch64 for cross-compiling) once per process.
    @discardableResult
    public static func initializeAllTargets() -> Bool { allTargets }
}

/// A `--target`/`--cpu` choice mlxc cannot compile for (one line for the user).
public struct TargetChoiceError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
