import ArgumentParser
import Foundation
import MLXCFrontend

@main
struct MLXC: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "mlxc",
        abstract: "Compile and run ExecuTorch .pte programs (plain or MLX-delegated) on CPUs.",
        version: version,
        subcommands: [Inspect.self, Dump.self, Compile.self, Run.self, Transcribe.self, Bench.self, Passes.self, ConformanceCommand.self, Host.self])

    /// Runs a command body; any thrown error becomes one clear line on stderr and exit code 1.
    static func guarded(_ body: () throws -> Void) throws {
        // A program or weights file cut short mid-run: one line naming it, not a bus error.
        MappingFaultReport.install(prefix: "mlxc: error: ")
        // Past RLIMIT_FSIZE a write fails with EFBIG (the kernel cache then stops writing) instead of killing mlxc.
        signal(SIGXFSZ, SIG_IGN)
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("mlxc: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Options shared by every command that reads a program.
struct ModelOptions: ParsableArguments {
    @Argument(help: "The .pte program to read.")
    var model: String

    @Option(name: .customLong("data"), help: "An external .ptd data file (repeatable).")
    var dataFiles: [String] = []
}
