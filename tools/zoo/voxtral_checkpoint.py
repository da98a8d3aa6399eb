#!/usr/bin/env python3
"""Tiny random-weight Voxtral checkpoints (transformers' VoxtralConfig / VoxtralEncoderConfig + a Llama text config,
VoxtralForConditionalGeneration), with a real Tekken tokenizer (tekken.json, what mistral_common and transformers'
MistralCommonBackend read) and Voxtral's processor (WhisperFeatureExtractor, 128 bins).

Usage: tools/.venv/bin/python tools/zoo/voxtral_checkpoint.py OUT_DIR [--seed N] [--held-out]
(checkpoint.py hands the voxtral family to make() here).

The audio encoder keeps Voxtral's window: 3000 mel frames (30 s) → 1500 positions → 375 audio tokens (the
projector reads 4 consecutive positions: intermediate_size = 4 · d_model, as in Voxtral-Mini), because
ExecuTorch's preprocessor program (export_processor, what export_voxtral_hf writes) always emits 3000-frame chunks.
Everything else is toy-sized (text hidden 64, 2 layers, GQA 4:2, head_dim 16).

The tokenizer: Tekken v7 layout — 40 special ids first (Mistral's order: <unk> <s> </s> [INST] [/INST] …, [AUDIO] = 24
(VoxtralProcessor's audio_token_id), [BEGIN_AUDIO] = 25, [TRANSCRIBE] = 34, the rest <SPECIAL_n> fillers), then a
byte-level BPE trained on the zoo's corpus (the 256 bytes, then the merges in order), audio at 16 kHz and 12.5
tokens/s (Voxtral's), padded to 30 s chunks.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
from pathlib import Path

import torch

NUM_SPECIAL = 40
BPE_VOCAB = 512
SPECIAL_NAMES = {0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]",
                 6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]", 10: "[IMG]",
                 11: "<pad>", 12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]", 16: "[SUFFIX]",
                 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]", 19: "[TOOL_CONTENT]", 24: "[AUDIO]",
                 25: "[BEGIN_AUDIO]", 32: "[ARGS]", 33: "[CALL_ID]", 34: "[TRANSCRIBE]"}
# tiktoken's pattern as Tekken files carry it.
PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
           r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
           r"\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's byte ↔ printable character map (what byte-level BPE token strings are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tekken_json() -> dict:
    from checkpoint import train_tokenizer_with  # the zoo's byte-level BPE trainer
    bpe = json.loads(train_tokenizer_with(BPE_VOCAB, special_tokens=[]).to_str())["model"]
    inv = {c: b for b, c in bytes_to_unicode().items()}
    as_bytes = lambda s: bytes(inv[c] for c in s)  # noqa: E731
    vocab = [bytes([i]) for i in range(256)]
    seen = set(vocab)
    for m in bpe["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ")
        tok = as_bytes(a) + as_bytes(b)
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    rows = [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode("utf-8", "replace")}
            for i, t in enumerate(vocab)]
    specials = [{"rank": i, "token_str": SPECIAL_NAMES.get(i, f"<SPECIAL_{i}>"), "is_control": True}
                for i in range(NUM_SPECIAL)]
    return {"config": {"pattern": PATTERN, "num_vocab_tokens": len(rows), "default_vocab_size": len(rows) + NUM_SPECIAL,
                       "default_num_special_tokens": NUM_SPECIAL, "version": "v7"},
            "vocab": rows, "special_tokens": specials,
            "audio": {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                      "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}}}


TEKKEN_SAMPLES = ["lang:en", "Hello, world!", "  two  spaces and\ttabs\n\nnew lines", "Ünïcödé: café, naïve, 東京, 😀",
                  "It's 3.14159 -- don't stop; x=42*y", "CamelCaseWords andALLCAPS123", "trailing space "]


def tekken_reference(ckpt: Path) -> dict:
    """mistral_common's Tekkenizer on a few strings (ids without BOS/EOS), for the Swift tokenizer's test."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    tok = Tekkenizer.from_file(str(ckpt / "tekken.json"))
    return {"cases": [{"text": t, "ids": tok.encode(t, bos=False, eos=False)} for t in TEKKEN_SAMPLES]}


def sizes(held_out: bool) -> tuple:
    enc = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
    # Widths multiples of 32: --qlinear 4w's groups of 32 refuse anything else.
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                head_dim=16)
    if held_out:
        enc = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
        text = dict(hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
                    num_key_value_heads=2, head_dim=16)
    return enc, text


def initialise_(model, seed: int) -> None:
    """Every weight from the seed: matrices ~ N(0, 1/fan_in), norm weights near 1, biases small, token
    embeddings N(0, 1); the encoder's sinusoidal positions stay as Voxtral defines them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                # Unit-scale token embeddings: with the decode step's input a strong signal, greedy tokens vary
                # (at 0.1 every step repeats one token).
                p.copy_(torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


def make(out: Path, seed: int, held_out: bool = False) -> None:
    import transformers as tf
    out.mkdir(parents=True, exist_ok=True)
    tk = tekken_json()
    (out / "tekken.json").write_text(json.dumps(tk, ensure_ascii=False))
    vocab = tk["config"]["default_vocab_size"]
    enc, text = sizes(held_out)
    audio_cfg = tf.VoxtralEncoderConfig(vocab_size=vocab, num_mel_bins=128, max_source_positions=1500, **enc)
    text_cfg = tf.LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=1e6,
                              bos_token_id=1, eos_token_id=2, pad_token_id=11, tie_word_embeddings=False, **text)
    cfg = tf.VoxtralConfig(audio_config=audio_cfg, text_config=text_cfg, audio_token_id=24, projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = tf.VoxtralForConditionalGeneration(cfg)
    initialise_(model, seed)
    model.eval()
    model.generation_config = tf.GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=11)
    model.save_pretrained(out)
    fe = tf.WhisperFeatureExtractor(feature_size=128, chunk_length=30)
    fe.save_pretrained(out)
    (out / "tekken_reference.json").write_text(json.dumps(tekken_reference(out), ensure_ascii=False, indent=1) + "\n")
    (out / "zoo_checkpoint.json").write_text(json.dumps({
        "family": "voxtral", "seed": seed, "held_out": held_out, "layers": text["num_hidden_layers"],
        "encoder_layers": enc["num_hidden_layers"], "mel_frames": 3000, "audio_tokens_per_chunk": 375,
        "vocab": vocab, "audio_token_id": 24}) + "\n")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true")
    a = ap.parse_args()
    make(a.out, a.seed, a.held_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
