import ArgumentParser
import LLVMKit

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the host CPU as LLVM sees it (the JIT's target), or a --target machine as mlxc compiles for it.")

    @Option(help: "Show this machine instead of the host (aarch64-linux-gnu).")
    var target: String?

    @Option(help: "The target's CPU (with --target aarch64-linux-gnu: generic, neoverse-n1, apple-m1, neoverse-v1).")
    var cpu: String?

    func run() throws {
        try MLXC.guarded {
            let host = try HostTarget.named(triple: target, cpu: cpu)
            print("triple:   \(host.triple)")
            print("cpu:      \(host.cpuName)")
            print("vector:   \(host.vectorBits) bits" + (host.isAArch64 ? " (NEON: \(host.vectorBits / 32) f32 lanes)" : ""))
            print("features: \(host.features.split(separator: ",").filter { $0.hasPrefix("+") }.joined(separator: ","))")
            if !host.isHost { print("runs:     no (kernels compiled for it with `mlxc compile --target \(host.triple) --emit obj|asm`)") }
        }
    }
}
