#!/usr/bin/env python3
"""Trains small tokenizers shaped like real LLM ones and records the `tokenizers` package's output.

No model hub is reachable, so the reference tokenizers are trained here, on the `fortunes` Debian
package (apt-get install -y fortunes) plus the test corpus itself (so non-Latin scripts get merges):

  bytelevel/      Llama 3 / Qwen 2 shape: NFC, Split(Llama 3 regex) + ByteLevel(use_regex=False),
                  ignore_merges, <|begin_of_text|> added by TemplateProcessing, ByteLevel decoder.
  sentencepiece/  Llama 2 (legacy) shape: Prepend("▁") + Replace(" ", "▁") normalizer, no
                  pre-tokenizer, byte_fallback with all 256 <0xXX> tokens, fuse_unk, <s> BOS,
                  Replace/ByteFallback/Fuse/Strip decoder.
  metaspace/      the same vocabulary behind a Metaspace(prepend_scheme="first") pre-tokenizer and
                  a ByteFallback + Metaspace decoder (the newer Llama/Mistral conversion).

Writes Tests/Fixtures/tokenizers/{corpus.json, expected.json, pretokenize.json, components.json,
<name>/tokenizer.json}.
Run: tools/.venv/bin/python tools/python/train_test_tokenizers.py
"""
import glob
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
FORTUNES = "/usr/share/games/fortunes"

LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Extra patterns checked piece by piece (pretokenize.json): the Swift regex matcher must agree with
# the Oniguruma engine `tokenizers` uses, including possessive quantifiers and `$`.
SPLIT_PATTERNS = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "tiktoken_possessive": r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s",
    "o200k": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

# Other components checked one by one (components.json), given as tokenizer.json specs so the Swift
# side also parses them: pre-tokenizers by their pieces, normalizers by their output.
PRE_TOKENIZERS = {
    "bytelevel_gpt2": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "metaspace_always": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "digits_whitespace": {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": False}]},
    "whitespace_digits": {"type": "Sequence", "pretokenizers": [
        {"type": "Whitespace"}, {"type": "Digits", "individual_digits": True}]},
    "punctuation": {"type": "Punctuation", "behavior": "MergedWithPrevious"},
    "char_delimiter": {"type": "CharDelimiterSplit", "delimiter": "e"},
}
NORMALIZERS = {
    "nfkc": {"type": "NFKC"},
    "nfd": {"type": "NFD"},
    "nfkd": {"type": "NFKD"},
    "strip_accents_lowercase": {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
    "strip": {"type": "Strip", "strip_left": True, "strip_right": True},
    "replace_regex": {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
}

LICENSE_PARAGRAPH = (
    "Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except in "
    "compliance with the License. You may obtain a copy of the License at\n\n    "
    "http://www.apache.org/licenses/LICENSE-2.0\n\nUnless required by applicable law or agreed to in writing, "
    "software distributed under the License is distributed on an \"AS IS\" BASIS, WITHOUT WARRANTIES OR "
    "CONDITIONS OF ANY KIND, either express or implied. See the License for the specific language governing "
    "permissions and limitations under the License."
)

HAND_WRITTEN = [
    "Hello, world!",
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\ttabs\t\t\tend\t",
    "line one\nline two\r\nline three\n\n\nafter blank lines",
    "\n\nStarts with newlines",
    "ends with a newline\n",
    "I'm sure you're right, they've said we'll go; she'd've known. IT'S DONE, I'LL SEE, HE'D.",
    "don\u2019t won't DON'T \u2019s 's 'S 'Ll",
    "0 1 12 123 1234 12345 123456 1234567 12345678901234567890",
    "3.14159 -42 +7 1,000,000 2024-06-01 0x1F 1e-10 50% $19.99 \u00a312",
    "v1.2.3-beta4 H2O CO2 4th 21st 1990s \u0661\u0662\u0663 \u2163 \u00bd",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "let squares: [Int] = (0..<10).map { $0 * $0 } // squares",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE __dunder__",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "# Title\n\n- item 1\n- item 2\n\n```python\nprint('hi')\n```\n",
    "!!!??? ... --- *** ### @@@ $$$ %%% ^^^ &&& (((()))) <<>> ~~~",
    "Gr\u00f6\u00dfe, Stra\u00dfe, \u00dcberm\u00e4\u00dfig \u2014 sch\u00f6n!",
    "\u00c7a va? O\u00f9 est l'h\u00f4tel? C'est d\u00e9j\u00e0 l'\u00e9t\u00e9.",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430? "
    "\u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 \u043c\u044f\u0433\u043a\u0438\u0445 "
    "\u0444\u0440\u0430\u043d\u0446\u0443\u0437\u0441\u043a\u0438\u0445 \u0431\u0443\u043b\u043e\u043a.",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5\u00b7 \u1f41 \u03bb\u03cc\u03b3\u03bf\u03c2",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3001\u6f22\u5b57\u3092\u6df7\u305c\u308b\u3002",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4! \ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a.",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, \u092f\u0939 \u0939\u093f\u0902\u0926\u0940 \u0939\u0948\u0964",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "I \u2764\ufe0f Swift \U0001f680\U0001f525 \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family, "
    "flags \U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5, skin \U0001f44d\U0001f3fd",
    "e\u0301 vs \u00e9, A\u030a vs \u00c5, \ufb01 ligature, \u2460 circled, \uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48",
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594 \U0001d4c0\U0001d4f8\U0001d4fb\U0001d4f5\U0001d4ed "
    "\u16a0\u16a2\u16a6\u16a8\u16b1\u16b2 \U00013000\U00013001 \ua66e",
    "\u2211_{i=1}^{n} i\u00b2 = n(n+1)/2, \u221a2 \u2248 1.41421, \u221e \u2260 -\u221e, x \u2264 y \u2265 z",
    "a  b   c    d     e\n \n  \t \u00a0nbsp\u3000ideographic\u2003em\u0085nel\u000bvt\u000cff\u2028ls",
    "null\u0000byte bell\u0007 escape\u001b[0m del\u007f",
    "abc\u0430\u0431\u0432123\u4e2d\u6587ABCdef",
    "a" * 80,
    "ab" * 40,
    "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "already\u2581has\u2581metaspace \u2581 \u2581\u2581",
    "\u0120Hello \u010a byte-level \u0100\u0143 chars",
    "<0x41> literal byte token text <0xZZ>",
    # Special and added tokens inside text (each tokenizer sees the others' tokens as plain text).
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|end_of_text|>",
    "text<|eot_id|<|eot_id|>>more <|eot_id",
    "<s>Hello</s> world <s> again</s>",
    "</s>",
    "<s<s>> <s >",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>",
    "<think>\nreasoning here\n</think>\n\nThe answer.",
    "fill <mask> here, then  <mask>  again,<mask>.",
    "a [word] b x[word]y [word]. ([word]) [word]",
    "\u00e9tude e\u0301tude \u00c9tude \u00e9tudes",
    "a <custom> b<custom>c <custom>",
    LICENSE_PARAGRAPH,
]

BYTELEVEL_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
SP_SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]


def fortune_texts():
    files = sorted(f for f in glob.glob(os.path.join(FORTUNES, "*")) if "." not in os.path.basename(f))
    if not files:
        sys.exit(f"no fortunes in {FORTUNES}: apt-get install -y fortunes")
    texts = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            texts.extend(t.strip("\n") for t in fh.read().split("\n%\n") if t.strip())
    return texts


def corpus_cases(fortunes):
    # A deterministic handful of fortunes: short, multi-line, with quotes and dialogue.
    picked = [t for t in fortunes if 40 <= len(t) <= 400][::997][:20]
    return HAND_WRITTEN + picked


def train_bytelevel(training):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=BYTELEVEL_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training, trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                      special_tokens=[(bos, tok.token_to_id(bos))]),
    ])
    # Qwen-style non-special added tokens, plus ones exercising the matching options.
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False),
                    AddedToken("[word]", special=False, normalized=False, single_word=True),
                    AddedToken("e\u0301tude", special=False, normalized=True)])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, rstrip=True)])
    return tok


def train_sentencepiece(training):
    # Train with Metaspace splitting so merges never cross word boundaries (as in SentencePiece),
    # then switch to the legacy Llama 2 layout (normalizer, no pre-tokenizer) for the fixture.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=SP_SPECIALS + BYTE_TOKENS,
                                  limit_alphabet=150, show_progress=False)
    tok.train_from_iterator(training, trainer)
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.add_special_tokens([AddedToken("<start_of_turn>", special=True), AddedToken("<end_of_turn>", special=True)])
    tok.add_tokens([AddedToken("<custom>", special=False, normalized=True)])
    return drop_byte_tokens_from_added(tok)


def drop_byte_tokens_from_added(tok):
    # In Llama 2 the <0xXX> pieces are ordinary vocabulary entries, not added tokens.
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] not in BYTE_TOKENS]
    return Tokenizer.from_str(json.dumps(spec))


def metaspace_variant(sp):
    spec = json.loads(sp.to_str())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
    ]}
    return Tokenizer.from_str(json.dumps(spec))


def expected_outputs(tok, cases):
    out = []
    for text in cases:
        ids = tok.encode(text, add_special_tokens=True).ids
        out.append({
            "ids": ids,
            "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return out


def piece_ends(pattern, cases):
    # End offsets in Unicode scalars of each piece from Split(pattern, "isolated").
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)
    return [[end for _, (_, end) in split.pre_tokenize_str(text)] for text in cases]


def component_tokenizer(**parts):
    spec = {"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "vocab": {}, "merges": []}}
    spec.update(parts)
    return Tokenizer.from_str(json.dumps(spec))


def component_outputs(cases):
    pre = {name: {"spec": spec, "pieces": [[p for p, _ in component_tokenizer(pre_tokenizer=spec).pre_tokenizer.pre_tokenize_str(t)]
                                          for t in cases]}
           for name, spec in PRE_TOKENIZERS.items()}
    norm = {}
    for name, spec in NORMALIZERS.items():
        n = component_tokenizer(normalizer=spec).normalizer
        # Only outputs that differ from the input, keyed by case index, to keep the file small.
        norm[name] = {"spec": spec, "changed": {str(i): n.normalize_str(t) for i, t in enumerate(cases) if n.normalize_str(t) != t}}
    return {"pre_tokenizers": pre, "normalizers": norm}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")


def main():
    fortunes = fortune_texts()
    cases = corpus_cases(fortunes)
    # The corpus is repeated in training so non-Latin scripts get a few merges too.
    training = fortunes + cases * 5

    tokenizers_by_name = {"bytelevel": train_bytelevel(training)}
    sp = train_sentencepiece(training)
    tokenizers_by_name["sentencepiece"] = sp
    tokenizers_by_name["metaspace"] = metaspace_variant(sp)

    os.makedirs(OUT, exist_ok=True)
    write_json(os.path.join(OUT, "corpus.json"), cases)
    expected = {"tokenizers_version": tokenizers.__version__}
    for name, tok in tokenizers_by_name.items():
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        tok.save(os.path.join(OUT, name, "tokenizer.json"), pretty=False)
        expected[name] = expected_outputs(tok, cases)
    write_json(os.path.join(OUT, "expected.json"), expected)
    write_json(os.path.join(OUT, "pretokenize.json"), {
        "patterns": SPLIT_PATTERNS,
        "piece_ends": {name: piece_ends(p, cases) for name, p in SPLIT_PATTERNS.items()},
    })
    write_json(os.path.join(OUT, "components.json"), component_outputs(cases))
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(OUT, "**", "*.json"), recursive=True))
    print(f"{len(cases)} cases, fixtures {total / 1024:.0f} KB in {OUT}")


if __name__ == "__main__":
    main()
