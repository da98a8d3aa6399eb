#!/usr/bin/env python3
"""Zoo entries for Voxtral Realtime: ExecuTorch 1.5.1's own scripts run unchanged on a tiny random-weight
consolidated checkpoint (voxtral_rt_checkpoint.py) —
  model.pte:        python -m executorch.examples.models.voxtral_realtime.export_voxtral_rt --model-path <ckpt> …
                    (offline: audio_encoder, token_embedding, text_decoder; --streaming: encode_audio_chunk instead)
  preprocessor.pte: python -m executorch.extension.audio.mel_spectrogram --feature_size 128 [--streaming] …
                    (the runner README's commands)
— with eager references chained as ExecuTorch's runner runs them (voxtral_rt_capture.py) on LibriVox clip 0880.

Usage (through tools/zoo/zoo):
  zoo voxtral_rt list | build [NAME|PREFIX …] | check [NAME|PREFIX …] | commit NAME …

check: mlxc compiles every method (fallback_ops 0; the decoder's attention fused), runs each method's recorded calls
in order with its state carried (conv states, encoder ring, decoder cache) and compares every output with eager
(fp32: 1e-4 × max |eager|), and the argmax after each decoder call with eager's greedy token.

The MLX streaming decoder (MLXRingKVCache + MLXSDPA) attends causally over the ring buffer's first
start_pos + 1 slots and ignores the sliding-window mask the decoder builds: eager PyTorch itself refuses a position
≥ 2·sliding_window − 1 (custom_sdpa's stop_pos check). So the MLX entries keep params.json's window (64: 127 steps,
10 s of audio) and only the encoder ring wraps (--max-enc-len 32: 4 positions per step, 63 slots); the portable and
XNNPACK streaming exports (RingKVCache + custom_sdpa with the mask) use --sliding-window 16 so both rings wrap.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from family_cli import compile_and_run, run_family
from whisper_entries import VENV, compare, run

HERE = Path(__file__).resolve().parent
SCRIPT = "executorch.examples.models.voxtral_realtime.export_voxtral_rt"
MEL = "executorch.extension.audio.mel_spectrogram"
CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
TOLERANCE = {"fp32": 1e-4, "4w": 1e-4}
SEED = 1


@dataclass
class Entry:
    name: str
    command: list
    preprocessor: list
    streaming: bool
    dtype: str = "fp32"
    notes: str = ""
    methods: list = field(default_factory=list)

    def __post_init__(self):
        first = "encode_audio_chunk" if self.streaming else "audio_encoder"
        self.methods = [first, "token_embedding", "text_decoder"]


def export(*flags):
    return ["-m", SCRIPT, "--model-path", "{ckpt}", "--output-dir", "{out}", *flags]


def mel(*flags):
    return ["-m", MEL, "--feature_size", "128", *flags, "--output_file", "{out}/preprocessor.pte"]


STREAM_MLX = ["--backend", "mlx", "--streaming", "--max-seq-len", "64", "--max-enc-len", "32"]
# --max-seq-len (the decoder's traced seq bound) 8, not 16: the importer types a dynamic-bound tensor's dims equal to an
# input's bound as dynamic, and 16 would also be head_dim (q/k/v typed [1, ?T, H, ?16]: attention left unfused).
STREAM_CPU = ["--streaming", "--sliding-window", "16", "--max-seq-len", "8", "--max-enc-len", "32"]
ENTRIES = [
    Entry("voxtral_rt_mlx_stream_fp32", export(*STREAM_MLX), mel("--streaming", "--backend", "mlx"), True),
    Entry("voxtral_rt_mlx_stream_4w", export(*STREAM_MLX, "--qlinear", "4w", "--qlinear-encoder", "4w"),
          mel("--streaming", "--backend", "mlx"), True, dtype="4w",
          notes="--qlinear 4w --qlinear-encoder 4w: every linear of the decoder and the encoder 4-bit (groups of 32)"),
    Entry("voxtral_rt_portable_stream_fp32", export("--backend", "portable", *STREAM_CPU), mel("--streaming"), True),
    Entry("voxtral_rt_xnnpack_stream_fp32", export("--backend", "xnnpack", *STREAM_CPU), mel("--streaming"), True),
    Entry("voxtral_rt_mlx_fp32", export("--backend", "mlx", "--max-seq-len", "512"),
          mel("--max_audio_len", "300", "--backend", "mlx"), False),
]


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no voxtral_rt zoo entry matches {patterns}")
    return out


def checkpoint(work: Path, held_out: bool) -> Path:
    ckpt = work / "ckpt" / ("voxtral_rt_held_out" if held_out else "voxtral_rt")
    if not (ckpt / "consolidated.safetensors").exists():
        extra = ["--held-out", "--seed", "7"] if held_out else ["--seed", str(SEED)]
        run([VENV / "bin" / "python", HERE / "voxtral_rt_checkpoint.py", ckpt, *extra], work / "ckpt" / "voxtral_rt.log")
    return ckpt


def command_text(e: Entry) -> str:
    f = lambda c: c.format(ckpt="<ckpt>", out="<out>")  # noqa: E731
    return " ".join(map(f, e.command)) + " && python " + " ".join(map(f, e.preprocessor))


def build(e: Entry, work: Path, held_out: bool) -> bool:
    out = work / "out" / e.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ckpt = checkpoint(work, held_out)
    t = time.time()
    shutil.copy(CLIP, out / "audio.wav")
    cmd = [c.format(ckpt=ckpt, out=out) for c in e.command]
    ok = run([VENV / "bin" / "python", HERE / "voxtral_rt_capture.py", "--out", out, "--audio", out / "audio.wav",
              "--", *cmd], out / "export.log")
    ok = ok and run([VENV / "bin" / "python", *[c.format(out=out) for c in e.preprocessor]], out / "preprocessor.log")
    shutil.copy(ckpt / "tekken.json", out / "tekken.json")
    meta = {"name": e.name, "family": "voxtral_rt", "dtype": e.dtype, "notes": e.notes, "streaming": e.streaming,
            "methods": e.methods, "decoder_layers": json.loads((ckpt / "params.json").read_text())["n_layers"],
            "command": "python " + command_text(e), "seed": 7 if held_out else SEED, "held_out": held_out, "clip": CLIP.name, "tolerance": TOLERANCE[e.dtype]}
    (out / "entry.json").write_text(json.dumps(meta, indent=1) + "\n")
    ok = ok and (out / "voxtral_rt_reference.json").exists() and (out / "model.pte").exists()
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:32s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def token_agreement(ref: dict, got: Path) -> str:
    """mlxc's argmax after each of eager's decoder calls against eager's greedy token (</s> included)."""
    want = list(ref["tokens"]) + ([2] if ref.get("eos") else [])
    agree = 0
    for i, w in enumerate(want):
        logits = np.load(got / f"step{i}.output0.npy")
        if int(np.argmax(logits.reshape(-1, logits.shape[-1])[-1])) != w:
            break
        agree += 1
    return f"{agree}/{len(want)}"


def check(e: Entry, work: Path, mlxc: str) -> list:
    out = work / "out" / e.name
    if not (out / "voxtral_rt_reference.json").exists():
        return [{"name": e.name, "status": "not built", "ok": False}]
    ref = json.loads((out / "voxtral_rt_reference.json").read_text())
    meta = json.loads((out / "entry.json").read_text())
    tol = TOLERANCE[e.dtype]
    rows = []
    for method in ["preprocessor"] + e.methods:
        pte, which = (out / "preprocessor.pte", "forward") if method == "preprocessor" else (out / "model.pte", method)
        got = out / "got" / method
        fields, ran = compile_and_run(mlxc, pte, which, out / "ref" / method, got, out / f"{method}.mlxc",
                                      out / f"{method}.stats.json")
        row = {"name": f"{e.name}/{method}", **fields}
        if not ran:
            row["ok"] = False
            rows.append(row)
            continue
        err = compare(out / "ref" / method, got)
        row["max_err"] = f"{err:.1e} (tol {tol:g})"
        ok = err <= tol and row.get("fallback_ops") == 0
        if method == "text_decoder":
            want = meta["decoder_layers"]
            have = row.get("fusions", {}).get("rope_attention", 0)
            row["rope_attention"] = f"{have}/{want}"
            row["tokens"] = token_agreement(ref, got)
            n = len(ref["tokens"]) + (1 if ref.get("eos") else 0)
            ok = ok and row["tokens"] == f"{n}/{n}"
        row["ok"] = ok
        rows.append(row)
    return rows


OFFLINE_DECODER_CALLS = 24


def commit(e: Entry, work: Path, fixtures: Path) -> None:
    """Copies an entry into Tests/Fixtures/zoo/<name>/. Streaming entries whole (every call is small). Offline ones
    with stated reductions (fixture.json): the 30 s mel — the preprocessor's output and the audio encoder's input,
    1.5 MB — as the frames the audio reaches (mel_head.npy) + the one value every later frame holds (checked equal
    here), no preprocessor.pte, and the decoder's first OFFLINE_DECODER_CALLS calls of eager's 391 (the tokens
    of all of them stay in voxtral_rt_reference.json; `zoo voxtral_rt check` compares every call)."""
    src, dst = work / "out" / e.name, fixtures / e.name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src / "ref", dst / "ref")
    files = ["model.pte", "voxtral_rt_reference.json", "entry.json", "tekken.json", "audio.wav"]
    for f in files + (["preprocessor.pte"] if e.streaming else []):
        shutil.copy(src / f, dst / f)
    if not e.streaming:
        shutil.rmtree(dst / "ref" / "preprocessor")
        ref = json.loads((src / "voxtral_rt_reference.json").read_text())
        mel_file = dst / "ref" / "audio_encoder" / "step0.input0.npy"
        mel = np.load(mel_file)
        head = min(mel.shape[-1], ref["samples"] // 160 + 4)
        tail = mel[..., head:]
        assert tail.size == 0 or (tail == tail.flat[0]).all(), "frames past the audio are not one value"
        np.save(dst / "ref" / "audio_encoder" / "mel_head.npy", mel[..., :head])
        mel_file.unlink()
        for method in ["token_embedding", "text_decoder"]:
            for f in (dst / "ref" / method).glob("step*.npy"):
                if int(f.name[4:].split(".")[0]) >= OFFLINE_DECODER_CALLS:
                    f.unlink()
        (dst / "fixture.json").write_text(json.dumps({
            "mel_shape": list(mel.shape), "mel_head_frames": int(head), "mel_tail_value": float(tail.flat[0]) if tail.size else None,
            "decoder_calls_kept": OFFLINE_DECODER_CALLS}, indent=1) + "\n")
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"committed {e.name}: {size / 1e6:.2f} MB")


def main(argv, work: Path, held_out: bool, fixtures: Path) -> int:
    return run_family(argv, entries=ENTRIES, select=select, build=build, check=check, commit=commit,
                      command_text=command_text, work=work, held_out=held_out, fixtures=fixtures, doc=__doc__,
                      name_width=32)
