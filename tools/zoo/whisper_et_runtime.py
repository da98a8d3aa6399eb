#!/usr/bin/env python3
"""Run a Whisper zoo entry's programs on ExecuTorch's own runtime (portable kernels, XNNPACK) with the inputs eager
was given, and write what it computes beside eager's reference.

Usage: tools/.venv/bin/python tools/zoo/whisper_et_runtime.py ENTRY_DIR

Reads ENTRY_DIR/whisper_reference.json and ref/<method>/step<K>.input<I>.npy (whisper_capture.py) and writes
ENTRY_DIR/et_ref/<method>/step<K>.output<J>.npy: the calls in order on one loaded method, so a decoder's KV cache
carries over as in eager. MLX-delegated programs cannot run here (the MLX backend needs Apple GPUs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    d = Path(sys.argv[1])
    ref = json.loads((d / "whisper_reference.json").read_text())["programs"]
    import executorch.kernels.quantized  # noqa: F401  (quantized_decomposed kernels)
    from executorch.runtime import Runtime
    rt = Runtime.get()
    for name, info in ref.items():
        pte = d / f"{name}.pte" if (d / f"{name}.pte").exists() else d / "model.pte"
        method = rt.load_program(str(pte)).load_method(name if pte.name == "model.pte" else "forward")
        out = d / "et_ref" / name
        out.mkdir(parents=True, exist_ok=True)
        latest = {}  # an input absent at a call is the previous call's (whisper_capture.py writes it once)
        for k in range(info["steps"]):
            for f in (d / "ref" / name).glob(f"step{k}.input*.npy"):
                latest[int(f.name.split(".input")[1].split(".")[0])] = torch.from_numpy(np.load(f))
            inputs = [latest[i] for i in sorted(latest)]
            for j, t in enumerate(method.execute(inputs)):
                np.save(out / f"step{k}.output{j}.npy", t.float().numpy())
        print(f"{name}: {info['steps']} calls on ExecuTorch's runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
