import MLXCIR

/// The one table of passes: name, one-line summary, constructor. `mlxc passes` prints it.
public enum PassRegistry {
    public struct Entry {
        public let name: String
        public let summary: String
        public let make: () -> any GraphPass
    }

    public static let entries: [Entry] = [
        Entry(name: "verify", summary: "check SSA form: every value defined before use and once (state excepted)", make: { VerifyPass() }),
        Entry(name: "dce", summary: "remove nodes whose results nothing reads (side-effect free ones only)", make: { DeadCodeElimination() }),
        Entry(name: "cse", summary: "merge identical pure nodes (same op, same operands) within a block", make: { CommonSubexpressionElimination() }),
        Entry(name: "merge-constants", summary: "one value per constant (same data, same type), so cse sees what layers share",
              make: { MergeConstants() }),
        Entry(name: "row-take-as-slice", summary: "a constant table read at a one-element index tensor (static-shape RoPE tables) as the row slice dynamic exports write",
              make: { RowTakeAsSlice() }),
        Entry(name: "pad-as-fill-and-copy", summary: "a constant pad of one axis as full + slice_update (the mel preprocessor's padding to whole chunks)",
              make: { PadAsFillAndCopy() }),
        Entry(name: "fold-scalar-constants", summary: "compute int arithmetic on constant scalars at compile time", make: { FoldScalarConstants() }),
        Entry(name: "fuse-dequant-matmul", summary: "plain exports' dequantize_affine weight + linear as an MLX affine quantized_matmul (weights repacked at load)",
              make: { FuseDequantMatmul() }),
        Entry(name: "fuse-moe-pattern", summary: "plain MoE (all experts dense, one-hot top-k routing) as expert gathers of the selected experts only",
              make: { FuseMoEPattern() }),
        Entry(name: "fuse-quantized-linear", summary: "quantized linears with their SwiGLU, residual add, and siblings reading the same x, as one kernel",
              make: { FuseQuantizedLinear() }),
        Entry(name: "fuse-linear", summary: "float linears with their bias add, SwiGLU/GeGLU, residual add, and siblings reading the same x, as one kernel",
              make: { FuseLinear() }),
        Entry(name: "fuse-rope-attention", summary: "RoPE of q and k, the KV-cache writes and the attention reading them, as one kernel",
              make: { FuseRopeAttention() }),
        Entry(name: "fuse-kv-attention", summary: "KV-cache writes and the attention reading them, q and k not rotated (no RoPE: Whisper's decoder), as one kernel",
              make: { FuseKVAttention() }),
        Entry(name: "fuse-rms-norm-pattern", summary: "plain RMSNorm (power, mean, add eps, rsqrt, multiply, weight) as one rms_norm op",
              make: { FuseRMSNormPattern() }),
        Entry(name: "fuse-attention-pattern", summary: "plain attention (scaled q·kᵀ, mask, safe softmax, ·v; GQA repeats) as one sdpa op reading the KV cache",
              make: { FuseAttentionPattern() }),
        Entry(name: "fuse-rope-pattern", summary: "plain RoPE (cos/sin table slices, halves, multiply-add, concatenate) as one rope_table op",
              make: { FuseRopePattern() }),
        Entry(name: "fuse-rotate-half-rope", summary: "HF RoPE (cos/sin computed in the graph, rotate_half, partial rotary) as one rope_table op reading them",
              make: { FuseRotateHalfRope() }),
        Entry(name: "fold-transposes", summary: "compose transpose chains, drop identity transposes and copies of values that cannot change",
              make: { FoldTransposes() }),
        Entry(name: "inplace-state-writes", summary: "index_put into state plus its copy back as one in-place index_copy",
              make: { InPlaceStateWrites() }),
        Entry(name: "inplace-gated-delta-state", summary: "etLLM's GatedDeltaNet state reset (state × keep) and copy back folded into the gated delta rule, which updates the state in place",
              make: { InPlaceGatedDeltaState() }),
        Entry(name: "inplace-rolled-state-writes", summary: "index_put into a reordering (roll) of state plus its copy back as the reordering copied in, then one in-place index_copy",
              make: { InPlaceRolledStateWrites() }),
        Entry(name: "canonical-kv-attention", summary: "KV-cache slice writes and attention over cache slices (MLX custom ops, llama::update_cache/custom_sdpa) as index_copy + sdpa over the whole cache with a mask",
              make: { CanonicalKVAttention() }),
        Entry(name: "conv-weight-layout", summary: "convolution weights repacked once at load with output channels innermost (the conv2d kernel's vector loads)",
              make: { ConvWeightLayout() }),
        Entry(name: "last-position-logits", summary: "text generation: run the final norm and output projection on the last position only",
              make: { LastPositionLogits() }),
    ]

    /// The default pipeline the compiler runs before planning kernels.
    public static let defaultPipeline = ["row-take-as-slice", "pad-as-fill-and-copy", "fold-scalar-constants", "merge-constants", "cse", "dce", "fuse-rms-norm-pattern", "fuse-rope-pattern", "fuse-rotate-half-rope", "inplace-state-writes", "inplace-rolled-state-writes", "canonical-kv-attention",
                                                  "fuse-attention-pattern", "fold-transposes", "inplace-gated-delta-state", "dce", "fuse-moe-pattern", "fuse-dequant-matmul", "fuse-quantized-linear", "fuse-linear", "fuse-rope-attention", "fuse-kv-attention", "conv-weight-layout"]

    /// What text generation runs (`mlxc run --prompt`, `--interactive`, `mlxc bench`): the default
    /// pipeline, then logits for the last position only (all the sampler reads).
    public static var generationPipeline: [String] { defaultPipeline + ["last-position-logits"] }

    public static func entry(named name: String) -> Entry? { entries.first { $0.name == name } }
}
