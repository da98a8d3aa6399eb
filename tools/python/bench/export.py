"""Which file each peer runs for a model size and precision, and producing the missing ones.

    peer      fp32                  bf16              8bit              4bit
    mlxc      <size>_mlx_fp32.pte   _mlx_bf16.pte     _mlx_8bit.pte     _mlx_4bit.pte        (MLX delegate; also mlxc-avx2)
    xnnpack   _xnnpack_fp32.pte     —                 —                 _xnnpack_8da4w.pte
    mlxc-xnnpack  the xnnpack peer's very files (mlxc inlines the XNNPACK delegates: the same file, two runtimes)
    portable  _plain.pte            —                 —                 —
    eager     _state_dict.pt → models.DecoderLM (plain) at the precision (8/4-bit: the MLX variants' torchao
              weight-only quantization)
    llamacpp  _F32.gguf             _F16.gguf         _Q8_0.gguf        _Q4_0.gguf

All in tools/.work/bench/, from one state dict (export_bench_models.py, seed 2024). Existing files are reused
(delete them or pass --force-export to the driver to regenerate).
The 1B-class size (llama1b, Llama-3.2-1B's shape) is measured at bf16 and 4-bit by mlxc and llama.cpp only: its
fp32 exports take ~6 GB each, and the Python peers would take minutes per token at that size.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1]
OUT = TOOLS / ".work" / "bench"
PY = sys.executable

MLX = {"fp32": "mlx_fp32", "bf16": "mlx_bf16", "8bit": "mlx_8bit", "4bit": "mlx_4bit"}
XNNPACK = {"fp32": "xnnpack_fp32", "4bit": "xnnpack_8da4w"}
PORTABLE = {"fp32": "plain"}
GGUF = {"fp32": "F32", "bf16": "F16", "8bit": "Q8_0", "4bit": "Q4_0"}
# sizes measured on a subset only: size → (precisions, peers)
LIMITED = {"llama1b": (("bf16", "4bit"), ("mlxc", "mlxc-avx2", "llamacpp"))}
# sizes whose measurements are shortened (each peer alike): size → (decode tokens, runs) at most
SHORTENED = {"llama1b": (32, 3)}


def artifact(peer: str, size: str, precision: str):
    """→ (path, label) or None when the peer has no such variant."""
    if size in LIMITED and (precision not in LIMITED[size][0] or peer not in LIMITED[size][1]):
        return None
    if peer in ("mlxc", "mlxc-avx2", "mlxc-unfused") and precision in MLX:
        return OUT / f"{size}_{MLX[precision]}.pte", MLX[precision]
    if peer in ("mlxc-plain", "mlxc-plain-unfused") and precision in PORTABLE:
        return OUT / f"{size}_{PORTABLE[precision]}.pte", PORTABLE[precision]
    if peer in ("xnnpack", "mlxc-xnnpack") and precision in XNNPACK:
        return OUT / f"{size}_{XNNPACK[precision]}.pte", XNNPACK[precision]
    if peer == "portable" and precision in PORTABLE:
        return OUT / f"{size}_{PORTABLE[precision]}.pte", PORTABLE[precision]
    if peer == "eager":
        return OUT / f"{size}_state_dict.pt", f"eager {precision}"
    if peer == "llamacpp" and precision in GGUF:
        return OUT / f"{size}_{GGUF[precision]}.gguf", GGUF[precision]
    return None


def ensure(sizes, precisions, peers, force: bool, log) -> dict:
    """Exports what is missing; → {"seconds": ..., "gguf_check": {size: json}}."""
    t0 = time.time()
    info = {"gguf_check": {}}
    for size in sizes:
        variants = []
        for peer in peers:
            for precision in precisions:
                a = artifact(peer, size, precision)
                if a and a[0].suffix == ".pte" and (force or not a[0].exists()):
                    variants.append(a[0].stem[len(size) + 1:])
        need_sd = force or not (OUT / f"{size}_state_dict.pt").exists() or not (OUT / f"{size}_config.json").exists()
        if variants or need_sd:
            cmd = [PY, str(TOOLS / "python" / "export_bench_models.py"), "--size", size, "--state-dict"]
            cmd += [x for v in dict.fromkeys(variants) for x in ("--variant", v)]
            if force:
                cmd.append("--force")
            log(f"export: {' '.join(cmd[1:])}")
            subprocess.run(cmd, check=True, stdout=sys.stderr)
        if "llamacpp" in peers:
            ggufs = [p for p in precisions if p in GGUF and artifact("llamacpp", size, p)]
            # the logits check runs eager PyTorch at every precision: the layout it checks is the same at every
            # size, so the limited (large) sizes are converted without it
            cmd = [PY, str(HERE / "gguf_export.py"), "--size", size] + ([] if size in LIMITED else ["--check"])
            cmd += [x for p in ggufs for x in ("--precision", p)]
            if force:
                cmd.append("--force")
            log(f"gguf: {' '.join(cmd[1:])}")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            import json
            if size not in LIMITED:
                info["gguf_check"][size] = json.loads((OUT / f"{size}_gguf_check.json").read_text())
    info["seconds"] = time.time() - t0
    return info
