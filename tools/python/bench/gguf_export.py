"""GGUF files for llama.cpp from the benchmark models' state dict (export_bench_models.py --state-dict), and a
check that llama.cpp computes the same logits as the PyTorch module.

    tools/.venv/bin/python tools/python/bench/gguf_export.py --size small [--precision fp32 ...] [--check]

Precisions → GGUF types: fp32 → F32, bf16 → F16, 8bit → Q8_0, 4bit → Q4_0 (blocks of 32, like the other
peers' group 32). Every matrix, the token embedding and the output projection included, gets that type (as
the MLX 4/8-bit variants quantize linears and embeddings); norm weights stay F32. Written with the `gguf`
package (gguf.quants does the Q8_0/Q4_0 rounding, bit-exact with ggml's reference quantizer).

Conventions (llama.cpp's LLM_ARCH_LLAMA, rope type NORM):
  * NORM rope rotates adjacent pairs (x[2i], x[2i+1]) — the layout of models.py with rope_interleaved=True
    (the Meta/ExecuTorch llama layout), so Q/K weights are written unchanged. convert_hf_to_gguf.py
    permutes Q/K only because HF checkpoints use the split-half (NEOX) layout; permute_qk() below does the
    same for a rope_interleaved=False config.
  * names: token_embd, blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,
    ffn_down}, output_norm, output; numpy arrays in PyTorch's [out, in] order (gguf reverses the dims).
  * tokenizer: a dummy SentencePiece-style vocab of the model's size (<unk>, <s>, </s>, 256 byte tokens
    <0xNN>, then t<i>); benchmarks feed token ids, never text.
--check: 12 prompt tokens in one batch through llama.cpp (logits_all) against PyTorch eager (fp32, and the
module at the same precision), reports max |Δ| relative to max |logit| and argmax agreement per row;
writes tools/.work/bench/<size>_gguf_check.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parents[1] / ".work" / "bench"

GGUF_TYPES = {"fp32": "F32", "bf16": "F16", "8bit": "Q8_0", "4bit": "Q4_0"}


def gguf_path(size: str, precision: str) -> Path:
    return OUT / f"{size}_{GGUF_TYPES[precision]}.gguf"


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """split-half (NEOX) rows of each head → adjacent pairs (convert_hf_to_gguf.py's LlamaModel.permute)."""
    return (w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def convert(size: str, precision: str) -> Path:
    import gguf
    import torch

    cfg = json.loads((OUT / f"{size}_config.json").read_text())
    sd = {k: v.float().numpy() for k, v in torch.load(OUT / f"{size}_state_dict.pt", map_location="cpu").items()}
    qtype = getattr(gguf.GGMLQuantizationType, GGUF_TYPES[precision])
    path = gguf_path(size, precision)
    tmp = path.with_suffix(".gguf.tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"mlxc-bench-{size}")
    w.add_context_length(cfg["max_context_len"])
    w.add_embedding_length(cfg["dim"])
    w.add_block_count(cfg["n_layers"])
    w.add_feed_forward_length(cfg["hidden_dim"])
    w.add_head_count(cfg["n_heads"])
    w.add_head_count_kv(cfg["n_kv_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_base"])
    w.add_layer_norm_rms_eps(cfg["norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                     "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[GGUF_TYPES[precision]])
    # dummy vocab
    n = cfg["vocab_size"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(len(tokens), n)]
    types = ([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
             + [gguf.TokenType.NORMAL] * (n - 259))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens[:n])
    w.add_token_scores([0.0] * n)
    w.add_token_types(types[:n])
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)

    def put(name: str, arr: np.ndarray):
        if arr.ndim == 1:
            w.add_tensor(name, arr.astype(np.float32))
        elif qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(name, gguf.quants.quantize(arr, qtype))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)

    perm = not cfg["rope_interleaved"]
    put("token_embd.weight", sd["tok_embeddings.weight"])
    for i in range(cfg["n_layers"]):
        p = f"layers.{i}."
        wq, wk = sd[p + "attention.wq.weight"], sd[p + "attention.wk.weight"]
        if perm:
            wq, wk = permute_qk(wq, cfg["n_heads"]), permute_qk(wk, cfg["n_kv_heads"])
        put(f"blk.{i}.attn_norm.weight", sd[p + "attention_norm.weight"])
        put(f"blk.{i}.attn_q.weight", wq)
        put(f"blk.{i}.attn_k.weight", wk)
        put(f"blk.{i}.attn_v.weight", sd[p + "attention.wv.weight"])
        put(f"blk.{i}.attn_output.weight", sd[p + "attention.wo.weight"])
        put(f"blk.{i}.ffn_norm.weight", sd[p + "ffn_norm.weight"])
        put(f"blk.{i}.ffn_gate.weight", sd[p + "feed_forward.w1.weight"])
        put(f"blk.{i}.ffn_up.weight", sd[p + "feed_forward.w3.weight"])
        put(f"blk.{i}.ffn_down.weight", sd[p + "feed_forward.w2.weight"])
    put("output_norm.weight", sd["norm.weight"])
    put("output.weight", sd["output.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def check(size: str, precisions, n_tokens: int = 12) -> dict:
    """llama.cpp logits vs PyTorch eager for a short prompt (one batch)."""
    import torch
    import llama_cpp
    from llama_cpp import Llama

    import export_bench_models as ebm
    import models

    cfg = ebm.config(size)
    sd = torch.load(OUT / f"{size}_state_dict.pt", map_location="cpu")
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, cfg.vocab_size, (1, n_tokens), generator=g)

    def eager_logits(precision):
        m = models.DecoderLM(cfg, "plain")
        m.load_state_dict(sd, strict=False)
        m.eval()
        if precision == "bf16":
            m = m.to(torch.bfloat16)
        elif precision in ("8bit", "4bit"):
            ebm.quantize_(m, "8w" if precision == "8bit" else "4w", embeddings=True)
        with torch.inference_mode():
            return m(prompt, torch.tensor([0]))[0].float().numpy()

    def compare(a, ref):
        scale = float(np.abs(ref).max())
        return {"max_abs": float(np.abs(a - ref).max()), "max_rel_to_max_logit": float(np.abs(a - ref).max() / scale),
                "argmax_agree": int((a.argmax(-1) == ref.argmax(-1)).sum()), "rows": int(ref.shape[0])}

    ref = eager_logits("fp32")
    out = {"tokens": n_tokens, "llama_cpp_python": llama_cpp.__version__, "by_precision": {}}
    for precision in precisions:
        llm = Llama(model_path=str(gguf_path(size, precision)), n_ctx=64, n_batch=n_tokens, n_ubatch=n_tokens,
                    n_threads=2, logits_all=True, verbose=False)
        llm.eval(prompt[0].tolist())
        lc = np.array(llm.scores[:n_tokens], dtype=np.float32)
        del llm
        same = ref if precision == "fp32" else eager_logits(precision)
        out["by_precision"][precision] = {
            "gguf_type": GGUF_TYPES[precision],
            "llamacpp_vs_eager_fp32": compare(lc, ref),
            "eager_same_precision_vs_eager_fp32": compare(same, ref) if precision != "fp32" else None,
            "llamacpp_vs_eager_same_precision": compare(lc, same) if precision != "fp32" else None,
        }
    (OUT / f"{size}_gguf_check.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", action="append", default=[])
    ap.add_argument("--precision", action="append", choices=sorted(GGUF_TYPES), default=[])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    precisions = args.precision or list(GGUF_TYPES)
    for size in args.size or ["small"]:
        for precision in precisions:
            path = gguf_path(size, precision)
            if args.force or not path.exists():
                convert(size, precision)
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
        if args.check:
            print(json.dumps(check(size, precisions), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
