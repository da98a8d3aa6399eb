"""`zoo mutate NAME KIND`: what zoo check must catch — a mixture-of-experts entry's program exported from a
deliberately broken checkpoint, checked against the clean entry's eager references (the router-tie resolution
still re-runs the clean module: the eager reference is never the broken one).

KIND:
  expert  one routed expert's down projection replaced by another's (layer 1: expert 4's as expert 3's), as a wrong
          expert index or offset in the weights would give (scaling one of 16 experts by 1.1 is not caught: it moves
          the logits less than bf16's rounding does, 1.9e-2 - 1.2e-1 of max |eager| vs 1.6e-2 - 1.3e-1 for the
          clean program on qwen35moe_e16k8_mlx_4w)
  router  two experts' router rows swapped (layer 2, experts 2 and 5): tokens routed to the wrong experts

The bound a mutation must break is the entry's own (qwen35_entries.py). qwen35moe_e16k8_mlx_4w's is 1e-1, the noise
floor of eager itself there (eager with exactly dequantized weights differs from eager by 9.4e-2, exact_dequant.py);
both mutations stay well above it: expert 2.4e-1, router 3.1e-1 of max |eager| with the best tie choices found.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MUTATIONS = {
    "expert": "model.layers.1.mlp.experts.3.down_proj.weight",
    "router": "model.layers.2.mlp.gate.weight",
}


def broken_checkpoint(clean: Path, out: Path, kind: str) -> None:
    """A copy of the clean Hugging Face checkpoint with one tensor broken as KIND says."""
    from safetensors.torch import load_file, save_file
    if kind not in MUTATIONS:
        raise SystemExit(f"zoo mutate: unknown kind {kind!r} (expert | router)")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(clean, out)
    tensors = load_file(str(clean / "model.safetensors"))
    name = MUTATIONS[kind]
    if name not in tensors:
        raise SystemExit(f"zoo mutate: the checkpoint has no {name}")
    t = tensors[name].clone()
    if kind == "expert":
        t = tensors[name.replace("experts.3.", "experts.4.")].clone()
    else:
        t[[2, 5]] = t[[5, 2]]
    tensors[name] = t
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def references(clean_out: Path, out: Path) -> None:
    """The clean entry's eager references beside the broken program."""
    for f in clean_out.iterdir():
        if f.name in ("reference.json", "entry.json", "config.json", "generation_config.json") or \
                (f.name.startswith("step") and f.name.endswith(".logits.npy")):
            shutil.copy(f, out / f.name)
