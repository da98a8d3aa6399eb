"""Log-mel fixtures from transformers' own WhisperFeatureExtractor, for LogMelTests.

    tools/.venv/bin/python tools/speech/logmel_reference.py Tests/Fixtures/speech

Writes (float32 .npy, [mels, frames]; only the first frames, to keep the files small, but computed on the
whole 30 s window as the extractor pads it, so the global max-8 floor is the real one):
- logmel_librivox0880_80.npy: librivox-0880.wav (LibriVox, Debian pocketsphinx-testdata), 80 mel bins, 300 frames;
- logmel_tone_128.npy: 1 s of 0.5·sin(2π·440t) + 0.25·sin(2π·3000t) at 16 kHz (float64 → float32), 128 bins, 120 frames.
"""
import os
import sys
import wave

import numpy as np
from transformers import WhisperFeatureExtractor


def features(samples, mels):
    fe = WhisperFeatureExtractor(feature_size=mels)
    out = fe(samples, sampling_rate=16000, return_tensors="np").input_features[0]
    assert out.shape == (mels, 3000), out.shape
    return out.astype(np.float32)


def main(out_dir):
    with wave.open(os.path.join(out_dir, "librivox-0880.wav")) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    clip = (pcm.astype(np.float32) / 32768.0)
    np.save(os.path.join(out_dir, "logmel_librivox0880_80.npy"), np.ascontiguousarray(features(clip, 80)[:, :300]))
    t = np.arange(16000, dtype=np.float64) / 16000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    np.save(os.path.join(out_dir, "logmel_tone_128.npy"), np.ascontiguousarray(features(tone, 128)[:, :120]))


if __name__ == "__main__":
    main(sys.argv[1])
