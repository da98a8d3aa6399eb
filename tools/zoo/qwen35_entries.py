"""Zoo entries for Qwen 3.5 MoE: ExecuTorch's `examples/models/qwen3_5_moe/export.py --backend mlx`, run
unchanged on the tiny checkpoints of qwen35_checkpoint.py (registered into zoo.py's ENTRIES).

What the script writes (executorch 1.5.1): `forward(tokens i64[1, T], input_pos i64[T])` → logits of the last
position [1, V] in bf16 (the model is cast to bf16; there is no --dtype), T dynamic up to max_seq_len - 1.
GatedDeltaNet layers become `mlx::gated_delta_rule` → a `MetalKernelNode "gated_delta_step"` (Dk a multiple
of 32); full-attention layers mlx::rope + mlx::kv_cache_update + mlx::custom_sdpa; routed experts SwitchMLP
(`gather_qmm`/`gather_mm`, tokens sorted by expert when T > 1); `--qlinear 4w` quantizes every linear
and the experts. `--turboquant` is refused by the script with `--backend mlx` (an entry records that).
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = Path(__file__).resolve().parent / "qwen35_checkpoint.py"

# family → attention layers (one rope_attention each); the GatedDeltaNet layers have their own kernel.
LAYERS = {"qwen35moe": 2, "qwen35moe_e16k8": 2, "qwen35moe_dk48": 2}

SCRIPT = "executorch.examples.models.qwen3_5_moe.export"


def export(*flags, seq=64):
    return ["-m", SCRIPT, "--model-dir", "{ckpt}", "--backend", "mlx", "--output-dir", "{out}",
            "--max-seq-len", str(seq), *flags]


# (name, family, command, options for zoo.add)
ENTRIES = [
    ("qwen35moe_mlx_bf16", "qwen35moe", export(), {"dtype": "bf16"}),
    ("qwen35moe_mlx_4w", "qwen35moe", export("--qlinear", "4w", "--qlinear-group-size", "32"), {"dtype": "bf16"}),
    ("qwen35moe_e16k8_mlx_bf16", "qwen35moe_e16k8", export(), {"dtype": "bf16"}),
    ("qwen35moe_e16k8_mlx_4w", "qwen35moe_e16k8", export("--qlinear", "4w", "--qlinear-group-size", "32"),
     {"dtype": "bf16"}),
    ("qwen35moe_dk48_mlx_bf16", "qwen35moe_dk48", export(), {"dtype": "bf16"}),
]
