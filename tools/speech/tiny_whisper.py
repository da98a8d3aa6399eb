"""A tiny random-weight Whisper checkpoint laid out like the real one, for testing `mlxc transcribe`.

    tools/.venv/bin/python tools/speech/tiny_whisper.py OUT_DIR

Writes OUT_DIR/ckpt/: a seeded `WhisperForConditionalGeneration` (d_model 32, 2+2 layers, 80 mel bins)
with a byte-level BPE `tokenizer.json` trained on a little English and Whisper's special tokens in
Whisper's order (<|endoftext|>, <|startoftranscript|>, the 99 languages, <|translate|>, <|transcribe|>,
<|startoflm|>, <|startofprev|>, <|nospeech|>, <|notimestamps|>, <|0.00|>…<|30.00|>), and a
`generation_config.json` with the fields Whisper's generate reads (lang_to_id, task_to_id,
suppress_tokens, begin_suppress_tokens, no_timestamps_token_id, max_initial_timestamp_index).
Export it with ExecuTorch's own script, unchanged:

    python -m executorch.backends.mlx.examples.whisper.export_whisper --model-id OUT_DIR/ckpt \
        --output-dir OUT_DIR/programs --dtype fp32
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                          WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

CORPUS = """and mister john dashwood had then leisure to consider how much there might be prudently in his power
to do for them. He was not an ill disposed young man, unless to be rather cold hearted and rather selfish is to
be ill disposed. Had he married a more amiable woman he might have been made still more respectable than he was.
The quick brown fox jumps over the lazy dog. Speech to text on a CPU, with timestamps: 0.00 to 30.00 seconds!
""" * 4


def special_tokens():
    langs = [f"<|{code}|>" for code in LANGUAGES]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    return (["<|endoftext|>", "<|startoftranscript|>"] + langs +
            ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
             "<|notimestamps|>"] + stamps)


def build_tokenizer(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    specials = special_tokens()
    # Timestamps are added tokens but not "special" in Whisper's tokenizer.json (decode keeps them unless asked).
    from tokenizers import AddedToken
    tok.add_tokens([AddedToken(t, special=not t[2].isdigit(), normalized=False) for t in specials])
    tok.save(path)
    return tok


def main(out):
    torch.manual_seed(20261207)
    ckpt = os.path.join(out, "ckpt")
    os.makedirs(ckpt, exist_ok=True)
    tok = build_tokenizer(os.path.join(ckpt, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    ids = {t: tok.token_to_id(t) for t in special_tokens()}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    notimestamps = ids["<|notimestamps|>"]

    fast = WhisperTokenizerFast(tokenizer_file=os.path.join(ckpt, "tokenizer.json"), unk_token="<|endoftext|>",
                                bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fe = WhisperFeatureExtractor(feature_size=80)
    WhisperProcessor(feature_extractor=fe, tokenizer=fast).save_pretrained(ckpt)
    fe.save_pretrained(ckpt)  # preprocessor_config.json too (transformers 5 folds it into processor_config.json)

    space = tok.token_to_id("Ġ")
    # A handful of text tokens suppressed everywhere, as the real config's suppress_tokens lists punctuation.
    suppress = sorted({tok.token_to_id(t) for t in ["#", "(", ")", "[", "]", "{", "}"]} |
                      {ids["<|translate|>"], ids["<|transcribe|>"], ids["<|startoflm|>"],
                       ids["<|startofprev|>"], ids["<|nospeech|>"], sot})
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=sot,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, suppress_tokens=suppress,
        begin_suppress_tokens=[space, eot], init_std=0.1)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
        # Smaller timestamp rows (the output projection is tied to them) so that, as in trained models,
        # text wins after <|notimestamps|>; with timestamps on, their summed probability still often wins.
        model.model.decoder.embed_tokens.weight[notimestamps + 1:] *= 0.3
    model.save_pretrained(ckpt)

    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=448, suppress_tokens=suppress, begin_suppress_tokens=[space, eot],
        is_multilingual=True, no_timestamps_token_id=notimestamps, max_initial_timestamp_index=50,
        return_timestamps=False,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        prev_sot_token_id=ids["<|startofprev|>"],
        forced_decoder_ids=None, alignment_heads=[[1, 0]])
    gen.save_pretrained(ckpt)
    print(json.dumps({"vocab": vocab, "sot": sot, "eot": eot, "notimestamps": notimestamps}))


if __name__ == "__main__":
    main(sys.argv[1])
