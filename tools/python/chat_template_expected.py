#!/usr/bin/env python3
"""Expected renderings of chat templates, for the Swift template engine's tests.

Usage: HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/python/chat_template_expected.py

Writes Tests/Fixtures/chat_templates/: the zoo families' templates (tools/zoo/checkpoint.py) as
<family>.jinja next to the real templates kept there (qwen3, mistral, features), and expected.json:
for every template × conversation × add_generation_prompt, what transformers' own renderer
(render_jinja_template: jinja2's sandbox with trim_blocks/lstrip_blocks, HF's tojson and globals)
produces, or the error it raises.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "chat_templates"
sys.path.insert(0, str(REPO / "tools" / "zoo"))

import checkpoint  # noqa: E402
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

FAMILY_TEMPLATES = {
    "llama3": checkpoint.LLAMA3_TEMPLATE,
    "chatml": checkpoint.CHATML_TEMPLATE,
    "gemma": checkpoint.GEMMA_TEMPLATE,
    "phi": checkpoint.PHI_TEMPLATE,
}
# The special tokens each template is rendered with (as tokenizer_config.json gives them).
SPECIALS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<pad>"},
    "chatml": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<pad>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "pad_token": "<pad>"},
    "phi": {"bos_token": "<|endoftext|>", "eos_token": "<|end|>", "pad_token": "<pad>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "features": {"bos_token": "<s>", "eos_token": "</s>"},
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello there!"}],
    "system_user": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "  Tell me a joke.\n"},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Where is the gold?"},
        {"role": "assistant", "content": "Arr, buried {{ deep }} {% raw %}"},
        {"role": "user", "content": "Ünïcödé ✓ and \"quotes\" 'single'"},
    ],
    "thinking": [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "<think>\nsome reasoning\n</think>\n\nThe answer."},
        {"role": "user", "content": "And again?"},
    ],
    "not_alternating": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}


def render(template: str, messages, add_generation_prompt: bool, specials: dict, extra: dict) -> dict:
    try:
        rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                            add_generation_prompt=add_generation_prompt, **specials, **extra)
        return {"rendered": rendered[0]}
    except Exception as e:  # the template refused (raise_exception) or failed
        return {"error": f"{type(e).__name__}: {e}"}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in FAMILY_TEMPLATES.items():
        (OUT / f"{name}.jinja").write_text(text)
    cases = []
    for name in [*FAMILY_TEMPLATES, "qwen3", "mistral", "features"]:
        template = (OUT / f"{name}.jinja").read_text()
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (True, False):
                extras = [{}]
                if name == "qwen3":
                    extras.append({"enable_thinking": False})
                for extra in extras:
                    case = {"template": name, "conversation": conv_name, "add_generation_prompt": gen,
                            "special_tokens": SPECIALS[name], "extra": extra}
                    case.update(render(template, messages, gen, SPECIALS[name], extra))
                    cases.append(case)
    doc = {"note": "written by tools/python/chat_template_expected.py (transformers' render_jinja_template); do not edit",
           "conversations": CONVERSATIONS, "cases": cases}
    (OUT / "expected.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    errors = sum(1 for c in cases if "error" in c)
    print(f"{len(cases)} cases ({errors} raising) -> {OUT / 'expected.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
