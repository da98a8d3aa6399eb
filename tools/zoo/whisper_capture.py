#!/usr/bin/env python3
"""Run a Whisper export script unchanged and record eager PyTorch references of every program it exports.

Usage: tools/.venv/bin/python tools/zoo/whisper_capture.py --out DIR --prompt-ids 1,2,3,4 [--decode N] [--seed S]
           -- -m some.export.module ARGS…

`torch.export.export` is wrapped (as tools/zoo/capture.py does for LLMs); each call is recognised by the class of
the module the script passes, which is the module after the script's quantization and source transforms:

  ExecuTorch's MLX script (export_whisper: three programs)
    encoder   WhisperEncoderExportable(mel [1, 80, F])                → hidden [1, F/2, d]
    cross_kv  WhisperCrossKVProjection(hidden)                       → (k_0…k_L-1, v_0…v_L-1) [1, H, F/2, D]
    decoder   WhisperDecoderWithCache(ids [1, T], pos [1], k…, v…)   → logits [1, T, V]
  optimum-executorch's asr task (one program, methods encoder / text_decoder)
    encoder       Seq2SeqLMEncoderExportableModule(mel)              → hidden
    text_decoder  Seq2SeqLMDecoderExportableModuleWithStaticCache(ids [1, 1], hidden, pos [1]) → logits [1, 1, V]

The references chain as a transcription does: a fixed mel (seeded, uniform in [-1, 1], Whisper's normalised
log-mel range) → the encoder's output → the cross-KV program's outputs → the decoder, fed the prompt (the
start-of-transcript, language, task and no-timestamps ids) then greedy tokens (argmax, lowest id on ties), one call
each (both scripts trace T = 1: export_whisper's Dim.AUTO specializes on its one-token example). Every call is written as mlxc run --inputs-dir
reads it: DIR/ref/<program>/step<K>.input<I>.npy and step<K>.output<J>.npy, inputs in the program's flattened
order (an input that is the previous call's tensor is not written again: absent means unchanged); DIR/whisper_reference.json says which programs, their steps, the greedy tokens and the top-2 margins.
Decoder modules carry a KV cache: they run on a deep copy, so the export traces the module as the script left it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import run_export_script, split_argv  # noqa: E402


def npy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        t = t.float()  # .npy has no bf16: references are widened (exact), the program's inputs cast back by tests
    return t.contiguous().numpy()


class WhisperRecorder:
    def __init__(self, out: Path, prompt_ids: list, decode: int, seed: int):
        self.out, self.prompt_ids, self.decode, self.seed = out, prompt_ids, decode, seed
        self.hidden = None      # the encoder's output for the fixed mel
        self.cross = None       # the cross-KV program's outputs
        self.programs = {}
        self.last_inputs = {}
        self.mel = None         # --mel: the encoder's input (a real clip's log-mel) instead of the seeded one

    def __call__(self, real_export, mod, args=(), kwargs=None, *rest, **kw):
        kind = type(mod).__name__
        handler = {"WhisperEncoderExportable": self.encoder, "Seq2SeqLMEncoderExportableModule": self.encoder,
                   "WhisperCrossKVProjection": self.cross_kv, "WhisperDecoderWithCache": self.mlx_decoder,
                   "Seq2SeqLMDecoderExportableModuleWithStaticCache": self.static_decoder}.get(kind)
        if handler is not None:
            with torch.no_grad():
                handler(copy.deepcopy(mod), args)
            self.write_index()
        return real_export(mod, args, kwargs, *rest, **kw)

    def save(self, program: str, step: int, inputs: list, outputs: list) -> None:
        d = self.out / "ref" / program
        d.mkdir(parents=True, exist_ok=True)
        last = self.last_inputs.setdefault(program, {})
        for i, t in enumerate(inputs):
            # An input that is the previous call's tensor (the decoder's cross K/V, the encoder output) is written
            # once: step<K>.input<I>.npy absent means "as at the previous call" (30 s Whisper base: 36 MB a call).
            if last.get(i) is t:
                continue
            last[i] = t
            np.save(d / f"step{step}.input{i}.npy", npy(t))
        for j, t in enumerate(outputs):
            np.save(d / f"step{step}.output{j}.npy", npy(t))

    def encoder(self, mod, args):
        (example,) = args
        g = torch.Generator().manual_seed(self.seed)
        mel = (torch.rand(example.shape, generator=g) * 2 - 1).to(example.dtype)
        if self.mel is not None:
            mel = torch.from_numpy(np.load(self.mel)).reshape(example.shape).to(example.dtype)
        out = mod(mel)
        self.hidden = out
        name = "encoder"
        self.save(name, 0, [mel], [out])
        self.programs[name] = {"steps": 1, "dtype": str(example.dtype).replace("torch.", "")}

    def cross_kv(self, mod, args):
        hidden = self.hidden if self.hidden is not None else args[0]
        ks, vs = mod(hidden)
        self.cross = (tuple(k.contiguous() for k in ks), tuple(v.contiguous() for v in vs))
        self.save("cross_kv", 0, [hidden], [*self.cross[0], *self.cross[1]])
        self.programs["cross_kv"] = {"steps": 1, "layers": len(ks)}

    def greedy(self, name, call, one_call_prompt: bool) -> None:
        """Prompt, then greedy decode; `call(ids list, position)` returns (inputs, logits [1, T, V])."""
        steps, greedy, pos, k = [], [], 0, 0
        chunks = [self.prompt_ids] if one_call_prompt else [[t] for t in self.prompt_ids]
        for ids in chunks:
            inputs, logits = call(ids, pos)
            self.save(name, k, inputs, [logits])
            pos, k = pos + len(ids), k + 1
        for _ in range(self.decode):
            last = logits.reshape(-1, logits.shape[-1])[-1].float()
            top = torch.topk(last, 2)
            nxt = int(torch.argmax(last))
            steps.append({"argmax": nxt, "top2_margin": float(top.values[0] - top.values[1])})
            greedy.append(nxt)
            inputs, logits = call([nxt], pos)
            self.save(name, k, inputs, [logits])
            pos, k = pos + 1, k + 1
        self.programs[name] = {"steps": k, "prompt": self.prompt_ids, "greedy": greedy, "greedy_steps": steps,
                               "prompt_calls": len(chunks)}

    def mlx_decoder(self, mod, args):
        ids_ex, pos_ex, ks_ex, vs_ex = args
        ks, vs = self.cross if self.cross is not None else (ks_ex, vs_ex)

        def call(ids, pos):
            t = torch.tensor([ids], dtype=ids_ex.dtype)
            p = torch.tensor([pos], dtype=pos_ex.dtype)
            return [t, p, *ks, *vs], mod(t, p, ks, vs)
        # Dim.AUTO with the script's one-token example specializes T to 1: the program takes one token per call.
        self.greedy("decoder", call, one_call_prompt=False)

    def static_decoder(self, mod, args):
        ids_ex, hidden_ex, pos_ex = args
        hidden = self.hidden if self.hidden is not None else hidden_ex

        def call(ids, pos):
            t = torch.tensor([ids], dtype=ids_ex.dtype)
            p = torch.tensor([pos], dtype=pos_ex.dtype)
            return [t, hidden, p], mod(t, hidden, p)
        self.greedy("text_decoder", call, one_call_prompt=False)

    def write_index(self):
        ref = {"programs": self.programs, "seed": self.seed,
               "note": "eager PyTorch on the modules passed to torch.export.export; mel = seeded uniform [-1, 1]; "
                       "each program fed the previous one's eager outputs; greedy = argmax, lowest id on ties"}
        (self.out / "whisper_reference.json").write_text(json.dumps(ref, indent=1) + "\n")


def main() -> int:
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prompt-ids", required=True, help="comma-separated decoder prompt (sot, language, task, notimestamps)")
    ap.add_argument("--decode", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mel", type=Path, help="the encoder's input as .npy [1, mels, frames] (default: seeded uniform)")
    a = ap.parse_args(own)
    a.out.mkdir(parents=True, exist_ok=True)
    rec = WhisperRecorder(a.out, [int(x) for x in a.prompt_ids.split(",")], a.decode, a.seed)
    rec.mel = a.mel
    real_export = torch.export.export

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        return rec(real_export, mod, args, kwargs, *r, **kw)
    run_export_script(rest, wrapped)
    if not rec.programs:
        raise SystemExit("whisper_capture: the script exported no Whisper module")
    return 0


if __name__ == "__main__":
    sys.exit(main())
