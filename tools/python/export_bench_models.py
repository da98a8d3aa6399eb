"""Export the benchmark models: Llama-style decoders with random weights (fixed seeds) at two sizes,
in the variants the benchmarks compare. Reuses the fixture exporter's model and lowering code.

    tools/.venv/bin/python tools/python/export_bench_models.py [--size small|stories110m] [--variant mlx_fp32 ...]
                                                               [--state-dict] [--force]

Sizes (prefill chunk 128, context 512):
  small       ~28M parameters: dim 512, 8 layers, 8 heads / 2 KV heads, hidden 1536, vocab 4096
  stories110m dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000 (the llama2.c stories110M shape)
  llama1b     Llama-3.2-1B's shape: dim 2048, 16 layers, 32 heads / 8 KV heads, hidden 8192, vocab 128256, RoPE base
              500000 (untied output projection: 1.5B parameters; the state dict is 6 GB, the bf16 export 3 GB)
Variants (all from the same weights: seed SEED, models.init_weights_):
  mlx_fp32, mlx_bf16, mlx_8bit, mlx_4bit   one MLX delegate (mlxc); 8/4-bit: MLX quantize_model_ (group 32)
  plain                                    no delegate (ExecuTorch portable kernels)
  xnnpack_fp32                             XNNPACK delegate
  xnnpack_8da4w                            XNNPACK, linears int8 dynamic activations × int4 weights, group 32
                                           (torchao Int8DynamicActivationIntxWeightConfig; embedding fp32)
Output: tools/.work/bench/<size>_<variant>.pte (ignored by git; regenerate with this script); existing
files are kept unless --force. --state-dict also writes <size>_state_dict.pt (float32 parameters of the
plain module, the source of the GGUF files) and <size>_config.json.
"""
import argparse
import json
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_fixtures as ef  # noqa: E402
import models  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / ".work" / "bench"
SEED = 2024
GROUP_SIZE = 32

SIZES = {
    "small": dict(dim=512, n_layers=8, n_heads=8, n_kv_heads=2, head_dim=64, hidden_dim=1536, vocab_size=4096),
    "stories110m": dict(dim=768, n_layers=12, n_heads=12, n_kv_heads=12, head_dim=64, hidden_dim=2048, vocab_size=32000),
    "llama1b": dict(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, hidden_dim=8192, vocab_size=128256,
                    rope_base=500000.0),
}
VARIANTS = ["mlx_fp32", "mlx_bf16", "mlx_8bit", "mlx_4bit", "plain", "xnnpack_fp32", "xnnpack_8da4w"]


def config(size: str) -> models.LMConfig:
    return models.LMConfig(**SIZES[size], max_context_len=512, max_seq_len=128)


def spec(size: str, variant: str) -> ef.ModelSpec:
    return ef.ModelSpec(f"bench_{size}", SEED, [variant], lambda: config(size), steps=[(128, 0)])


def build(size: str, variant: str):
    """→ (module, config, family, torch dtype). Also serves the eager peer: variants eager_fp32 / eager_bf16 /
    eager_8bit / eager_4bit are the plain module at that precision (8/4-bit: the MLX variants' quantization)."""
    if variant.startswith("eager_"):
        kind = variant[len("eager_"):]
        m, cfg = ef.build_module(spec(size, "plain"), "plain")
        dtype = torch.bfloat16 if kind == "bf16" else torch.float32
        if kind == "bf16":
            m = m.to(torch.bfloat16)
        if kind in ("8bit", "4bit"):
            quantize_(m, "8w" if kind == "8bit" else "4w", embeddings=True)
        return m, cfg, "eager", dtype
    if variant == "xnnpack_8da4w":
        m, cfg = ef.build_module(spec(size, "xnnpack_fp32"), "xnnpack_fp32")
        quantize_(m, "8da4w", embeddings=False)
        return m, cfg, "xnnpack", torch.float32
    family, dtype, _ = ef.variant_info(variant)
    m, cfg = ef.build_module(spec(size, variant), variant)
    return m, cfg, family, (torch.bfloat16 if dtype == "bf16" else torch.float32)


def quantize_(m, linear: str, embeddings: bool) -> None:
    from executorch.extension.llm.export.quantize import quantize_model_

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_model_(m, qlinear_config=linear, qlinear_group_size=GROUP_SIZE,
                        qembedding_config=linear if embeddings else None, qembedding_group_size=GROUP_SIZE)
    m.eval()
    m.requires_grad_(False)


def export(size: str, variant: str) -> Path:
    m, cfg, family, torch_dtype = build(size, variant)
    s = spec(size, variant)
    example, dynamic, _ = ef.example_and_dynamic(s, cfg)
    example = tuple(x.to(torch_dtype) if x.is_floating_point() else x for x in example)
    with torch.no_grad():
        ep = torch.export.export(m, example, dynamic_shapes=dynamic)
    et = ef.lower(ep, family, ef.constant_methods(s, cfg), external_constants=False)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{size}_{variant}.pte"
    tmp = path.with_suffix(".pte.tmp")
    tmp.write_bytes(et.buffer)
    tmp.replace(path)
    return path


def save_state_dict(size: str) -> Path:
    """float32 parameters (no KV caches / RoPE tables) of the plain module: the same numbers every variant
    starts from, in models.py's names (tok_embeddings, layers.N.attention.wq, ..., norm, output)."""
    m, cfg = ef.build_module(spec(size, "plain"), "plain")
    sd = {k: v.detach().contiguous() for k, v in m.named_parameters()}   # no copy: 6 GB at the 1B size
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{size}_state_dict.pt"
    torch.save(sd, path)
    (OUT / f"{size}_config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", action="append", choices=sorted(SIZES), default=[])
    ap.add_argument("--variant", action="append", default=[], choices=VARIANTS)
    ap.add_argument("--state-dict", action="store_true", help="also save <size>_state_dict.pt (for GGUF conversion)")
    ap.add_argument("--force", action="store_true", help="re-export files that already exist")
    args = ap.parse_args()
    torch.manual_seed(0)
    for size in args.size or ["small"]:
        if args.state_dict:
            path = OUT / f"{size}_state_dict.pt"
            if args.force or not path.exists():
                path = save_state_dict(size)
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
        for variant in args.variant or ([] if args.state_dict else ["mlx_fp32", "mlx_4bit"]):
            path = OUT / f"{size}_{variant}.pte"
            t0 = time.time()
            if args.force or not path.exists():
                path = export(size, variant)
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
