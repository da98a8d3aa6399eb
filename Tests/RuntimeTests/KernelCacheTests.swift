import Foundation
import XCTest
import LLVMKit
import MLXCCodegen
import MLXCPasses
@testable import MLXCRuntime

/// The persistent compiled-kernel cache: a second start loads every kernel and runs no LLVM
/// optimization, with bit-identical outputs; damaged entries are compiled again; concurrent
/// writers leave only whole entries; the key follows the code, the CPU features and the versions.
final class KernelCacheTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let model = fixtures.appendingPathComponent("llama_mlx_4bit")

    var root: String!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-kernel-cache-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// Loads the fixture with `cache`, runs its recorded steps and returns the outputs and the compile report.
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

    func entries(_ cache: KernelCache) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: cache.directory).filter { $0.hasSuffix(".o") }.sorted()
    }

    func testSecondStartLoadsEveryKernelAndMatchesBitForBit() throws {
        let uncached = try run(cache: nil)
        XCTAssertGreaterThan(uncached.report.kernels, 3)
        let cold = try run(cache: try KernelCache(root: root, salt: "test"))
        XCTAssertEqual(cold.report.cached, 0)
        XCTAssertEqual(cold.report.optimized, cold.report.kernels)
        let cache = try KernelCache(root: root, salt: "test")
        XCTAssertEqual(try entries(cache).count, cold.report.kernels)
        let warm = try run(cache: cache)
        XCTAssertEqual(warm.report.optimized, 0, "a cached start must not run LLVM's optimizer")
        XCTAssertEqual(warm.report.cached, warm.report.kernels)
        XCTAssertEqual(cache.stats.hits, warm.report.kernels)
        XCTAssertEqual(warm.outputs, uncached.outputs)
        XCTAssertEqual(cold.outputs, uncached.outputs)
        // …and the outputs are the eager-PyTorch ones (the fixture's 4-bit tolerance).
        for (step, outputs) in warm.outputs.enumerated() {
            let expected = try TensorFiles.readNPY(Self.model.appendingPathComponent("step\(step).output0.npy").path)
            let scale = expected.storage.map(abs).max() ?? 1
            let error = zip(outputs[0].storage, expected.storage).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(error, 1e-4 * scale, "step \(step)")
        }
    }

    func testDamagedEntriesAreCompiledAgain() throws {
        let cold = try run(cache: try KernelCache(root: root, salt: "test"))
        let cache = try KernelCache(root: root, salt: "test")
        let names = try entries(cache)
        let truncated = (cache.directory as NSString).appendingPathComponent(names[0])
        let flipped = (cache.directory as NSString).appendingPathComponent(names[1])
        let whole = try Data(contentsOf: URL(fileURLWithPath: truncated))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: truncated))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: flipped)))
        bytes[bytes.count - 7] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: flipped))
        let empty = (cache.directory as NSString).appendingPathComponent(names[2])
        try Data().write(to: URL(fileURLWithPath: empty))

        let repaired = try run(cache: cache)
        XCTAssertEqual(repaired.report.corrupt, 3)
        XCTAssertEqual(repaired.report.optimized, 3)
        XCTAssertEqual(repaired.report.cached, repaired.report.kernels - 3)
        XCTAssertEqual(repaired.outputs, cold.outputs)
        let again = try run(cache: try KernelCache(root: root, salt: "test"))
        XCTAssertEqual(again.report.optimized, 0, "the damaged entries were written again")
        XCTAssertEqual(again.report.corrupt, 0)
    }

    func testConcurrentWritersLeaveOnlyWholeEntries() throws {
        // Separate libraries and cache objects on one directory, as separate processes would have (one
        // library compiled from several threads at once raced on its `rejected` table: ThreadSanitizer).
        func makeLibrary() -> KernelLibrary {
            let library = KernelLibrary()
            for n in [64, 96, 128, 160] {
                library.require(KernelDefinition(name: "copy_scaled_\(n)") { e in
                    let b = e.b
                    let x = e.buffer(0), y = e.buffer(1)
                    b.loop(e.begin, e.end) { i in
                        let v = b.load(b.f32, b.gep(b.f32, x, i), align: 4)
                        b.store(b.fmul(v, b.f32(Float(n))), b.gep(b.f32, y, i), align: 4)
                    }
                })
            }
            return library
        }
        let machine = try TargetMachine()
        let writers = 4
        var reports = [CompileReport?](repeating: nil, count: writers)
        var failures: [String] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: writers) { w in
            do {
                let cache = try KernelCache(root: root, salt: "test")
                let jit = try JIT(machine: machine)   // owns the code: keep it alive while calling
                let (functions, report) = try makeLibrary().compile(into: jit, machine: machine, cache: cache, threads: 2)
                var x: [Float] = [1, 2, 3, 4], y = [Float](repeating: 0, count: 4)
                try x.withUnsafeMutableBytes { xp in
                    try y.withUnsafeMutableBytes { yp in
                        let buffers: [UnsafeMutableRawPointer?] = [xp.baseAddress, yp.baseAddress]
                        let dims: [Int64] = [0]
                        let f = try XCTUnwrap(functions["copy_scaled_96"])
                        f(buffers, dims, 0, 4)
                    }
                }
                withExtendedLifetime(jit) {}
                lock.lock(); reports[w] = report; lock.unlock()
                if y != [96, 192, 288, 384] { lock.lock(); failures.append("writer \(w): \(y)"); lock.unlock() }
            } catch {
                lock.lock(); failures.append("writer \(w): \(error)"); lock.unlock()
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(reports.compactMap { $0?.kernels }, [Int](repeating: 4, count: writers))
        let cache = try KernelCache(root: root, salt: "test")
        let all = try FileManager.default.contentsOfDirectory(atPath: cache.directory)
        XCTAssertEqual(all.filter { $0.hasSuffix(".tmp") }, [], "no temporary file left behind")
        XCTAssertEqual(all.filter { $0.hasSuffix(".o") }.count, 4)
        let (_, warm) = try makeLibrary().compile(into: try JIT(machine: machine), machine: machine, cache: cache, threads: 2)
        XCTAssertEqual(warm.cached, 4)
        XCTAssertEqual(warm.corrupt, 0)
    }

    func testKeyFollowsTheCodeTheCPUFeaturesAndTheVersions() throws {
        let cache = try KernelCache(root: root, salt: "1.0")
        let other = try KernelCache(root: root, salt: "1.1")
        let host = HostTarget.current
        let ir = "define void @k() {\n  ret void\n}\n"
        XCTAssertEqual(cache.key(irText: ir, host: host), cache.key(irText: ir, host: host))
        XCTAssertEqual(cache.key(irText: ir, host: host).count, 64)
        XCTAssertNotEqual(cache.key(irText: ir, host: host), cache.key(irText: ir + " ", host: host))
        XCTAssertNotEqual(cache.key(irText: ir, host: host), other.key(irText: ir, host: host))
        // MLXC_ISA: the same IR compiled for fewer features is another entry.
        let sse = host.limited(to: "sse4.2")
        XCTAssertNotEqual(sse.features, host.features)
        XCTAssertNotEqual(cache.key(irText: ir, host: host), cache.key(irText: ir, host: sse))
        let avx2 = host.limited(to: "avx2")
        if avx2.features != host.features {   // an AVX-512 host
            XCTAssertNotEqual(cache.key(irText: ir, host: host), cache.key(irText: ir, host: avx2))
        }
        XCTAssertNotEqual(cache.key(irText: ir, host: avx2), cache.key(irText: ir, host: sse))
    }

    func testLeastRecentlyUsedEntriesAreEvicted() throws {
        let cache = try KernelCache(root: root, salt: "test", maxBytes: 10_000)
        let keys = (0..<6).map { SHA256.hex("entry \($0)") }
        for (i, key) in keys.enumerated() {
            cache.store(key, object: [UInt8](repeating: UInt8(i), count: 3_000))
            // Older entries first: entry 0 is the least recently used.
            let time = Date().addingTimeInterval(Double(i - 10) * 100)
            try FileManager.default.setAttributes([.modificationDate: time], ofItemAtPath: cache.path(key))
        }
        cache.evictIfNeeded()
        XCTAssertNil(cache.load(keys[0]))
        XCTAssertNil(cache.load(keys[1]))
        XCTAssertNil(cache.load(keys[2]))
        XCTAssertEqual(cache.load(keys[5]), [UInt8](repeating: 5, count: 3_000))
        XCTAssertEqual(cache.load(keys[4]), [UInt8](repeating: 4, count: 3_000))
        XCTAssertEqual(cache.stats.evicted, 4)
    }

    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        var split = SHA256()
        split.update("abcdbcdecdefdefgefghfghighij")
        split.update("hijkijkljklmklmnlmnomnopnopq")
        XCTAssertEqual(SHA256.hexString(split.finish()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
