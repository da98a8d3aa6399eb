import Foundation
import XCTest

/// `mlxc compile --target aarch64-linux-gnu` and `mlxc host --target`, through the binary: an ARM64
/// object with every kernel of the plan (ELF for AArch64, the kernels' symbols), per-kernel NEON
/// assembly, and one line + exit 1 for what it cannot do.
final class CrossTargetCLITests: XCTestCase {
    let cli = MLXCBinary()

    func testObjectAndAssemblyForARM64() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-cross-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let object = dir.appendingPathComponent("m.o").path, stats = dir.appendingPathComponent("stats.json").path
        let run = try cli.mlxc(["compile", cli.fixture("llama_mlx_4bit"), "--target", "aarch64-linux-gnu", "--cpu", "neoverse-n1",
                                "--emit", "obj", "-o", object, "--stats-json", stats])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("aarch64-unknown-linux-gnu (neoverse-n1)"), run.stdout)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: object)))
        XCTAssertEqual(Array(bytes.prefix(4)), [0x7F, 0x45, 0x4C, 0x46], "not ELF")
        XCTAssertEqual(bytes.count > 20 ? UInt16(bytes[18]) | UInt16(bytes[19]) << 8 : 0, 183, "e_machine is not EM_AARCH64")
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.contains("qmm_affine_w4g32_f32params_f32_k64_n256_tb4_gemm6x8_v4"), "kernel symbol missing")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any]
        XCTAssertEqual(json?["fallback_ops"] as? Int, 0)
        XCTAssertEqual((json?["fusions"] as? [String: Any])?["dequant_matmul"] as? Int, 9)

        let asm = try cli.mlxc(["compile", cli.fixture("llama_mlx_fp32"), "--target", "aarch64-linux-gnu", "--emit", "asm"])
        XCTAssertEqual(asm.status, 0, asm.stderr)
        XCTAssertTrue(asm.stdout.contains("; kernel linear_f32_k64_n256_v4"), String(asm.stdout.prefix(400)))
        XCTAssertTrue(asm.stdout.range(of: #"fmla\s+v[0-9]+\.4s"#, options: .regularExpression) != nil)
        XCTAssertFalse(asm.stdout.contains("%ymm") || asm.stdout.contains("%zmm"))

        let host = try cli.mlxc(["host", "--target", "aarch64-linux-gnu", "--cpu", "neoverse-v1"])
        XCTAssertEqual(host.status, 0, host.stderr)
        XCTAssertTrue(host.stdout.contains("vector:   128 bits"), host.stdout)
        XCTAssertTrue(host.stdout.contains("+i8mm") && host.stdout.contains("+bf16"), host.stdout)
    }

    func testWhatItCannotDoIsOneLine() throws {
        for args in [["compile", cli.fixture("llama_mlx_fp32"), "--target", "aarch64-linux-gnu"],          // an artifact
                     ["compile", cli.fixture("llama_mlx_fp32"), "--target", "riscv64-linux-gnu", "--emit", "asm"],
                     ["compile", cli.fixture("llama_mlx_fp32"), "--target", "aarch64-linux-gnu", "--cpu", "cortex-x9", "--emit", "asm"],
                     ["compile", cli.fixture("llama_mlx_fp32"), "--cpu", "neoverse-n1", "--emit", "asm"],
                     ["host", "--target", "aarch64-apple-darwin"]] {
            let run = try cli.mlxc(args)
            XCTAssertEqual(run.status, 1, args.joined(separator: " "))
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
            XCTAssertTrue(run.stderr.hasPrefix("mlxc: error: "), run.stderr)
        }
    }
}
