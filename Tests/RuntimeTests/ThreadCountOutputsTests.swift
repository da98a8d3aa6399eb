import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCCodegen
@testable import MLXCRuntime

/// A compiled program computes the same bytes however many threads split its kernels: every launch is
/// split over output items, so 1, 2, 3 or 4 threads (the pool held at its full size) only change who
/// computes which rows, never a sum's order. Fixtures with prefill and decode calls (state carried over),
/// 4-bit and fp32 (with experts); their closeness to eager PyTorch is FixtureOutputsTests'.
final class ThreadCountOutputsTests: XCTestCase {
    func testOutputsAreIdenticalWithOneToFourThreads() throws {
        // One kernel cache for the four programs of a fixture: LLVM compiles each kernel once.
        let cacheDir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-threadcount-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cacheDir) }
        let cache = try KernelCache(root: cacheDir.path, salt: "test")
        for name in ["llama_mlx_4bit", "moe_mlx_fp32"] {
            let dir = FixtureOutputsTests.root.appendingPathComponent(name)
            let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
            let graph = try ProgramLoader.prepare(pte, method: nil)
            var calls: [[HostTensor]] = []
            for k in 0... {
                var inputs: [HostTensor] = []
                for i in 0... {
                    let path = dir.appendingPathComponent("step\(k).input\(i).npy").path
                    guard FileManager.default.fileExists(atPath: path) else { break }
                    inputs.append(try TensorFiles.readNPY(path))
                }
                if inputs.isEmpty { break }
                calls.append(inputs)
            }
            XCTAssertGreaterThan(calls.count, 1, name)
            var first: [[HostTensor]]?
            for threads in 1...4 {
                var options = JITProgram.Options()
                options.threads = threads
                options.adaptiveThreads = false
                options.kernelCache = cache   // every launch split with every thread, whatever else runs
                let program = try JITProgram(graph: graph, pte: pte, options: options)
                let outputs = try calls.map { try program.run($0) }
                if threads > 1 { XCTAssertGreaterThan(program.pool.barrierStats.launches, 0, "\(name): nothing was split") }
                if let first {
                    XCTAssertEqual(outputs, first, "\(name): \(threads) threads computed other values than 1")
                } else {
                    first = outputs
                }
            }
        }
    }
}
