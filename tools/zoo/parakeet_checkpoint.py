#!/usr/bin/env python3
"""A tiny random-weight Parakeet TDT checkpoint (a NeMo `.nemo` file) built from NeMo's own FastConformer-TDT config.

Usage: PYTHONPATH=tools/.venv/nemo tools/.venv/bin/python tools/zoo/parakeet_checkpoint.py OUT_DIR [--seed S]

The model is `EncDecRNNTBPEModel` with the encoder/decoder/joint/decoding/loss sections of NeMo's
`fastconformer_hybrid_tdt_ctc_bpe.yaml` (FastConformer: dw_striding 8x subsampling, rel_pos attention with untied
biases, xscaling, batch-norm conv module; LSTM prediction network; joint with 5 TDT duration outputs [0..4]) and the
sizes of nvidia/parakeet-tdt-0.6b-v3 scaled down: 128 mel features, 2 conformer layers, d_model 32, 2 heads,
conv kernel 9, 2 prediction-net LSTM layers of 32, joint 32. The tokenizer is a SentencePiece BPE model trained
on the LibriVox transcription beside the test clips (vocabulary 64). Every weight is drawn from a seeded normal
(batch-norm running statistics too), scaled so activations neither vanish nor saturate: outputs are not flat.
pos_emb_max_len 1000: the programs take up to 10 s of audio (the real model's 5000 gives 50 s).
Writes OUT_DIR/parakeet.nemo, OUT_DIR/tokenizer/tokenizer.model and OUT_DIR/zoo_checkpoint.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

TRANSCRIPTION = Path("/usr/share/pocketsphinx/test/data/librivox/transcription")
FALLBACK_TEXT = ["he was not an ill disposed young man", "he might even have been made amiable himself",
                 "and mister john dashwood had then leisure to consider how much there might be"]


def sentences() -> list:
    if TRANSCRIPTION.exists():
        lines = []
        for line in TRANSCRIPTION.read_text().splitlines():
            words = [w for w in line.split() if not w.startswith("<") and not w.startswith("(")]
            if words:
                lines.append(" ".join(words))
        return lines
    return FALLBACK_TEXT


def train_tokenizer(out: Path, vocab: int) -> Path:
    import sentencepiece as spm
    d = out / "tokenizer"
    d.mkdir(parents=True, exist_ok=True)
    text = d / "text.txt"
    text.write_text("\n".join(sentences() * 4) + "\n")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(d / "tokenizer"), vocab_size=vocab,
                                   model_type="bpe", character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
                                   hard_vocab_limit=False, num_threads=1, minloglevel=2)
    # NeMo's tokenizer setup registers vocab.txt beside the model (as scripts/tokenizers/process_asr_text_tokenizer.py
    # writes it: one piece per line).
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    (d / "vocab.txt").write_text("".join(sp.id_to_piece(i) + "\n" for i in range(sp.get_piece_size())))
    return d.resolve()


def config(tok_dir: Path, d_model=32, layers=2, heads=2, pred=32, joint=32, feats=128):
    durations = [0, 1, 2, 3, 4]
    return {
        "sample_rate": 16000,
        "model_defaults": {"enc_hidden": d_model, "pred_hidden": pred, "joint_hidden": joint,
                           "tdt_durations": durations, "num_tdt_durations": len(durations)},
        "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
                         "window_stride": 0.01, "window": "hann", "features": feats, "n_fft": 512,
                         "frame_splicing": 1, "dither": 0.00001, "pad_to": 0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": feats, "feat_out": -1,
                    "n_layers": layers, "d_model": d_model, "subsampling": "dw_striding", "subsampling_factor": 8,
                    "subsampling_conv_channels": 16, "causal_downsampling": False, "ff_expansion_factor": 4,
                    "self_attention_model": "rel_pos", "n_heads": heads, "att_context_size": [-1, -1],
                    "att_context_style": "regular", "xscaling": True, "untie_biases": True,
                    "pos_emb_max_len": 1000, "conv_kernel_size": 9, "conv_norm_type": "batch_norm",
                    "conv_context_size": None, "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0,
                    "dropout_att": 0.1},
        "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
                    "random_state_sampling": False, "blank_as_pad": True,
                    "prednet": {"pred_hidden": pred, "pred_rnn_layers": 2, "t_max": None, "dropout": 0.2}},
        "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                  "preserve_memory": False, "fuse_loss_wer": False, "fused_batch_size": 4,
                  "jointnet": {"joint_hidden": joint, "activation": "relu", "dropout": 0.2},
                  "num_extra_outputs": len(durations)},
        "decoding": {"strategy": "greedy", "model_type": "tdt", "durations": durations,
                     "greedy": {"max_symbols": 10}},
        "loss": {"loss_name": "tdt", "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": durations,
                                                   "sigma": 0.02, "omega": 0.1}},
    }


def randomize(model, seed: int) -> None:
    """Seeded normal weights, ~1/sqrt(fan_in) so each layer keeps activations O(1); norms and running stats too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(fan_in)))
            elif name.endswith("weight"):  # norm scales
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in sorted(model.named_buffers()):
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true", help="other sizes: 3 layers, d_model 48, 4 heads")
    a = ap.parse_args()
    a.out = a.out.resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf
    tok = train_tokenizer(a.out, 64)
    sizes = dict(d_model=48, layers=3, heads=4, pred=48, joint=40) if a.held_out else {}
    cfg = OmegaConf.create(config(tok, **sizes))
    model = EncDecRNNTBPEModel(cfg=cfg)
    randomize(model, a.seed)
    model.eval()
    model.save_to(str(a.out / "parakeet.nemo"))
    info = {"family": "parakeet", "seed": a.seed, "held_out": a.held_out, "vocab_size": model.tokenizer.vocab_size,
            "layers": int(cfg.encoder.n_layers), "d_model": int(cfg.encoder.d_model),
            "parameters": sum(p.numel() for p in model.parameters())}
    (a.out / "zoo_checkpoint.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
