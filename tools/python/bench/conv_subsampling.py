#!/usr/bin/env python3
"""NeMo's dw_striding subsampling (Parakeet's conv front end) at parakeet-tdt-0.6b's size — conv 3x3 s2 1->256, then
twice depthwise 3x3 s2 + pointwise 1x1, ReLUs; input [1, 1, T, 128] — as a torch module with random weights, exported
with ExecuTorch (portable, and XNNPACK-delegated) and timed per call: PyTorch eager (2 threads) against each given
mlxc binary on both files, rounds interleaved so every peer sees the same machine.

mlxc's time per call is (wall(N calls) - wall(1 call)) / (N - 1) of `mlxc run --jit --inputs-dir` (load and compile
cancel out); the first call's output is checked against eager (worst |got - eager| / max |eager|).

  tools/.venv/bin/python tools/python/bench/conv_subsampling.py --mlxc .build/release/mlxc [--mlxc OTHER] \\
      [--frames 1000] [--calls 6] [--rounds 3] [--out tools/.work/conv-bench]
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

CHANNELS, MELS = 256, 128


class Subsampling(nn.Module):
    def __init__(self):
        super().__init__()
        c = CHANNELS
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.Conv2d(c, c, 1), nn.ReLU(),
            nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.Conv2d(c, c, 1), nn.ReLU())

    def forward(self, x):
        return self.conv(x)


def export(out: Path, frames: int):
    torch.manual_seed(0)
    m = Subsampling().eval()
    x = torch.randn(1, 1, frames, MELS)
    if not (out / "xnnpack.pte").exists():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            np.save(out / "want.npy", m(x).numpy())
        (out / "in").mkdir(exist_ok=True)
        np.save(out / "in" / "step0.input0.npy", x.numpy())
        ep = torch.export.export(m, (x,))
        for name, parts in [("portable", []), ("xnnpack", [XnnpackPartitioner()])]:
            (out / f"{name}.pte").write_bytes(to_edge_transform_and_lower(ep, partitioner=parts).to_executorch().buffer)
    return m, x


def eager_ms(m, x, calls: int) -> float:
    torch.set_num_threads(2)
    with torch.no_grad():
        m(x)
        t = time.perf_counter()
        for _ in range(calls):
            m(x)
    return 1e3 * (time.perf_counter() - t) / calls


def mlxc_ms(binary: str, pte: Path, inputs: Path, calls: int, want: np.ndarray):
    tmp = Path(tempfile.mkdtemp())
    try:
        def run(n):
            d, out = tmp / f"in{n}", tmp / f"out{n}"
            d.mkdir()
            for k in range(n):
                os.symlink((inputs / "step0.input0.npy").resolve(), d / f"step{k}.input0.npy")
            t = time.perf_counter()
            r = subprocess.run([binary, "run", "--jit", str(pte), "--inputs-dir", str(d), "--output-dir", str(out)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError((r.stderr.strip().splitlines() or ["?"])[-1][:150])
            return time.perf_counter() - t, out
        t1, out = run(1)
        tn, _ = run(calls)
        got = np.load(out / "step0.output0.npy").astype(np.float64)
        return 1e3 * (tn - t1) / (calls - 1), float(np.abs(got - want).max() / np.abs(want).max())
    finally:
        shutil.rmtree(tmp)


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--mlxc", action="append", required=True)
    a.add_argument("--frames", type=int, default=1000)
    a.add_argument("--calls", type=int, default=6)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--out", type=Path, default=Path("tools/.work/conv-bench"))
    args = a.parse_args()
    out = args.out / f"T{args.frames}"
    m, x = export(out, args.frames)
    want = np.load(out / "want.npy").astype(np.float64)
    rows, failures = {}, {}
    for _ in range(args.rounds):
        rows.setdefault("eager (torch, 2 threads)", []).append((eager_ms(m, x, args.calls), 0.0))
        for binary in args.mlxc:
            for name in ["portable", "xnnpack"]:
                try:
                    result = mlxc_ms(binary, out / f"{name}.pte", out / "in", args.calls, want)
                except RuntimeError as e:
                    result = (float("nan"), float("nan"))
                    failures[f"{binary} {name}.pte"] = str(e)
                rows.setdefault(f"{binary} {name}.pte", []).append(result)
    print(f"dw_striding subsampling, input [1, 1, {args.frames}, {MELS}], {CHANNELS} channels; ms per call, median of {args.rounds}")
    for name, r in rows.items():
        ms = [t for t, _ in r]
        if name in failures:
            print(f"  {name:60s} fails: {failures[name]}")
            continue
        print(f"  {name:60s} {np.median(ms):9.2f}  ({', '.join(f'{t:.1f}' for t in ms)})  error {max(e for _, e in r):.1e}")


if __name__ == "__main__":
    main()
