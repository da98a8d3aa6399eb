"""Export the benchmark models: Llama-style decoders with random weights (fixed seeds) at two sizes,
in the variants the benchmarks compare. Reuses the fixture exporter's model and lowering code.

    tools/.venv/bin/python tools/python/export_bench_models.py [--size small|stories110m] [--variant mlx_fp32 ...]

Sizes (prefill chunk 128, context 512):
  small       ~28M parameters: dim 512, 8 layers, 8 heads / 2 KV heads, hidden 1536, vocab 4096
  stories110m dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000 (the llama2.c stories110M shape)
Output: tools/.work/bench/<size>_<variant>.pte (ignored by git; regenerate with this script).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_fixtures as ef  # noqa: E402
import models  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / ".work" / "bench"

SIZES = {
    "small": dict(dim=512, n_layers=8, n_heads=8, n_kv_heads=2, head_dim=64, hidden_dim=1536, vocab_size=4096),
    "stories110m": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=12, head_dim=64, hidden_dim=2048, vocab_size=32000),
}


def config(size: str) -> models.LMConfig:
    return models.LMConfig(**SIZES[size], max_context_len=512, max_seq_len=128)


def export(size: str, variant: str) -> Path:
    spec = ef.ModelSpec(f"bench_{size}", 2024, [variant], lambda: config(size), steps=[(128, 0)])
    family, dtype, _ = ef.variant_info(variant)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    m, cfg = ef.build_module(spec, variant)
    example, dynamic, _ = ef.example_and_dynamic(spec, cfg)
    example = tuple(x.to(torch_dtype) if x.is_floating_point() else x for x in example)
    with torch.no_grad():
        ep = torch.export.export(m, example, dynamic_shapes=dynamic)
    et = ef.lower(ep, family, ef.constant_methods(spec, cfg), external_constants=False)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{size}_{variant}.pte"
    path.write_bytes(et.buffer)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", action="append", choices=sorted(SIZES), default=[])
    ap.add_argument("--variant", action="append", default=[], help="plain, mlx_fp32, mlx_bf16, mlx_4bit, mlx_8bit, xnnpack_fp32")
    args = ap.parse_args()
    torch.manual_seed(0)
    for size in args.size or ["small"]:
        for variant in args.variant or ["mlx_fp32", "mlx_4bit"]:
            t0 = time.time()
            path = export(size, variant)
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
