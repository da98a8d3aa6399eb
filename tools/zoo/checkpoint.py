#!/usr/bin/env python3
"""Tiny random-weight Hugging Face checkpoints, built from transformers' own config classes.

Usage: tools/.venv/bin/python tools/zoo/checkpoint.py FAMILY OUT_DIR [--seed N]

Each family is the real architecture (the config class and model class a user's checkpoint has) at
toy sizes, so ExecuTorch's export scripts take exactly the code paths they take on the real model.
Every weight is initialised from the seed: linears ~ N(0, 1/fan_in), embeddings ~ N(0, 1), biases
small, norm weights near 1 (Gemma's (1 + w) norms near 0), so activations keep their scale through the
layers and logits are far from flat (greedy tokens are then decided by clear margins, not ties).

The tokenizer is a real byte-level BPE (tokenizers' trainer on the committed test corpus, 512 ids)
carrying every family's special tokens; tokenizer_config.json holds the family's chat template, its
bos/eos tokens, and config.json / generation_config.json point at the same ids.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "Tests" / "Fixtures" / "tokenizers" / "corpus.json"
VOCAB = 512

# Every family's special tokens, in one vocabulary (ids 0…N-1, in this order).
SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",  # Llama 3
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",                                                   # ChatML (Qwen, SmolLM2)
    "<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>",                                   # Gemma
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",                                            # Phi
]

# Chat templates in the shape each family ships (the Jinja subset real templates use).
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- system_message }}{{- \"<|eot_id|>\" }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)
PHI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# family → (bos, eos tokens (first is the tokenizer's eos), chat template)
TOKENS = {
    "llama": ("<|begin_of_text|>", ["<|eot_id|>", "<|end_of_text|>"], LLAMA3_TEMPLATE),
    "chatml": ("<|im_start|>", ["<|im_end|>", "<|endoftext|>"], CHATML_TEMPLATE),
    "gemma": ("<bos>", ["<end_of_turn>", "<eos>"], GEMMA_TEMPLATE),
    "phi": ("<|endoftext|>", ["<|end|>", "<|endoftext|>"], PHI_TEMPLATE),
}


def train_tokenizer():
    return train_tokenizer_with(VOCAB, SPECIALS)


def train_tokenizer_with(vocab: int, special_tokens: list):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    texts = json.loads(CORPUS.read_text())
    texts = [t if isinstance(t, str) else json.dumps(t) for t in texts]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def family_config(family: str, vocab: int, ids: dict, held_out: bool = False):
    """The config of one family at toy sizes: (config, token style). `held_out` picks other sizes
    (3:1 GQA, head_dim 32, one more layer, another window and rotary fraction): programs the committed
    fixtures never saw, to check that what mlxc learned is the family's and not one file's."""
    import transformers as tf
    common = dict(vocab_size=vocab, max_position_embeddings=256)
    z = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16)
    if held_out:
        z = dict(hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
                 num_key_value_heads=2, head_dim=32)
    if family == "llama":       # Llama 3.2: tied head, llama3 rope scaling, GQA
        cfg = tf.LlamaConfig(**z, rms_norm_eps=1e-5, tie_word_embeddings=not held_out,
                             rope_theta=500000.0,
                             rope_scaling={"rope_type": "llama3", "factor": 32.0 if held_out else 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 64},
                             **common)
        style = "llama"
    elif family == "smollm2":   # SmolLM2: Llama arch, tied, θ 1e5, 3:1 GQA
        sz = dict(z, hidden_size=48, num_attention_heads=3, num_key_value_heads=1) if not held_out else z
        cfg = tf.LlamaConfig(**sz, rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=100000.0, **common)
        style = "chatml"
    elif family == "qwen3":     # Qwen3: q/k RMSNorm per head, untied head
        cfg = tf.Qwen3Config(**z, rms_norm_eps=1e-6, tie_word_embeddings=held_out, rope_theta=1000000.0, **common)
        style = "chatml"
    elif family == "qwen2":     # Qwen2.5: q/k/v biases, tied (as the small Qwen2.5 models are); head_dim = hidden / heads
        sz = {k: v for k, v in z.items() if k != "head_dim"}
        cfg = tf.Qwen2Config(**sz, rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=1000000.0, **common)
        style = "chatml"
    elif family == "gemma3":    # Gemma 3 text: sliding + global layers, window < context, (1 + w) norms, soft caps off
        layers = z["num_hidden_layers"] + 1
        types = ["sliding_attention"] * (layers - 1) + ["full_attention"]
        if held_out:
            types = ["sliding_attention", "full_attention"] * (layers // 2)
        cfg = tf.Gemma3TextConfig(**dict(z, num_hidden_layers=len(types)), rms_norm_eps=1e-6,
                                  sliding_window=5 if held_out else 8, layer_types=types,
                                  query_pre_attn_scalar=z["head_dim"], tie_word_embeddings=True, **common)
        style = "gemma"
    elif family == "phi3":      # Phi-4-mini (Phi3): fused qkv and gate_up, partial rotary, no rope scaling
        sz = {k: v for k, v in z.items() if k != "head_dim"}
        cfg = tf.Phi3Config(**sz, partial_rotary_factor=0.5 if held_out else 0.75, rms_norm_eps=1e-5,
                            tie_word_embeddings=True, rope_theta=10000.0, pad_token_id=ids["<pad>"], **common)
        style = "phi"
    elif family == "phi4":      # Phi-4-mini as shipped: Phi3 with longrope scaling (short/long factors per rotary pair)
        sz = {k: v for k, v in z.items() if k != "head_dim"}
        rotary = 0.5 if held_out else 0.75
        pairs = int(sz["hidden_size"] // sz["num_attention_heads"] * rotary) // 2
        g = torch.Generator().manual_seed(11)
        cfg = tf.Phi3Config(**sz, partial_rotary_factor=rotary, rms_norm_eps=1e-5, tie_word_embeddings=True,
                            rope_theta=10000.0, pad_token_id=ids["<pad>"],
                            rope_scaling={"rope_type": "longrope", "original_max_position_embeddings": 64,
                                          "short_factor": (1 + torch.rand(pairs, generator=g)).tolist(),
                                          "long_factor": (1 + 4 * torch.rand(pairs, generator=g)).tolist()},
                            **common)
        style = "phi"
    else:
        raise SystemExit(f"unknown family {family!r}")
    bos, eos, _ = TOKENS[style]
    cfg.bos_token_id = ids[bos]
    cfg.eos_token_id = [ids[t] for t in eos]
    if getattr(cfg, "pad_token_id", None) is None:
        cfg.pad_token_id = ids["<pad>"]
    return cfg, style


def initialise_(model, family: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                # Gemma's RMSNorm scales by (1 + w): near 0 there, near 1 everywhere else.
                base = 0.0 if family == "gemma3" else 1.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                # Small next to the blocks' outputs: with a tied head, a dominant embedding would
                # make every greedy step repeat the current token.
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
        for name, b in model.named_buffers():
            if not torch.isfinite(b).all():
                raise SystemExit(f"buffer {name} is not finite after init")


def write_meta_checkpoint(model, cfg, out: Path) -> None:
    """The same weights in Meta's layout for etLLM (`export_llm base.checkpoint=… base.params=…`):
    Meta's names, and q/k rows in the interleaved-pair order Meta's RoPE rotates (HF's conversion
    permuted them into rotate-half order; this undoes it)."""
    sd = model.state_dict()
    heads, kv_heads, dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size
    head_dim = cfg.head_dim

    def unpermute(w, n):
        rows = w.shape[0]
        return w.view(n, 2, head_dim // 2, w.shape[1]).transpose(1, 2).reshape(rows, w.shape[1])

    meta = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
            "output.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"])}
    for i in range(cfg.num_hidden_layers):
        h = f"model.layers.{i}."
        meta[f"layers.{i}.attention.wq.weight"] = unpermute(sd[h + "self_attn.q_proj.weight"], heads)
        meta[f"layers.{i}.attention.wk.weight"] = unpermute(sd[h + "self_attn.k_proj.weight"], kv_heads)
        meta[f"layers.{i}.attention.wv.weight"] = sd[h + "self_attn.v_proj.weight"]
        meta[f"layers.{i}.attention.wo.weight"] = sd[h + "self_attn.o_proj.weight"]
        meta[f"layers.{i}.attention_norm.weight"] = sd[h + "input_layernorm.weight"]
        meta[f"layers.{i}.ffn_norm.weight"] = sd[h + "post_attention_layernorm.weight"]
        meta[f"layers.{i}.feed_forward.w1.weight"] = sd[h + "mlp.gate_proj.weight"]
        meta[f"layers.{i}.feed_forward.w2.weight"] = sd[h + "mlp.down_proj.weight"]
        meta[f"layers.{i}.feed_forward.w3.weight"] = sd[h + "mlp.up_proj.weight"]
    (out / "meta").mkdir(exist_ok=True)
    torch.save({k: v.clone().contiguous() for k, v in meta.items()}, out / "meta" / "consolidated.pth")
    params = {"dim": dim, "n_layers": cfg.num_hidden_layers, "n_heads": heads, "n_kv_heads": kv_heads,
              "vocab_size": cfg.vocab_size, "hidden_dim": cfg.intermediate_size, "norm_eps": cfg.rms_norm_eps,
              "rope_theta": cfg.rope_parameters["rope_theta"], "use_scaled_rope": True, "head_dim": head_dim}
    (out / "meta" / "params.json").write_text(json.dumps(params) + "\n")


def make(family: str, out: Path, seed: int, held_out: bool = False) -> None:
    import transformers as tf
    if family.startswith("whisper"):  # encoder-decoder speech models: their own module
        import whisper_checkpoint
        return whisper_checkpoint.make(family, out, seed, held_out)
    tok = train_tokenizer()
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    cfg, style = family_config(family, tok.get_vocab_size(), ids, held_out)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    initialise_(model, family, seed)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    bos, eos, template = TOKENS[style]
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos[0], pad_token="<pad>",
                                      unk_token=None)
    fast.chat_template = template
    fast.save_pretrained(out)
    if family == "llama":
        write_meta_checkpoint(model, cfg, out)
    (out / "zoo_checkpoint.json").write_text(json.dumps({"family": family, "seed": seed, "style": style,
                                                     "held_out": held_out, "layers": cfg.num_hidden_layers}) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("family")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true", help="other sizes than the committed fixtures'")
    a = ap.parse_args()
    make(a.family, a.out, a.seed, a.held_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
