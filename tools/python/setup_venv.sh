#!/usr/bin/env bash
# Creates tools/.venv with the pinned export toolchain, and makes the MLX delegate's ahead-of-time
# export importable on Linux (the wheel lacks generated serializer files; see FORMATS.md §3.8).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
if ! "$py" -c 'import torch, executorch, torchao' 2>/dev/null; then
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)
  if [ -n "$wheel" ]; then
    "$py" -m pip install -q "$wheel"
  else
    "$py" -m pip install -q torch==2.13.0
  fi
  echo "torch==2.13.0" > "$venv/constraints.txt"
  "$py" -m pip install -q -c "$venv/constraints.txt" -r "$here/requirements.txt"
fi
"$py" "$here/mlx_generated_files.py"
# The zoo's optimum-executorch paths (tools/zoo): optimum-executorch 1.1.0 pins transformers 5.0.0rc1, which the
# rest of the toolchain must not be downgraded to (REAL-MODELS.md). So: optimum-executorch without its pins in
# the venv, and transformers 5.0.0rc1 (+ its tokenizers/hub) in an overlay folder put first on PYTHONPATH only
# for the commands that need it.
if ! "$py" -c 'import optimum.exporters.executorch' 2>/dev/null; then
  "$py" -m pip install -q -c "$venv/constraints.txt" --no-deps optimum-executorch==1.1.0 "optimum~=2.0.0"
  "$py" -m pip install -q -c "$venv/constraints.txt" accelerate httpx
fi
if [ ! -d "$venv/tf5rc1/transformers" ]; then
  "$py" -m pip install -q --no-deps --target "$venv/tf5rc1" transformers==5.0.0rc1 tokenizers==0.22.2 huggingface_hub==1.2.3
fi
