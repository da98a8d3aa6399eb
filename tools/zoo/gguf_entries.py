"""Zoo entries for GGUF-quantized MLX exports: ExecuTorch's Gemma 4 GGUF path (examples/models/gemma4_31b/export.py
`--gguf`, through gguf_export.py: the same two calls with a tiny config) on the tiny GGUF files of gguf_checkpoint.py
(registered into zoo.py's ENTRIES).

What the script writes (executorch 1.5.1, --backend mlx): `forward(input_ids i64[1, T], input_pos i64[T])` → f32
logits of the last position [1, V] (host-side sampling), T dynamic; sliding-window and full-attention layers (the full
ones with K = V and partial RoPE), GELU-tanh MLP, final logit softcapping. GGUF weights stay quantized through
export (`torchao::dequantize_gguf` → linear / embedding, matched by the MLX delegate's gguf patterns): Q4_K and
mergeable Q6_K sub-blocks become MLX-native affine quantized matmuls (4-bit, 6-bit), Q6_K blocks whose sub-scales
differ become the delegate's gguf_q6k_* Metal kernels (the `_varied` checkpoint), which mlxc repacks at load
(`gguf_pack_affine`) — in both, the codes are decoded in registers.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = Path(__file__).resolve().parent / "gguf_checkpoint.py"
MARKER = "tiny.gguf"

# family → attention layers (one rope_attention each)
LAYERS = {"gemma4_gguf": 2, "gemma4_gguf_varied": 2}


def export():
    return ["{zoo}/gguf_export.py", "--gguf", "{ckpt}/tiny.gguf",
            "--config", "{ckpt}/gemma4_config.json", "--output-dir", "{out}", "--backend", "mlx"]


NOTE = ("bf16 model (GGUF weights dequantized by torchao in eager, decoded in registers by mlxc; eager rounds every "
        "op to bf16, mlxc once per kernel)")

# (name, family, command, options for zoo.add)
ENTRIES = [
    ("gemma4_gguf_mlx", "gemma4_gguf", export(), {"dtype": "bf16", "notes": NOTE}),
    ("gemma4_gguf_varied_mlx", "gemma4_gguf_varied", export(), {"dtype": "bf16", "notes": NOTE}),
]
