#!/usr/bin/env python3
"""Zoo entries for Parakeet TDT: ExecuTorch 1.5.1's `examples/models/parakeet/export_parakeet_tdt.py` run unchanged
on a tiny random-weight FastConformer-TDT (parakeet_checkpoint.py), with eager references of every method and
NeMo's greedy TDT decode on a LibriVox clip (parakeet_capture.py).

Usage (through tools/zoo/zoo):
  zoo parakeet list                   the entries and their exact export commands
  zoo parakeet build [NAME|PREFIX …]  checkpoint, export, references → tools/.work/zoo/out/<entry>/
  zoo parakeet check [NAME|PREFIX …]  mlxc on every method: outputs = eager within the tolerance, fallback_ops 0
  zoo parakeet commit NAME …          copy an entry into Tests/Fixtures/zoo/ (what ParakeetZooTests runs)

The export needs NeMo and torchaudio, which are not in the venv: they live in the overlay tools/.venv/nemo
(`tools/zoo/setup-nemo`: nemo_toolkit 2.7.3 and the modules `import nemo.collections.asr` reaches, all --no-deps;
torchaudio 2.11.1's Python code without its CUDA-linked extension, which torch 2.13 cannot load: the script imports
torchaudio but only calls it for --audio, which the zoo does not pass).

A built entry folder is what `mlxc transcribe` takes: model.pte (methods preprocessor, encoder, decoder_step, joint
and the script's constant methods) + tokenizer.model (SentencePiece), parakeet_reference.json, ref/<method>/…
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from family_cli import mlxc_binary, run_family  # noqa: F401  (mlxc_binary: also for the families that import it from here)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / "tools" / ".venv"
NEMO = VENV / "nemo"
SCRIPT = "executorch.examples.models.parakeet.export_parakeet_tdt"
CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
TOLERANCE = {"fp32": 1e-4}
METHODS = ["preprocessor", "encoder", "decoder_step", "joint"]


@dataclass
class Entry:
    name: str
    command: list
    dtype: str = "fp32"
    notes: str = ""
    # `commit` keeps only the first N recorded calls of these methods (the fixture's size; the decode reference stays whole).
    commit_steps: dict = None


ENTRIES = [
    Entry("parakeet_portable_fp32", ["-m", SCRIPT, "--backend", "portable", "--output-dir", "{out}"]),
    Entry("parakeet_xnnpack_fp32", ["-m", SCRIPT, "--backend", "xnnpack", "--output-dir", "{out}"],
          notes="XNNConv2d/XNNDepthwiseConv2d (stem, subsampling, the conformer's depthwise conv), XNNStaticConstantPad",
          commit_steps={"decoder_step": 3, "joint": 3}),
]


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no parakeet zoo entry matches {patterns}")
    return out


def env():
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(NEMO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(cmd, log: Path) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        return subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=env()).returncode == 0


def checkpoint(work: Path, held_out: bool) -> Path:
    ckpt = work / "ckpt" / "parakeet"
    if not (ckpt / "parakeet.nemo").exists():
        extra = ["--held-out", "--seed", "7"] if held_out else []
        run([VENV / "bin" / "python", HERE / "parakeet_checkpoint.py", ckpt, *extra], work / "ckpt" / "parakeet.log")
    return ckpt


def build(e: Entry, work: Path, held_out: bool) -> bool:
    out = work / "out" / e.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ckpt = checkpoint(work, held_out)
    t = time.time()
    cmd = [c.format(out=out) for c in e.command]
    ok = run([VENV / "bin" / "python", HERE / "parakeet_capture.py", "--out", out, "--nemo", ckpt / "parakeet.nemo",
              "--audio", CLIP, "--", *cmd], out / "export.log")
    (out / "entry.json").write_text(json.dumps(entry_meta(e, work), indent=1) + "\n")
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:28s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def entry_meta(e: Entry, work: Path) -> dict:
    info = work / "ckpt" / "parakeet" / "zoo_checkpoint.json"
    return {"name": e.name, "family": "parakeet", "dtype": e.dtype, "notes": e.notes, "tolerance": TOLERANCE[e.dtype],
            "checkpoint": json.loads(info.read_text()) if info.exists() else {}, "clip": CLIP.name,
            "command": " ".join(["python"] + [c.format(out="<out>") for c in e.command])}


def compare(ref_dir: Path, got_dir: Path) -> float:
    """Worst |got - want| / max |want| over every output of every call (integer outputs must be equal)."""
    worst = 0.0
    for f in sorted(ref_dir.glob("step*.output*.npy")):
        want, g = np.load(f), got_dir / f.name
        if not g.exists():
            return float("inf")
        got = np.load(g)
        if got.shape != want.shape:
            return float("inf")
        if want.dtype.kind in "iu":
            if not np.array_equal(got, want):
                return float("inf")
            continue
        want, got = want.astype(np.float64), got.astype(np.float64)
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
    return worst


def check(e: Entry, work: Path, mlxc: str) -> list:
    out = work / "out" / e.name
    rows = []
    if not (out / "model.pte").exists():
        return [{"name": e.name, "status": "not built", "ok": False}]
    for method in METHODS:
        row = {"name": f"{e.name}/{method}"}
        stats = out / f"{method}.stats.json"
        r = subprocess.run([mlxc, "compile", str(out / "model.pte"), "--method", method, "--stats-json", str(stats),
                            "-o", str(out / f"{method}.mlxc")], capture_output=True, text=True)
        if r.returncode == 0 and stats.exists():
            row["fallback_ops"] = json.loads(stats.read_text()).get("fallback_ops")
        else:
            row["compile"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
        got = out / "got" / method
        shutil.rmtree(got, ignore_errors=True)
        r = subprocess.run([mlxc, "run", "--jit", str(out / "model.pte"), "--method", method, "--inputs-dir",
                            str(out / "ref" / method), "--output-dir", str(got)], capture_output=True, text=True)
        if r.returncode != 0:
            row["run"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
            row["ok"] = False
            rows.append(row)
            continue
        err = compare(out / "ref" / method, got)
        row["max_err"] = f"{err:.1e} (tol {TOLERANCE[e.dtype]:g})"
        row["ok"] = err <= TOLERANCE[e.dtype] and row.get("fallback_ops") == 0
        rows.append(row)
    return rows


def commit(e: Entry, work: Path, fixtures: Path) -> None:
    src, dst = work / "out" / e.name, fixtures / e.name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "ref", dst / "ref")
    for f in ["model.pte", "tokenizer.model", "parakeet_reference.json", "entry.json"]:
        shutil.copy(src / f, dst / f)
    shutil.copy(CLIP, dst / "audio.wav")   # the clip the references are taken on (mlxc transcribe's input in the tests)
    if e.commit_steps:
        ref = json.loads((dst / "parakeet_reference.json").read_text())
        for method, keep in e.commit_steps.items():
            for f in (dst / "ref" / method).glob("step*.npy"):
                if int(f.name[4:].split(".")[0]) >= keep:
                    f.unlink()
            ref["methods"][method]["steps"] = min(keep, ref["methods"][method]["steps"])
        (dst / "parakeet_reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"committed {e.name}: {size / 1e6:.2f} MB")


def main(argv, work: Path, held_out: bool, fixtures: Path) -> int:
    return run_family(argv, entries=ENTRIES, select=select, build=build, check=check, commit=commit,
                      command_text=lambda e: " ".join(c.format(out='<out>') for c in e.command),
                      work=work, held_out=held_out, fixtures=fixtures, doc=__doc__, name_width=28)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], REPO / "tools" / ".work" / "zoo", False, REPO / "Tests" / "Fixtures" / "zoo"))
