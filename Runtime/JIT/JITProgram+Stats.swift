import Foundation
import MLXCIR

/// What the final execution plan is made of, for `mlxc compile --stats-json`: how many kernels,
/// how many ops were left to the reference executor, and how many kernels each fusion produced.
public struct FusionStats: Codable, Equatable {
    public struct Fusions: Codable, Equatable {
        /// Quantized linears dequantizing in registers (MLX quantized_matmul, fused_quantized_linear).
        public var dequantMatmul = 0
        /// RoPE + attention + KV-cache write kernels.
        public var ropeAttention = 0
        /// MoE layers whose expert matmuls read only the selected experts (gather_qmm / gather_mm kernels).
        public var moeGather = 0
        /// Float linears fused with their siblings or epilogues (fused_linear kernels).
        public var linear = 0
        /// Kernels with elementwise ops folded in (SwiGLU/GeGLU and residual epilogues of fused linears).
        public var elementwise = 0

        enum CodingKeys: String, CodingKey {
            case dequantMatmul = "dequant_matmul", ropeAttention = "rope_attention", moeGather = "moe_gather", linear, elementwise
        }
    }

    /// Kernel launches in the plan (every block), not distinct kernel functions.
    public var kernels = 0
    public var fallbackOps = 0
    public var fusions = Fusions()

    enum CodingKeys: String, CodingKey { case kernels, fallbackOps = "fallback_ops", fusions }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

extension JITProgram {
    public var fusionStats: FusionStats {
        var stats = FusionStats()
        for (b, steps) in plans {
            for (i, step) in steps.enumerated() {
                var kernelNode: Node?
                switch step {
                case .kernel(let launch): kernelNode = launch.node
                case .skip(let node) where crossKernels[b]?[i] != nil: kernelNode = node
                default: break
                }
                switch step {
                case _ where kernelNode != nil:
                    stats.kernels += 1
                    switch kernelNode!.op {
                    case .quantizedMatmul, .dynamicQuantLinear: stats.fusions.dequantMatmul += 1
                    case .fusedQuantizedLinear(let o):
                        stats.fusions.dequantMatmul += 1
                        if o.epilogue != "none" || o.residual != nil { stats.fusions.elementwise += 1 }
                    case .fusedLinear(let o):
                        stats.fusions.linear += 1
                        if o.epilogue != "none" || o.residual != nil { stats.fusions.elementwise += 1 }
                    case .ropeAttention: stats.fusions.ropeAttention += 1
                    case .gatherQmm, .gatherMm: stats.fusions.moeGather += 1
                    default: break
                    }
                case .fallback: stats.fallbackOps += 1
                default: break
                }
            }
        }
        return stats
    }
}
