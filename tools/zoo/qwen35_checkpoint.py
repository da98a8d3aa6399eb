#!/usr/bin/env python3
"""Tiny random-weight Qwen 3.5 MoE checkpoints (GatedDeltaNet + full attention, routed experts), from
transformers' own `Qwen3_5MoeTextConfig` / `Qwen3_5MoeForCausalLM`, saved as a Hugging Face folder —
what ExecuTorch's `examples/models/qwen3_5_moe/export.py --model-dir DIR` reads (`config.json` with
`layer_types` and `rope_parameters`, `model.safetensors` with HF's key names, fused expert tensors).

Usage: tools/.venv/bin/python tools/zoo/qwen35_checkpoint.py FAMILY OUT_DIR [--seed N] [--held-out]

Families (zoo entries pick one):
  qwen35moe        4 layers (linear, full, linear, full), GQA 4/2, head_dim 32 with 25% rotary; GatedDeltaNet
                   key heads 2, value heads 4 (GQA 1:2), Dk = Dv = 32 (a multiple of 32: the Metal kernel path);
                   8 experts, top-2, shared expert
  qwen35moe_e16k8  the same with 16 experts, top-8
  qwen35moe_dk48   Dk = Dv = 48 (not a multiple of 32: the delegate's ScanNode path)
  qwen35           dense Qwen 3.5 (`Qwen3_5TextConfig`, what etLLM's qwen3_5_* model classes export): 4 layers
                   (linear, full, linear, full), GQA 4/2, head_dim 32 with 25% rotary, gated attention output;
                   GatedDeltaNet key heads 2, value heads 4, Dk = Dv = 32; SwiGLU width 128. Besides the HF folder,
                   meta/ holds what `export_llm base.checkpoint=… base.params=…` reads: the weights through
                   ExecuTorch's own examples/models/qwen3_5/convert_weights.py and a params JSON in the shape of
                   that example's config/0_8b_config.json

Weights as checkpoint.py initialises them, with two family-specific choices: Gemma-style (1 + w) norms
near 0 (the script's GemmaRMSNorm), and A_log = log(U(0.5, 2)) so the delta rule's decay
exp(-exp(A_log) · softplus(a + dt_bias)) keeps some memory instead of erasing the state every step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoint import CHATML_TEMPLATE, SPECIALS, train_tokenizer  # noqa: E402

FAMILIES = {
    "qwen35": dict(intermediate_size=128, linear_key_head_dim=32, linear_value_head_dim=32),
    # Not a zoo entry: dense Qwen 3.5 at the real models' head sizes (Dk = Dv = 128, 16 GatedDeltaNet value heads
    # as Qwen3.5-0.8B, 3 GatedDeltaNet layers per full one), for profiling etLLM's programs.
    "qwen35_profile": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                           num_key_value_heads=2, head_dim=64, linear_num_key_heads=16, linear_num_value_heads=16,
                           linear_key_head_dim=128, linear_value_head_dim=128, full_attention_interval=4),
    "qwen35moe": dict(num_experts=8, num_experts_per_tok=2, linear_key_head_dim=32, linear_value_head_dim=32),
    "qwen35moe_e16k8": dict(num_experts=16, num_experts_per_tok=8, linear_key_head_dim=32, linear_value_head_dim=32),
    "qwen35moe_dk48": dict(num_experts=8, num_experts_per_tok=2, linear_key_head_dim=48, linear_value_head_dim=48),
    # Not a zoo entry: the speed benchmark's model (tools/bench --qwen35), ~60M parameters, its sizes winning over
    # the zoo's: 8 layers (3 GatedDeltaNet per full attention), 16 experts top-4 of width 256 + a shared expert.
    "qwen35moe_bench": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                            head_dim=64, linear_num_key_heads=4, linear_num_value_heads=8, linear_key_head_dim=64,
                            linear_value_head_dim=64, moe_intermediate_size=256, shared_expert_intermediate_size=512,
                            full_attention_interval=4, num_experts=16, num_experts_per_tok=4),
}


def config(family: str, vocab: int, ids: dict, held_out: bool):
    import transformers as tf
    z = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
             linear_num_key_heads=2, linear_num_value_heads=4, moe_intermediate_size=32,
             shared_expert_intermediate_size=32, full_attention_interval=2)
    if held_out:  # other sizes: 3 linear layers before each full one, GDN 1:3 heads, 4:1 attention GQA
        z = dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                 linear_num_key_heads=1, linear_num_value_heads=3, moe_intermediate_size=64,
                 shared_expert_intermediate_size=32, full_attention_interval=4)
    if family.startswith("qwen35") and not family.startswith("qwen35moe"):  # dense: no expert sizes
        z = {k: v for k, v in z.items() if "expert" not in k and k != "moe_intermediate_size"}
        if held_out:
            z["intermediate_size"] = 160
        sizes = {**z, **FAMILIES[family]} if family == "qwen35_profile" else {**FAMILIES[family], **z}
        cfg = tf.Qwen3_5TextConfig(vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-6,
                                   linear_conv_kernel_dim=4, tie_word_embeddings=False, **sizes)
    else:
        cfg = tf.Qwen3_5MoeTextConfig(vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-6,
                                      linear_conv_kernel_dim=4, tie_word_embeddings=False,
                                      **{**z, **FAMILIES[family]})
    cfg.bos_token_id = ids["<|im_start|>"]
    cfg.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    cfg.pad_token_id = ids["<pad>"]
    return cfg


def initialise_(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.log(0.5 + 1.5 * torch.rand(p.shape, generator=g)))
            elif p.ndim == 1 and "norm" in name:
                # GemmaRMSNorm (layer, final, q/k norms) scales by (1 + w); the gated norm of the
                # GatedDeltaNet output by w.
                base = 1.0 if "linear_attn.norm" in name else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))


def write_etllm_checkpoint(cfg, out: Path) -> None:
    """meta/consolidated.pth through ExecuTorch's own converter (the key map a user's checkpoint takes) and
    meta/params.json with the fields of the example's config/0_8b_config.json, at this checkpoint's sizes."""
    from executorch.examples.models.qwen3_5.convert_weights import convert_weights
    (out / "meta").mkdir(exist_ok=True)
    convert_weights(str(out), str(out / "meta" / "consolidated.pth"))
    rope = cfg.rope_parameters
    params = {"dim": cfg.hidden_size, "hidden_dim": cfg.intermediate_size, "n_heads": cfg.num_attention_heads,
              "head_dim": cfg.head_dim, "n_kv_heads": cfg.num_key_value_heads, "n_layers": cfg.num_hidden_layers,
              "norm_eps": cfg.rms_norm_eps, "rope_theta": rope["rope_theta"], "use_scaled_rope": False,
              "vocab_size": cfg.vocab_size, "use_hf_rope": True,
              "partial_rotary_factor": rope["partial_rotary_factor"], "attention_qkv_bias": False,
              "use_qk_norm": True, "qk_norm_before_rope": True, "attention_type": "mha", "use_q_gate": True,
              "rms_norm_add_unit_offset": True, "linear_conv_kernel_dim": cfg.linear_conv_kernel_dim,
              "linear_key_head_dim": cfg.linear_key_head_dim, "linear_value_head_dim": cfg.linear_value_head_dim,
              "linear_num_key_heads": cfg.linear_num_key_heads,
              "linear_num_value_heads": cfg.linear_num_value_heads, "layer_types": list(cfg.layer_types)}
    (out / "meta" / "params.json").write_text(json.dumps(params, indent=1) + "\n")


def make(family: str, out: Path, seed: int, held_out: bool) -> None:
    import transformers as tf
    tok = train_tokenizer()
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    cfg = config(family, tok.get_vocab_size(), ids, held_out)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    initialise_(model, seed)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                      pad_token="<pad>", unk_token=None)
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)
    if family.startswith("qwen35") and not family.startswith("qwen35moe"):
        write_etllm_checkpoint(cfg, out)
    attention_layers = sum(1 for t in cfg.layer_types if t == "full_attention")
    (out / "zoo_checkpoint.json").write_text(json.dumps({"family": family, "seed": seed, "style": "chatml",
                                                         "held_out": held_out, "layers": attention_layers,
                                                         "layer_types": cfg.layer_types}) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true")
    a = ap.parse_args()
    make(a.family, a.out, a.seed, a.held_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
