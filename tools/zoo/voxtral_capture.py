#!/usr/bin/env python3
"""Run ExecuTorch's Voxtral export script unchanged and record eager PyTorch references of every method it exports.

Usage: tools/.venv/bin/python tools/zoo/voxtral_capture.py --out DIR --ckpt CKPT [--decode N] [--seed S] [--seconds X]
           -- -m executorch.backends.mlx.examples.voxtral.export_voxtral_hf ARGS…

`torch.export.export` is wrapped (as capture.py does for LLMs); each call is recognised by the class of the module the
script passes (after its quantization), a deep copy is kept, and once the script is done the references are chained as
a transcription runs them:

  preprocessor.pte  WhisperAudioProcessor(waveform [N])                    → mel [C, 128, 3000]
  model.pte
    audio_encoder   AudioExportableModule(input_features [C, 128, 3000])   → audio embeddings [1, 375·C, hidden]
    token_embedding Embedding(ids [1, T])                                  → [1, T, hidden]
    text_decoder    TorchExportableModuleWithStaticCache(inputs_embeds [1, T, hidden], cache_position [T]) → logits [1, T, V]

The audio: a seeded synthetic signal (--seconds long; tones with a syllable-rate envelope + noise), written to
DIR/audio.wav (16-bit PCM, 16 kHz) and read back, so what the program sees is what a WAV reader gives. The prompt is
VoxtralProcessor.apply_transcription_request(language="en") on it (mistral_common's instruct transcription format:
<s> [INST] [BEGIN_AUDIO] [AUDIO]×375 [/INST] lang:en [TRANSCRIBE]); its token embeddings with the audio embeddings
spliced at the [AUDIO] positions (as VoxtralModel.forward's masked_scatter does) are prefilled in one call, then
greedy tokens (argmax, lowest id on ties) one call each, each token's embedding from token_embedding. The audio
encoder takes the preprocessor program's mel (what a pipeline feeds it); the processor's own mel (transformers'
WhisperFeatureExtractor) is compared with it, and transformers' `generate` on the processor's inputs gives the greedy
tokens independently (both recorded in voxtral_reference.json).

The script's example audio is a URL (optimum's AudioExportableModule); this machine has no network, so the
conversation's URL is replaced by DIR/audio.wav's path for that call (the only change to the script's run).
Calls are written as `mlxc run --inputs-dir` reads them: DIR/ref/<method>/step<K>.input<I>.npy, step<K>.output<J>.npy.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import sys
import wave
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import run_export_script, split_argv  # noqa: E402


def npy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.contiguous().numpy()


def synthetic_speech(seconds: float, seed: int) -> np.ndarray:
    """Int16 samples at 16 kHz: a few harmonic 'vowels' under a 4 Hz syllable envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    x = 0.25 * voice * env + 0.01 * rng.standard_normal(n)
    return np.clip(x * 32767 / max(1.0, np.abs(x).max() * 1.05), -32768, 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())


class VoxtralRecorder:
    def __init__(self, out: Path, ckpt: Path, decode: int):
        self.out, self.ckpt, self.decode = out, ckpt, decode
        self.mods = {}
        self.methods = {}

    def hook(self, real_export, mod, args=(), kwargs=None, *rest, **kw):
        kind = type(mod).__name__
        kwargs = kwargs or {}
        name = {"WhisperAudioProcessor": "preprocessor", "AudioExportableModule": "audio_encoder",
                "Embedding": "token_embedding"}.get(kind)
        if name is None and "inputs_embeds" in kwargs and "cache_position" in kwargs and "text_decoder" not in self.mods:
            name = "text_decoder"   # the first export of the decoder (the second re-exports a transposes-cleaned copy)
        if name is not None and name not in self.mods:
            self.mods[name] = copy.deepcopy(mod)
        print(f"[voxtral_capture] export {kind} -> {name}", flush=True)
        return real_export(mod, args, kwargs, *rest, **kw)

    def save(self, method: str, step: int, inputs: list, outputs: list) -> None:
        d = self.out / "ref" / method
        d.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(inputs):
            np.save(d / f"step{step}.input{i}.npy", npy(t))
        for j, t in enumerate(outputs):
            np.save(d / f"step{step}.output{j}.npy", npy(t))

    @torch.no_grad()
    def chain(self, audio_path: Path) -> None:
        from transformers import AutoProcessor
        missing = {"preprocessor", "audio_encoder", "token_embedding", "text_decoder"} - set(self.mods)
        if missing:
            raise SystemExit(f"voxtral_capture: the script exported no {sorted(missing)}")
        with wave.open(str(audio_path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0)

        mel = self.mods["preprocessor"](wav)
        self.save("preprocessor", 0, [wav], [mel])
        self.methods["preprocessor"] = {"steps": 1, "program": "preprocessor.pte"}

        proc = AutoProcessor.from_pretrained(self.ckpt)
        req = proc.apply_transcription_request(language="en", audio=wav.numpy(), format=["wav"], model_id=str(self.ckpt),
                                               sampling_rate=16000)
        ids = req["input_ids"]
        hf_mel = req["input_features"]
        mel_diff = float((hf_mel - mel).abs().max() / mel.abs().max())

        enc = self.mods["audio_encoder"]
        dtype = next(enc.parameters()).dtype
        feats = mel.to(dtype)
        audio = enc(input_features=feats)
        self.save("audio_encoder", 0, [feats], [audio])
        self.methods["audio_encoder"] = {"steps": 1, "program": "model.pte"}

        emb_mod = self.mods["token_embedding"]
        embeds = emb_mod(ids)
        self.save("token_embedding", 0, [ids], [embeds])
        audio_id = int(enc.model.config.audio_token_id)
        mask = (ids == audio_id).unsqueeze(-1).expand_as(embeds)
        spliced = embeds.masked_scatter(mask, audio.to(embeds.dtype))

        dec = self.mods["text_decoder"]
        T = ids.shape[1]
        pos = torch.arange(T, dtype=torch.long)
        logits = dec(inputs_embeds=spliced, cache_position=pos)
        self.save("text_decoder", 0, [spliced, pos], [logits])
        greedy, margins, k = [], [], 1
        for _ in range(self.decode):
            last = logits[0, -1].float()
            top = torch.topk(last, 2)
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            margins.append(float(top.values[0] - top.values[1]))
            tid = torch.tensor([[nxt]], dtype=ids.dtype)
            e = emb_mod(tid)
            self.save("token_embedding", k, [tid], [e])
            p = torch.tensor([T + k - 1], dtype=torch.long)
            logits = dec(inputs_embeds=e, cache_position=p)
            self.save("text_decoder", k, [e, p], [logits])
            k += 1
        self.methods["token_embedding"] = {"steps": k, "program": "model.pte"}
        self.methods["text_decoder"] = {"steps": k, "program": "model.pte"}

        hf_tokens = None
        try:  # transformers' own generate on the processor's inputs (its mel, its splice): an independent check
            model = copy.deepcopy(enc.model)
            gen = model.generate(input_ids=ids, input_features=hf_mel.to(dtype), max_new_tokens=self.decode,
                                 do_sample=False, cache_implementation="dynamic")
            hf_tokens = [int(x) for x in gen[0, T:]]
        except Exception as e:  # noqa: BLE001  (recorded, not fatal: the chain above is the reference)
            hf_tokens = f"generate failed: {type(e).__name__}: {e}"[:300]

        chat = chat_reference(enc.model, proc, self.out / "audio.wav", self.decode, dtype)
        ref = {"methods": self.methods, "chat": chat, "prompt": [int(x) for x in ids[0]], "audio_token_id": audio_id,
               "audio_tokens": int((ids == audio_id).sum()), "greedy": greedy, "top2_margins": margins,
               "hf_generate": hf_tokens, "processor_mel_vs_preprocessor": mel_diff,
               "audio": "audio.wav", "samples": int(len(pcm)),
               "note": "eager PyTorch on the modules passed to torch.export.export, chained as a transcription runs "
                       "them; audio encoder fed the preprocessor's mel; greedy = argmax, lowest id on ties"}
        (self.out / "voxtral_reference.json").write_text(json.dumps(ref, indent=1) + "\n")


CHAT_QUESTION = "What is said?"


@torch.no_grad()
def chat_reference(model, proc, audio_path: Path, decode: int, dtype) -> dict:
    """`mlxc run --audio … --prompt …`'s reference: VoxtralProcessor.apply_chat_template on one user message
    [audio, text] (its prompt ids) and transformers' greedy `generate` on it."""
    b64 = base64.b64encode(audio_path.read_bytes()).decode()
    conv = [{"role": "user", "content": [{"type": "audio", "base64": b64}, {"type": "text", "text": CHAT_QUESTION}]}]
    r = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    ids = r["input_ids"]
    gen = copy.deepcopy(model).generate(input_ids=ids, input_features=r["input_features"].to(dtype), max_new_tokens=decode,
                                        do_sample=False, cache_implementation="dynamic")
    return {"question": CHAT_QUESTION, "prompt": [int(x) for x in ids[0]], "hf_generate": [int(x) for x in gen[0, ids.shape[1]:]]}


def add_chat(out: Path, ckpt: Path, decode: int) -> None:
    """Adds the chat reference to an fp32 entry already built (its model is the checkpoint as saved)."""
    from transformers import AutoProcessor, VoxtralForConditionalGeneration
    model = VoxtralForConditionalGeneration.from_pretrained(ckpt).eval()
    ref = json.loads((out / "voxtral_reference.json").read_text())
    ref["chat"] = chat_reference(model, AutoProcessor.from_pretrained(ckpt), out / "audio.wav", decode, torch.float32)
    (out / "voxtral_reference.json").write_text(json.dumps(ref, indent=1) + "\n")


def main() -> int:
    if sys.argv[1:2] == ["--add-chat"]:   # --add-chat OUT CKPT DECODE
        add_chat(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--decode", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.5)
    a = ap.parse_args(own)
    a.out.mkdir(parents=True, exist_ok=True)
    audio = a.out / "audio.wav"
    write_wav(audio, synthetic_speech(a.seconds, a.seed))

    # The script's example conversation points at a URL: give it the local clip instead.
    import optimum.exporters.executorch.integrations as integ
    real_apply = integ.apply_chat_template_with_fallback

    def local_audio(processor, conversation, **kw):
        for msg in conversation:
            for c in msg.get("content", []):
                if isinstance(c, dict) and c.get("type") == "audio" and "url" in c:
                    c.pop("url")
                    c["base64"] = base64.b64encode(audio.read_bytes()).decode()
        return real_apply(processor, conversation, **kw)
    integ.apply_chat_template_with_fallback = local_audio

    rec = VoxtralRecorder(a.out, a.ckpt.resolve(), a.decode)
    real_export = torch.export.export

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        return rec.hook(real_export, mod, args, kwargs, *r, **kw)
    run_export_script(rest, wrapped)
    torch.export.export = real_export
    rec.chain(audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
