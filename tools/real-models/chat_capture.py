#!/usr/bin/env python3
"""Eager PyTorch's greedy answer to a chat prompt, from the very module an export script would export.

Usage: tools/.venv/bin/python tools/real-models/chat_capture.py --chat CHAT_REFERENCE.json --out OUT.json
           [--max-new 32] -- -m some.export.module ARGS…

Like tools/zoo/capture.py, `torch.export.export` is wrapped; on its first call the module (after the script's
quantization and source transforms) is run eagerly on the prompt ids of CHAT_REFERENCE.json (convert_gguf.py
--check: the question rendered through the model's chat template and tokenized by transformers) — the prompt in
one call (cache_position 0…T-1), then greedy one token per call (argmax, lowest id on ties) until the EOS id or
--max-new tokens. The export itself is then abandoned (exit 0): only the reference is wanted.
Writes OUT.json: {"prompt_ids", "answer_ids", "top2_margins", "eos_id", "answer"} (answer: the ids decoded by the
tokenizer.json next to CHAT_REFERENCE.json, special tokens skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zoo"))
from capture import run_export_script, split_argv  # noqa: E402


def main() -> int:
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--chat", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-new", type=int, default=32)
    a = ap.parse_args(own)
    chat = json.loads(a.chat.read_text())
    prompt, eos = chat["prompt_ids"], chat["eos_id"]

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        kwargs = kwargs or {}
        names = list(kwargs) or ["input_ids", "cache_position"]
        position, answer, margins = 0, [], []

        def call(toks):
            nonlocal position
            t = torch.tensor([toks], dtype=torch.long)
            p = torch.arange(position, position + len(toks), dtype=torch.long)
            with torch.no_grad():
                out = mod(**{names[0]: t, names[1]: p}) if kwargs else mod(t, p)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if hasattr(out, "logits"):
                out = out.logits
            position += len(toks)
            return out.reshape(-1, out.shape[-1])[-1].float()

        last = call(prompt)
        while len(answer) < a.max_new:
            top = torch.topk(last, 2)
            nxt = int(torch.argmax(last))
            answer.append(nxt)
            margins.append(float(top.values[0] - top.values[1]))
            if nxt == eos:
                break
            last = call([nxt])
        from tokenizers import Tokenizer
        text = Tokenizer.from_file(str(a.chat.parent / "tokenizer.json")).decode(answer, skip_special_tokens=True)
        a.out.write_text(json.dumps({"prompt_ids": prompt, "answer_ids": answer, "top2_margins": margins,
                                     "eos_id": eos, "answer": text, "note": "eager PyTorch on the module passed to torch.export.export"},
                                    indent=1) + "\n")
        print(f"chat_capture: answer {answer} {text!r}", file=sys.stderr, flush=True)
        os._exit(0)  # the export is not needed

    run_export_script(rest, wrapped)
    raise SystemExit("chat_capture: the script never called torch.export.export")


if __name__ == "__main__":
    sys.exit(main())
