#!/usr/bin/env python3
"""Tiny random-weight Whisper checkpoints (transformers' WhisperConfig / WhisperForConditionalGeneration).

Usage: tools/.venv/bin/python tools/zoo/checkpoint.py whisper|whisper_short OUT_DIR [--seed N] [--held-out]
(checkpoint.py hands Whisper families to make() here).

  whisper        the real 30 s window (3000 mel frames → 1500 encoder positions): what `mlxc transcribe` is
                 built against (tools/.work/zoo/out/whisper_*/ is a self-contained model folder)
  whisper_short  a 1 s window (100 frames → 50 positions), d_model 32: the same programs small enough to commit

The tokenizer is Whisper's layout at toy size: a byte-level BPE (the zoo's corpus, 512 ids) followed by
Whisper's 107 special tokens in Whisper's order (<|endoftext|>, <|startoftranscript|>, the 99 language
tokens, <|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>, <|nospeech|>, <|notimestamps|>),
then the 1501 timestamp ids <|0.00|>…<|30.00|> (in the model's vocabulary, not in tokenizer.json, as in
openai/whisper-base). generation_config.json carries Whisper's ids: lang_to_id, task_to_id,
no_timestamps_token_id, suppress_tokens (Whisper's non-speech symbols as this vocabulary spells them),
begin_suppress_tokens, so transformers' generate (and a decoding loop) runs on it as on the real model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

BPE_VOCAB = 512
TIMESTAMPS = 1501

# Whisper's non-speech symbols (openai/whisper tokenizer.non_speech_tokens): suppressed while decoding.
SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + \
    "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
MISC = set("♩♪♫♬♭♮♯")


def specials():
    from transformers.models.whisper.tokenization_whisper import LANGUAGES
    langs = [f"<|{code}|>" for code in LANGUAGES]
    return (["<|endoftext|>", "<|startoftranscript|>"] + langs +
            ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"])


def sizes(family: str, held_out: bool) -> dict:
    window_s = 30 if family == "whisper" else 1
    z = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=128, decoder_ffn_dim=128, max_target_positions=64)
    if held_out:
        z = dict(d_model=96, encoder_layers=3, decoder_layers=2, encoder_attention_heads=3, decoder_attention_heads=3,
                 encoder_ffn_dim=160, decoder_ffn_dim=160, max_target_positions=48)
    if family == "whisper_short" and not held_out:
        # The committed fixtures: half the width (2 heads of 16), so five entries stay small.
        z.update(d_model=32, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
    z["max_source_positions"] = window_s * 16000 // 160 // 2
    return dict(z, chunk_length=window_s)


def non_speech_tokens(tok) -> list:
    """Whisper's rule: a symbol (or ' '+symbol) that is one token, its first token for the musical ones,
    and the first tokens of ' -' and " '"."""
    out = {tok.encode(" -", add_special_tokens=False)[0], tok.encode(" '", add_special_tokens=False)[0]}
    for s in SYMBOLS + sorted(MISC):
        for ids in (tok.encode(s, add_special_tokens=False), tok.encode(" " + s, add_special_tokens=False)):
            if len(ids) == 1 or s in MISC:
                out.add(ids[0])
    return sorted(out)


def initialise_(model, seed: int) -> None:
    """Every weight from the seed: linears/convs ~ N(0, 1/fan_in), LayerNorm weights near 1, biases small,
    token and learned positional embeddings 0.1·N(0, 1); the encoder's sinusoidal positions stay as Whisper
    defines them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "encoder.embed_positions" in name:
                continue
            if p.ndim == 1 and "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


def make(family: str, out: Path, seed: int, held_out: bool = False) -> None:
    import transformers as tf
    from checkpoint import train_tokenizer_with  # the zoo's byte-level BPE trainer

    names = specials()
    bpe = train_tokenizer_with(BPE_VOCAB, special_tokens=[])
    model_json = json.loads(bpe.to_str())["model"]
    tok = tf.WhisperTokenizer(vocab=model_json["vocab"], merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                                                  for m in model_json["merges"]])
    tok.add_special_tokens({"additional_special_tokens": names[1:]})
    ids = {s: tok.convert_tokens_to_ids(s) for s in names}
    base = ids["<|endoftext|>"]
    assert [ids[s] for s in names] == list(range(base, base + len(names))), "special tokens must follow the BPE ids"
    vocab = base + len(names) + TIMESTAMPS

    z = sizes(family, held_out)
    window_s = z.pop("chunk_length")
    cfg = tf.WhisperConfig(vocab_size=vocab, num_mel_bins=80, **z, activation_function="gelu",
                           decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=base, eos_token_id=base,
                           pad_token_id=base, tie_word_embeddings=True, scale_embedding=False)
    torch.manual_seed(seed)
    model = tf.WhisperForConditionalGeneration(cfg)
    initialise_(model, seed)
    model.eval()

    gen = tf.GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=base, eos_token_id=base, pad_token_id=base,
        max_length=z["max_target_positions"], is_multilingual=True,
        lang_to_id={s: ids[s] for s in names[2:2 + 99]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=non_speech_tokens(tok), begin_suppress_tokens=[tok.encode(" ", add_special_tokens=False)[0], base],
        max_initial_timestamp_index=50, return_timestamps=False,
        alignment_heads=[[z["decoder_layers"] - 1, h] for h in range(z["decoder_attention_heads"])])
    model.generation_config = gen

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fe = tf.WhisperFeatureExtractor(feature_size=80, chunk_length=window_s)
    tf.WhisperProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    fe.save_pretrained(out)  # preprocessor_config.json too: what readers of a model folder look for
    (out / "zoo_checkpoint.json").write_text(json.dumps({
        "family": family, "seed": seed, "held_out": held_out, "layers": z["decoder_layers"],
        "encoder_layers": z["encoder_layers"], "window_seconds": window_s,
        "mel_frames": window_s * 100, "vocab": vocab}) + "\n")
