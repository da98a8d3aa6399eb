#!/usr/bin/env python3
"""Run ExecuTorch's Voxtral Realtime export script unchanged and record eager PyTorch references of every method it
exports, chained as ExecuTorch's own runner (examples/models/voxtral_realtime/voxtral_realtime_runner.cpp) runs them.

Usage: tools/.venv/bin/python tools/zoo/voxtral_rt_capture.py --out DIR --ckpt CKPT --audio CLIP.wav
           [--max-new-tokens N] [--preprocessor streaming|offline]
           -- -m executorch.examples.models.voxtral_realtime.export_voxtral_rt ARGS…

`torch.export.export` is wrapped (as capture.py does); each module the script exports is deep-copied before export
(zero conv and KV-cache state) and recognised by its class: StreamingAudioEncoderExport → encode_audio_chunk,
AudioEncoderExport → audio_encoder, TextDecoderExport → text_decoder, TokenEmbeddingExport → token_embedding.
The mel front end is extension/audio/mel_spectrogram.py's WhisperAudioProcessor(feature_size=128, streaming=True)
for a streaming export (what `--streaming` writes as preprocessor.pte), or (max_audio_len=300) offline.

Streaming (StreamingSession::feed_audio / try_process_step / decode_step / flush), the clip fed whole:
  a step needs step + right look-ahead samples past those consumed (1280 + 40); its window is 320 samples of left
  overlap (zeros before the start) + 1280 + 40 = 1640 samples → preprocessor → mel [1, 128, 10] → frames 2..9
  (mel_skip_frames) → encode_audio_chunk(mel [1, 128, 8], enc_pos [4] = 4k…4k+3) → audio embedding [1, 1, dim];
  token_embedding(previous token [1, 1], <s> first) + the audio embedding → text_decoder(embeds [1, 1, dim],
  cache_position [k]) → logits; greedy argmax; </s> stops. At the end (flush) the partial tail is padded with
  zeros to whole steps + delay_tokens steps + the look-ahead and stepped through the same way.
Offline (VoxtralRealtimeRunner::transcribe): preprocessor (30 s chunks) → audio_encoder → [1, T, dim]; position p
  < T feeds audio[p] + token_embedding(previous), later positions the token embedding alone; greedy until </s> or
  T + max_new_tokens.

Calls are written as `mlxc run --inputs-dir` reads them: DIR/ref/<method>/step<K>.input<I>.npy, step<K>.output<J>.npy;
the tokens, each token's step and the step's audio end time go to DIR/voxtral_rt_reference.json.
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

CLASSES = {"StreamingAudioEncoderExport": "encode_audio_chunk", "AudioEncoderExport": "audio_encoder",
           "TextDecoderExport": "text_decoder", "TokenEmbeddingExport": "token_embedding"}
BOS, EOS = 1, 2
# The streaming step protocol's constants, as export_streaming() writes them into the program's metadata.
STEP, LEFT, RIGHT, MEL_SKIP, CHUNK_MEL = 1280, 320, 40, 2, 8


def npy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.contiguous().numpy()


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


class Recorder:
    def __init__(self, out: Path):
        self.out = out
        self.mods = {}
        self.steps = {}

    def hook(self, real_export, mod, args=(), kwargs=None, *rest, **kw):
        name = CLASSES.get(type(mod).__name__)
        if name is not None and name not in self.mods:
            self.mods[name] = copy.deepcopy(mod)   # before export: the state buffers as the program starts
        print(f"[voxtral_rt_capture] export {type(mod).__name__} -> {name}", flush=True)
        return real_export(mod, args, kwargs, *rest, **kw)

    def save(self, method: str, inputs: list, outputs: list, limit: int | None = None) -> None:
        k = self.steps.get(method, 0)
        self.steps[method] = k + 1
        if limit is not None and k >= limit:
            return
        d = self.out / "ref" / method
        d.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(inputs):
            np.save(d / f"step{k}.input{i}.npy", npy(t))
        for j, t in enumerate(outputs):
            np.save(d / f"step{k}.output{j}.npy", npy(t))

    def decode(self, embeds: torch.Tensor, pos: int, prev: int, dtype) -> tuple:
        """One decoder position: token_embedding(prev) (+ embeds), text_decoder → (argmax, top-2 margin)."""
        tid = torch.tensor([[prev]], dtype=torch.long)
        e = self.mods["token_embedding"](tid)
        self.save("token_embedding", [tid], [e])
        x = e if embeds is None else (embeds.float() + e.float()).to(dtype)
        p = torch.tensor([pos], dtype=torch.long)
        logits = self.mods["text_decoder"](x, p)
        self.save("text_decoder", [x, p], [logits])
        last = logits[0, -1].float()
        top = torch.topk(last, 2)
        return int(torch.argmax(last)), float(top.values[0] - top.values[1])

    @torch.no_grad()
    def streaming(self, pcm: np.ndarray, delay_tokens: int, preprocessor_steps: int) -> dict:
        from executorch.extension.audio.mel_spectrogram import WhisperAudioProcessor
        pre = WhisperAudioProcessor(feature_size=128, streaming=True).eval()
        enc = self.mods["encode_audio_chunk"]
        dtype = next(enc.parameters()).dtype
        buf = list(pcm.astype(np.float32) / 32768.0)
        state = {"consumed": 0, "enc": 0, "dec": 0, "prev": BOS, "eos": False}
        tokens, token_steps, margins, step_end = [], [], [], []

        def step() -> bool:
            c = state["consumed"]
            if len(buf) < c + STEP + RIGHT:
                return False
            window = np.zeros(LEFT + STEP + RIGHT, dtype=np.float32)
            lo = c - LEFT
            if lo >= 0:
                window[:LEFT] = buf[lo:c]
            elif c > 0:
                window[LEFT - c:LEFT] = buf[:c]
            window[LEFT:] = buf[c:c + STEP + RIGHT]
            w = torch.from_numpy(window)
            mel = pre(w)
            self.save("preprocessor", [w], [mel], limit=preprocessor_steps)
            chunk = mel[:, :, MEL_SKIP:MEL_SKIP + CHUNK_MEL].contiguous().to(dtype)
            enc_pos = torch.arange(state["enc"], state["enc"] + CHUNK_MEL // 2, dtype=torch.long)
            audio = enc(chunk, enc_pos)
            self.save("encode_audio_chunk", [chunk, enc_pos], [audio])
            state["enc"] += CHUNK_MEL // 2
            state["consumed"] += STEP
            nxt, margin = self.decode(audio, state["dec"], state["prev"], dtype)
            step_end.append(state["consumed"] / 16000)
            margins.append(margin)
            if nxt == EOS:
                state["eos"] = True
                return True
            tokens.append(nxt)
            token_steps.append(state["dec"])
            state["prev"] = nxt
            state["dec"] += 1
            return True

        while not state["eos"] and step():
            pass
        fed_steps = len(step_end)
        remaining = len(buf) - state["consumed"]
        if remaining > 0 and not state["eos"]:
            pad_to = ((remaining + STEP - 1) // STEP + delay_tokens) * STEP + RIGHT
            buf.extend([0.0] * (pad_to - remaining))
            while not state["eos"] and step():
                pass
        return {"tokens": tokens, "token_steps": token_steps, "step_audio_end_s": step_end, "top2_margins": margins,
                "steps": len(step_end), "steps_before_flush": fed_steps, "eos": state["eos"],
                "delay_tokens": delay_tokens}

    @torch.no_grad()
    def offline(self, pcm: np.ndarray, max_new_tokens: int, max_seq_len: int) -> dict:
        from executorch.extension.audio.mel_spectrogram import WhisperAudioProcessor
        pre = WhisperAudioProcessor(feature_size=128, max_audio_len=300).eval()
        wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
        mel = pre(wav)
        self.save("preprocessor", [wav], [mel])
        enc = self.mods["audio_encoder"]
        dtype = next(enc.parameters()).dtype
        audio = enc(mel.to(dtype))
        self.save("audio_encoder", [mel.to(dtype)], [audio])
        t_audio = audio.shape[1]
        prev, tokens, margins, eos = BOS, [], [], False
        for pos in range(min(max_new_tokens + t_audio, max_seq_len)):
            nxt, margin = self.decode(audio[:, pos:pos + 1] if pos < t_audio else None, pos, prev, dtype)
            margins.append(margin)
            if nxt == EOS:
                eos = True
                break
            tokens.append(nxt)
            prev = nxt
        return {"tokens": tokens, "top2_margins": margins, "audio_positions": int(t_audio), "eos": eos,
                "max_new_tokens": max_new_tokens}


def option(command: list, flag: str, default):
    return type(default)(command[command.index(flag) + 1]) if flag in command else default


def main() -> int:
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--max-new-tokens", type=int, default=16, help="offline: positions past the audio (runner's "
                    "--offline_max_new_tokens)")
    ap.add_argument("--preprocessor-steps", type=int, default=4, help="streaming: preprocessor calls recorded")
    a = ap.parse_args(own)
    a.out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(a.out)
    real_export = torch.export.export

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        return rec.hook(real_export, mod, args, kwargs, *r, **kw)
    run_export_script(rest, wrapped)
    torch.export.export = real_export
    pcm = read_wav(a.audio)
    streaming = "--streaming" in rest
    need = {"token_embedding", "text_decoder", "encode_audio_chunk" if streaming else "audio_encoder"}
    if need - set(rec.mods):
        raise SystemExit(f"voxtral_rt_capture: the script exported no {sorted(need - set(rec.mods))}")
    if streaming:
        result = rec.streaming(pcm, option(rest, "--delay-tokens", 6), a.preprocessor_steps)
    else:
        result = rec.offline(pcm, a.max_new_tokens, option(rest, "--max-seq-len", 4096))
    ref = {"mode": "streaming" if streaming else "offline", "audio": a.audio.name, "samples": int(len(pcm)),
           "calls": rec.steps, **result,
           "note": "eager PyTorch on the modules passed to torch.export.export (deep-copied before export), chained as "
                   "voxtral_realtime_runner.cpp runs them; greedy = argmax"}
    (a.out / "voxtral_rt_reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"[voxtral_rt_capture] {ref['mode']}: {len(result['tokens'])} tokens, calls {rec.steps}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
