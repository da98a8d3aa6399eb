#!/usr/bin/env bash
# What the speech benchmark needs besides mlxc, built once into tools/.work/speech/ (idempotent; called by
# `tools/bench --speech`). Prints `--unavailable PEER=why` arguments for what could not be built.
#   1. optimum-executorch's XNNPACK export of the same Whisper base HF folder (transformers 5.0.0rc1 overlay, as
#      the zoo exports optimum's Whisper): whisper-base-xnnpack/model.pte (~5 min on 2 idle cores)
#   2. whisper.cpp from a source tree: $WHISPER_CPP_SRC, else tools/.work/speech/whisper.cpp (a checkout of
#      ggml-org/whisper.cpp put there by hand; none is downloaded: only Debian and PyPI are reachable here); cmake (Debian's, installed when missing) -DCMAKE_BUILD_TYPE=Release (-O3), GGML_NATIVE (AMX off where
#      the VM lists it, as tools/bench does for llama.cpp); whisper-cli and whisper-quantize only (~5 min)
#   3. ggml models from the same HF folder by whisper.cpp's own models/convert-h5-to-ggml.py (f16), which needs
#      vocab.json/added_tokens.json (written from tokenizer.json) and openai-whisper's whisper/assets/mel_filters.npz
#      ($OPENAI_WHISPER_SRC, else tools/.work/speech/openai-whisper: a checkout of openai/whisper), then its quantize
#      tool: q4_0, q4_1
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="$repo/tools/.venv"
py="$venv/bin/python"
work="$repo/tools/.work/speech"
real="${MLXC_REAL_MODELS_DIR:-$repo/tools/.work/real-models}"
hf="$real/whisper-base-hf"
mkdir -p "$work"
say() { echo "[speech-setup $(date +%H:%M:%S)] $*" >&2; }
unavailable() { printf -- '--unavailable\n%s=%s\n' "$1" "$2"; }

if [ ! -f "$hf/model.safetensors" ]; then
  say "no $hf: tools/real-models/prepare whisper fetch"
  "$repo/tools/real-models/prepare" whisper fetch >&2 || true
fi

# 1. optimum's XNNPACK export
xnn="$work/whisper-base-xnnpack"
if [ ! -f "$xnn/model.pte" ] && [ -f "$hf/model.safetensors" ]; then
  say "exporting optimum's XNNPACK Whisper (log: $work/xnnpack_export.log)"
  HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$venv/tf5rc1" nice "$py" -m optimum.commands.optimum_cli \
    export executorch --model "$hf" --task automatic-speech-recognition --recipe xnnpack --max_seq_len 256 \
    --output_dir "$xnn" > "$work/xnnpack_export.log" 2>&1 || say "XNNPACK export failed"
fi
if [ -f "$xnn/model.pte" ]; then
  for f in tokenizer.json tokenizer_config.json config.json generation_config.json preprocessor_config.json; do
    [ -f "$xnn/$f" ] || cp "$hf/$f" "$xnn/$f"
  done
fi

# 2. whisper.cpp
src="${WHISPER_CPP_SRC:-$work/whisper.cpp}"
if [ ! -f "$src/CMakeLists.txt" ]; then
  for q in f16 q4_0 q4_1; do
    unavailable "whispercpp-$q" "no whisper.cpp source tree at $src (put a checkout of ggml-org/whisper.cpp there, or set WHISPER_CPP_SRC)"
  done
  exit 0
fi
cli="$src/build/bin/whisper-cli"
if [ -f "$src/CMakeLists.txt" ] && { [ ! -x "$cli" ] || [ ! -x "$src/build/bin/whisper-quantize" ]; }; then
  command -v cmake >/dev/null || { say "installing cmake (apt)"; apt-get install -y -qq cmake >&2 || { apt-get update -qq && apt-get install -y -qq cmake >&2; }; }
  isa="-DGGML_NATIVE=ON"
  if grep -q amx_int8 /proc/cpuinfo 2>/dev/null; then
    isa="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    for f in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 avx512vbmi:AVX512_VBMI \
             avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
      grep -qw "${f%%:*}" /proc/cpuinfo && isa+=" -DGGML_${f##*:}=ON"
    done
  fi
  say "building whisper.cpp (whisper-cli, whisper-quantize; log: $work/whispercpp_build.log)"
  # shellcheck disable=SC2086
  { cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DWHISPER_BUILD_TESTS=OFF \
      -DWHISPER_BUILD_SERVER=OFF -DWHISPER_SDL2=OFF $isa && \
    nice cmake --build "$src/build" -j"$(nproc)" --target whisper-cli whisper-quantize; } > "$work/whispercpp_build.log" 2>&1 \
    || say "whisper.cpp did not build"
fi
if [ ! -x "$cli" ]; then
  for q in f16 q4_0 q4_1; do unavailable "whispercpp-$q" "whisper.cpp did not build (see $work/whispercpp_build.log)"; done
  exit 0
fi
[ -f "$src/.source" ] || echo "source tree $(git -C "$src" rev-parse --short HEAD 2>/dev/null || basename "$src")" > "$src/.source"

# 3. ggml models
ggml="$work/ggml"
mkdir -p "$ggml"
if [ ! -f "$ggml/ggml-model.bin" ]; then
  ow="${OPENAI_WHISPER_SRC:-$work/openai-whisper}"
  if [ ! -f "$ow/whisper/assets/mel_filters.npz" ]; then
    for q in f16 q4_0 q4_1; do
      unavailable "whispercpp-$q" "whisper.cpp's converter needs openai-whisper's whisper/assets/mel_filters.npz under $ow (a checkout of openai/whisper, or set OPENAI_WHISPER_SRC)"
    done
    exit 0
  fi
  # The converter reads the HF folder's vocab.json and added_tokens.json; this HF folder has tokenizer.json only.
  conv="$work/hf-for-ggml"
  mkdir -p "$conv"
  for f in config.json generation_config.json model.safetensors preprocessor_config.json tokenizer.json tokenizer_config.json; do
    ln -sf "$hf/$f" "$conv/$f"
  done
  "$py" - "$conv" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
t = json.loads((d / "tokenizer.json").read_text())
vocab = t["model"]["vocab"]
(d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
(d / "added_tokens.json").write_text(json.dumps({a["content"]: a["id"] for a in t["added_tokens"] if a["content"] not in vocab}, ensure_ascii=False))
EOF
  nice "$py" "$src/models/convert-h5-to-ggml.py" "$conv" "$ow" "$ggml" > "$ggml/convert.log" 2>&1 \
    || say "ggml conversion failed (see $ggml/convert.log)"
fi
for q in q4_0 q4_1; do
  if [ -f "$ggml/ggml-model.bin" ] && [ ! -f "$ggml/ggml-model-$q.bin" ]; then
    "$src/build/bin/whisper-quantize" "$ggml/ggml-model.bin" "$ggml/ggml-model-$q.bin" "$q" > "$ggml/quantize-$q.log" 2>&1 \
      || say "quantize $q failed (see $ggml/quantize-$q.log)"
  fi
done
exit 0
