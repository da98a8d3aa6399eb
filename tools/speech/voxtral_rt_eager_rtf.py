#!/usr/bin/env python3
"""The eager PyTorch peer for tools/speech/stream-rt: ExecuTorch's Voxtral Realtime modules (export_voxtral_rt's
StreamingAudioEncoderExport / TextDecoderExport / TokenEmbeddingExport of load_model, the backend's own ops) run the
runner's streaming loop (voxtral_rt_capture.Recorder.streaming, nothing recorded) over a clip as fast as they can:
compute seconds and real-time factor, tokens (which must be mlxc's), 2 threads like mlxc.

Usage: tools/.venv/bin/python tools/speech/voxtral_rt_eager_rtf.py CKPT CLIP.wav [--backend mlx] [--repeat N]
       [--max-enc-len 32] [--max-seq-len 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zoo"))
import voxtral_rt_capture as cap  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("clip", type=Path)
    ap.add_argument("--backend", default="mlx")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--max-enc-len", type=int, default=32)
    ap.add_argument("--max-seq-len", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.backend == "mlx":
        import executorch.backends.mlx.custom_ops  # noqa: F401
    from executorch.examples.models.voxtral_realtime import model as rt
    from executorch.examples.models.voxtral_realtime.export_voxtral_rt import TextDecoderExport, TokenEmbeddingExport
    pcm = np.tile(cap.read_wav(a.clip), a.repeat)
    seconds = len(pcm) / 16000
    for run in range(a.runs):
        m = rt.load_model(a.ckpt, max_seq_len=a.max_seq_len, streaming=True, backend=a.backend)
        rec = cap.Recorder(Path("/nonexistent"))
        rec.save = lambda *args, **kw: None
        rec.mods = {"encode_audio_chunk": rt.StreamingAudioEncoderExport(m, a.max_enc_len).eval(),
                    "text_decoder": TextDecoderExport(m).eval(), "token_embedding": TokenEmbeddingExport(m).eval()}
        t = time.perf_counter()
        r = rec.streaming(pcm, 6, 0)
        dt = time.perf_counter() - t
        print(json.dumps({"run": run, "audio_s": seconds, "compute_s": dt, "rtf": dt / seconds, "steps": r["steps"],
                          "ms_per_step": 1000 * dt / r["steps"], "tokens": r["tokens"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
