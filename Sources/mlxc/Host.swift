import ArgumentParser
import LLVMKit

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the host CPU as LLVM sees it (the JIT's target).")

    func run() throws {
        let host = HostTarget.current
        print("triple:   \(host.triple)")
        print("cpu:      \(host.cpuName)")
        print("vector:   \(host.vectorBits) bits")
        print("features: \(host.features.split(separator: ",").filter { $0.hasPrefix("+") }.joined(separator: ","))")
    }
}
