import Foundation
import XCTest
@testable import MLXCRuntime

/// fuse-linear on the float LLM fixtures (plain and MLX, f32 and bf16): per layer q/k/v are one
/// kernel, the output projection takes the residual, gate and up are one gated kernel (SwiGLU —
/// plain llama spells silu as x·sigmoid(x) — or gemma's tanh GeGLU), down takes the residual; only
/// the output projection stays a plain linear kernel, and no activation or multiply kernel is left
/// of the MLPs. Whisper's q/k/v (k without a bias) share one kernel, fc1 takes its gelu and both
/// residuals fold: no float linear is left unfused.
extension FusionCoverageTests {
    func testFloatLinearsAreFused() throws {
        // (fixture, fused_linear kernels, with epilogues, plain linear kernels left)
        let expected = [("llama_plain", 8, 6, 1), ("llama_mlx_fp32", 8, 6, 1), ("llama_mlx_bf16", 8, 6, 1),
                        ("gemma_sliding_plain", 8, 6, 1), ("gemma_sliding_mlx_fp32", 8, 6, 1), ("gemma_sliding_mlx_bf16", 8, 6, 1),
                        ("whisper_encoder_plain", 8, 6, 0), ("whisper_encoder_mlx_fp32", 8, 6, 0), ("whisper_encoder_mlx_bf16", 8, 6, 0)]
        for (name, fusedKernels, epilogues, plainLinears) in expected {
            let (_, s, plan) = try stats(name)
            XCTAssertEqual(s.fallbackOps, 0, "\(name): ops on the reference")
            XCTAssertEqual(s.fusions.linear, fusedKernels, "\(name): fused_linear kernels")
            XCTAssertEqual(plan.filter { $0.contains("kernel linear_fused_") }.count, fusedKernels, name)
            XCTAssertEqual(s.fusions.elementwise, epilogues, "\(name): kernels with folded epilogues")
            XCTAssertEqual(plan.filter { $0.contains("kernel linear_") && !$0.contains("kernel linear_fused_") }.count, plainLinears,
                           "\(name): \(plan.filter { $0.contains("kernel linear_") })")
            let gated = plan.filter { $0.contains("kernel linear_fused_") && ($0.contains("_swiglu") || $0.contains("_geglu")) }.count
            XCTAssertEqual(gated, name.hasPrefix("whisper") ? 0 : 2, "\(name): gated MLP kernels")
            if !name.hasPrefix("whisper") {
                XCTAssertFalse(plan.contains { ["kernel sigmoid_", "kernel silu_", "kernel gelu_"].contains(where: $0.contains) }, "\(name): MLP activation left")
                XCTAssertFalse(plan.contains { $0.contains("kernel add_f32") || $0.contains("kernel add_bf16") }, "\(name): residual add left")
            }
        }
    }
}
