#!/usr/bin/env python3
"""Zoo entries for Voxtral: ExecuTorch 1.5.1's own MLX script (`export_voxtral_hf`: model.pte with methods
audio_encoder / token_embedding / text_decoder, and preprocessor.pte) run unchanged on a tiny random-weight
checkpoint (voxtral_checkpoint.py), with eager references chained as a transcription runs them (voxtral_capture.py).

Usage (through tools/zoo/zoo):
  zoo voxtral list                   the entries and their exact export commands
  zoo voxtral build [NAME|PREFIX …]  checkpoint, export, references → tools/.work/zoo/out/<entry>/
  zoo voxtral check [NAME|PREFIX …]  mlxc on preprocessor.pte and every model.pte method: outputs = eager within the tolerance,
                                     fallback_ops 0, the decoder's attention fused (rope_attention per layer)
  zoo voxtral commit NAME …          copy an entry into Tests/Fixtures/zoo/ (what VoxtralZooTests runs)

transformers: the script needs the 5.0.0rc1 overlay (tools/.venv/tf5rc1). With 5.25, optimum's AudioExportableModule
calls `get_audio_features(...).unsqueeze(0)`, but 5.25's VoxtralModel.get_audio_features returns a
BaseModelOutputWithPooling: torch.export fails with AttributeError ('... has no attribute unsqueeze').
The processor needs mistral_common (Tekken tokenizer, transcription requests): tools/zoo/setup-voxtral installs it
--no-deps (its numpy<2.4 pin would downgrade the venv's numpy 2.4.6) plus its other requirements.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from family_cli import compile_and_run, mlxc_binary, run_family  # noqa: F401  (mlxc_binary: also for the families that import it from here)

from whisper_entries import TF5RC1, VENV, compare, run  # noqa: F401  (shared helpers)

HERE = Path(__file__).resolve().parent
SCRIPT = "executorch.backends.mlx.examples.voxtral.export_voxtral_hf"
TOLERANCE = {"fp32": 1e-4, "bf16": 2.5e-2}
METHODS = ["audio_encoder", "token_embedding", "text_decoder"]


@dataclass
class Entry:
    name: str
    command: list
    dtype: str = "fp32"
    decode: int = 12
    notes: str = ""


def export(*flags):
    return ["-m", SCRIPT, "--model-id", "{ckpt}", "--output-dir", "{out}", "--max-seq-len", "512", *flags]


ENTRIES = [
    Entry("voxtral_mlx_fp32", export("--dtype", "fp32")),
    Entry("voxtral_mlx_fp32_4w", export("--dtype", "fp32", "--qlinear", "4w", "--qlinear-group-size", "32"),
          notes="--qlinear 4w: the script quantizes the linears of the whole model (audio encoder, projector, text "
                "decoder, lm_head) to 4 bits in groups of 32"),
    Entry("voxtral_mlx_bf16", export("--dtype", "bf16"), dtype="bf16"),
]


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no voxtral zoo entry matches {patterns}")
    return out


def env():
    import os
    e = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    e["PYTHONPATH"] = str(TF5RC1) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def checkpoint(work: Path, held_out: bool) -> Path:
    ckpt = work / "ckpt" / ("voxtral_held_out" if held_out else "voxtral")
    if not (ckpt / "model.safetensors").exists():
        extra = ["--held-out", "--seed", "7"] if held_out else []
        run([VENV / "bin" / "python", HERE / "voxtral_checkpoint.py", ckpt, *extra], work / "ckpt" / "voxtral.log")
    return ckpt


def entry_meta(e: Entry, held_out: bool, work: Path) -> dict:
    info = json.loads((checkpoint(work, held_out) / "zoo_checkpoint.json").read_text())
    return {"name": e.name, "family": "voxtral", "held_out": held_out, "dtype": e.dtype, "notes": e.notes,
            "layers": info["layers"], "decoder_rope_attention": info["layers"],
            "command": " ".join(["python"] + [c.format(ckpt="<checkpoint voxtral>", out="<out>") for c in e.command]),
            "transformers": "5.0.0rc1", "tolerance": TOLERANCE[e.dtype]}


def build(e: Entry, work: Path, held_out: bool) -> bool:
    out = work / "out" / e.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ckpt = checkpoint(work, held_out)
    cmd = [c.format(ckpt=ckpt, out=out) for c in e.command]
    t = time.time()
    ok = run([VENV / "bin" / "python", HERE / "voxtral_capture.py", "--out", out, "--ckpt", ckpt,
              "--decode", str(e.decode), "--", *cmd], out / "export.log", env())
    for f in ["tekken.json", "tekken_reference.json", "config.json", "generation_config.json", "preprocessor_config.json"]:
        if (ckpt / f).exists():
            shutil.copy(ckpt / f, out / f)
    (out / "entry.json").write_text(json.dumps(entry_meta(e, held_out, work), indent=1) + "\n")
    ok = ok and (out / "voxtral_reference.json").exists() and (out / "model.pte").exists()
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:28s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def greedy_agreement(ref: dict, got: Path) -> str:
    """mlxc's argmax after each of eager's decoder calls against eager's greedy tokens (ties within 1e-3 tolerated)."""
    agree = 0
    for i, want in enumerate(ref["greedy"]):
        logits = np.load(got / f"step{i}.output0.npy")
        last = logits.reshape(-1, logits.shape[-1])[-1]
        if int(np.argmax(last)) != want and ref["top2_margins"][i] >= 1e-3:
            break
        agree += 1
    return f"{agree}/{len(ref['greedy'])}"


def check(e: Entry, work: Path, mlxc: str) -> list:
    out = work / "out" / e.name
    if not (out / "voxtral_reference.json").exists():
        return [{"name": e.name, "status": "not built", "ok": False}]
    ref = json.loads((out / "voxtral_reference.json").read_text())
    tol = TOLERANCE[e.dtype]
    rows = []
    for method in ["preprocessor"] + METHODS:
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
            want = json.loads((out / "entry.json").read_text())["decoder_rope_attention"]   # this build's layers
            have = row.get("fusions", {}).get("rope_attention", 0)
            row["rope_attention"] = f"{have}/{want}"
            row["tokens"] = greedy_agreement(ref, got)
            ok = ok and have == want and row["tokens"] == f"{len(ref['greedy'])}/{len(ref['greedy'])}"
        row["ok"] = ok
        rows.append(row)
    return rows


def commit(e: Entry, work: Path, fixtures: Path) -> None:
    """Copies an entry into Tests/Fixtures/zoo/<name>/ with two reductions that keep it small (one lossless, one stated):
    the audio encoder's input (the preprocessor's mel, [C, 128, 3000] = 1.5 MB a chunk) as the frames the audio
    reaches (mel_head.npy) + the one value every later frame holds (eager's padding floor, checked equal bit for
    bit here); the prefill call's logits [1, T, V] as their last row (step0.output0.last.npy: what generation
    reads; `zoo voxtral check` compares every row)."""
    src, dst = work / "out" / e.name, fixtures / e.name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src / "ref", dst / "ref")
    # The preprocessor's output is the audio encoder's input: kept once (below, as mel_head.npy + the tail value).
    (dst / "ref" / "preprocessor" / "step0.output0.npy").unlink()
    for f in ["model.pte", "preprocessor.pte", "voxtral_reference.json", "entry.json", "tekken.json", "audio.wav"]:
        shutil.copy(src / f, dst / f)
    if (src / "tekken_reference.json").exists():
        shutil.copy(src / "tekken_reference.json", dst / "tekken_reference.json")
    ref = json.loads((src / "voxtral_reference.json").read_text())
    mel_file = dst / "ref" / "audio_encoder" / "step0.input0.npy"
    mel = np.load(mel_file)
    head = min(mel.shape[-1], ref["samples"] // 160 + 4)
    tail = mel[..., head:]
    assert tail.size == 0 or (tail == tail.flat[0]).all(), "frames past the audio are not one value"
    np.save(dst / "ref" / "audio_encoder" / "mel_head.npy", mel[..., :head])
    mel_file.unlink()
    logits_file = dst / "ref" / "text_decoder" / "step0.output0.npy"
    logits = np.load(logits_file)
    np.save(dst / "ref" / "text_decoder" / "step0.output0.last.npy", logits[:, -1:, :])
    logits_file.unlink()
    (dst / "fixture.json").write_text(json.dumps({
        "mel_shape": list(mel.shape), "mel_head_frames": int(head), "mel_tail_value": float(tail.flat[0]) if tail.size else None,
        "prefill_logits_rows": "last"}, indent=1) + "\n")
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"committed {e.name}: {size / 1e6:.2f} MB")


def main(argv, work: Path, held_out: bool, fixtures: Path) -> int:
    return run_family(argv, entries=ENTRIES, select=select, build=build, check=check, commit=commit,
                      command_text=lambda e: " ".join(c.format(ckpt='<ckpt>', out='<out>') for c in e.command),
                      work=work, held_out=held_out, fixtures=fixtures, doc=__doc__, name_width=24)
