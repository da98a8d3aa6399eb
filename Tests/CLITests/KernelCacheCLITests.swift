import Foundation
import XCTest

/// The kernel cache through the real binary: `--cache-dir` fills a directory on the first start and the
/// second start optimizes nothing, with the same outputs; `--no-cache` leaves it alone; an unusable
/// directory named on the command line is one line and exit 1.
final class KernelCacheCLITests: XCTestCase {
    let cli = MLXCBinary()

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-cache-cli-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testSecondStartOptimizesNothingAndNoCacheLeavesTheDirectoryAlone() throws {
        let dir = try temporaryDirectory()
        let cache = dir.appendingPathComponent("cache").path
        let inputs = MLXCBinary.fixtures.appendingPathComponent("llama_mlx_4bit").path
        func run(_ name: String, _ extra: [String]) throws -> String {
            let r = try cli.mlxc(["run", "--jit", cli.fixture("llama_mlx_4bit"), "--inputs-dir", inputs,
                                  "--output-dir", dir.appendingPathComponent(name).path, "--timing"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stderr
        }
        let uncached = try run("none", ["--no-cache"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache))
        XCTAssertTrue(uncached.contains(" 0 from the cache"), uncached)
        let cold = try run("cold", ["--cache-dir", cache])
        XCTAssertTrue(cold.contains(" 0 from the cache"), cold)
        let warm = try run("warm", ["--cache-dir", cache])
        XCTAssertTrue(warm.contains(" 0 optimized by LLVM"), warm)
        XCTAssertFalse(warm.contains(" 0 from the cache"), warm)
        for k in 0..<4 {
            let name = "step\(k).output0.npy"
            let expected = FileManager.default.contents(atPath: dir.appendingPathComponent("none/\(name)").path)
            XCTAssertNotNil(expected)
            XCTAssertEqual(FileManager.default.contents(atPath: dir.appendingPathComponent("warm/\(name)").path), expected, name)
        }
    }

    /// The default directory (here `MLXC_CACHE_DIR`) unusable: the run goes on without a cache and, off a
    /// terminal, says nothing (a read-only home must not add lines to every command's stderr).
    func testUnusableDefaultDirectoryOnlyTurnsCachingOff() throws {
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: file)
        let process = Process()
        process.executableURL = cli.binary
        process.arguments = ["run", "--jit", cli.fixture("llama_mlx_4bit"), "--inputs-dir",
                             MLXCBinary.fixtures.appendingPathComponent("llama_mlx_4bit").path, "--output-dir", dir.appendingPathComponent("o").path]
        process.environment = ProcessInfo.processInfo.environment.merging(["MLXC_CACHE_DIR": file.path]) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, stderr)
        XCTAssertEqual(stderr, "")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("o/step3.output0.npy").path))
    }

    func testUnusableCacheDirectoryIsOneLine() throws {
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: file)
        let r = try cli.mlxc(["run", "--jit", cli.fixture("llama_mlx_4bit"), "--inputs-dir",
                              MLXCBinary.fixtures.appendingPathComponent("llama_mlx_4bit").path, "--cache-dir", file.path])
        XCTAssertEqual(r.status, 1)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("kernel cache") && r.stderr.contains(file.path), r.stderr)
    }
}
