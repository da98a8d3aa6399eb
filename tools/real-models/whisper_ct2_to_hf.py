#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + config.json + tokenizer.json) into a Hugging Face
WhisperForConditionalGeneration folder, and check it on real speech.

Usage: tools/.venv/bin/python tools/real-models/whisper_ct2_to_hf.py CT2_DIR OUT_DIR [--check AUDIO_DIR]

CTranslate2's model.bin (binary version 6): u32 version, string name, u32 revision, u32 count, then per variable:
string name, u8 rank, rank × u32 dims, u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 byte count, the
bytes; then u32 alias count and (alias, target) string pairs. Strings are u16 length (with the NUL) + bytes + NUL.

Layout facts (WhisperSpec): self-attention q/k/v are one fused linear_0 [3d, d] (its key bias is zero: Whisper's
k_proj has none), cross-attention is linear_0 = q, linear_1 = fused k/v [2d, d], linear_2 = out; LayerNorms are
gamma/beta; the projection is an alias of the token embedding (tied). Weights stay fp32 in the HF folder (from fp16).

`--check AUDIO_DIR` transcribes every `*.wav` listed in AUDIO_DIR/fileids with transformers' own generate (greedy,
English, transcribe, no timestamps) and compares the normalised text with AUDIO_DIR/transcription (pocketsphinx's
LibriVox set); writes OUT_DIR/eager_transcripts.json (tokens and text per clip) and exits 1 when the word error rate
passes 2% (Whisper base: 4/5 clips exact, the fifth without the reader's repeated "a" that the reference keeps).
"""

from __future__ import annotations

import argparse
import json
import mmap
import re
import struct
import sys
import wave
from pathlib import Path

import numpy as np
import torch

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path) -> dict:
    f = open(path, "rb")
    b = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def string(o):
        n, = struct.unpack_from("<H", b, o)
        return b[o + 2:o + 2 + n - 1].decode(), o + 2 + n

    version, = struct.unpack_from("<I", b, 0)
    if version != 6:
        raise SystemExit(f"{path}: CTranslate2 binary version {version}, this reader knows 6")
    spec, o = string(4)
    if spec != "WhisperSpec":
        raise SystemExit(f"{path}: a {spec}, not a WhisperSpec")
    o += 4  # revision
    count, = struct.unpack_from("<I", b, o)
    o += 4
    out = {}
    for _ in range(count):
        name, o = string(o)
        rank = b[o]
        dims = struct.unpack_from(f"<{rank}I", b, o + 1)
        o += 1 + 4 * rank
        dtype, nbytes = b[o], struct.unpack_from("<I", b, o + 1)[0]
        o += 5
        if dtype not in DTYPES:
            raise SystemExit(f"{path}: {name} has dtype id {dtype}, not one this reader knows")
        out[name] = np.frombuffer(b, dtype=DTYPES[dtype], count=nbytes // np.dtype(DTYPES[dtype]).itemsize,
                                  offset=o).reshape(dims).copy()
        o += nbytes
    aliases, = struct.unpack_from("<I", b, o)
    o += 4
    for _ in range(aliases):
        alias, o = string(o)
        target, o = string(o)
        out[alias] = out[target]
    if o != len(b):
        raise SystemExit(f"{path}: {len(b) - o} bytes after the last alias (truncated or not one file?)")
    return out


def scalar(ct, name) -> int:
    return int(ct[name].reshape(-1)[0])


def state_dict(ct: dict) -> dict:
    """HF names ← CTranslate2 names (fp32)."""
    sd = {}

    def put(hf, ct_name, rows=None):
        w = ct[ct_name].astype(np.float32)
        sd[hf] = torch.from_numpy(np.ascontiguousarray(w if rows is None else w[rows]))

    def layer_norm(hf, ct_name):
        put(hf + ".weight", ct_name + "/gamma")
        put(hf + ".bias", ct_name + "/beta")

    def linear(hf, ct_name, rows=None, bias=True):
        put(hf + ".weight", ct_name + "/weight", rows)
        if bias:
            put(hf + ".bias", ct_name + "/bias", rows)

    def split(ct_name, parts):
        n = ct[ct_name + "/weight"].shape[0] // parts
        return [slice(i * n, (i + 1) * n) for i in range(parts)]

    def fused_attention(hf, ct_name, parts, names):
        for rows, proj in zip(split(ct_name, parts), names):
            bias = proj != "k_proj"
            if not bias:
                kb = ct[ct_name + "/bias"][rows]
                if np.abs(kb.astype(np.float32)).max() != 0:
                    raise SystemExit(f"{ct_name}: the key bias is not zero; Whisper's k_proj has no bias")
            linear(f"{hf}.{proj}", ct_name, rows, bias)

    for side in ("encoder", "decoder"):
        i = 0
        while f"{side}/layer_{i}/ffn/linear_0/weight" in ct:
            hf, c = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused_attention(hf + ".self_attn", c + "/self_attention/linear_0", 3, ["q_proj", "k_proj", "v_proj"])
            linear(hf + ".self_attn.out_proj", c + "/self_attention/linear_1")
            layer_norm(hf + ".self_attn_layer_norm", c + "/self_attention/layer_norm")
            if side == "decoder":
                linear(hf + ".encoder_attn.q_proj", c + "/attention/linear_0")
                fused_attention(hf + ".encoder_attn", c + "/attention/linear_1", 2, ["k_proj", "v_proj"])
                linear(hf + ".encoder_attn.out_proj", c + "/attention/linear_2")
                layer_norm(hf + ".encoder_attn_layer_norm", c + "/attention/layer_norm")
            linear(hf + ".fc1", c + "/ffn/linear_0")
            linear(hf + ".fc2", c + "/ffn/linear_1")
            layer_norm(hf + ".final_layer_norm", c + "/ffn/layer_norm")
            i += 1
        layer_norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        put(f"model.{side}.embed_positions.weight", f"{side}/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        put(f"model.encoder.{conv}.weight", f"encoder/{conv}/weight")
        put(f"model.encoder.{conv}.bias", f"encoder/{conv}/bias")
    put("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    return sd


def convert(ct2_dir: Path, out: Path) -> None:
    import transformers as tf
    ct = read_ct2(ct2_dir / "model.bin")
    ct_cfg = json.loads((ct2_dir / "config.json").read_text())
    tok_json = json.loads((ct2_dir / "tokenizer.json").read_text())
    if scalar(ct, "decoder/activation") != 3 or scalar(ct, "decoder/pre_norm") != 1 or scalar(ct, "decoder/scale_embeddings"):
        raise SystemExit("unexpected Whisper spec flags (activation GELU, pre-norm, unscaled embeddings expected)")
    sd = state_dict(ct)
    enc_layers = sum(1 for k in sd if k.startswith("model.encoder.layers.") and k.endswith("fc1.weight"))
    dec_layers = sum(1 for k in sd if k.startswith("model.decoder.layers.") and k.endswith("fc1.weight"))
    vocab, d = ct["decoder/embeddings/weight"].shape
    mels = ct["encoder/conv1/weight"].shape[1]
    ffn = ct["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    added = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    eot, sot = added["<|endoftext|>"], added["<|startoftranscript|>"]
    cfg = tf.WhisperConfig(
        vocab_size=vocab, num_mel_bins=mels, d_model=d, encoder_layers=enc_layers, decoder_layers=dec_layers,
        encoder_attention_heads=scalar(ct, "encoder/num_heads"), decoder_attention_heads=scalar(ct, "decoder/num_heads"),
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_source_positions=ct["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct["decoder/position_encodings/encodings"].shape[0], activation_function="gelu",
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, tie_word_embeddings=True,
        scale_embedding=False, begin_suppress_tokens=ct_cfg["suppress_ids_begin"], suppress_tokens=ct_cfg["suppress_ids"])
    model = tf.WhisperForConditionalGeneration(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.eval()

    langs = {t: i for t, i in added.items() if i in set(ct_cfg["lang_ids"])}
    gen = tf.GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=cfg.max_target_positions,
        is_multilingual=len(langs) > 1, lang_to_id=langs,
        task_to_id={"translate": added["<|translate|>"], "transcribe": added["<|transcribe|>"]},
        no_timestamps_token_id=added["<|notimestamps|>"], prev_sot_token_id=added["<|startofprev|>"],
        suppress_tokens=ct_cfg["suppress_ids"], begin_suppress_tokens=ct_cfg["suppress_ids_begin"],
        max_initial_timestamp_index=50, return_timestamps=False, alignment_heads=ct_cfg["alignment_heads"])
    model.generation_config = gen
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)

    model_json = tok_json["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]
    tok = tf.WhisperTokenizer(vocab=model_json["vocab"], merges=merges)
    specials = [t for t, _ in sorted(added.items(), key=lambda kv: kv[1]) if t != "<|endoftext|>"]
    tok.add_special_tokens({"additional_special_tokens": specials})
    bad = [t for t, i in added.items() if tok.convert_tokens_to_ids(t) != i]
    if bad:
        raise SystemExit(f"special token ids differ from the package's tokenizer.json: {bad[:5]}")
    from tokenizers import Tokenizer
    package = Tokenizer.from_file(str(ct2_dir / "tokenizer.json"))
    sample = " And Mister John Dashwood had then leisure to consider, 1,234 times: café!"
    if package.encode(sample, add_special_tokens=False).ids != tok.encode(sample, add_special_tokens=False):
        raise SystemExit("the rebuilt tokenizer encodes differently from the package's tokenizer.json")
    fe = tf.WhisperFeatureExtractor(feature_size=mels)
    tf.WhisperProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    fe.save_pretrained(out)
    print(f"converted: {enc_layers}+{dec_layers} layers, d_model {d}, vocab {vocab}, {mels} mel bins → {out}")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != 16000:
            raise SystemExit(f"{path}: 16 kHz mono PCM16 expected")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def normalise(text: str) -> str:
    """Lower case, punctuation and hyphens to spaces, the honorific spelled out (Whisper writes "Mr.")."""
    words = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()
    return " ".join({"mr": "mister", "mrs": "missus"}.get(w, w) for w in words)


def word_errors(got: str, want: str) -> int:
    """Word-level edit distance (substitutions, insertions, deletions)."""
    a, b = got.split(), want.split()
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def check(out: Path, audio: Path) -> int:
    import transformers as tf
    proc = tf.AutoProcessor.from_pretrained(out)
    model = tf.WhisperForConditionalGeneration.from_pretrained(out).eval()
    want = {}
    for line in (audio / "transcription").read_text().splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*$", line)
        if m:
            want[m.group(2)] = normalise(m.group(1))
    results, bad, errors, words = {}, 0, 0, 0
    for clip in (audio / "fileids").read_text().split():
        feats = proc(read_wav(audio / f"{clip}.wav"), sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(feats, language="en", task="transcribe", return_timestamps=False)[0].tolist()
        text = proc.tokenizer.decode(ids, skip_special_tokens=True).strip()
        ok = normalise(text) == want[clip]
        e = word_errors(normalise(text), want[clip])
        bad, errors, words = bad + (not ok), errors + e, words + len(want[clip].split())
        results[clip] = {"tokens": ids, "text": text, "reference": want[clip], "match": ok, "word_errors": e}
        print(f"{'ok  ' if ok else 'DIFF'} {clip}: {text!r}" + ("" if ok else f"  (want {want[clip]!r}, {e} word errors)"))
    (out / "eager_transcripts.json").write_text(json.dumps(results, indent=1) + "\n")
    # The reference keeps the reader's disfluencies ("a more a amiable" in 0920), which Whisper does not write: a
    # converted model is held to a word error rate, and every clip but such a word is exact.
    wer = errors / max(words, 1)
    print(f"{len(results) - bad}/{len(results)} clips exact after normalisation; {errors} word errors in {words} words "
          f"(WER {100 * wer:.1f}%)")
    return 1 if wer > 0.02 else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ct2_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--check", type=Path, help="a folder of 16 kHz WAVs with fileids and transcription")
    a = ap.parse_args()
    convert(a.ct2_dir, a.out)
    return check(a.out, a.check) if a.check else 0


if __name__ == "__main__":
    sys.exit(main())
