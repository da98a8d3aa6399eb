import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// What the default pipeline makes of every LLM fixture, counted on the final plan
/// (`JITProgram.fusionStats`, what `mlxc compile --stats-json` writes) against the imported graph:
/// no op left to the reference; in MLX programs one rope_attention kernel per attention layer
/// (an sdpa in the import), every quantized linear dequantizing in registers (no dequantize op
/// feeds a matmul: the only dequantize kernels are embedding-row lookups), every MoE expert matmul
/// a gather kernel.
final class FusionCoverageTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func stats(_ fixture: String) throws -> (imported: [String: Int], stats: FusionStats, plan: [String]) {
        let pte = try PTEFile(path: Self.root.appendingPathComponent("\(fixture)/model.pte").path)
        let imported = try Importer.importMethod(pte).graph.opHistogram
        let program = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
        return (imported, program.fusionStats, program.planSummary)
    }

    func testMLXProgramsAreFusedWithoutFallbacks() throws {
        for model in ["llama", "gemma_sliding", "moe"] {
            for variant in ["fp32", "bf16", "4bit", "8bit"] {
                let name = "\(model)_mlx_\(variant)"
                let (imported, s, plan) = try stats(name)
                XCTAssertEqual(s.fallbackOps, 0, "\(name): ops on the reference")
                XCTAssertEqual(s.fusions.ropeAttention, imported["sdpa"] ?? 0, "\(name): rope_attention kernels vs attention layers")
                XCTAssertGreaterThan(s.fusions.ropeAttention, 0, name)
                XCTAssertFalse(plan.contains { $0.contains("kernel sdpa_") || ($0.contains("kernel rope_") && !$0.contains("kernel rope_attention")) }, "\(name): unfused attention left")
                let gathers = (imported["gather_qmm"] ?? 0) + (imported["gather_mm"] ?? 0)
                XCTAssertEqual(s.fusions.moeGather, gathers, "\(name): MoE expert matmuls as gathers")
                if model == "moe" { XCTAssertGreaterThan(gathers, 0, name) }
                if variant.hasSuffix("bit") {
                    XCTAssertEqual(s.fusions.dequantMatmul + (imported["gather_qmm"] ?? 0) > 0, true, name)
                    // Dequantize survives only as the embedding lookup's row decode (one per call), never before a matmul.
                    XCTAssertLessThanOrEqual(plan.filter { $0.contains("kernel dequantize") }.count, 1, "\(name): dequantized weights")
                }
            }
        }
    }

    /// Plain weight-only quantized programs (torchao dequantize_affine → permute_copy → mm): every
    /// quantized linear of the import runs as a quantized kernel reading the packed weights (q/k/v and
    /// gate/up share one, with the SwiGLU and residual epilogues), no dequantize op is left and nothing
    /// falls back to the reference.
    func testPlainQuantizedProgramsFuseEveryLinear() throws {
        // (fixture, quantized linears imported, quantized linear kernels, SwiGLU kernels, residual kernels)
        let expected = [("llama_plain_8bit", 15, 9, 2, 4), ("llama_plain_4bit", 15, 9, 2, 4),
                        // gate (with a bias, added after the kernel) and up share one kernel; down takes the residual.
                        ("mlp_plain_8bit_channel", 3, 2, 0, 1)]
        for (name, linears, kernels, swiglu, residual) in expected {
            let (imported, s, plan) = try stats(name)
            XCTAssertEqual(imported["dequantize_affine"] ?? 0, linears, "\(name): quantized linears in the import")
            XCTAssertEqual(s.fallbackOps, 0, "\(name): ops on the reference")
            XCTAssertEqual(plan.filter { $0.contains("kernel qmm_affine_") }.count, s.fusions.dequantMatmul,
                           "\(name): \(plan.filter { $0.contains("qmm") })")
            XCTAssertEqual(s.fusions.dequantMatmul, kernels, "\(name): quantized linear kernels")
            XCTAssertEqual(plan.filter { $0.contains("kernel qmm_") && $0.contains("_swiglu") }.count, swiglu, "\(name): SwiGLU kernels")
            XCTAssertEqual(plan.filter { $0.contains("kernel qmm_") && $0.contains("_residual") }.count, residual, "\(name): residual kernels")
            XCTAssertFalse(plan.contains { $0.contains("dequantize") || $0.contains("kernel matmul") || $0.contains("linear_f32") },
                           "\(name): a dequantized weight or a float matmul is left: \(plan.filter { $0.contains("matmul") || $0.contains("dequant") })")
        }
    }

    /// Plain LLM exports (RoPE from cos/sin tables, decomposed attention, index_put + copy_ into the
    /// caches): one rope_attention kernel per attention layer — a layer is one k and one v cache
    /// write in the import — and no separate rope, sdpa, softmax-over-scores or cache-copy kernel. Also
    /// the same model with its layers in XNNPACK delegates (the cache writes between them; the RoPE
    /// interleave's unit axis a StaticReshape, the k write reshaped [H, T, D] and back).
    func testPlainLLMsHaveOneRopeAttentionPerLayer() throws {
        for name in ["llama_plain", "gemma_sliding_plain", "moe_plain", "llama_plain_8bit", "llama_plain_4bit", "llama_xnnpack_fp32"] {
            let (imported, s, plan) = try stats(name)
            let layers = (imported["index_put"] ?? 0) / 2
            XCTAssertEqual(layers, 2, "\(name): attention layers in the import")
            XCTAssertEqual(s.fusions.ropeAttention, layers, "\(name): rope_attention kernels")
            XCTAssertEqual(s.fallbackOps, 0, "\(name): ops on the reference")
            let unfused = plan.filter { k in
                ["kernel sdpa_", "kernel index_put", "kernel copy_into", "kernel matmul"].contains { k.contains($0) }
                    || (k.contains("kernel rope_") && !k.contains("kernel rope_attention"))
            }
            XCTAssertEqual(unfused, [], "\(name): unfused attention left")
        }
    }

    /// moe_plain computes every expert densely (batched matmuls over all 4 experts, a one-hot of
    /// the top-2): fuse-moe-pattern makes each MoE layer (one router argsort in the import) three
    /// gathers — gate, up, down — that read only the selected experts, and no batched matmul is left.
    func testPlainMoELayersAreExpertGathers() throws {
        let (imported, s, plan) = try stats("moe_plain")
        let layers = imported["argsort"] ?? 0
        XCTAssertEqual(layers, 2, "moe_plain: MoE layers in the import")
        XCTAssertEqual(s.fusions.moeGather, 3 * layers, "moe_plain: gathers per MoE layer")
        XCTAssertEqual(s.fallbackOps, 0, "moe_plain: ops on the reference")
        XCTAssertFalse(plan.contains { $0.contains("batched_matmul") || $0.contains("reference matmul") }, "moe_plain: dense experts left")
        XCTAssertEqual(plan.filter { $0.contains("kernel gather_mm_") && $0.contains("_ws") }.count, 2 * layers,
                       "moe_plain: gate and up read the stacked weights in place")
    }

    func testPlainProgramsRunWithoutFallbacks() throws {
        for name in ["llama_plain", "gemma_sliding_plain", "moe_plain", "whisper_encoder_plain", "linear_plain_ptd",
                     "llama_plain_8bit", "llama_plain_4bit", "mlp_plain_8bit_channel"] {
            let dir = Self.root.appendingPathComponent(name)
            let ptd = dir.appendingPathComponent("model.ptd").path
            let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path,
                                  externalData: FileManager.default.fileExists(atPath: ptd) ? [ptd] : [])
            let program = try JITProgram(graph: try ProgramLoader.prepare(pte, method: nil), pte: pte)
            XCTAssertEqual(program.fusionStats.fallbackOps, 0, "\(name): \(program.remarks)")
        }
    }
}
