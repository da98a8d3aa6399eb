"""The Python peers of the speech benchmark (tools/python/bench/speech.py), each run in its own process:

    python speech_peers.py eager    HF_FOLDER     --threads 2 [--timestamps] AUDIO…
    python speech_peers.py et       MODEL_FOLDER  --threads 2 [--timestamps] AUDIO…

eager: transformers' WhisperForConditionalGeneration.generate, greedy (one beam, no sampling, no temperature
fallback), English, one file at a time; audio over 30 s is given whole (transformers' sequential long-form decoding,
timestamps on). Encoder and decoder time from forward hooks on the encoder and decoder modules (the decoder's
calls: the prompt's call plus one per generated token).
et: ExecuTorch's own runtime (executorch.runtime) on optimum-executorch's model.pte (methods encoder, text_decoder):
the log-mel from transformers' feature extractor, then a greedy loop in Python — the prompt
<|startoftranscript|><|en|><|transcribe|><|notimestamps|> a token per call (the method takes one), the generation
config's suppressed tokens masked, until <|endoftext|> or the cache is full; audio over 30 s in plain 30 s windows
(no timestamp seeking). Time inside the method calls is reported beside the loop's whole time, so the Python
overhead is visible.

Each prints one line per decoded file or window on stdout as soon as it has it (the driver times the first one), and
at the end one line `@@RESULT {json}`: load_s, transcribe_s, audio_s, windows, encode_s, decode_s, decode_calls,
tokens, method_s (et), text per file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np

T0 = time.time()
SR = 16000
WINDOW = 30 * SR


def read_wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != SR:
            raise SystemExit(f"{path}: 16 kHz mono PCM16 expected")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def say(text: str) -> None:
    print(text.strip(), flush=True)


def run_eager(args) -> dict:
    import torch
    import transformers as tf
    torch.set_num_threads(args.threads)
    t = time.time()
    proc = tf.WhisperProcessor.from_pretrained(args.model)
    model = tf.WhisperForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    load_s = time.time() - t
    timers = {"encoder": [0.0, 0], "decoder": [0.0, 0]}

    def hooks(module, key):
        start = {}
        module.register_forward_pre_hook(lambda m, a: start.__setitem__("t", time.perf_counter()))

        def post(m, a, out):
            timers[key][0] += time.perf_counter() - start["t"]
            timers[key][1] += 1
        module.register_forward_hook(post)
    hooks(model.model.encoder, "encoder")
    hooks(model.model.decoder, "decoder")
    texts, audio_s, tokens = [], 0.0, 0
    t = time.time()
    for path in args.audio:
        samples = read_wav(path)
        audio_s += len(samples) / SR
        long = len(samples) > WINDOW
        feats = proc(samples, sampling_rate=SR, return_tensors="pt",
                     **({"truncation": False, "padding": "longest", "return_attention_mask": True} if long else {}))
        kw = dict(language="en", task="transcribe", num_beams=1, do_sample=False,
                  return_timestamps=long or args.timestamps)
        if long:
            kw.update(attention_mask=feats.attention_mask, condition_on_prev_tokens=False, temperature=0.0)
        with torch.inference_mode():
            ids = model.generate(feats.input_features, **kw)
        seq = ids[0].tolist() if not isinstance(ids, dict) else ids["sequences"][0].tolist()
        tokens += sum(1 for i in seq if i < proc.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        text = proc.tokenizer.decode(seq, skip_special_tokens=True).strip()
        say(text)
        texts.append(text)
    transcribe_s = time.time() - t
    windows = timers["encoder"][1]
    return {"load_s": load_s, "transcribe_s": transcribe_s, "audio_s": audio_s, "windows": windows,
            "encode_s": timers["encoder"][0], "decode_s": timers["decoder"][0], "decode_calls": timers["decoder"][1],
            "tokens": tokens, "texts": texts}


def run_et(args) -> dict:
    import transformers as tf
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime
    from tokenizers import Tokenizer
    import torch
    portable_lib._unsafe_reset_threadpool(args.threads)
    folder = Path(args.model)
    t = time.time()
    program = Runtime.get().load_program(str(folder / "model.pte"))
    encoder = program.load_method("encoder")
    decoder = program.load_method("text_decoder")
    fe = tf.WhisperFeatureExtractor.from_pretrained(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    gen = json.loads((folder / "generation_config.json").read_text())
    load_s = time.time() - t
    prompt = [gen["decoder_start_token_id"], gen["lang_to_id"]["<|en|>"], gen["task_to_id"]["transcribe"],
              gen["no_timestamps_token_id"]]
    eot = gen["eos_token_id"]
    suppress = list(gen.get("suppress_tokens") or [])
    begin_suppress = list(gen.get("begin_suppress_tokens") or [])
    cache = args.max_tokens
    timers = {"encode_s": 0.0, "decode_s": 0.0, "decode_calls": 0, "windows": 0}
    texts, audio_s, tokens = [], 0.0, 0
    t = time.time()
    for path in args.audio:
        samples = read_wav(path)
        audio_s += len(samples) / SR
        pieces = []
        for start in range(0, len(samples), WINDOW):
            feats = torch.from_numpy(fe(samples[start:start + WINDOW], sampling_rate=SR, return_tensors="np").input_features)
            c = time.perf_counter()
            hidden = encoder.execute([feats])[0]
            timers["encode_s"] += time.perf_counter() - c
            timers["windows"] += 1

            def step(token, pos):
                c = time.perf_counter()
                out = decoder.execute([torch.tensor([[token]], dtype=torch.long), hidden, torch.tensor([pos], dtype=torch.long)])[0]
                timers["decode_s"] += time.perf_counter() - c
                timers["decode_calls"] += 1
                return out[0, -1].float().numpy().copy()
            for pos, token in enumerate(prompt):
                logits = step(token, pos)
            generated = []
            while len(prompt) + len(generated) < cache:
                logits[suppress] = -np.inf
                if not generated:
                    logits[begin_suppress] = -np.inf
                nxt = int(np.argmax(logits))
                if nxt == eot:
                    break
                generated.append(nxt)
                logits = step(nxt, len(prompt) + len(generated) - 1)
            tokens += len(generated)
            text = tok.decode(generated, skip_special_tokens=True).strip()
            say(text)
            pieces.append(text)
        texts.append(" ".join(pieces))
    transcribe_s = time.time() - t
    return {"load_s": load_s, "transcribe_s": transcribe_s, "audio_s": audio_s, "tokens": tokens, "texts": texts,
            "method_s": timers["encode_s"] + timers["decode_s"], **timers}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["eager", "et"])
    ap.add_argument("model")
    ap.add_argument("audio", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timestamps", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=256, help="et: the decoder's cache length (export --max_seq_len)")
    args = ap.parse_args()
    rec = run_eager(args) if args.peer == "eager" else run_et(args)
    rec["process_start_to_end_s"] = time.time() - T0
    print("@@RESULT " + json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
