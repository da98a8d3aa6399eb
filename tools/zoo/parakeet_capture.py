#!/usr/bin/env python3
"""Run ExecuTorch's Parakeet TDT export script unchanged on a local tiny checkpoint, and record eager references of
every method it exports plus NeMo's own greedy TDT decode, on a real clip.

Usage: PYTHONPATH=tools/.venv/nemo tools/.venv/bin/python tools/zoo/parakeet_capture.py --out DIR --nemo CKPT.nemo
           --audio CLIP.wav -- -m executorch.examples.models.parakeet.export_parakeet_tdt --backend portable --output-dir DIR

The script loads `nvidia/parakeet-tdt-0.6b-v3` from the hub (`ASRModel.from_pretrained`, `hf_hub_download` of the
`.nemo` for its tokenizer): both are pointed at the local `.nemo` for the run; nothing else of the script changes.
`torch.export.export` is wrapped (as capture.py does); each call is recognised by the class of the module passed:

  preprocessor  PreprocessorWrapper(audio [N] f32, length [1] i64)           → (mel [1, F, T], mel_len [1])
  encoder       EncoderWithProjection(audio_signal [1, F, T], length [1])     → (f_proj [1, T/8, J], enc_len [1])
  decoder_step  DecoderStep(token [1, 1] i64, h [L, 1, P], c [L, 1, P])      → (g_proj [1, 1, J], h, c)
  joint         JointWithArgmax(f [1, 1, J], g [1, 1, J])                    → (token_id i64, duration_idx i64)

The references chain as a transcription does: the clip's samples → the preprocessor → the encoder → the script's
own greedy TDT loop (`greedy_decode_executorch`'s rules: blank primes the prediction network, blank advances by
max(duration, 1), a token by its duration, at most 10 symbols per frame) run on the eager modules, each call written
as `mlxc run --inputs-dir` reads it: DIR/ref/<method>/step<K>.input<I>.npy, step<K>.output<J>.npy. NeMo's own
greedy TDT decode of the eager encoder output (tokens, frame indices, durations, word offsets) is recorded beside
it in DIR/parakeet_reference.json, with the top-2 margins of every joint call.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import wave
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import run_export_script, split_argv  # noqa: E402

DURATIONS = [0, 1, 2, 3, 4]
MAX_SYMBOLS = 10


def read_wav(path: Path) -> torch.Tensor:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getframerate() != 16000:
            raise SystemExit(f"{path}: expected 16-bit 16 kHz PCM")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
    return torch.from_numpy(x.astype(np.float32).mean(axis=1) / 32768.0)


def npy(t) -> np.ndarray:
    return t.detach().contiguous().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


class ParakeetRecorder:
    def __init__(self, out: Path, audio: torch.Tensor):
        self.out, self.audio = out, audio
        self.model = None
        self.mel = self.mel_len = self.f_proj = self.enc_len = None
        self.decoder = None
        self.methods = {}
        self.decode = {}

    def __call__(self, real_export, mod, args=(), kwargs=None, *rest, **kw):
        handler = {"PreprocessorWrapper": self.preprocessor, "EncoderWithProjection": self.encoder,
                   "DecoderStep": self.decoder_step, "JointWithArgmax": self.joint}.get(type(mod).__name__)
        if handler is not None:
            with torch.no_grad():
                handler(mod, args, kwargs or {})
            self.write_index()
        return real_export(mod, args, kwargs, *rest, **kw)

    def save(self, method: str, step: int, inputs: list, outputs: list) -> None:
        d = self.out / "ref" / method
        d.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(inputs):
            np.save(d / f"step{step}.input{i}.npy", npy(t))
        for j, t in enumerate(outputs):
            np.save(d / f"step{step}.output{j}.npy", npy(t))

    def preprocessor(self, mod, args, kwargs):
        length = torch.tensor([self.audio.shape[0]], dtype=torch.int64)
        self.mel, self.mel_len = mod(self.audio, length)
        self.save("preprocessor", 0, [self.audio, length], [self.mel, self.mel_len])
        self.methods["preprocessor"] = {"steps": 1, "samples": int(self.audio.shape[0])}

    def encoder(self, mod, args, kwargs):
        self.f_proj, self.enc_len = mod(audio_signal=self.mel, length=self.mel_len)
        self.save("encoder", 0, [self.mel, self.mel_len], [self.f_proj, self.enc_len])
        self.methods["encoder"] = {"steps": 1, "frames": int(self.enc_len[0])}

    def decoder_step(self, mod, args, kwargs):
        self.decoder = copy.deepcopy(mod)

    def joint(self, mod, args, kwargs):
        """The script's greedy TDT loop on the eager modules, each call recorded."""
        joint, dec = mod, self.decoder
        h0, c0 = torch.zeros(dec.pred_rnn_layers, 1, dec.pred_hidden), torch.zeros(dec.pred_rnn_layers, 1, dec.pred_hidden)
        blank = mod.num_token_classes - 1
        dsteps, jsteps = [0], [0]

        def step(token, h, c):
            tok = torch.tensor([[token]], dtype=torch.long)
            g, h2, c2 = dec(tok, h, c)
            self.save("decoder_step", dsteps[0], [tok, h, c], [g, h2, c2])
            dsteps[0] += 1
            return g, h2, c2

        g, h, c = step(blank, h0, c0)
        tokens, frames, durations, margins = [], [], [], []
        t, symbols, T = 0, 0, int(self.enc_len[0])
        while t < T:
            f = self.f_proj[:, t:t + 1, :].contiguous()
            k, d = joint(f, g)
            logits = joint.joint.joint_after_projection(f, g).squeeze()
            tl, dl = logits[:joint.num_token_classes], logits[joint.num_token_classes:]
            margins.append([float((lambda v: v[0] - v[1])(torch.topk(tl, 2).values)),
                            float((lambda v: v[0] - v[1])(torch.topk(dl, 2).values))])
            self.save("joint", jsteps[0], [f, g], [k, d])
            jsteps[0] += 1
            k, dur = int(k), DURATIONS[int(d)]
            if k == blank:
                t += max(dur, 1)
                symbols = 0
                continue
            tokens.append(k)
            frames.append(t)
            durations.append(dur)
            g, h, c = step(k, h, c)
            t += dur
            if dur == 0:
                symbols += 1
                if symbols >= MAX_SYMBOLS:
                    t += 1
                    symbols = 0
            else:
                symbols = 0
        self.methods["decoder_step"] = {"steps": dsteps[0]}
        self.methods["joint"] = {"steps": jsteps[0]}
        self.decode["script_loop"] = {"tokens": tokens, "frames": frames, "durations": durations,
                                      "joint_top2_margins": margins}
        self.nemo_decode()

    def nemo_decode(self):
        """NeMo's greedy TDT (the model's decoding strategy) on the eager encoder, with word timestamps."""
        m = self.model
        if m is None:
            return
        from omegaconf import open_dict
        cfg = copy.deepcopy(m.cfg.decoding)
        with open_dict(cfg):
            cfg.strategy = "greedy"
            cfg.compute_timestamps = True
            cfg.greedy.max_symbols = MAX_SYMBOLS
        m.change_decoding_strategy(cfg, verbose=False)
        enc, enc_len = m.encoder(audio_signal=self.mel, length=self.mel_len)
        hyp = m.decoding.rnnt_decoder_predictions_tensor(encoder_output=enc, encoded_lengths=enc_len,
                                                         return_hypotheses=True)
        hyp = hyp[0] if isinstance(hyp, (list, tuple)) and not hasattr(hyp, "y_sequence") else hyp
        hyp = hyp[0] if isinstance(hyp, list) else hyp
        ts = hyp.timestamp if isinstance(hyp.timestamp, dict) else {}
        words = [{"word": w.get("word"), "start_offset": int(w["start_offset"]), "end_offset": int(w["end_offset"])}
                 for w in ts.get("word", [])]
        self.decode["nemo"] = {"tokens": [int(x) for x in hyp.y_sequence],
                               "frames": [int(x) for x in (ts.get("timestep") or [])],
                               "durations": [int(x) for x in (getattr(hyp, "token_duration", None) or [])],
                               "text": hyp.text, "words": words,
                               "frame_seconds": float(m.cfg.preprocessor.window_stride) * 8}

    def write_index(self):
        ref = {"methods": self.methods, "decode": self.decode,
               "note": "eager PyTorch on the modules passed to torch.export.export, chained on the clip's samples; "
                       "script_loop = greedy_decode_executorch's rules on the eager modules; nemo = NeMo's greedy TDT"}
        (self.out / "parakeet_reference.json").write_text(json.dumps(ref, indent=1) + "\n")


def main() -> int:
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nemo", type=Path, required=True, help="the tiny checkpoint (parakeet_checkpoint.py)")
    ap.add_argument("--audio", type=Path, required=True, help="16 kHz 16-bit WAV the references are taken on")
    a = ap.parse_args(own)
    a.out.mkdir(parents=True, exist_ok=True)
    rec = ParakeetRecorder(a.out, read_wav(a.audio))

    import huggingface_hub
    import nemo.collections.asr as nemo_asr

    def local_model(cls, *args, **kw):
        rec.model = nemo_asr.models.ASRModel.restore_from(str(a.nemo.resolve()), map_location="cpu")
        return rec.model
    nemo_asr.models.ASRModel.from_pretrained = classmethod(local_model)
    huggingface_hub.hf_hub_download = lambda *args, **kw: str(a.nemo.resolve())

    real_export = torch.export.export

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        return rec(real_export, mod, args, kwargs, *r, **kw)
    run_export_script(rest, wrapped)
    if len(rec.methods) < 4:
        raise SystemExit(f"parakeet_capture: recorded only {sorted(rec.methods)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
