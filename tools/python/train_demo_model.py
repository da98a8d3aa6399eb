#!/usr/bin/env python3
"""Train and export mlxc's bundled demo model (the model `mlxc run --jit` runs out of the box).

A small Llama-style decoder trained here, on CPU, on the fortune cookies of Debian's `fortunes` /
`fortunes-min` packages, with a Llama 3-shaped byte-level BPE tokenizer trained by the `tokenizers`
package. Exported twice with the fixture exporter's machinery (export_fixtures.py / models.py):

  demo_fp32.pte       plain ExecuTorch program, fp32, no delegate (KV cache written with index_put_)
  demo_mlx_4bit.pte   one MLX delegate, linears + embedding int4 (group 32, the MLX backend's quantize_model_)

Both: tokens int64 [1,T] (1 ≤ T ≤ 128), input_pos int64 [1] → logits f32 [1,T,vocab] for every position;
KV caches (max context 512) are mutable buffers carried from call to call. Metadata methods:
get_max_seq_len, get_max_context_len, get_vocab_size, get_n_layers, get_bos_id, get_eos_ids,
use_kv_cache, enable_dynamic_shape.

Usage: tools/train-demo-model [--minutes 12] [--steps N] [--export-only] [--out models/demo]
  --steps N       fixed number of optimizer steps (reproducible); default: as many as fit in --minutes
  --export-only   skip training: reuse tools/.work/demo/state_dict.pt (and its tokenizer)

Writes models/demo/{demo_fp32.pte, demo_mlx_4bit.pte, tokenizer.json, reference.json, README.md};
the trained weights stay in tools/.work/demo/ (not committed). reference.json is documented in
README.md (REFERENCE_DOC below).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_fixtures  # noqa: E402
import models  # noqa: E402
from export_fixtures import GROUP_SIZE, ModelSpec, lower, reset_state, run_executorch  # noqa: E402
from pte_reference import pte_reference  # noqa: E402
from train_test_tokenizers import LLAMA3_PATTERN  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message="Mutation on a buffer")
warnings.filterwarnings("ignore", message=".*register_constant.*")

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "tools" / ".work" / "demo"
OUT = REPO / "models" / "demo"
FORTUNES = Path("/usr/share/games/fortunes")
SKIP_FILES = {"ascii-art"}        # pictures, not prose
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
VOCAB = 2048
SEED = 20240601
SEQ = 256                          # training sequence length (packed)
BATCH = 16
PROMPTS = ["The meaning of life is", "Q: Why did the chicken cross the road?\nA:", "You will"]
NEW_TOKENS = 64
PLAIN_MAX_BYTES = 8_000_000


def demo_config() -> models.LMConfig:
    # dim 256 / hidden 704 (the first plan) gives a ~15 MB fp32 file. This is about the largest
    # Llama-shaped model whose plain fp32 program stays under 8 MB: the output projection is tied to
    # the embedding (stored once), and hidden 512 would give 8.03 MB. Widths are multiples of 32 (the
    # 4-bit group size).
    return models.LMConfig(dim=192, n_layers=4, n_heads=6, n_kv_heads=2, head_dim=32, hidden_dim=480,
                           vocab_size=VOCAB, max_context_len=512, max_seq_len=128, rope_base=10000.0,
                           rope_interleaved=True, norm_eps=1e-5, mlp="swiglu")


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------
# Data


def ensure_fortunes() -> None:
    if any(FORTUNES.glob("*")):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("[data] installing the fortunes packages (apt-get install -y fortunes fortunes-min)")
    if subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "fortunes", "fortunes-min"], env=env).returncode:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "fortunes", "fortunes-min"], env=env, check=True)


def apply_backspaces(s: str) -> str:
    """Old fortunes underline with overstrikes ("_\\bA", "___\\b\\b\\band"): keep what a terminal shows."""
    if "\b" not in s:
        return s
    out: List[str] = []
    for ch in s:
        if ch == "\b":
            if out and out[-1] != "\n":
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


def clean(text: str) -> Optional[str]:
    text = apply_backspaces(text)
    text = re.sub(r"[^\n\t\x20-\x7e]", "", text)                 # other control characters, stray bytes
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"^[ \t]+--[ \t]*", "    -- ", line)      # attribution lines: "\t\t-- Who"
        lines.append(line.expandtabs(8).rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    letters = sum(c.isalpha() for c in text)
    if len(text) < 12 or letters < 0.5 * len(text.replace(" ", "")):
        return None
    return text


def read_fortunes() -> List[str]:
    ensure_fortunes()
    files = sorted(p for p in FORTUNES.iterdir()
                   if p.is_file() and "." not in p.name and not p.is_symlink() and p.name not in SKIP_FILES)
    seen, texts = set(), []
    for f in files:
        raw = f.read_text(encoding="utf-8", errors="replace")
        for chunk in re.split(r"^%$", raw, flags=re.M):
            t = clean(chunk)
            if t and t not in seen:
                seen.add(t)
                texts.append(t)
    return texts


def split_data(texts: List[str], seed: int):
    idx = list(range(len(texts)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, len(texts) // 20)                           # 5 % held out
    val = [texts[i] for i in sorted(idx[:n_val])]
    train = [texts[i] for i in sorted(idx[n_val:])]
    return train, val


# --------------------------------------------------------------------------------------------------
# Tokenizer (Llama 3 shape: Split(regex) + ByteLevel, BPE with ignore_merges, BOS by TemplateProcessing)


def train_tokenizer(train_texts: List[str]):
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models

    tok = Tokenizer(tok_models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_texts, trainer)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                      special_tokens=[(BOS, tok.token_to_id(BOS))]),
    ])
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return tok


def encode_docs(tok, texts: List[str]) -> torch.Tensor:
    """Each fortune is one document: BOS + text + EOS; documents concatenated into one stream."""
    eos = tok.token_to_id(EOS)
    stream: List[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=True):
        stream.extend(enc.ids)
        stream.append(eos)
    return torch.tensor(stream, dtype=torch.long)


# --------------------------------------------------------------------------------------------------
# Model: models.DecoderLM (the fixtures' decoder), trained through a batched, cache-free forward


def tie_embeddings_(m: models.DecoderLM) -> None:
    m.output.weight = m.tok_embeddings.weight


def init_for_training_(m: models.DecoderLM, seed: int) -> None:
    """GPT-2-style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2·layers), norms 1."""
    g = torch.Generator().manual_seed(seed)
    resid_std = 0.02 / math.sqrt(2 * m.cfg.n_layers)
    with torch.no_grad():
        for name, p in sorted(m.named_parameters()):   # the tied output weight is listed once
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(("wo.weight", "w2.weight")):
                p.copy_(torch.randn(p.shape, generator=g) * resid_std)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def train_forward(m: models.DecoderLM, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, S] → logits [B, S, vocab]: the same function as DecoderLM.forward from position 0
    (checked by check_train_forward), without the KV cache, batched, causal."""
    cfg = m.cfg
    b, s = tokens.shape
    h = m.tok_embeddings(tokens)
    for layer in m.layers:
        a = layer.attention
        x = layer.attention_norm(h)
        q = a.wq(x).view(b, s, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = a.wk(x).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = a.wv(x).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        cos, sin = a.rope_cos[:s], a.rope_sin[:s]
        q = models.apply_rope_tables(q, cos, sin, cfg.rope_interleaved)
        k = models.apply_rope_tables(k, cos, sin, cfg.rope_interleaved)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=cfg.head_dim ** -0.5, enable_gqa=True)
        h = h + a.wo(o.transpose(1, 2).reshape(b, s, cfg.n_heads * cfg.head_dim))
        h = h + layer.feed_forward(layer.ffn_norm(h))
    return m.output(m.norm(h))


def check_train_forward(m: models.DecoderLM, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        reset_state(m)
        a = train_forward(m, tokens[None])
        b = torch.cat([m(tokens[None, :100], torch.tensor([0])),
                       m(tokens[None, 100:], torch.tensor([100]))], dim=1)
        reset_state(m)
    return (a - b).abs().max().item()


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())   # parameters() lists a tied weight once


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def eval_loss(m, stream: torch.Tensor, max_windows: Optional[int] = None, batch: int = 16) -> float:
    n = (len(stream) - 1) // SEQ
    if max_windows is not None:
        n = min(n, max_windows)
    total, count = 0.0, 0
    for i in range(0, n, batch):
        idx = torch.arange(i, min(n, i + batch))
        starts = idx[:, None] * SEQ + torch.arange(SEQ + 1)[None]
        w = stream[starts]
        logits = train_forward(m, w[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    return total / count


def train(m, train_stream, val_stream, minutes: float, steps: Optional[int], lr: float, seed: int) -> dict:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in m.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = 100
    budget = minutes * 60.0
    total = steps if steps is not None else 10 ** 9     # fixed after a few timed steps (time budget)
    eval_every = 200
    history, ema = [], None
    t0 = time.time()
    eval_time = 0.0
    step = 0
    m.train()
    while step < total:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, lr, warmup)
        starts = torch.randint(0, len(train_stream) - SEQ - 1, (BATCH,), generator=g)
        w = train_stream[starts[:, None] + torch.arange(SEQ + 1)[None]]
        logits = train_forward(m, w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        if steps is None and step == 30:
            per_step = (time.time() - t0 - eval_time) / step
            # Leave room for the periodic evaluations (~3 % each) and the final one.
            total = max(warmup + 50, int((budget - 20) / (per_step * 1.04)))
            log(f"[train] {per_step:.3f} s/step → {total} steps in {minutes:g} min")
        if step % eval_every == 0 or step == total:
            te = time.time()
            m.eval()
            vl = eval_loss(m, val_stream, max_windows=32)
            m.train()
            eval_time += time.time() - te
            history.append({"step": step, "train_loss_ema": round(ema, 4), "val_loss_subset": round(vl, 4),
                            "minutes": round((time.time() - t0) / 60, 2)})
            log(f"[train] step {step}/{total}  loss(ema) {ema:.3f}  val {vl:.3f}  "
                f"lr {opt.param_groups[0]['lr']:.2e}  {(time.time() - t0) / 60:.1f} min")
    m.eval()
    return {"steps": step, "warmup_steps": warmup, "seconds": round(time.time() - t0, 1), "history": history}


# --------------------------------------------------------------------------------------------------
# Generation (eager, with the module's own KV cache: exactly the exported function)


@torch.no_grad()
def generate(m, prompt_ids: List[int], n: int, top_k: int = 0, temperature: float = 1.0,
             gen: Optional[torch.Generator] = None):
    """Prefill the prompt in one call at input_pos 0, then one token per call. → (ids, min margin
    between the best and second-best logit at each greedy step)."""
    reset_state(m)
    logits = m(torch.tensor([prompt_ids]), torch.tensor([0]))[0, -1]
    out, margins, pos = [], [], len(prompt_ids)
    for _ in range(n):
        if top_k:
            v, i = torch.topk(logits / temperature, top_k)
            nxt = int(i[torch.multinomial(torch.softmax(v, -1), 1, generator=gen)])
        else:
            top2 = torch.topk(logits, 2).values
            margins.append((top2[0] - top2[1]).item())
            nxt = int(torch.argmax(logits))
        out.append(nxt)
        if len(out) == n:
            break
        logits = m(torch.tensor([[nxt]]), torch.tensor([pos]))[0, -1]
        pos += 1
    reset_state(m)
    return out, margins


def generate_executorch(pte: Path, prompt_ids: List[int], n: int) -> List[int]:
    import executorch.kernels.quantized  # noqa: F401
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    prog = _load_for_executorch(str(pte))
    logits = prog.forward([torch.tensor([prompt_ids]), torch.tensor([0])])[0][0, -1]
    out, pos = [], len(prompt_ids)
    while True:
        out.append(int(torch.argmax(logits)))
        if len(out) == n:
            return out
        logits = prog.forward([torch.tensor([[out[-1]]]), torch.tensor([pos])])[0][0, -1]
        pos += 1


# --------------------------------------------------------------------------------------------------
# Export


def build(cfg, state, impl: str, bits: Optional[int]):
    m = models.DecoderLM(cfg, impl)
    tie_embeddings_(m)
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("_cache") for k in missing), (missing, unexpected)
    if bits is not None:
        from executorch.extension.llm.export.quantize import quantize_model_

        q = {4: "4w", 8: "8w"}[bits]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Same helper and settings as the fixtures (export_fixtures.build_module): torchao
            # IntxWeightOnlyConfig, group 32, symmetric "hqq_scale_only". The embedding and the (tied)
            # output projection are quantized separately, with the same config → the same values.
            quantize_model_(m, qlinear_config=q, qlinear_group_size=GROUP_SIZE,
                            qembedding_config=q, qembedding_group_size=GROUP_SIZE)
    m.eval()
    m.requires_grad_(False)
    return m


def metadata(cfg, bos: int, eos: int) -> dict:
    spec = ModelSpec("demo", SEED, [], lambda: cfg, steps=[(1, 0)])
    methods = export_fixtures.constant_methods(spec, cfg)
    methods.update({"get_bos_id": bos, "get_eos_ids": [eos]})
    return methods


def export_pte(m, cfg, family: str, methods: dict, path: Path) -> float:
    t0 = time.time()
    spec = ModelSpec("demo", SEED, [], lambda: cfg, steps=[(1, 0)])
    example, dynamic, _ = export_fixtures.example_and_dynamic(spec, cfg)
    reset_state(m)
    with torch.no_grad():
        ep = torch.export.export(m, example, dynamic_shapes=dynamic)
    et = lower(ep, family, methods, external_constants=False)
    path.write_bytes(et.buffer)
    reset_state(m)
    return time.time() - t0


# --------------------------------------------------------------------------------------------------
# README


REFERENCE_DOC = """\
`reference.json` (greedy generations of the eager PyTorch modules the files were exported from):

```
{"format": 1, "tokenizer": "tokenizer.json", "bos_id": int, "eos_ids": [int],
 "max_seq_len": 128, "max_context_len": 512, "vocab_size": 2048, "new_tokens": 64,
 "decoding": str,                       # how the ids were produced (below)
 "variants": {"<file>.pte": {"module": str, "quant": null | {...}}, ...},
 "prompts": [{"text": str,
              "prompt_ids": [int],      # tokenizer.encode(text) — starts with BOS
              "results": {"<file>.pte": {"ids": [int] * 64,          # greedy continuation
                                         "text": str,                # decode(ids), specials kept
                                         "eos_index": int | null,    # first EOS in ids, if any
                                         "min_top2_margin": float,   # smallest logit gap top1 − top2
                                         "top2_margins": [float] * 64,  # that gap at each step
                                         "executorch_runtime_agrees": bool | null}}}]}
```

Decoding: the prompt is prefilled in ONE call (`tokens` = all prompt ids, `input_pos` = 0), then one
token per call (`input_pos` = prompt length + i); the next token is the argmax of the last position's
logits. EOS does not stop generation (always 64 tokens; `eos_index` tells where it first appears).
`executorch_runtime_agrees`: the same greedy loop run through ExecuTorch's own Python runtime on the
`.pte` (plain file only; null for MLX-delegated files, which that runtime cannot execute on Linux).
`min_top2_margin` / `top2_margins` say how robust a token-for-token comparison is: a step whose
margin is below the expected logit error of a runtime (≈1e-5 for fp32, more for a different 4-bit
matmul) can legitimately flip; a test can compare up to the first such step."""


def write_readme(out: Path, info: dict) -> None:
    cfg = info["config"]
    hist = "\n".join(f"| {h['step']} | {h['minutes']} | {h['train_loss_ema']} | {h['val_loss_subset']} |"
                     for h in info["training"]["history"])
    samples = "\n\n".join(f"**{s['kind']}** — prompt `{json.dumps(s['prompt'])[1:-1]}`:\n\n```\n{s['text']}\n```"
                          for s in info["samples"])
    sizes = "\n".join(f"| `{name}` | {size:,} |" for name, size in info["sizes"].items())
    text = f"""# Demo model (bundled with mlxc)

A tiny Llama-style language model that writes fortune-cookie-flavoured English, so `mlxc run --jit`
has something to run without downloading anything. It is a toy: {info['params']:,} parameters trained
for {info['training']['steps']} steps on 2 CPU cores. Expect grammatical-ish nonsense.

Made by `tools/train-demo-model --minutes {info['args']['minutes']:g}` (source:
`tools/python/train_demo_model.py`; reproduce these exact weights with
`tools/train-demo-model --steps {info['training']['steps']}` — fixed seeds, fp32, 2 threads).
The trained state dict stays in `tools/.work/demo/` (not committed); `--export-only` re-exports it.

## Files

| file | bytes |
|---|---|
{sizes}

- `demo_fp32.pte`: plain ExecuTorch program (fp32, no delegate; KV cache written with `index_put_`,
  RoPE from tables).
- `demo_mlx_4bit.pte`: one MLX delegate (KV cache written with `index_copy_`, `mlx::rope`); linears and
  the embedding int4, group 32 (ExecuTorch's `quantize_model_`: torchao `IntxWeightOnlyConfig`,
  symmetric `hqq_scale_only`).
- `tokenizer.json`: `tokenizers` {info['tokenizers_version']} byte-level BPE shaped like Llama 3's (Split with the
  Llama 3 regex + ByteLevel, `ignore_merges`, BOS added by TemplateProcessing), vocab {VOCAB}:
  `{BOS}` = {info['bos_id']}, `{EOS}` = {info['eos_id']}.
- `reference.json`: greedy continuations for the Swift tests (below).

Program contract (both files, same as the test fixtures): `forward(tokens int64 [1,T], input_pos int64 [1])`
→ logits f32 `[1,T,{VOCAB}]` for every position, 1 ≤ T ≤ {cfg['max_seq_len']} (prefill chunk), KV caches for
{cfg['max_context_len']} positions carried from call to call. Metadata methods: {', '.join(f'`{k}` = {json.dumps(v)}' for k, v in info['metadata'].items())}.

## Model

Llama-style decoder (`tools/python/models.py` `DecoderLM`): dim {cfg['dim']}, {cfg['n_layers']} layers,
{cfg['n_heads']} heads / {cfg['n_kv_heads']} KV heads (GQA), head_dim {cfg['head_dim']}, SwiGLU hidden
{cfg['hidden_dim']}, RMSNorm (eps {cfg['norm_eps']}), RoPE base {cfg['rope_base']:g} (interleaved pairs),
vocab {VOCAB}, output projection tied to the embedding. {info['params']:,} parameters. The first plan
(dim 256, hidden 704, 8 heads) had 3.9M untied parameters, a ~15 MB fp32 file; this is the largest
shape that keeps the plain fp32 program under 8 MB.

## Data

The fortune cookies of Debian's `fortunes` and `fortunes-min` packages (fortune-mod 1.99.1,
`/usr/share/games/fortunes`; `ascii-art` left out): each cookie (text between `%` lines) is one
document, `BOS text EOS`. Light cleaning: backspace overstrikes resolved, control characters dropped,
tabs expanded, attribution lines normalised to `    -- Name`, trailing spaces removed, duplicates
and mostly non-letter cookies dropped. {info['data']['docs_train']:,} cookies for training
({info['data']['tokens_train']:,} tokens), {info['data']['docs_val']:,} held out ({info['data']['tokens_val']:,} tokens).

License note: Debian ships the cookie files under fortune-mod's BSD licence (see
`/usr/share/doc/fortunes/copyright`, which also carries notes for individual files). The cookies
themselves are short quotations, jokes, definitions and verses collected from many sources and
authors over decades: some public domain, others quoted under whatever terms their authors hold.
Only the trained weights are committed here, not the text; like any language model, this one can
reproduce short, well-known quotations from its training data.

## Training

AdamW (β 0.9/0.95, weight decay 0.1 on matrices), peak lr {info['args']['lr']:g}, {info['training']['warmup_steps']} warmup steps,
cosine decay to 10 %, gradient clipping 1.0, batches of {BATCH} × {SEQ}-token windows cut at random
offsets from the packed training stream, fp32 on CPU with `torch.set_num_threads(2)`, seed {SEED}.
{info['training']['steps']} steps ({info['training']['steps'] * BATCH * SEQ / 1e6:.1f}M tokens, about
{info['training']['steps'] * BATCH * SEQ / info['data']['tokens_train']:.1f} passes over the training text), {info['training']['seconds'] / 60:.1f} min of wall time.
The time budget (`--minutes`) becomes a fixed step count from the speed of the first 30 steps (so
`--steps` reproduces a run); when other jobs share the cores later, the run takes longer than budgeted.

Final loss (nats/token): train {info['final']['train_loss']:.3f}, held-out {info['final']['val_loss']:.3f}
(perplexity {math.exp(info['final']['val_loss']):.1f}).

| step | minutes | train loss (EMA) | held-out loss (32 windows) |
|---|---|---|---|
{hist}

## Samples (eager PyTorch, fp32)

{samples}

## reference.json

{REFERENCE_DOC}
"""
    (out / "README.md").write_text(text)


def compact_json(value) -> str:
    """Indented JSON with each list of numbers on one line."""
    text = json.dumps(value, indent=1, ensure_ascii=False)
    return re.sub(r"\[\s*(-?[\d.]+(?:,\s*-?[\d.]+)*)\s*\]",
                  lambda mt: "[" + ", ".join(x.strip() for x in mt.group(1).split(",")) + "]", text)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=12.0, help="training time budget (default 12)")
    ap.add_argument("--steps", type=int, default=None, help="fixed number of steps instead of a time budget")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--export-only", action="store_true", help="reuse the saved weights and tokenizer")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--work", type=Path, default=WORK)
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    random.seed(SEED)
    logging.disable(logging.INFO)
    from tokenizers import Tokenizer
    import tokenizers

    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config()

    texts = read_fortunes()
    train_texts, val_texts = split_data(texts, SEED)
    log(f"[data] {len(texts)} cookies ({sum(map(len, texts)) / 1e6:.2f}M chars): "
        f"{len(train_texts)} train, {len(val_texts)} held out")

    tok_path = args.work / "tokenizer.json"
    state_path = args.work / "state_dict.pt"
    info_path = args.work / "training.json"
    if args.export_only:
        tok = Tokenizer.from_file(str(tok_path))
        saved = json.loads(info_path.read_text())
    else:
        tok = train_tokenizer(train_texts)
        tok.save(str(tok_path))
        saved = None
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    train_stream, val_stream = encode_docs(tok, train_texts), encode_docs(tok, val_texts)
    log(f"[data] tokens: {len(train_stream):,} train, {len(val_stream):,} held out "
        f"({sum(map(len, train_texts)) / len(train_stream):.2f} chars/token)")

    m = models.DecoderLM(cfg, "plain")
    tie_embeddings_(m)
    n_params = count_params(m)
    log(f"[model] {n_params:,} parameters (tied embedding), ~{n_params * 4 / 1e6:.1f} MB fp32")

    if args.export_only:
        m.load_state_dict(torch.load(state_path))
        m.eval()
        training = saved["training"]
        final = saved["final"]
    else:
        init_for_training_(m, SEED)
        training = train(m, train_stream, val_stream, args.minutes, args.steps, args.lr, SEED)
        training["minutes"] = training["seconds"] / 60
        final = {"train_loss": eval_loss(m, train_stream, max_windows=len(val_stream) // SEQ),
                 "val_loss": eval_loss(m, val_stream)}
        torch.save(m.state_dict(), state_path)
        info_path.write_text(json.dumps({"training": training, "final": final}, indent=1))
    log(f"[train] final loss: train {final['train_loss']:.4f}, held-out {final['val_loss']:.4f}")
    diff = check_train_forward(m, val_stream[:160])
    log(f"[check] batched training forward vs cached forward (100 + 60 tokens): max |Δlogit| {diff:.2e}")
    assert diff < 1e-3, diff

    state = {k: v for k, v in m.state_dict().items() if not k.endswith("_cache")}

    # Samples (README): greedy and top-k from the fp32 module.
    samples = []
    gen = torch.Generator().manual_seed(SEED)
    for p in PROMPTS + ["A programmer"]:
        ids = tok.encode(p).ids
        for kind, kw in (("greedy", {}), ("top-k 40, temperature 0.8", {"top_k": 40, "temperature": 0.8, "gen": gen})):
            out, _ = generate(m, ids, 80, **kw)
            if eos in out:
                out = out[:out.index(eos)]
            samples.append({"kind": kind, "prompt": p, "text": p + tok.decode(out)})
    for s in samples:
        log(f"[sample] {s['kind']}: {s['text']!r}")

    # Export + references.
    variants = {
        "demo_fp32.pte": {"impl": "plain", "family": "plain", "bits": None,
                          "module": "models.DecoderLM(impl='plain'), fp32"},
        "demo_mlx_4bit.pte": {"impl": "mlx", "family": "mlx", "bits": 4,
                              "module": "models.DecoderLM(impl='mlx') after quantize_model_('4w', group 32) "
                                        "(torchao IntxWeightOnlyConfig, eager dequantize + fp32 matmul)"},
    }
    methods = metadata(cfg, bos, eos)
    prompt_ids = [tok.encode(p).ids for p in PROMPTS]
    results = {p: {} for p in PROMPTS}
    sizes = {}
    for fname, v in variants.items():
        mod = build(cfg, state, v["impl"], v["bits"])
        path = args.out / fname
        secs = export_pte(mod, cfg, v["family"], methods, path)
        sizes[fname] = path.stat().st_size
        log(f"[export] {fname}: {sizes[fname]:,} bytes in {secs:.0f} s")
        for p, ids in zip(PROMPTS, prompt_ids):
            out, margins = generate(mod, ids, NEW_TOKENS)
            margin = min(margins)
            agrees = None
            if v["family"] == "plain":
                agrees = generate_executorch(path, ids, NEW_TOKENS) == out
            results[p][fname] = {"ids": out, "text": tok.decode(out, skip_special_tokens=False),
                                 "eos_index": out.index(eos) if eos in out else None,
                                 "min_top2_margin": round(margin, 5),
                                 "top2_margins": [round(x, 4) for x in margins],
                                 "executorch_runtime_agrees": agrees}
            log(f"[reference] {fname} {p!r} → {results[p][fname]['text']!r} (margin {margin:.4f}, et {agrees})")
        ref = pte_reference(str(path))
        got = {k: ref["methods"][k]["outputs"] for k in methods}
        log(f"[export] {fname} metadata: " + ", ".join(f"{k}={[o.get('value') for o in got[k]]}" for k in got))
    if sizes["demo_fp32.pte"] > PLAIN_MAX_BYTES:
        log(f"[warn] demo_fp32.pte is {sizes['demo_fp32.pte']:,} bytes (> {PLAIN_MAX_BYTES:,})")

    shutil.copyfile(tok_path, args.out / "tokenizer.json")
    reference = {
        "format": 1, "tokenizer": "tokenizer.json", "bos_id": bos, "eos_ids": [eos],
        "max_seq_len": cfg.max_seq_len, "max_context_len": cfg.max_context_len, "vocab_size": cfg.vocab_size,
        "new_tokens": NEW_TOKENS,
        "decoding": "greedy: prompt prefilled in one call at input_pos 0, then one token per call; "
                    "argmax of the last position's logits; EOS does not stop generation",
        "variants": {f: {"module": v["module"],
                         "quant": None if v["bits"] is None else
                         {"bits": v["bits"], "group_size": GROUP_SIZE,
                          "scheme": "torchao IntxWeightOnlyConfig hqq_scale_only (symmetric, zero points 0); "
                                    "MLX affine mode; linears and embedding"}}
                     for f, v in variants.items()},
        "prompts": [{"text": p, "prompt_ids": ids, "results": results[p]} for p, ids in zip(PROMPTS, prompt_ids)],
    }
    (args.out / "reference.json").write_text(compact_json(reference) + "\n")
    sizes["tokenizer.json"] = (args.out / "tokenizer.json").stat().st_size
    sizes["reference.json"] = (args.out / "reference.json").stat().st_size

    info = {"config": cfg.to_json(), "params": n_params, "training": training, "final": final,
            "samples": samples, "sizes": sizes, "metadata": methods, "bos_id": bos, "eos_id": eos,
            "tokenizers_version": tokenizers.__version__,
            "args": {"minutes": args.minutes, "lr": args.lr},
            "data": {"docs_train": len(train_texts), "docs_val": len(val_texts),
                     "tokens_train": len(train_stream), "tokens_val": len(val_stream)}}
    if args.export_only and saved.get("args"):
        info["args"] = saved["args"]
    elif not args.export_only:
        saved = json.loads(info_path.read_text())
        saved["args"] = info["args"]
        info_path.write_text(json.dumps(saved, indent=1))
    write_readme(args.out, info)
    log(f"[done] {args.out}: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
