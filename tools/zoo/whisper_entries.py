#!/usr/bin/env python3
"""Zoo entries for Whisper: the programs ExecuTorch's scripts write for speech recognition, run unchanged on tiny
random-weight checkpoints (whisper_checkpoint.py), with eager references chained as a transcription runs them
(whisper_capture.py).

Usage (through tools/zoo/zoo):
  zoo whisper list                   the entries and their exact export commands
  zoo whisper build [NAME|PREFIX …]  checkpoint, export, references → tools/.work/zoo/out/<entry>/
  zoo whisper check [NAME|PREFIX …]  mlxc on every program: outputs = eager within the dtype's tolerance,
                                     fallback_ops 0, no attention left unfused (--remarks)
  zoo whisper commit NAME …          copy small entries into Tests/Fixtures/zoo/ (what WhisperZooTests runs)

A built entry folder is a self-contained Whisper model folder, what `mlxc transcribe` takes:
  encoder.pte cross_kv.pte decoder.pte   (export_whisper; optimum's asr task writes model.pte with methods
                                          encoder / text_decoder / sampler instead)
  tokenizer.json tokenizer_config.json config.json generation_config.json preprocessor_config.json
  whisper_reference.json ref/<program>/step<K>.input<I>.npy, step<K>.output<J>.npy   (eager's calls)
  et_ref/<method>/…                      ExecuTorch's own runtime on the same inputs (plain and XNNPACK programs)
`whisper_*` entries use a 1 s window (100 mel frames, small enough to commit); `whisper30_*` the real 30 s window
(3000 frames, 1500 encoder positions) for transcription tests on real-length audio.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from family_cli import mlxc_binary, run_family  # noqa: F401  (mlxc_binary: also for the families that import it from here)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / "tools" / ".venv"
TF5RC1 = VENV / "tf5rc1"
MLX_WHISPER = "executorch.backends.mlx.examples.whisper.export_whisper"
CHECKPOINT_FILES = ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
                    "preprocessor_config.json", "processor_config.json"]
# Tolerances of the repo (README, Numerics): per activation dtype, relative to max |expected| of each output.
TOLERANCE = {"fp32": 1e-4, "bf16": 2.5e-2}


@dataclass
class Entry:
    name: str
    family: str                 # whisper (30 s window) | whisper_short (1 s)
    command: list               # after `python`; {ckpt} {out} {venv} filled in
    dtype: str = "fp32"
    transformers_rc1: bool = False
    notes: str = ""
    runs_on_executorch: bool = False   # plain / XNNPACK: also run on ExecuTorch's runtime
    decode: int = 5


def mlx(*flags, seq=64):
    return ["-m", MLX_WHISPER, "--model-id", "{ckpt}", "--output-dir", "{out}", "--max-decoder-seq-len", str(seq),
            *flags]


def optimum(recipe, *flags, seq=64):
    # --task: the name optimum-executorch 1.1.0 registers ("asr" is not one).
    return ["-m", "optimum.commands.optimum_cli", "export", "executorch", "--model", "{ckpt}",
            "--task", "automatic-speech-recognition", "--recipe", recipe, "--max_seq_len", str(seq), *flags, "--output_dir", "{out}"]


ENTRIES = [
    Entry("whisper_mlx_fp32", "whisper_short", mlx("--dtype", "fp32")),
    Entry("whisper_mlx_bf16", "whisper_short", mlx("--dtype", "bf16"), dtype="bf16"),
    Entry("whisper_mlx_fp32_4w", "whisper_short", mlx("--dtype", "fp32", "--qlinear", "4w", "--qlinear-group-size", "32")),
    Entry("whisper_xnnpack_fp32", "whisper_short", optimum("xnnpack"), transformers_rc1=True, runs_on_executorch=True),
    Entry("whisper_portable_fp32", "whisper_short", optimum("portable"), transformers_rc1=True, runs_on_executorch=True),
    # The real 30 s window: the folders `mlxc transcribe` is developed against (not committed: 3000-frame inputs).
    Entry("whisper30_mlx_fp32", "whisper", mlx("--dtype", "fp32", seq=64)),
    Entry("whisper30_mlx_fp32_4w", "whisper", mlx("--dtype", "fp32", "--qlinear", "4w", "--qlinear-group-size", "32")),
]


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no whisper zoo entry matches {patterns}")
    return out


def env_for(e: Entry):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if e.transformers_rc1:
        env["PYTHONPATH"] = str(TF5RC1) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(cmd, log: Path, env=None, cwd=None) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        r = subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd or log.parent)
    return r.returncode == 0


def checkpoint(work: Path, family: str, held_out: bool) -> Path:
    ckpt = work / "ckpt" / family
    if not (ckpt / "model.safetensors").exists():
        extra = ["--held-out", "--seed", "7"] if held_out else []
        run([VENV / "bin" / "python", HERE / "checkpoint.py", family, ckpt, *extra], work / "ckpt" / f"{family}.log")
    return ckpt


def prompt_ids(ckpt: Path) -> list:
    """<|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>, from the checkpoint's generation config."""
    g = json.loads((ckpt / "generation_config.json").read_text())
    return [g["decoder_start_token_id"], g["lang_to_id"]["<|en|>"], g["task_to_id"]["transcribe"],
            g["no_timestamps_token_id"]]


def build(e: Entry, work: Path, held_out: bool) -> bool:
    out = work / "out" / e.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ckpt = checkpoint(work, e.family, held_out)
    cmd = [c.format(ckpt=ckpt, out=out, venv=VENV) for c in e.command]
    py = VENV / "bin" / "python"
    t = time.time()
    ok = run([py, HERE / "whisper_capture.py", "--out", out, "--prompt-ids", ",".join(map(str, prompt_ids(ckpt))),
              "--decode", str(e.decode), "--", *cmd], out / "export.log", env_for(e))
    for f in CHECKPOINT_FILES:
        if (ckpt / f).exists():
            shutil.copy(ckpt / f, out / f)
    (out / "entry.json").write_text(json.dumps(entry_meta(e, held_out, work), indent=1) + "\n")
    ok = ok and bool(programs(out))
    if ok and e.runs_on_executorch:
        ok = run([py, HERE / "whisper_et_runtime.py", out], out / "et_runtime.log", env_for(e))
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:28s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def entry_meta(e: Entry, held_out: bool, work: Path) -> dict:
    """entry.json: what the entry is and what is expected of it (read by WhisperZooTests)."""
    info = work / "ckpt" / e.family / "zoo_checkpoint.json"
    layers = json.loads(info.read_text())["layers"] if info.exists() else 2
    return {"name": e.name, "family": e.family, "held_out": held_out, "dtype": e.dtype, "notes": e.notes, "layers": layers,
            # rope_attention kernels in the decoder: one per layer (the self-attention with its cache writes); optimum's
            # cross-attention caches, rewritten whole every call, stay a write (reused across calls) and an sdpa.
            "decoder_rope_attention": layers,
            "command": " ".join(["python"] + [c.format(ckpt=f"<checkpoint {e.family}>", out="<out>", venv="")
                                              for c in e.command]),
            "transformers": "5.0.0rc1" if e.transformers_rc1 else "5.25", "tolerance": TOLERANCE[e.dtype]}


def programs(out: Path) -> list:
    """(program file, method, reference folder) for every recorded program of a built entry."""
    p = out / "whisper_reference.json"
    if not p.exists():
        return []
    names = json.loads(p.read_text())["programs"]
    rows = []
    for name in names:
        if (out / f"{name}.pte").exists():
            rows.append((out / f"{name}.pte", "forward", name))
        elif (out / "model.pte").exists():
            rows.append((out / "model.pte", name, name))
    return rows


def compare(ref_dir: Path, got_dir: Path) -> float:
    """Worst |got - want| / max |want| over every output of every step."""
    worst = 0.0
    for f in sorted(ref_dir.glob("step*.output*.npy")):
        want, g = np.load(f).astype(np.float64), got_dir / f.name
        if not g.exists():
            return float("inf")
        got = np.load(g).astype(np.float64)
        if got.shape != want.shape:
            return float("inf")
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
    return worst


def check(e: Entry, work: Path, mlxc: str) -> list:
    out = work / "out" / e.name
    rows = []
    if not programs(out):
        return [{"name": e.name, "status": "not built", "ok": False}]
    ref = json.loads((out / "whisper_reference.json").read_text())["programs"]
    tol = TOLERANCE[e.dtype]
    for pte, method, name in programs(out):
        row = {"name": f"{e.name}/{name}"}
        stats = out / f"{name}.stats.json"
        r = subprocess.run([mlxc, "compile", str(pte), "--method", method, "--stats-json", str(stats), "--remarks",
                            "-o", str(out / f"{name}.mlxc")], capture_output=True, text=True)
        if r.returncode == 0 and stats.exists():
            s = json.loads(stats.read_text())
            row["fallback_ops"] = s.get("fallback_ops")
            row["fusions"] = {k: v for k, v in s.get("fusions", {}).items() if v}
            row["unfused_attention"] = sum(1 for line in r.stderr.splitlines()
                                           if "left unfused" in line and ("sdpa" in line or "attention" in line))
        else:
            row["compile"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
        got = out / "got" / name
        shutil.rmtree(got, ignore_errors=True)
        r = subprocess.run([mlxc, "run", "--jit", str(pte), "--method", method, "--inputs-dir", str(every_input(out, name)),
                            "--output-dir", str(got)], capture_output=True, text=True)
        if r.returncode != 0:
            row["run"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
            row["ok"] = False
            rows.append(row)
            continue
        err = compare(out / "ref" / name, got)
        row["max_err"] = f"{err:.1e} (tol {tol:g})"
        if (out / "et_ref" / name).exists():
            row["et_vs_eager"] = f"{compare(out / 'ref' / name, out / 'et_ref' / name):.1e}"
        if "greedy" in ref.get(name, {}):
            row["tokens"] = greedy_agreement(ref[name], got)
        if name.endswith("decoder"):
            want = entry_meta(e, False, work)["decoder_rope_attention"]
            row["rope_attention"] = f"{row.get('fusions', {}).get('rope_attention', 0)}/{want}"
        row["ok"] = err <= tol and row.get("fallback_ops") == 0 and row.get("unfused_attention") == 0 and \
            row.get("rope_attention", "1/1").split("/")[0] == row.get("rope_attention", "1/1").split("/")[1] and \
            row.get("tokens", "ok").split(" ")[0] in ("ok", f"{len(ref[name].get('greedy', []))}/{len(ref[name].get('greedy', []))}")
        rows.append(row)
    return rows


def every_input(out: Path, name: str) -> Path:
    """ref/<program> with every call's inputs spelled out (the capture writes an unchanged input once), as
    `mlxc run --inputs-dir` reads them: links to the last file written for each input."""
    src, dst = out / "ref" / name, out / "inputs" / name
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    steps = json.loads((out / "whisper_reference.json").read_text())["programs"][name]["steps"]
    latest = {}
    for k in range(steps):
        for f in src.glob(f"step{k}.input*.npy"):
            latest[int(f.name.split(".input")[1].split(".")[0])] = f
        for i, f in latest.items():
            (dst / f"step{k}.input{i}.npy").symlink_to(f.resolve())
    return dst


def greedy_agreement(ref: dict, got: Path) -> str:
    """mlxc's argmax after each of eager's calls against eager's greedy tokens (ties within 1e-3 tolerated)."""
    first = ref["prompt_calls"] - 1
    agree = 0
    for i, want in enumerate(ref["greedy"]):
        logits = np.load(got / f"step{first + i}.output0.npy").reshape(-1)
        if int(np.argmax(logits)) != want and ref["greedy_steps"][i]["top2_margin"] >= 1e-3:
            break
        agree += 1
    return f"{agree}/{len(ref['greedy'])}"


def commit(e: Entry, work: Path, fixtures: Path) -> None:
    src, dst = work / "out" / e.name, fixtures / e.name
    (src / "entry.json").write_text(json.dumps(entry_meta(e, False, work), indent=1) + "\n")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src / "ref", dst / "ref")
    # An input identical to the previous call's (the decoder's cross K/V) is kept once: the Swift test reuses it.
    for f in sorted((dst / "ref").glob("*/step*.input*.npy")):
        k, rest = f.name[4:].split(".", 1)
        prev = src / "ref" / f.parent.name / f"step{int(k) - 1}.{rest}"
        if int(k) > 0 and prev.exists() and prev.read_bytes() == f.read_bytes():
            f.unlink()
    for f in src.iterdir():
        if f.suffix == ".pte" or f.name in ("whisper_reference.json", "entry.json", "metadata.json"):
            shutil.copy(f, dst / f.name)
    if (src / "et_ref").exists():
        shutil.copytree(src / "et_ref", dst / "et_ref")
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"committed {e.name}: {size / 1e6:.2f} MB")


def main(argv, work: Path, held_out: bool, fixtures: Path) -> int:
    return run_family(argv, entries=ENTRIES, select=select, build=build, check=check, commit=commit,
                      command_text=lambda e: " ".join(c.format(ckpt='<ckpt>', out='<out>', venv='tools/.venv') for c in e.command),
                      work=work, held_out=held_out, fixtures=fixtures, doc=__doc__, name_width=28)
