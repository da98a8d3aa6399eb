#!/usr/bin/env python3
"""A tiny random-weight Voxtral Realtime checkpoint in the layout ExecuTorch 1.5.1's
examples/models/voxtral_realtime/export_voxtral_rt.py loads: a Mistral consolidated folder (params.json +
consolidated.safetensors + tekken.json), written from the script's own VoxtralRealtimeModel (model.py) with its
checkpoint key map (_map_checkpoint_key) inverted, every weight seeded (matrices N(0, 1/fan_in), norms near 1, token
embeddings N(0, 0.01), the audio adapter's output ×8). tekken.json is the Voxtral family's Tekken v7 file (voxtral_checkpoint.tekken_json: 40 special
ids, <s> = 1, </s> = 2, then a 512-piece byte-level BPE): 552 ids = vocab_size.

Usage: tools/.venv/bin/python tools/zoo/voxtral_rt_checkpoint.py OUT_DIR [--seed N (1)]
then e.g. `python -m executorch.examples.models.voxtral_realtime.export_voxtral_rt --model-path OUT_DIR --backend mlx
[--streaming] --output-dir D` (the zoo family voxtral_rt: voxtral_rt_entries.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

PARAMS = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "hidden_dim": 128, "vocab_size": 552,
          "rope_theta": 1e6, "norm_eps": 1e-5, "ada_rms_norm_t_cond_dim": 32, "sliding_window": 64,
          "multimodal": {"whisper_model_args": {
              "encoder_args": {"dim": 32, "n_layers": 2, "n_heads": 2, "head_dim": 16, "hidden_dim": 64, "rope_theta": 1e6,
                               "norm_eps": 1e-5, "audio_encoding_args": {"num_mel_bins": 128}},
              "downsample_args": {"downsample_factor": 4}}}}


# The output layer is tied to the token embeddings: at N(0, 1) embeddings the previous token's own row dominates the
# residual stream and greedy decoding repeats <s> forever. Small embeddings and a louder audio adapter let the audio
# choose the tokens (seed 1: 44 streaming tokens on LibriVox 0880, 12 distinct ids, top-2 margins >= 0.03).
TOKEN_EMBEDDING_STD = 0.1
ADAPTER_OUT_GAIN = 8.0


def checkpoint_key(model_key: str, prefix: str) -> str | None:
    """The consolidated name model.py's _map_checkpoint_key maps to `model_key` (None: a runtime buffer)."""
    if ".kv_cache." in model_key or "freqs_" in model_key or "inv_freq" in model_key:
        return None
    if model_key.startswith("encoder.conv_layers."):
        return prefix + "whisper_encoder." + model_key[len("encoder."):]
    if model_key.startswith(("encoder.layers.", "encoder.norm.")):
        return prefix + "whisper_encoder.transformer." + model_key[len("encoder."):]
    if model_key == "adapter.w_in.weight":
        return prefix + "audio_language_projection.0.weight"
    if model_key == "adapter.w_out.weight":
        return prefix + "audio_language_projection.2.weight"
    if model_key == "decoder.tok_embeddings.weight":
        return prefix + "tok_embeddings.weight"
    if model_key.startswith("decoder.layers.") or model_key == "decoder.norm.weight":
        return model_key[len("decoder."):]
    return None


# Held out (zoo --held-out voxtral_rt): other widths, depths, heads and seed than the committed fixtures.
HELD_OUT = {"dim": 96, "n_layers": 3, "n_heads": 6, "n_kv_heads": 2, "head_dim": 16, "hidden_dim": 160,
            "encoder": {"dim": 64, "n_layers": 3, "n_heads": 4, "head_dim": 16, "hidden_dim": 128}}


def params(held_out: bool) -> dict:
    p = json.loads(json.dumps(PARAMS))
    if held_out:
        enc = p["multimodal"]["whisper_model_args"]["encoder_args"]
        enc.update(HELD_OUT["encoder"])
        p.update({k: v for k, v in HELD_OUT.items() if k != "encoder"})
    return p


def make(out: Path, seed: int, held_out: bool = False) -> None:
    from safetensors.torch import save_file
    from executorch.examples.models.voxtral_realtime import model as rt
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.json").write_text(json.dumps(params(held_out), indent=1) + "\n")
    model = rt.VoxtralRealtimeModel(rt.VoxtralRealtimeConfig.from_params_json(str(out / "params.json")))
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for k, p in model.state_dict().items():
        ck = checkpoint_key(k, rt._MM_PREFIX)
        if ck is None:
            continue
        assert rt._map_checkpoint_key(ck) == k, (k, ck)
        if p.ndim == 1 and "norm" in k:
            v = 1 + 0.1 * torch.randn(p.shape, generator=g)
        elif p.ndim == 1:
            v = 0.1 * torch.randn(p.shape, generator=g)
        elif "tok_embeddings" in k:
            v = TOKEN_EMBEDDING_STD * torch.randn(p.shape, generator=g)
        else:
            v = torch.randn(p.shape, generator=g) / math.sqrt(math.prod(p.shape[1:]))
            if k == "adapter.w_out.weight":
                v = v * ADAPTER_OUT_GAIN
        tensors[ck] = v.contiguous()
    save_file(tensors, str(out / "consolidated.safetensors"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from voxtral_checkpoint import tekken_json
    tk = tekken_json()
    assert tk["config"]["default_vocab_size"] == PARAMS["vocab_size"], tk["config"]["default_vocab_size"]
    (out / "tekken.json").write_text(json.dumps(tk, ensure_ascii=False))
    print(f"{len(tensors)} tensors -> {out}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--held-out", action="store_true")
    a = ap.parse_args()
    make(a.out, a.seed, a.held_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
