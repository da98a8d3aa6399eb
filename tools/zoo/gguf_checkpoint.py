#!/usr/bin/env python3
"""Tiny GGUF checkpoints for the Gemma 4 GGUF entries (gguf_entries.py).

Usage: gguf_checkpoint.py FAMILY OUT_DIR [--held-out] [--seed S]

  gemma4_gguf         ExecuTorch's own tiny GGUF test checkpoint, unchanged: examples/models/gemma4_31b/tests/
                      test_pipeline.py's `build_gguf_checkpoint` with its `GGUF_CONFIG` (2 layers, hidden 256, vocab
                      256, sliding window 16) — linears Q4_K, ffn_down and token_embd Q6_K from test_gguf's block
                      makers (random codes, fixed mid-range sub-scales), norms F32.
  gemma4_gguf_varied  The same model and GGUF layout, with every block's sub-scales and mins drawn at random (6-bit
                      for Q4_K, int8 for Q6_K) and d/dmin varied, as real llama.cpp quantizations have them: Q6_K
                      sub-blocks then no longer merge into MLX's groups, and the MLX delegate emits its
                      gguf_q6k_* Metal kernels instead of MLX-native quantized matmuls.

Writes OUT_DIR/tiny.gguf and OUT_DIR/gemma4_config.json (the Gemma4_31BConfig fields, read by gguf_export.py) and
zoo_checkpoint.json ({"layers": attention layers}). --held-out: hidden 512, 3 layers (another shape; seed 7).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torchtune_absent  # noqa: E402

torchtune_absent.install()

import torch  # noqa: E402


def varied_blocks(seed: int):
    """Block makers with random sub-scales/mins and scales (the layouts of test_gguf's makers)."""
    from executorch.extension.llm.export.test import test_gguf as t

    make_q4k, make_q6k = t._make_q4k_raw, t._make_q6k_raw   # the originals (patched below)

    def fp16(values: torch.Tensor) -> torch.Tensor:
        return values.to(torch.float16).view(torch.uint8).reshape(-1, 2)

    def q4k(N, nb, seed_=0):
        blk = make_q4k(N, nb, seed_ + seed).reshape(N * nb, -1).clone()
        g = torch.Generator().manual_seed(seed * 1000 + seed_ + 1)
        blk[:, 0:2] = fp16(0.004 + 0.012 * torch.rand(N * nb, generator=g))
        blk[:, 2:4] = fp16(0.002 + 0.010 * torch.rand(N * nb, generator=g))
        blk[:, 4:16] = torch.randint(0, 256, (N * nb, 12), dtype=torch.uint8, generator=g)
        return blk.reshape(N, -1)

    def q6k(N, nb, seed_=0):
        blk = make_q6k(N, nb, seed_ + seed).reshape(N * nb, -1).clone()
        g = torch.Generator().manual_seed(seed * 1000 + seed_ + 2)
        blk[:, 192:208] = torch.randint(-40, 41, (N * nb, 16), dtype=torch.int8, generator=g).view(torch.uint8)
        blk[:, 208:210] = fp16(0.0005 + 0.001 * torch.rand(N * nb, generator=g))
        return blk.reshape(N, -1)

    return q4k, q6k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=["gemma4_gguf", "gemma4_gguf_varied"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from executorch.examples.models.gemma4_31b.tests import test_pipeline as tp
    from executorch.extension.llm.export.test import test_gguf

    torch.manual_seed(a.seed)
    config = tp.GGUF_CONFIG
    if a.held_out:
        config = dataclasses.replace(config, hidden_size=512, intermediate_size=512, num_hidden_layers=3)
    if a.family == "gemma4_gguf_varied":
        # build_gguf_checkpoint imports the makers by name from test_gguf: hand it the varied ones.
        test_gguf._make_q4k_raw, test_gguf._make_q6k_raw = varied_blocks(a.seed + 1)
    a.out.mkdir(parents=True, exist_ok=True)
    tp.build_gguf_checkpoint(str(a.out / "tiny.gguf"), config)
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    (a.out / "gemma4_config.json").write_text(json.dumps(fields, indent=1) + "\n")
    (a.out / "zoo_checkpoint.json").write_text(json.dumps({"layers": config.num_hidden_layers}) + "\n")


if __name__ == "__main__":
    main()
