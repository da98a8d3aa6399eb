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
