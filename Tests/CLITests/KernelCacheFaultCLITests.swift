import Foundation
import XCTest

/// The kernel cache through the binary when things go wrong (issue 17, faults): a full disk under the
/// cache directory (a 16 KB tmpfs) and a compile killed while another one shares the directory. The
/// outputs must be the uncached run's, byte for byte, and the cache must still serve whole entries.
final class KernelCacheFaultCLITests: XCTestCase {
    let cli = MLXCBinary()
    let inputs = MLXCBinary.fixtures.appendingPathComponent("llama_mlx_4bit").path

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-cache-fault-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func runArguments(_ output: URL, _ extra: [String]) -> [String] {
        ["run", "--jit", cli.fixture("llama_mlx_4bit"), "--inputs-dir", inputs, "--output-dir", output.path, "--timing"] + extra
    }

    func assertSameOutputs(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) {
        for k in 0..<4 {
            let name = "step\(k).output0.npy"
            let expected = FileManager.default.contents(atPath: a.appendingPathComponent(name).path)
            XCTAssertNotNil(expected, name, file: file, line: line)
            XCTAssertEqual(FileManager.default.contents(atPath: b.appendingPathComponent(name).path), expected, name, file: file, line: line)
        }
    }

    func start(_ arguments: [String], environment: [String: String] = [:]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = cli.binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, err)
    }

    func finish(_ run: (Process, Pipe)) -> (status: Int32, stderr: String) {
        let stderr = String(decoding: run.1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        run.0.waitUntilExit()
        return (run.0.terminationStatus, stderr)
    }

    /// A real ENOSPC: the cache directory is a 16 KB tmpfs mounted in a private user + mount namespace
    /// (`unshare -rm`; skipped where unprivileged namespaces are off). The first entries fill it, the next
    /// write fails, caching stops for the run; exit 0, outputs = the uncached run's, stderr only the timing.
    func testFullDiskUnderTheCacheKeepsOutputsAndExitZero() throws {
        let unshare = Process()
        unshare.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        unshare.arguments = ["-rm", "true"]
        unshare.standardError = FileHandle.nullDevice
        guard (try? unshare.run()) != nil else { throw XCTSkip("no /usr/bin/unshare") }
        unshare.waitUntilExit()
        guard unshare.terminationStatus == 0 else { throw XCTSkip("unprivileged user namespaces are off: no tmpfs to fill") }

        let dir = try temporaryDirectory()
        let none = dir.appendingPathComponent("none"), full = dir.appendingPathComponent("full")
        let mount = dir.appendingPathComponent("tiny")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        let uncached = try cli.mlxc(runArguments(none, ["--no-cache"]))
        XCTAssertEqual(uncached.status, 0, uncached.stderr)
        let script = "mount -t tmpfs -o size=16k tmpfs \"$1\" || exit 9; shift; \"$@\"; status=$?; ls -a \"$0\"/kernels-v1 >&2; exit $status"
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        shell.arguments = ["-rm", "sh", "-c", script, mount.path, mount.path, cli.binary.path]
            + runArguments(full, ["--cache-dir", mount.path])
        let err = Pipe()
        shell.standardError = err
        shell.standardOutput = FileHandle.nullDevice
        try shell.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        shell.waitUntilExit()
        XCTAssertEqual(shell.terminationStatus, 0, stderr)
        assertSameOutputs(none, full)
        XCTAssertFalse(stderr.contains("error"), stderr)
        // What the run left in the full tmpfs (listed before the namespace went away): whole entries only.
        let left = stderr.split(separator: "\n").filter { $0.hasSuffix(".o") || $0.hasSuffix(".tmp") }
        XCTAssertFalse(left.contains { $0.hasSuffix(".tmp") }, "a temporary file left in the full directory: \(left)")
        XCTAssertTrue(stderr.contains("optimized by LLVM"), stderr)
    }

    /// Two starts share a cold cache directory; one is killed (SIGKILL) while compiling. The other finishes
    /// with the uncached outputs; a third start loads only whole entries and gives the same bytes.
    func testKilledConcurrentCompileLeavesNothingThatIsLoaded() throws {
        let dir = try temporaryDirectory()
        let cache = dir.appendingPathComponent("cache").path
        let none = dir.appendingPathComponent("none")
        XCTAssertEqual(try cli.mlxc(runArguments(none, ["--no-cache"])).status, 0)
        for delay in [300_000, 900_000] as [useconds_t] {
            let victim = try start(runArguments(dir.appendingPathComponent("killed"), ["--cache-dir", cache]))
            let survivor = try start(runArguments(dir.appendingPathComponent("survivor"), ["--cache-dir", cache]))
            usleep(delay)
            kill(victim.0.processIdentifier, SIGKILL)
            let killed = finish(victim)
            XCTAssertTrue(victim.0.terminationReason == .uncaughtSignal || killed.status == 0, killed.stderr)
            let survived = finish(survivor)
            XCTAssertEqual(survived.status, 0, survived.stderr)
            assertSameOutputs(none, dir.appendingPathComponent("survivor"))
        }
        let after = try start(runArguments(dir.appendingPathComponent("after"), ["--cache-dir", cache]))
        let result = finish(after)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains(" 0 optimized by LLVM"), result.stderr)
        assertSameOutputs(none, dir.appendingPathComponent("after"))
    }
}
