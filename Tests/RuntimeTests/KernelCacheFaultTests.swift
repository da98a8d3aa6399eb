import Foundation
import XCTest
import MLXCCodegen
@testable import MLXCRuntime

/// The kernel cache when the disk does not cooperate (issue 17, faults): a full disk (here a file size
/// limit, which fails writes as ENOSPC/EDQUOT do) turns caching off for the run with outputs unchanged,
/// and what a killed writer leaves (a temporary file, a half entry) is never loaded and is cleaned up.
final class KernelCacheFaultTests: XCTestCase {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/llama_mlx_4bit")

    var root: String!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-kernel-cache-fault-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func run(cache: KernelCache?) throws -> (outputs: [[HostTensor]], report: CompileReport) {
        var options = JITProgram.Options()
        options.kernelCache = cache
        let loaded = try ProgramLoader.load(Self.model.appendingPathComponent("model.pte").path, engine: .jit, options: options,
                                            mlxcVersion: "test")
        let program = try XCTUnwrap(loaded.executor as? JITProgram)
        var outputs: [[HostTensor]] = []
        for step in 0..<4 {
            let inputs = try (0..<2).flatMap { try TensorFiles.read(Self.model.appendingPathComponent("step\(step).input\($0).npy").path) }
            outputs.append(try program.run(inputs))
        }
        return (outputs, program.compileReport)
    }

    func files(_ cache: KernelCache) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: cache.directory).sorted()
    }

    func testFullDiskTurnsCachingOffForTheRunAndOutputsStayTheSame() throws {
        let uncached = try run(cache: nil)
        let cache = try KernelCache(root: root, salt: "test")
        final class Said: @unchecked Sendable { let lock = NSLock(); var reasons: [String] = [] }
        let said = Said()
        cache.onWritesOff = { reason in said.lock.lock(); said.reasons.append(reason); said.lock.unlock() }
        let fileSizeLimit = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        // No file may grow past 0 bytes: every write fails with EFBIG (SIGXFSZ ignored, as mlxc does).
        var old = rlimit()
        getrlimit(fileSizeLimit, &old)
        let oldSignal = signal(SIGXFSZ, SIG_IGN)
        var limit = rlimit(rlim_cur: 0, rlim_max: old.rlim_max)
        XCTAssertEqual(setrlimit(fileSizeLimit, &limit), 0)
        let full: (outputs: [[HostTensor]], report: CompileReport)
        do {
            defer { setrlimit(fileSizeLimit, &old); signal(SIGXFSZ, oldSignal) }
            full = try run(cache: cache)
        }
        XCTAssertEqual(full.outputs, uncached.outputs, "outputs with a full cache disk")
        XCTAssertEqual(full.report.optimized, full.report.kernels)
        XCTAssertEqual(cache.stats.stored, 0)
        // Off after the first failure: at most one failure per compile thread in flight, not one per kernel.
        XCTAssertGreaterThanOrEqual(cache.stats.writeFailures, 1)
        XCTAssertLessThanOrEqual(cache.stats.writeFailures, 4)
        let reason = try XCTUnwrap(cache.writesOffReason)
        XCTAssertTrue(reason.contains("File too large") && reason.contains("not caching kernels for the rest of this run"), reason)
        XCTAssertEqual(said.reasons, [reason], "said once")
        XCTAssertEqual(try files(cache), [], "no entry and no temporary file left")
        // Space again, a new run: the cache fills and serves the same code.
        let cold = try run(cache: try KernelCache(root: root, salt: "test"))
        XCTAssertEqual(cold.report.optimized, cold.report.kernels)
        let warm = try run(cache: try KernelCache(root: root, salt: "test"))
        XCTAssertEqual(warm.report.cached, warm.report.kernels)
        XCTAssertEqual(warm.outputs, uncached.outputs)
    }

    func testWhatAKilledWriterLeavesIsNeverLoadedAndIsCleanedUp() throws {
        _ = try run(cache: try KernelCache(root: root, salt: "test"))
        let cache = try KernelCache(root: root, salt: "test")
        let names = try files(cache).filter { $0.hasSuffix(".o") }
        let directory = cache.directory as NSString
        // A writer killed after writing its temporary file in full, one killed half way, one still writing
        // (its file is fresh), and a half entry under a real name (written by something that did not rename).
        let key0 = String(names[0].dropLast(2)), key1 = String(names[1].dropLast(2)), key2 = String(names[2].dropLast(2))
        let whole = try Data(contentsOf: URL(fileURLWithPath: directory.appendingPathComponent(names[0])))
        let stale = directory.appendingPathComponent(".\(key0).999999.1.tmp")
        let staleHalf = directory.appendingPathComponent(".\(key1).999999.2.tmp")
        let live = directory.appendingPathComponent(".\(key2).999999.3.tmp")
        try whole.write(to: URL(fileURLWithPath: stale))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: staleHalf))
        try whole.prefix(100).write(to: URL(fileURLWithPath: live))
        var old = [timespec(tv_sec: time(nil) - 3600, tv_nsec: 0), timespec(tv_sec: time(nil) - 3600, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, stale, &old, 0), 0)
        XCTAssertEqual(utimensat(AT_FDCWD, staleHalf, &old, 0), 0)
        for name in names.prefix(3) { unlink(directory.appendingPathComponent(name)) }
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: directory.appendingPathComponent(names[0])))

        // The temporary files are not entries: those three kernels are compiled again, the half entry too.
        let repaired = try run(cache: cache)
        XCTAssertEqual(repaired.report.optimized, 3)
        XCTAssertEqual(repaired.report.corrupt, 1, "the half entry under a real name")
        XCTAssertEqual(repaired.outputs, try run(cache: nil).outputs)
        let left = try files(cache)
        XCTAssertFalse(left.contains((stale as NSString).lastPathComponent), "a ten-minute-old temporary file is deleted")
        XCTAssertFalse(left.contains((staleHalf as NSString).lastPathComponent))
        XCTAssertTrue(left.contains((live as NSString).lastPathComponent), "a fresh one may belong to a live writer")
        XCTAssertEqual(left.filter { $0.hasSuffix(".o") }.count, repaired.report.kernels)
    }
}
