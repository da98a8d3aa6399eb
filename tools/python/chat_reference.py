#!/usr/bin/env python3
"""Eager transformers references of a two-turn chat, for `mlxc run MODEL --chat` on zoo entries.

Usage: HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/python/chat_reference.py [ENTRY ...]

For each built float32 zoo entry (tools/.work/zoo/out/<entry>, default: every one with a chat template) this
loads the entry's checkpoint (tools/.work/zoo/ckpt/<family>) in float32 and holds the conversation as a
chat user would: each turn's prompt is `apply_chat_template` of the whole conversation so far (the
replies decoded as the model wrote them, special tokens kept) with the generation prompt, then greedy
decoding until a stop token or MAX_NEW tokens. Stop tokens follow mlxc's rule: generation_config's
eos_token_id, tokenizer_config's eos_token, special tokens with conventional end names, and the
end-of-turn markers the template writes. Writes chat_reference.json into the entry's directory (and
into Tests/Fixtures/zoo/<entry> when that exists); `zoo commit` copies it with the entry.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tools" / ".work" / "zoo" / "out"
CKPT = REPO / "tools" / ".work" / "zoo" / "ckpt"
FIXTURES = REPO / "Tests" / "Fixtures" / "zoo"
SYSTEM = "Be brief."
TURNS = ["Hi", "Why?"]
MAX_NEW = 4
# mlxc: SpecialTokenDefaults.eosNames and ChatTemplate.endOfTurnMarkers.
EOS_NAMES = ["<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "</s>", "<eos>", "<end_of_turn>", "<|endoftext|>",
             "<|im_end|>", "<|end|>", "<|return|>"]
END_OF_TURN = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>",
               "<|end_of_text|>", "<eos>", "<|return|>", "<|END_OF_TURN_TOKEN|>"]


def stop_ids(tok, ckpt: Path, template: str) -> list[int]:
    ids = set()
    gen = json.loads((ckpt / "generation_config.json").read_text()) if (ckpt / "generation_config.json").exists() else {}
    eos = gen.get("eos_token_id")
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    for name in EOS_NAMES:
        i = tok.convert_tokens_to_ids(name)
        if isinstance(i, int) and i in special:
            ids.add(i)
    for name in END_OF_TURN:
        if name in template:
            i = tok.convert_tokens_to_ids(name)
            if isinstance(i, int) and i != tok.unk_token_id:
                ids.add(i)
    return sorted(ids)


def greedy(model, ids: list[int], stops: set[int]):
    out, steps = [], []
    seq = list(ids)
    with torch.no_grad():
        for _ in range(MAX_NEW):
            logits = model(torch.tensor([seq])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            nxt = int(top.indices[0])
            steps.append({"argmax": nxt, "top2_margin": float(top.values[0] - top.values[1])})
            if nxt in stops:
                return out, nxt, steps
            out.append(nxt)
            seq.append(nxt)
    return out, None, steps


def reference(entry: Path) -> dict | None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    meta = json.loads((entry / "entry.json").read_text())
    if any(flag in meta["command"] for flag in ("bf16", "fp16", "qlinear", "qembedding", "8da4w", "quantize")):
        return None   # float32 weights and activations only: eager float32 is then the program's own arithmetic
    ckpt = CKPT / meta["family"]
    tok = AutoTokenizer.from_pretrained(ckpt)
    template = tok.chat_template
    if not template:
        return None
    model = AutoModelForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32).eval()
    stops = stop_ids(tok, ckpt, template)
    found = re.search(r"--max[-_](?:ctx[-_]len|seq[-_]len) (\d+)", meta["command"])
    context = int(found.group(1)) if found else 64
    # With the system message when the template takes one and the conversation fits the context.
    for system in (SYSTEM, None):
        try:
            ref = conversation(tok, model, stops, system)
        except Exception:
            continue   # a template without system messages
        last = ref["turns"][-1]
        if len(last["prompt_ids"]) + MAX_NEW <= context:
            return ref
    raise SystemExit(f"{entry.name}: the conversation does not fit {context} tokens")


def conversation(tok, model, stops, system):
    messages = [{"role": "system", "content": system}] if system else []
    turns = []
    for user in TURNS:
        messages.append({"role": "user", "content": user})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        if hasattr(ids, "input_ids"):
            ids = ids.input_ids
        ids = [int(i) for i in (ids[0] if ids and isinstance(ids[0], list) else ids)]
        reply, stop, steps = greedy(model, ids, set(stops))
        messages.append({"role": "assistant", "content": tok.decode(reply, skip_special_tokens=False)})
        turns.append({"user": user, "prompt_ids": ids, "reply": reply, "stop": stop, "steps": steps})
    return {"note": "tools/python/chat_reference.py: transformers eager float32, greedy, apply_chat_template per turn",
            "system": system, "max_new_tokens": MAX_NEW,
            "stop_ids": stops, "turns": turns}


def main(argv) -> int:
    names = argv or sorted(p.name for p in OUT.iterdir() if (p / "chat_template.jinja").exists() and (p / "model.pte").exists())
    for name in names:
        ref = reference(OUT / name)
        if ref is None:
            print(f"skip {name}: no chat template, or not float32")
            continue
        text = json.dumps(ref, indent=1) + "\n"
        (OUT / name / "chat_reference.json").write_text(text)
        if (FIXTURES / name).exists():
            (FIXTURES / name / "chat_reference.json").write_text(text)
        print(f"{name}: " + " | ".join(f"{len(t['prompt_ids'])} prompt ids -> {t['reply']} stop {t['stop']}" for t in ref["turns"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
