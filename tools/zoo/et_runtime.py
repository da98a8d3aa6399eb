#!/usr/bin/env python3
"""Run a zoo program with ExecuTorch's own runtime (its Python bindings: portable kernels, XNNPACK,
the llama custom ops) as its runner would, and record what it computes beside eager's reference.

Usage: tools/.venv/bin/python tools/zoo/et_runtime.py ENTRY_DIR

Reads ENTRY_DIR/reference.json (prompt, signature, chunk, step count from capture.py) and writes
ENTRY_DIR/et_reference.json in the same form (greedy ids, per-step argmax and top-2 margin) with
et_step<K>.logits.npy: the prompt in the program's chunks, then greedy decode, one token per call.
MLX-delegated programs cannot run here (the MLX backend needs Apple GPUs); plain and XNNPACK ones can.
Where eager and ExecuTorch disagree, the program is not the module that was exported (an export
defect): the entry then names ExecuTorch's runtime as its reference, with the reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    d = Path(sys.argv[1])
    ref = json.loads((d / "reference.json").read_text())
    import executorch.kernels.quantized  # noqa: F401  (quantized_decomposed kernels)
    try:
        import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (llama::custom_sdpa, update_cache)
    except Exception:
        pass
    from executorch.runtime import Runtime
    method = Runtime.get().load_program(str(d / "model.pte")).load_method("forward")
    position = 0

    def call(ids):
        nonlocal position
        t = torch.tensor([ids], dtype=torch.long)
        if ref["signature"] == "cache_position":
            p = torch.arange(position, position + len(ids), dtype=torch.long)
        else:
            p = torch.tensor([position], dtype=torch.long)
        out = method.execute([t, p])[0]
        position += len(ids)
        return out.reshape(-1, out.shape[-1])[-1].float()

    prompt, chunk = ref["prompt"], ref["chunk"]
    for i in range(0, len(prompt), chunk):
        last = call(prompt[i:i + chunk])
    greedy, steps = [], []
    count = ref.get("decode_steps") or len(ref["greedy"])
    for k in range(count):
        top = torch.topk(last, 2)
        nxt = int(torch.argmax(last))
        greedy.append(nxt)
        steps.append({"argmax": nxt, "top2_margin": float(top.values[0] - top.values[1])})
        np.save(d / f"et_step{k}.logits.npy", last.numpy().astype(np.float32))
        if k < count - 1:
            last = call([nxt])
    out = dict(ref, greedy=greedy, steps=steps,
               note="ExecuTorch 1.5.1's runtime (Python bindings) on model.pte; greedy = argmax, lowest id on ties")
    (d / "et_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    agree = next((i for i, (a, b) in enumerate(zip(greedy, ref["greedy"])) if a != b), len(greedy))
    print(f"et_runtime: greedy {greedy}; eager agrees on the first {agree} of {len(greedy)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
