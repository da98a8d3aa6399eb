import Foundation
import XCTest
import MLXCFrontend
@testable import MLXCRuntime

/// A program or `.ptd` rewritten while mlxc has it mapped (issue 17, faults). Cut short, the lost pages
/// would be a SIGBUS on the next read; rewritten in place, the weights would change under the model.
/// Each run first checks that every mapped file has its size and modification time from load time
/// (one fstat each), so either is one clear error naming the file. The window left — the file cut
/// short during a run — is a SIGBUS that `MappingFaultReport` turns into one line and exit status 1.
final class WeightsFileChangeTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func copies(_ fixture: String, _ names: [String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-weights-change-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for name in names {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("\(fixture)/\(name)"), to: dir.appendingPathComponent(name))
        }
        return dir
    }

    /// Truncates (in place, same inode: what `cp new old` or a crashed writer does) to `bytes`.
    func truncateInPlace(_ file: URL, to bytes: Int) {
        XCTAssertEqual(truncate(file.path, off_t(bytes)), 0)
    }

    /// Sets the file's modification time `seconds` later than now (an in-place rewrite of the same size).
    func touchLater(_ file: URL, _ seconds: Int) {
        var times = [timespec(tv_sec: time(nil) + seconds, tv_nsec: 0), timespec(tv_sec: time(nil) + seconds, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, file.path, &times, 0), 0)
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testProgramShrunkOrRewrittenAfterLoadingIsAnErrorOnTheNextRun() throws {
        let dir = try copies("llama_mlx_4bit", ["model.pte"])
        let pte = dir.appendingPathComponent("model.pte")
        let inputs = try (0..<2).map { try TensorFiles.read(Self.fixtures.appendingPathComponent("llama_mlx_4bit/step0.input\($0).npy").path) }.flatMap { $0 }
        func fresh() throws {
            try FileManager.default.removeItem(at: pte)
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("llama_mlx_4bit/model.pte"), to: pte)
        }
        for engine in [ProgramLoader.Engine.reference, .jit] {
            try fresh()
            let loaded = try ProgramLoader.load(pte.path, engine: engine, mlxcVersion: "test")
            XCTAssertNoThrow(try loaded.executor.run(inputs))
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: pte.path)[.size] as? Int)
            truncateInPlace(pte, to: size / 2)
            let shrunk = message { try loaded.executor.run(inputs) }
            XCTAssertTrue(shrunk.contains("\(pte.path) at byte \(size / 2): file shrank from \(size) to \(size / 2) bytes while in use"), "\(engine): \(shrunk)")
            XCTAssertEqual(shrunk.split(separator: "\n").count, 1)
        }
        // Same size, rewritten in place (a new modification time): the weights may differ.
        try fresh()
        let loaded = try ProgramLoader.load(pte.path, engine: .reference, mlxcVersion: "test")
        touchLater(pte, 5)
        let rewritten = message { try loaded.executor.run(inputs) }
        XCTAssertTrue(rewritten.contains("\(pte.path) at byte 0: file was modified while in use"), rewritten)
        // Replaced by rename (a new inode): the mapping keeps the old file, which still runs.
        try fresh()
        let kept = try ProgramLoader.load(pte.path, engine: .reference, mlxcVersion: "test")
        let other = dir.appendingPathComponent("other.pte")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("linear_plain_ptd/model.pte"), to: other)
        XCTAssertEqual(rename(other.path, pte.path), 0)
        XCTAssertNoThrow(try kept.executor.run(inputs))
    }

    func testExternalDataShrunkAfterLoadingIsAnErrorOnTheNextRun() throws {
        let dir = try copies("linear_plain_ptd", ["model.pte", "model.ptd"])
        let ptd = dir.appendingPathComponent("model.ptd")
        let inputs = try TensorFiles.read(Self.fixtures.appendingPathComponent("linear_plain_ptd/step0.input0.npy").path)
        let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, dataFiles: [ptd.path], engine: .jit, mlxcVersion: "test")
        let before = try loaded.executor.run(inputs)
        XCTAssertEqual(try loaded.executor.run(inputs), before)
        truncateInPlace(ptd, to: 100)
        let shrunk = message { try loaded.executor.run(inputs) }
        XCTAssertTrue(shrunk.contains("\(ptd.path) at byte 100: file shrank from 4000 to 100 bytes while in use"), shrunk)
    }

    /// The window after the check: a mapped file cut short and then read. Runs in a child process (this
    /// test binary, filtered to `testChildReadsAShrunkMapping`), which must print one line naming the
    /// file and the byte and exit with status 1 instead of dying of SIGBUS.
    func testBusErrorOnAShrunkMappingIsOneLineAndExitOne() throws {
        let dir = try copies("llama_mlx_4bit", ["model.pte"])
        let pte = dir.appendingPathComponent("model.pte")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["RuntimeTests.WeightsFileChangeTests/testChildReadsAShrunkMapping"]
        process.environment = ProcessInfo.processInfo.environment.merging(["MLXC_TEST_SHRINK_WHILE_MAPPED": pte.path]) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, stderr)
        XCTAssertEqual(process.terminationStatus, 1, stderr)
        let lines = stderr.split(separator: "\n").filter { $0.hasPrefix("test: ") }
        XCTAssertEqual(lines, ["test: \(pte.path) at byte 65536: the file shrank while in use (bus error reading its mapping; it must not be rewritten while mlxc runs it)"],
                       stderr)
    }

    /// The child half of the test above (does nothing unless MLXC_TEST_SHRINK_WHILE_MAPPED names a file).
    func testChildReadsAShrunkMapping() throws {
        guard let path = ProcessInfo.processInfo.environment["MLXC_TEST_SHRINK_WHILE_MAPPED"] else { return }
        MappingFaultReport.install(prefix: "test: ")
        let file = try MappedFile(path: path)
        XCTAssertEqual(truncate(path, 4096), 0)
        // Page 16 is past the new end: reading it is a SIGBUS, reported and exit(1).
        let byte = file.view.base.load(fromByteOffset: 65536, as: UInt8.self)
        XCTFail("read \(byte) past the end of a truncated mapping without a bus error")
    }
}
