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
LAYERS = {"qwen35moe": 2, "qwen35moe_e16k8": 2}

SCRIPT = "executorch.examples.models.qwen3_5_moe.export"


def export(*flags, seq=64):
    return ["-m", SCRIPT, "--model-dir", "{ckpt}", "--backend", "mlx", "--output-dir", "{out}",
            "--max-seq-len", str(seq), *flags]


# The bf16 recurrence and routers: eager rounds every op of the gated delta rule and of the router to bf16, mlxc's
# fused kernels round once per kernel; a near-tie of the k-th and (k+1)-th expert scores (a few bf16 ulps) then
# picks another expert for one token. Measured (teacher-forced, max |error| / max |logit|): 8 experts bf16 4.1e-2,
# 16 experts bf16 4.3e-2; with --qlinear 4w (scales/biases of MLX's affine layout vs torchao's dequantization,
# the router quantized too) 1.3e-1 (16 experts) and 2.8e-1 at the two steps of the 8-expert program whose eager
# router gap is 3-5 ulps, where its greedy token differs.
BF16_NOTE = ("bf16 GatedDeltaNet and top-k router: eager rounds every op to bf16, mlxc once per kernel "
             "(measured 4.3e-2 of the logits' scale)")

# With --qlinear 4w the router is a bf16 matmul too, and its k-th and (k+1)-th scores are often within a few bf16 ulps
# of the scale of their dot products (router_ties.py; with 16 experts top-8, at most tokens). zoo check then holds
# the teacher-forced logits to the bound against eager with the program's choice at each such tie (a beam search
# over flips of tied tokens, eager re-run by capture.py --resolve-ties), never against a looser number.
Q4_NOTE = ("bf16 4-bit: as the bf16 entries, plus router ties (k-th and (k+1)-th expert scores a few bf16 ulps apart): "
           "logits checked against eager with the program's choice at each tie")

# qwen35moe_e16k8_mlx_4w's own bound, from the noise floor of eager itself. Eager dequantizes every 4-bit weight in
# bf16 (torchao's linear and the delegate's eager gather_qmm: code × scale rounded to 8 bits); the program's kernels
# (MLX's and mlxc's) use the exact f32 product. Eager with exact weights (exact_dequant.py: `capture.py --resolve-ties
# … --eager-variant exact-dequant --against-eager`) is as valid a computation of this module, and it differs from
# eager by up to 9.4e-2 of max |eager| (steps 10/11: 5.7e-2 / 9.4e-2, the others 1.3e-2 - 4.2e-2; its own router
# ties resolved, 6 flips among 82 ties) — on this entry eager's own weight rounding is worth more than 6e-2, and the
# program (7.5e-2 at step 11, 5.8e-2 at step 10) sits inside it. That rounding is where the program's error comes
# from: held to eager with exact weights (`--eager-variant exact-dequant`, 2 flips) the program is within 5.8e-2 at
# every step (steps 10/11: 1.5e-2 / 3.3e-2; the others 7e-3 - 5.8e-2). 1e-1 = the floor, rounded up; the mutations
# stay far outside it (`zoo mutate`: an expert's down projection swapped 2.4e-1, two router rows swapped 3.1e-1).
E16K8_4W_BOUND_NOTE = ("logits bound 1e-1: eager with exactly dequantized weights differs from eager by 9.4e-2 here "
                       "(eager rounds each dequantized 4-bit weight to bf16, the program does not)")

# (name, family, command, options for zoo.add)
ENTRIES = [
    ("qwen35moe_mlx_bf16", "qwen35moe", export(), {"dtype": "bf16", "logits_tolerance": 6e-2, "notes": BF16_NOTE}),
    ("qwen35moe_mlx_4w", "qwen35moe", export("--qlinear", "4w", "--qlinear-group-size", "32"),
     {"dtype": "bf16", "logits_tolerance": 6e-2, "notes": Q4_NOTE}),
    ("qwen35moe_e16k8_mlx_bf16", "qwen35moe_e16k8", export(),
     {"dtype": "bf16", "logits_tolerance": 6e-2, "notes": BF16_NOTE}),
    ("qwen35moe_e16k8_mlx_4w", "qwen35moe_e16k8", export("--qlinear", "4w", "--qlinear-group-size", "32"),
     {"dtype": "bf16", "logits_tolerance": 1e-1, "notes": Q4_NOTE + "; " + E16K8_4W_BOUND_NOTE}),
]
# Not an entry: Dk not a multiple of 32 (family qwen35moe_dk48). The script cannot export it: the delegate's
# GatedDeltaRuleHandler raises "MetalKernelNode requires Dk to be a multiple of 32" (export.py calls the op with
# use_custom_kernel's default, True); the ScanNode form exists only in the op's own tests (use_custom_kernel=False).
