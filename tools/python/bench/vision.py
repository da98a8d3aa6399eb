#!/usr/bin/env python3
"""Vision latency (issue 13): one image classifier's XNNPACK file — optimum-executorch's own export, `optimum-cli export
executorch --task image-classification --recipe xnnpack`, of a full-size random-weight checkpoint made from
transformers' config class (tools/zoo/vision_checkpoint.py: MobileNetV2 1.0 and ResNet-50 at 224x224) — timed per
image, batch 1, on mlxc (`mlxc run --jit --inputs-dir … --timing`: each call alone, files read before it), ExecuTorch's
runtime on the same file (Python bindings, XNNPACK, its threadpool reset to --threads) and eager PyTorch on the
checkpoint's module (torch.set_num_threads). Each peer runs in its own process; rounds alternate the peers, so every
peer sees the same machine. Every call gets another seeded image. Latency = the median over the calls of a round
after one warm-up call; the table gives
the best round's median per peer (and every round's), mlxc's logits checked against ExecuTorch's on the first (warm-up) image.

  tools/bench --vision [--models mobilenet_v2,resnet50] [--calls 20] [--rounds 3] [--threads 2] [--peers mlxc,executorch,eager]
  (peer mlxc-avx2: mlxc with MLXC_ISA=avx2, the AVX2 + FMA machine class on a wider host)
  (or tools/.venv/bin/python tools/python/bench/vision.py --mlxc .build/release/mlxc …)

Writes tools/.work/bench/vision/vision.json and vision.md (the table BENCHMARKS.md's Vision section takes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
VENV = REPO / "tools" / ".venv"
ZOO = REPO / "tools" / "zoo"


def sh(cmd, log: Path):
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        r = subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if r.returncode != 0:
        raise SystemExit(f"vision bench: {' '.join(map(str, cmd[:3]))} … failed (see {log})")


def prepare(model: str, work: Path) -> Path:
    """Checkpoint, XNNPACK export and one seeded image for `model` (idempotent)."""
    d = work / model
    ckpt, pte = d / "ckpt", d / "xnnpack" / "model.pte"
    if not (ckpt / "config.json").exists():
        sh([VENV / "bin" / "python", ZOO / "vision_checkpoint.py", model, ckpt], d / "checkpoint.log")
    if not pte.exists():
        sh([VENV / "bin" / "optimum-cli", "export", "executorch", "--model", ckpt, "--task", "image-classification",
            "--recipe", "xnnpack", "--output_dir", pte.parent], d / "export.log")
    return d


def images(d: Path, count: int) -> list:
    """`count` different seeded images (a different one every call: mlxc reuses a call's results when its inputs
    are byte for byte the last call's, which would time nothing)."""
    size = json.loads((d / "ckpt" / "config.json").read_text())["image_size"]
    paths = []
    for k in range(count):
        p = d / "images" / f"image{k}.npy"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.random.default_rng(k).standard_normal((1, 3, size, size)).astype(np.float32))
        paths.append(p)
    return paths


# ---- peers, each in its own process: print one JSON line {"ms": [per call], "logits": [...]}

def peer_executorch(d: Path, calls: int, threads: int):
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime
    portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(str(d / "xnnpack" / "model.pte")).load_method("forward")
    xs = [torch.from_numpy(np.load(p)) for p in images(d, calls + 1)]
    first = method.execute([xs[0]])[0]
    ms = []
    for x in xs[1:]:
        t = time.perf_counter()
        method.execute([x])[0]
        ms.append(1e3 * (time.perf_counter() - t))
    return {"ms": ms, "logits": first.float().reshape(-1).tolist()}


def peer_eager(d: Path, calls: int, threads: int):
    import torch
    from transformers import AutoModelForImageClassification
    torch.set_num_threads(threads)
    model = AutoModelForImageClassification.from_pretrained(d / "ckpt").eval()
    xs = [torch.from_numpy(np.load(p)) for p in images(d, calls + 1)]
    ms = []
    with torch.no_grad():
        first = model(pixel_values=xs[0]).logits
        for x in xs[1:]:
            t = time.perf_counter()
            model(pixel_values=x).logits
            ms.append(1e3 * (time.perf_counter() - t))
    return {"ms": ms, "logits": first.float().reshape(-1).tolist()}


def peer_mlxc(mlxc: str, d: Path, calls: int, threads: int, isa: str | None = None):
    """mlxc on the file; with `isa` its kernels compiled for that instruction set (MLXC_ISA=avx2: the AVX2 + FMA
    machine class, emulated on a wider host — ExecuTorch still runs on the host's own ISA)."""
    tmp = Path(tempfile.mkdtemp())
    try:
        for k, p in enumerate(images(d, calls + 1)):
            os.symlink(p.resolve(), tmp / f"step{k}.input0.npy")
        r = subprocess.run([mlxc, "run", "--jit", str(d / "xnnpack" / "model.pte"), "--inputs-dir", str(tmp),
                            "--output-dir", str(tmp / "out"), "--threads", str(threads), "--timing"],
                           capture_output=True, text=True, env=dict(os.environ, **({"MLXC_ISA": isa} if isa else {})))
        if r.returncode != 0:
            raise SystemExit(f"mlxc failed: {r.stderr.strip().splitlines()[-1:]}")
        ms = [1e3 * float(line.split(" in ")[1].split()[0]) for line in r.stderr.splitlines()
              if line.startswith("timing: step ")][1:]   # step 0: the warm-up call
        return {"ms": ms, "logits": np.load(tmp / "out" / "step0.output0.npy").reshape(-1).tolist()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_peer(peer: str, d: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--peer", peer, "--dir", str(d), "--calls", str(args.calls),
           "--threads", str(args.threads), "--mlxc", args.mlxc]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,resnet50")
    ap.add_argument("--peers", default="mlxc,executorch,eager")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mlxc", default=str(REPO / ".build" / "release" / "mlxc"))
    ap.add_argument("--work", type=Path, default=REPO / "tools" / ".work" / "bench" / "vision")
    ap.add_argument("--command", default="tools/bench --vision")
    ap.add_argument("--peer")
    ap.add_argument("--dir", type=Path)
    a, _ = ap.parse_known_args()
    if a.peer:   # one peer's measurement, in its own process
        f = {"executorch": lambda: peer_executorch(a.dir, a.calls, a.threads),
             "eager": lambda: peer_eager(a.dir, a.calls, a.threads),
             "mlxc": lambda: peer_mlxc(a.mlxc, a.dir, a.calls, a.threads),
             "mlxc-avx2": lambda: peer_mlxc(a.mlxc, a.dir, a.calls, a.threads, isa="avx2")}[a.peer]
        print(json.dumps(f()))
        return 0
    peers = a.peers.split(",")
    results = {}
    for model in a.models.split(","):
        d = prepare(model, a.work)
        rows = {p: [] for p in peers}
        logits = {}
        for r in range(a.rounds):
            for p in (peers if r % 2 == 0 else peers[::-1]):
                got = run_peer(p, d, a)
                if "error" in got:
                    rows[p].append(got)
                    print(f"{model} round {r} {p}: {got['error']}", file=sys.stderr)
                    continue
                rows[p].append({"median_ms": statistics.median(got["ms"]), "min_ms": min(got["ms"])})
                logits[p] = np.array(got["logits"])
                print(f"{model} round {r} {p}: median {rows[p][-1]['median_ms']:.2f} ms", file=sys.stderr, flush=True)
        err = None
        if "mlxc" in logits and "executorch" in logits:
            e = logits["executorch"]
            err = float(np.abs(logits["mlxc"] - e).max() / np.abs(e).max())
        results[model] = {"peers": rows, "mlxc_vs_executorch": err,
                          "parameters": json.loads((d / "ckpt" / "zoo_checkpoint.json").read_text())["parameters"]}
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": a.command, "calls": a.calls,
           "rounds": a.rounds, "threads": a.threads, "models": results}
    a.work.mkdir(parents=True, exist_ok=True)
    (a.work / "vision.json").write_text(json.dumps(out, indent=1) + "\n")
    md = report(out, peers)
    (a.work / "vision.md").write_text(md)
    print(md)
    return 0


def report(out: dict, peers: list) -> str:
    mine = [p for p in peers if p.startswith("mlxc")]   # each mlxc peer's ratio to ExecuTorch
    def best(rs):
        ok = [r["median_ms"] for r in rs if "median_ms" in r]
        return min(ok) if ok else None
    lines = [f"Vision latency per image ({out['date']}; `{out['command']}`: batch 1, {out['threads']} threads, "
             f"median of {out['calls']} calls after a warm-up, best of {out['rounds']} alternating rounds; ms)", "",
             "| model | " + " | ".join(peers) + " | " + " | ".join(f"{p} ÷ ExecuTorch" for p in mine)
             + " | mlxc vs ExecuTorch logits |",
             "| --- | " + " | ".join("---" for _ in peers + mine) + " | --- |"]
    for model, m in out["models"].items():
        b = {p: best(m["peers"][p]) for p in peers}
        def cell(p):
            if b[p] is None:
                return "failed"
            rounds = ", ".join("%.1f" % r["median_ms"] for r in m["peers"][p] if "median_ms" in r)
            return f"{b[p]:.2f} ({rounds})"
        cells = [cell(p) for p in peers]
        ratios = [f"{b[p] / b['executorch']:.2f}×" if b.get(p) and b.get("executorch") else "–" for p in mine]
        err = f"{m['mlxc_vs_executorch']:.1e} of max" if m["mlxc_vs_executorch"] is not None else "–"
        lines.append(f"| {model} ({m['parameters'] / 1e6:.1f}M) | " + " | ".join(cells + ratios) + f" | {err} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
