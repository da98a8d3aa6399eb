#!/usr/bin/env python3
"""References for a vision zoo entry: the Hugging Face image classifier the exporter loaded (eager PyTorch, the
checkpoint's own module) and ExecuTorch's runtime (Python bindings: XNNPACK and portable kernels) on the exported
model.pte, on the same seeded images.

Usage: tools/.venv/bin/python tools/zoo/vision_capture.py --ckpt CKPT --pte OUT/model.pte --out OUT [--images 2]

Writes OUT/ref/step<K>.input0.npy (pixel_values [1, 3, S, S] f32: N(0, 1), what a normalised image looks like) and
step<K>.output0.npy (eager's logits [1, classes]), OUT/et/step<K>.output0.npy (ExecuTorch's runtime on the file) and
OUT/vision_reference.json (sizes, classes, each call's argmax on both, and their worst disagreement).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--pte", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    from transformers import AutoModelForImageClassification
    model = AutoModelForImageClassification.from_pretrained(a.ckpt).eval()
    size = model.config.image_size
    from executorch.runtime import Runtime
    method = Runtime.get().load_program(str(a.pte)).load_method("forward")
    (a.out / "ref").mkdir(parents=True, exist_ok=True)
    (a.out / "et").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    calls, worst = [], 0.0
    for k in range(a.images):
        x = torch.randn(1, model.config.num_channels, size, size, generator=g)
        with torch.no_grad():
            eager = model(pixel_values=x).logits.float()
        et = method.execute([x])[0].float()
        np.save(a.out / "ref" / f"step{k}.input0.npy", x.numpy())
        np.save(a.out / "ref" / f"step{k}.output0.npy", eager.numpy())
        np.save(a.out / "et" / f"step{k}.output0.npy", et.numpy())
        err = float((et - eager).abs().max() / eager.abs().max())
        worst = max(worst, err)
        calls.append({"eager_argmax": int(eager.argmax()), "et_argmax": int(et.argmax()), "et_vs_eager": err})
    info = {"image_size": size, "channels": model.config.num_channels, "classes": int(model.config.num_labels),
            "model_class": type(model).__name__, "steps": a.images, "calls": calls, "et_vs_eager": worst,
            "note": "eager = the checkpoint's transformers module; et = ExecuTorch 1.5.1's runtime on model.pte"}
    (a.out / "vision_reference.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"vision_capture: {a.images} images of {size}x{size}, ExecuTorch vs eager {worst:.1e} of max|eager|",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
