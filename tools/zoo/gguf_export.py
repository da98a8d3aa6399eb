#!/usr/bin/env python3
"""ExecuTorch's Gemma 4 GGUF export (examples/models/gemma4_31b/export.py) on a tiny GGUF file.

Usage: gguf_export.py --gguf FILE --config CONFIG_JSON --output-dir DIR [--backend mlx]

The script's own `--gguf` branch, step for step: `load_gguf_model(path, backend=…)` then
`export_and_lower(model, config, output_dir, backend=…)`. The one difference: its CLI always builds the full 31B
config for a GGUF file, while `load_gguf_model` takes a `config=` for smaller models (ExecuTorch's own
test_mlx_pipeline.py passes its tiny GGUF_CONFIG the same way) — here the checkpoint's gemma4_config.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torchtune_absent  # noqa: E402

torchtune_absent.install()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--backend", default="mlx")
    a = ap.parse_args()
    from executorch.examples.models.gemma4_31b.export import export_and_lower, load_gguf_model
    from executorch.examples.models.gemma4_31b.model import Gemma4_31BConfig

    config = Gemma4_31BConfig(**json.loads(Path(a.config).read_text()))
    model, config = load_gguf_model(a.gguf, backend=a.backend, config=config)
    export_and_lower(model, config, a.output_dir, backend=a.backend)


if __name__ == "__main__":
    main()
