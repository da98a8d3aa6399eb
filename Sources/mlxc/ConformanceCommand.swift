import ArgumentParser
import Foundation
import MLXCRuntime

struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run an exported op-test corpus (tools/export-mlx-op-tests) and report pass/fail per case.")

    @Argument(help: "The corpus directory (one sub-directory per case).")
    var directory: String

    @Option(help: "Only cases whose name contains this text.")
    var filter: String?

    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    @Flag(help: "Run each case compiled (LLVM kernels, reference fallback) instead of on the reference executor.")
    var jit = false

    func run() throws {
        try MLXC.guarded {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().filter { name in
                var isDir: ObjCBool = false
                let path = (directory as NSString).appendingPathComponent(name)
                return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
                    && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("model.pte"))
                    && (filter.map { name.contains($0) } ?? true)
            }
            var passed = 0, failed = 0, skipped = 0
            for name in names {
                switch Conformance.run(caseDirectory: (directory as NSString).appendingPathComponent(name), compiled: jit) {
                case .passed:
                    passed += 1
                    if !quiet { print("PASS \(name)") }
                case .failed(let why):
                    failed += 1
                    print("FAIL \(name): \(why)")
                case .skipped(let why):
                    skipped += 1
                    if !quiet { print("SKIP \(name): \(why)") }
                }
            }
            print("conformance: \(passed) passed, \(failed) failed, \(skipped) skipped")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
