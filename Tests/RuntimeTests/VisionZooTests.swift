import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Image classifiers as optimum-executorch's own exporter writes them (tools/zoo/vision_entries.py:
/// `optimum-cli export executorch --task image-classification --recipe xnnpack|portable`, unchanged, on tiny
/// random-weight MobileNetV2 / ResNet checkpoints of transformers' config classes), committed under
/// Fixtures/zoo/<entry> with two seeded images, eager PyTorch's logits (ref/) and ExecuTorch's runtime's on the same
/// file (et/). Every image runs compiled (default pipeline) within 1e-4 × max |expected| of both, nothing on the
/// reference executor: XNNPACK's convolutions with fused ReLU6 clamps, TF-style pads, max and global average pooling,
/// and the portable programs' ATen convolutions, batch norms, hardtanh and max_pool2d_with_indices, all on kernels.
final class VisionZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Reference: Decodable { var steps: Int; var image_size: Int; var classes: Int }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/vision_reference.json").path) }
    }

    func testVisionFixturesArePresent() {
        for name in ["mobilenet_v2_xnnpack_fp32", "mobilenet_v2_portable_fp32", "resnet_xnnpack_fp32", "resnet_portable_fp32"] {
            XCTAssertTrue(Self.entries.contains(name), "vision zoo fixture \(name) missing under \(Self.root.path)")
        }
    }

    static func worst(_ got: HostTensor, _ want: HostTensor) -> Double {
        guard got.shape == want.shape else { return .infinity }
        let scale = max(want.storage.map(abs).max() ?? 0, 1e-30)
        return (zip(got.storage, want.storage).map { abs($0 - $1) }.max() ?? 0) / scale
    }

    func testEveryImageMatchesExecuTorchAndEager() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("vision_reference.json")))
            let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, method: "forward", engine: .jit,
                                                mlxcVersion: "test", passes: try PassManager(pipeline: PassRegistry.defaultPipeline))
            var vsET = 0.0, vsEager = 0.0
            for k in 0..<ref.steps {
                let image = try TensorFiles.readNPY(dir.appendingPathComponent("ref/step\(k).input0.npy").path)
                XCTAssertEqual(image.shape, [1, 3, ref.image_size, ref.image_size], name)
                let got = try loaded.executor.run([image])
                XCTAssertEqual(got.count, 1, name)
                XCTAssertEqual(got[0].shape, [1, ref.classes], name)
                vsET = max(vsET, Self.worst(got[0], try TensorFiles.readNPY(dir.appendingPathComponent("et/step\(k).output0.npy").path)))
                vsEager = max(vsEager, Self.worst(got[0], try TensorFiles.readNPY(dir.appendingPathComponent("ref/step\(k).output0.npy").path)))
            }
            XCTAssertLessThanOrEqual(vsET, 1e-4, "\(name): worst |got − ExecuTorch| / max |ExecuTorch| over \(ref.steps) images")
            XCTAssertLessThanOrEqual(vsEager, 1e-4, "\(name): worst |got − eager| / max |eager| over \(ref.steps) images")
            let jit = try XCTUnwrap(loaded.executor as? JITProgram, name)
            XCTAssertEqual(jit.fusionStats.fallbackOps, 0, "\(name): ops on the reference executor")
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_") }, "\(name): no conv2d kernel")
            if name.hasPrefix("mobilenet_v2_xnnpack") {
                // Every TF "same" pad (the asymmetric ones before stride-2 convs too) is the conv kernel's own padding, every
                // bias add, ReLU6 and residual add is done on a conv's store, the 1x1 convs are GEMMs.
                XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("fill_") || $0.hasPrefix("splice_rows") || $0.hasPrefix("add_")
                                                          || $0.hasPrefix("clip_") }, "\(name): \(jit.kernelNames)")
                XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_gemm") && $0.contains("_residual") }, "\(name): \(jit.kernelNames)")
            }
        }
    }

    /// A wrong image size or an integer image is refused by name before anything runs.
    func testWrongImageIsRefused() throws {
        let dir = Self.root.appendingPathComponent("mobilenet_v2_xnnpack_fp32")
        let loaded = try ProgramLoader.load(dir.appendingPathComponent("model.pte").path, method: "forward", engine: .jit,
                                            mlxcVersion: "test")
        let small = HostTensor(dtype: .f32, shape: [1, 3, 32, 32], storage: Array(repeating: 0, count: 3 * 32 * 32))
        XCTAssertThrowsError(try loaded.executor.run([small])) { XCTAssertTrue("\($0)".contains("input 0: expected shape"), "\($0)") }
        let bytes = HostTensor(dtype: .u8, shape: [1, 3, 64, 64], storage: Array(repeating: 0, count: 3 * 64 * 64))
        XCTAssertThrowsError(try loaded.executor.run([bytes])) { XCTAssertTrue("\($0)".contains("input 0: expected dtype f32"), "\($0)") }
    }
}
