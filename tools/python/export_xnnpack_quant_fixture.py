#!/usr/bin/env python3
"""A small 8da4w XNNPACK fixture: Tests/Fixtures/mlp_xnnpack_8da4w/.

Usage: tools/.venv/bin/python tools/python/export_xnnpack_quant_fixture.py

A SwiGLU MLP (dim 64, hidden 128, 5 tokens, seed 1301) quantized as ExecuTorch's LLM recipes do for
XNNPACK 8da4w (torchao Int8DynamicActivationIntxWeightConfig: int4 weights, groups of 32, int8
per-token dynamic activations), lowered with XnnpackPartitioner: Convert → qdint8 → FullyConnected
with QB4W weights and bf16 scales in named data. Written files:
  model.pte, step0.input0.npy,
  step0.output0.npy      ExecuTorch's own XNNPACK runtime (the semantics mlxc reproduces: bf16 scales),
  step0.eager_output0.npy eager torchao (fp32 scales, its own per-token fake quantization),
  meta.json (reference: pte_reference.py), xnnpack_reference.json (xnn_reference.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from pte_reference import pte_reference  # noqa: E402
from xnn_reference import xnn_reference  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "mlp_xnnpack_8da4w"


class MLP(torch.nn.Module):
    def __init__(self, dim=64, hidden=128):
        super().__init__()
        self.gate = torch.nn.Linear(dim, hidden, bias=False)
        self.up = torch.nn.Linear(dim, hidden, bias=False)
        self.down = torch.nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return x + self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))


def main():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime
    from torchao.quantization import quantize_
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig

    torch.manual_seed(1301)
    m = MLP().eval()
    quantize_(m, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32)))
    x = torch.randn(1, 5, 64)
    with torch.no_grad():
        eager = m(x)
    ep = torch.export.export(m, (x,))
    program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    OUT.mkdir(parents=True, exist_ok=True)
    pte = OUT / "model.pte"
    pte.write_bytes(program.buffer)
    method = Runtime.get().load_program(str(pte)).load_method("forward")
    et = method.execute([x])[0]
    np.save(OUT / "step0.input0.npy", x.numpy())
    np.save(OUT / "step0.output0.npy", et.numpy())
    np.save(OUT / "step0.eager_output0.npy", eager.numpy())
    diff = (et - eager).abs().max().item()
    meta = {
        "model": "mlp", "variant": "xnnpack_8da4w", "family": "xnnpack", "dtype": "fp32",
        "quant": {"bits": 4, "group_size": 32, "scheme": "8da4w: int4 weights per group of 32 (bf16 scales in XNNPACK), int8 per-token dynamic activations"},
        "steps": 1, "calls": [{"inputs": [[1, 5, 64]], "outputs": [[1, 5, 64]], "input_pos": None}],
        "input_names": ["x"], "config": {"dim": 64, "hidden": 128, "tokens": 5},
        "reference": pte_reference(str(pte)), "ptd_reference": None,
        "et_vs_eager_max_abs": diff, "et_vs_eager_max_abs_per_step": [diff],
        "notes": ["step0.output0.npy is ExecuTorch's XNNPACK runtime (bf16 weight scales, XNNPACK's int8 activations); "
                  "eager torchao (fp32 scales) is step0.eager_output0.npy"],
    }
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / "xnnpack_reference.json").write_text(json.dumps(xnn_reference(str(pte)), indent=1) + "\n")
    print(f"{OUT}: et vs eager max abs {diff:.3g}, max |et| {et.abs().max().item():.3g}")


if __name__ == "__main__":
    main()
