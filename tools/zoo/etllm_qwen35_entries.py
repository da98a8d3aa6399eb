"""Zoo entries for dense Qwen 3.5 through etLLM (`python -m executorch.extension.llm.export.export_llm`), ExecuTorch's
CPU flavour of the model: the example's own config (examples/models/qwen3_5/config/qwen3_5_xnnpack_fp32.yaml) run
unchanged on the tiny checkpoint of qwen35_checkpoint.py (family qwen35: meta/ via the example's convert_weights.py,
params in the shape of its 0_8b_config.json), with only what a local tiny checkpoint must say on the command line:
model class, params, checkpoint, output, the tokenizer's bos/eos ids (the yaml's are the real vocabulary's) and a
context of 64 (the yaml's 2048 would make 2048-slot KV caches).

What the script writes (executorch 1.5.1): `forward(tokens i64[1, 1], input_pos i64[1])` → logits [1, V] (static
shapes, as the yaml asks: the example's README says dynamic shapes are not enabled for DeltaNet layers yet; with
model.enable_dynamic_shape=true it exports anyway, tokens [1, T ≤ max_seq_length − 1]). Each
GatedDeltaNet layer keeps conv_state [1, C, K] and recurrent_state [1, H, Dk, Dv] as mutable buffers, zeroed when
input_pos[0] == 0 (state *= 1 - (input_pos[0] == 0)), and calls `llama::gated_delta_rule(q, k, v, decay, beta,
state)` (heads first: [B, H, T, D], decay [B, H, T]); full-attention layers use `llama::custom_sdpa` and
`llama::update_cache`; the linears are XNNPACK delegates (fp32 or 8da4w) or plain (portable).
"""

from __future__ import annotations

# family → attention layers (one rope_attention each); the GatedDeltaNet layers have their own op.
LAYERS = {"qwen35": 2}

YAML = "{venv}/lib/python3.11/site-packages/executorch/examples/models/qwen3_5/config/qwen3_5_xnnpack_fp32.yaml"


def etllm_qwen35(*flags, ctx=64):
    return ["-m", "executorch.extension.llm.export.export_llm", "--config", YAML,
            "+base.model_class=qwen3_5_0_8b", "+base.params={ckpt}/meta/params.json",
            "+base.checkpoint={ckpt}/meta/consolidated.pth", "+export.output_name={out}/model.pte",
            "base.metadata='{{\"get_bos_id\":5,\"get_eos_ids\":[6,7]}}'",
            f"export.max_seq_length={ctx}", f"export.max_context_length={ctx}", *flags]


# As etllm_llama_xnnpack_8da4w: XNNPACK quantizes activations to int8 per token with the file's bf16 weight scales,
# which eager's torchao fake quantization does not: the file's semantics, ExecuTorch's runtime, are the reference.
DYNAMIC_QUANT_NOTE = "int8 dynamic activations and bf16 scales as XNNPACK computes them: reference = ExecuTorch's runtime"

# Against ExecuTorch's runtime, mlxc is within 2e-7 of max |logit| at 12 of 13 steps; at one step (11) an int8
# activation code lands on the other side of a rounding boundary (XNNPACK corrects zero points in f32 in its own
# packing order), 2.3e-3, greedy tokens equal: the fp32 bound (1e-4) cannot hold, 5e-3 does.
Q8_FLIP_NOTE = "; one step's int8 code flip at a rounding boundary measured 2.3e-3 of max|logit| (2e-7 elsewhere)"

# (name, family, command, options for zoo.add)
ENTRIES = [
    ("etllm_qwen35_xnnpack_fp32", "qwen35", etllm_qwen35(), {}),
    ("etllm_qwen35_portable_fp32", "qwen35", etllm_qwen35("backend.xnnpack.enabled=false"), {}),
    # Dynamic shapes, against the yaml's static ones (its README: "not enabled yet for DeltaNet"): executorch 1.5.1
    # exports it (tokens [1, T ≤ 63]), so the prompt runs in one call through the op's T > 1 path.
    ("etllm_qwen35_xnnpack_dynamic", "qwen35", etllm_qwen35("model.enable_dynamic_shape=true"), {}),
    ("etllm_qwen35_xnnpack_8da4w", "qwen35", etllm_qwen35("+quantization.qmode=8da4w", "+quantization.group_size=32"),
     {"reference": "executorch", "logits_tolerance": 5e-3, "notes": DYNAMIC_QUANT_NOTE + Q8_FLIP_NOTE}),
]
