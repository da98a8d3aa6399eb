#!/usr/bin/env python3
"""Zoo entries for vision: optimum-executorch's own exporter, run unchanged —
`optimum-cli export executorch --task image-classification --recipe xnnpack|portable` — on tiny random-weight image
classifiers built from transformers' config classes (vision_checkpoint.py: MobileNetV2 — depthwise convs, ReLU6,
residual adds, TF "same" padding, global pooling — and ResNet with bottleneck or basic blocks — strided convs, max
pool), with the checkpoint's eager logits and ExecuTorch's runtime on the same file as references (vision_capture.py).

Usage (through tools/zoo/zoo):
  zoo vision list                   the entries and their exact export commands
  zoo vision build [NAME|PREFIX …]  checkpoint, export, references → tools/.work/zoo/out/<entry>/
  zoo vision check [NAME|PREFIX …]  mlxc run --jit on every image: logits = ExecuTorch's runtime and eager within the
                                    fp32 tolerance, fallback_ops 0
  zoo vision commit NAME …          copy an entry into Tests/Fixtures/zoo/ (what VisionZooTests runs), with
                                    xnnpack_reference.json (ExecuTorch's deserializer's view of its XNNPACK payloads)
  zoo --held-out vision …           the same at other widths, image sizes (56, 72, 40: odd maps under stride 2), seed

torchvision is not used (no wheel of it loads with torch 2.13.0+cpu here); ExecuTorch's own MobileNet/ResNet examples
(examples/models/mobilenet_v2, resnet) are torchvision models, so the Hugging Face classes of the same architectures
stand in, exported by optimum-executorch as its users do.
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

from family_cli import run_family

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / "tools" / ".venv"
TOLERANCE = {"fp32": 1e-4}


@dataclass
class Entry:
    name: str
    family: str          # vision_checkpoint.py family
    recipe: str
    notes: str = ""
    dtype: str = "fp32"

    @property
    def command(self) -> list:
        return ["{venv}/bin/optimum-cli", "export", "executorch", "--model", "{ckpt}", "--task",
                "image-classification", "--recipe", self.recipe, "--output_dir", "{out}"]


ENTRIES = [
    Entry("mobilenet_v2_xnnpack_fp32", "mobilenet_v2_tiny", "xnnpack",
          "one XNNPACK delegate: XNNConv2d/XNNDepthwiseConv2d with ReLU6 as output_min_max, XNNStaticConstantPad (TF "
          "padding, asymmetric before stride 2), XNNAdd, XNNGlobalAvgPooling2d, XNNFullyConnected"),
    Entry("mobilenet_v2_portable_fp32", "mobilenet_v2_tiny", "portable",
          "aten::convolution, _native_batch_norm_legit_no_training, hardtanh (ReLU6), constant_pad_nd, mean"),
    Entry("resnet_xnnpack_fp32", "resnet_tiny", "xnnpack",
          "bottleneck blocks, batch norm folded into XNNConv2d, XNNMaxPooling2d 3x3 s2 p1, XNNGlobalAvgPooling2d"),
    Entry("resnet18_xnnpack_fp32", "resnet18_tiny", "xnnpack", "basic blocks (ResNet-18's shape), 48x48 images"),
    Entry("resnet_portable_fp32", "resnet_tiny", "portable",
          "aten::convolution, batch norm, relu, max_pool2d_with_indices (3x3 s2 p1), mean"),
]


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no vision zoo entry matches {patterns}")
    return out


def run(cmd, log: Path) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        return subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT,
                              env=dict(os.environ, HF_HUB_OFFLINE="1")).returncode == 0


def checkpoint(family: str, work: Path, held_out: bool) -> Path:
    ckpt = work / "ckpt" / f"vision_{family}"
    if not (ckpt / "config.json").exists():
        extra = ["--held-out", "--seed", "7"] if held_out else []
        run([VENV / "bin" / "python", HERE / "vision_checkpoint.py", family, ckpt, *extra],
            work / "ckpt" / f"vision_{family}.log")
    return ckpt


def fill(e: Entry, ckpt, out, venv=VENV) -> list:
    return [c.format(ckpt=ckpt, out=out, venv=venv) for c in e.command]


def build(e: Entry, work: Path, held_out: bool) -> bool:
    out = work / "out" / e.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ckpt = checkpoint(e.family, work, held_out)
    t = time.time()
    ok = run(fill(e, ckpt, out), out / "export.log") and (out / "model.pte").exists()
    ok = ok and run([VENV / "bin" / "python", HERE / "vision_capture.py", "--ckpt", ckpt, "--pte", out / "model.pte",
                     "--out", out], out / "capture.log")
    (out / "entry.json").write_text(json.dumps(entry_meta(e, work, held_out), indent=1) + "\n")
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:28s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def entry_meta(e: Entry, work: Path, held_out: bool) -> dict:
    info = work / "ckpt" / f"vision_{e.family}" / "zoo_checkpoint.json"
    return {"name": e.name, "family": "vision", "checkpoint_family": e.family, "recipe": e.recipe, "dtype": e.dtype,
            "notes": e.notes, "tolerance": TOLERANCE[e.dtype], "held_out": held_out,
            "checkpoint": json.loads(info.read_text()) if info.exists() else {},
            "command": " ".join(["python"] + fill(e, f"<checkpoint {e.family}>", "<out>", "tools/.venv"))}


def worst(want_dir: Path, got_dir: Path, steps: int) -> float:
    """Worst |got − want| / max |want| over every call (inf when an output is missing or misshapen)."""
    w = 0.0
    for k in range(steps):
        f = f"step{k}.output0.npy"
        if not (got_dir / f).exists():
            return float("inf")
        want, got = np.load(want_dir / f).astype(np.float64), np.load(got_dir / f).astype(np.float64)
        if want.shape != got.shape:
            return float("inf")
        w = max(w, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
    return w


def check(e: Entry, work: Path, mlxc: str) -> list:
    out = work / "out" / e.name
    row = {"name": e.name}
    if not (out / "vision_reference.json").exists():
        return [dict(row, status="not built", ok=False)]
    steps = json.loads((out / "vision_reference.json").read_text())["steps"]
    stats = out / "stats.json"
    r = subprocess.run([mlxc, "compile", str(out / "model.pte"), "--stats-json", str(stats), "-o",
                        str(out / "model.mlxc")], capture_output=True, text=True)
    if r.returncode == 0 and stats.exists():
        row["fallback_ops"] = json.loads(stats.read_text()).get("fallback_ops")
    else:
        row["compile"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
    got = out / "got"
    shutil.rmtree(got, ignore_errors=True)
    r = subprocess.run([mlxc, "run", "--jit", str(out / "model.pte"), "--inputs-dir", str(out / "ref"),
                        "--output-dir", str(got)], capture_output=True, text=True)
    if r.returncode != 0:
        return [dict(row, run=(r.stderr.strip().splitlines() or ["?"])[-1][:160], ok=False)]
    tol = TOLERANCE[e.dtype]
    vs_et, vs_eager = worst(out / "et", got, steps), worst(out / "ref", got, steps)
    row["vs_executorch"] = f"{vs_et:.1e}"
    row["vs_eager"] = f"{vs_eager:.1e} (tol {tol:g})"
    row["ok"] = vs_et <= tol and vs_eager <= tol and row.get("fallback_ops") == 0
    return [row]


def commit(e: Entry, work: Path, fixtures: Path) -> None:
    src, dst = work / "out" / e.name, fixtures / e.name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "ref", dst / "ref")
    shutil.copytree(src / "et", dst / "et")
    for f in ["model.pte", "vision_reference.json", "entry.json"]:
        shutil.copy(src / f, dst / f)
    # ExecuTorch's own deserializer's view of the XNNPACK payloads (XNNInspectMatchesExecuTorchTests).
    subprocess.run([str(VENV / "bin" / "python"), str(REPO / "tools" / "python" / "xnn_reference.py"),
                    str(dst / "model.pte"), str(dst / "xnnpack_reference.json")], check=True,
                   cwd=REPO / "tools" / "python")
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"committed {e.name}: {size / 1e6:.2f} MB")


def main(argv, work: Path, held_out: bool, fixtures: Path) -> int:
    return run_family(argv, entries=ENTRIES, select=select, build=build, check=check, commit=commit,
                      command_text=lambda e: " ".join(fill(e, "<ckpt>", "<out>", "tools/.venv")),
                      work=work, held_out=held_out, fixtures=fixtures, doc=__doc__, name_width=28)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], REPO / "tools" / ".work" / "zoo", False, REPO / "Tests" / "Fixtures" / "zoo"))
