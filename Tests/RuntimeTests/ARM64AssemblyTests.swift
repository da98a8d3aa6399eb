import Foundation
import XCTest
import LLVMKit
import MLXCFrontend
import MLXCIR
import MLXCCodegen
@testable import MLXCRuntime

/// The aarch64 assembly of the hot kernels (what `mlxc compile --target aarch64-linux-gnu --emit
/// asm` prints) computes with NEON: 4-lane FMAs (`fmla v.4s`), and no more scalar FMAs than vector
/// ones (scalar ones are tails, never the main loop; GELU epilogues of fused linears excepted, below). No emulator needed: LLVM
/// compiles for ARM64 here. Every fixture's plan for aarch64 has no op on the reference executor.
final class ARM64AssemblyTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// Kernel families whose inner loop is multiply-accumulate over f32 lanes.
    static let hot = ["linear", "qmm_", "gather_qmm", "gather_mm", "rope_attention", "sdpa", "rms_norm", "layer_norm",
                      "conv1d", "dequantize_affine", "gelu"]

    func count(_ pattern: String, _ text: String) -> Int {
        (try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]))?
            .numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text)) ?? 0
    }

    func assembly(_ fixture: String, cpu: String = "neoverse-n1", only prefix: String = "") throws -> [(name: String, asm: String, ir: String)] {
        let pte = try PTEFile(path: Self.fixtures.appendingPathComponent(fixture).appendingPathComponent("model.pte").path)
        var options = JITProgram.Options()
        options.target = try HostTarget.named(triple: "aarch64-linux-gnu", cpu: cpu)
        let program = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte, options: options)
        XCTAssertEqual(program.fusionStats.fallbackOps, 0, "\(fixture): ops on the reference executor for aarch64")
        XCTAssertThrowsError(try program.run([]), "a program planned for aarch64 must not run on x86") {
            XCTAssertTrue("\($0)".contains("planned for aarch64"), "\($0)")
        }
        let library = KernelLibrary()
        for d in program.library.definitions where d.name.hasPrefix(prefix) { library.require(d) }
        return try library.perKernelDumps(machine: TargetMachine(host: options.target!)).map { ($0.name, $0.assembly, $0.optimized) }
    }

    func testHotKernelsUseNEON() throws {
        var checked: [String] = []
        for fixture in ["llama_mlx_fp32", "llama_mlx_bf16", "llama_mlx_4bit", "llama_mlx_8bit", "moe_mlx_4bit", "whisper_encoder_mlx_fp32",
                        "mlp_xnnpack_8da4w"] {
            for k in try assembly(fixture) {
                XCTAssertFalse(k.ir.contains("llvm.x86."), "\(k.name): an x86 intrinsic in aarch64 IR")
                if k.name.hasPrefix("dqlinear_") {
                    // XNNPACK's QD8 linear on neoverse-n1 (+dotprod): 8-bit codes by sdot (where x86 uses
                    // vpdpwssd/vpmaddwd), 16 products per instruction.
                    XCTAssertTrue(k.name.hasSuffix("_neondot16"), k.name)
                    XCTAssertGreaterThanOrEqual(count(#"^\s*sdot\s+v[0-9]+\.4s"#, k.asm), 4, "\(k.name): no sdot")
                    checked.append(k.name)
                    continue
                }
                guard Self.hot.contains(where: { k.name.hasPrefix($0) }) else { continue }
                let vector = count(#"^\s*fmla\s+v[0-9]+\.4s"#, k.asm)
                let scalar = count(#"^\s*(fmadd|fmla)\s+s[0-9]+"#, k.asm)
                XCTAssertGreaterThan(vector, 0, "\(fixture) \(k.name): no 4-lane fmla")
                // A fused linear's activation epilogue runs once per output element, scalar on every ISA
                // (AVX-512's asm of the Whisper GELU linear: 270 scalar FMAs, 108 vector ones): its polynomial
                // is not the main loop. Every other hot kernel's scalar FMAs are tails.
                let epilogue = k.name.hasPrefix("linear_fused") && ["gelu", "geglu"].contains { k.name.contains($0) }
                if !epilogue {
                    XCTAssertLessThanOrEqual(scalar, vector, "\(fixture) \(k.name): \(scalar) scalar FMAs against \(vector) vector ones")
                }
                checked.append(k.name)
            }
        }
        for family in ["linear_f32", "linear_fused_f32w", "linear_fused_bf16w", "qmm_affine_w4", "qmm_affine_w8", "gather_qmm",
                       "rope_attention_f32", "rope_attention_bf16", "sdpa", "rms_norm", "layer_norm", "conv1d", "dqlinear"] {
            XCTAssertTrue(checked.contains { $0.hasPrefix(family) }, "no \(family) kernel was checked")
        }
    }

    /// Every ARM64 CPU mlxc accepts compiles the kernels (LLVM knows the CPU and its features).
    func testEveryListedCPUCompiles() throws {
        for cpu in HostTarget.aarch64CPUs.map(\.name) {
            let kernels = try assembly("llama_mlx_4bit", cpu: cpu, only: "qmm_")
            XCTAssertFalse(kernels.isEmpty)
            for k in kernels {
                XCTAssertGreaterThan(count(#"^\s*fmla\s+v[0-9]+\.4s"#, k.asm), 0, "\(cpu) \(k.name)")
            }
            // The QD8 linear: sdot where the CPU has +dotprod, else widening multiply-accumulate (smlal).
            let dotprod = HostTarget.aarch64CPUs.first { $0.name == cpu }!.features.contains("+dotprod")
            for k in try assembly("mlp_xnnpack_8da4w", cpu: cpu, only: "dqlinear_") {
                XCTAssertTrue(k.name.hasSuffix(dotprod ? "_neondot16" : "_neon16"), "\(cpu) \(k.name)")
                let pattern = dotprod ? #"^\s*sdot\s+v[0-9]+\.4s"# : #"^\s*smlal2?\s+v[0-9]+\.4s"#
                XCTAssertGreaterThanOrEqual(count(pattern, k.asm), 4, "\(cpu) \(k.name)")
            }
        }
    }
}
