"""Greedy Whisper references from transformers' own `WhisperForConditionalGeneration.generate`, for WhisperTests.

    tools/.venv/bin/python tools/speech/whisper_reference.py CKPT_DIR AUDIO.wav OUT.json

For each case (language given or detected, transcribe or translate, timestamps on or off, and the clip
repeated past 30 s for sequential long-form decoding) it records the segments generate returns
(start, end, token ids without end-of-text) and the detected language. The features come from the
checkpoint's own WhisperFeatureExtractor, as a user would prepare them: 30 s padded for short audio,
`truncation=False, padding="longest"` for long audio.
"""
import json
import sys
import wave

import numpy as np
import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

CASES = [
    # name, repeats of the clip, language (None: detect), task, timestamps, max_new_tokens, thresholds
    ("en_transcribe", 1, "en", "transcribe", False, 24, {}),
    ("auto_transcribe_timestamps", 1, None, "transcribe", True, 24, {}),
    ("de_translate_timestamps", 1, "de", "translate", True, 24, {}),
    ("en_translate", 1, "en", "translate", False, 24, {}),
    ("longform_en_timestamps", 12, "en", "transcribe", True, 24, {}),
    # The random model's two long-form windows have no-speech probabilities 7.1e-4 and 7.4e-4 (average
    # log-probabilities about -4.5): a threshold between them drops the second window as silence.
    ("longform_no_speech_threshold", 12, "en", "transcribe", True, 24,
     {"no_speech_threshold": 0.00073, "logprob_threshold": -1.0}),
]


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def main(ckpt, audio_path, out_path):
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(ckpt).eval()
    fe = WhisperFeatureExtractor.from_pretrained(ckpt)
    clip = read_wav(audio_path)
    results = []
    for name, repeats, language, task, timestamps, max_new, thresholds in CASES:
        audio = np.tile(clip, repeats)
        if len(audio) > 480000:
            feats = fe(audio, sampling_rate=16000, truncation=False, padding="longest", return_attention_mask=True,
                       return_tensors="pt")
        else:
            feats = fe(audio, sampling_rate=16000, return_tensors="pt")
        detected = None
        if language is None:
            lang_id = model.detect_language(feats.input_features[:, :, :3000]).item()
            detected = {v: k for k, v in model.generation_config.lang_to_id.items()}[lang_id][2:-2]
        with torch.no_grad():
            out = model.generate(feats.input_features, language=language, task=task, return_timestamps=timestamps,
                                 max_new_tokens=max_new, return_segments=True, temperature=0.0, **thresholds)
        # (return_dict_in_generate would return only the last window's sequence: segments hold them all)
        segments = out["segments"][0]
        record = {"name": name, "repeats": repeats, "language": language, "task": task, "timestamps": timestamps,
                  "max_new_tokens": max_new, "detected_language": detected, **thresholds}
        record["segments"] = [{"start": float(s["start"]), "end": float(s["end"]),
                               "tokens": [int(t) for t in s["tokens"].tolist()]} for s in segments]
        results.append(record)
        print(name, json.dumps(record)[:300])
    with open(out_path, "w") as f:
        json.dump({"cases": results}, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
