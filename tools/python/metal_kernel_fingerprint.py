#!/usr/bin/env python3
"""Prints the fingerprint mlxc gives each Metal kernel ExecuTorch's MLX delegate emits (MetalKernelOp.fingerprint in
Sources/MLXCIR/MetalKernelOp+Fingerprint.swift: 64-bit FNV-1a of the whitespace-normalised source, the template
parameters' names:kinds, the input and output names, and the header if any) — for KnownMetalKernels' table.

Usage: tools/.venv/bin/python tools/python/metal_kernel_fingerprint.py
It builds each custom kernel op's MetalKernelNode the way the delegate does (a tiny export of the op's own test
module) and reads the node's fields, so the numbers are those of the installed executorch.
"""
import glob
import sys
from pathlib import Path

import torch


def fnv1a(text: str) -> str:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & (2**64 - 1)
    return f"{h:016x}"


def fingerprint(node) -> str:
    norm = lambda s: " ".join(s.split())
    text = norm(node.source)
    text += "\0" + ",".join(f"{n}:{k}" for n, k in zip(node.template_arg_names, node.template_arg_kinds))
    text += "\0" + ",".join(node.input_names) + "\0" + ",".join(node.output_names)
    if node.header:
        text += "\0" + norm(node.header)
    return fnv1a(text)


def main() -> int:
    from executorch.backends.mlx.serialization import mlx_graph_schema as schema
    seen = {}
    real = schema.MetalKernelNode.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.setdefault(self.name, set()).add(fingerprint(self))
    schema.MetalKernelNode.__init__ = spy
    from executorch.backends.mlx.custom_kernel_ops.test import test_gated_delta_rule, test_tq4_compress, test_tq_dequant, test_tq_norm
    for module, cls in [(test_gated_delta_rule, "GatedDeltaRuleTest"), (test_tq4_compress, "TQ4CompressTest"),
                        (test_tq_dequant, "TQDequantTest"), (test_tq_norm, "TQNormTest")]:
        configs = getattr(module, cls).get_test_configs()
        case = next((c for c in configs if getattr(c, "use_custom_kernel", True)), configs[0])
        from executorch.backends.mlx import MLXPartitioner
        from executorch.exir import to_edge_transform_and_lower
        ep = torch.export.export(case.create_model(), case.create_inputs(), strict=False)
        to_edge_transform_and_lower(ep, partitioner=[MLXPartitioner()]).to_executorch()
    for name, prints in sorted(seen.items()):
        print(f"{name:20s} {' '.join(sorted(prints))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
