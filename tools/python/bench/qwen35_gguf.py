"""GGUF files of the Qwen 3.5 MoE bench checkpoint for llama.cpp, by llama.cpp's own converter, and a check that
llama.cpp computes what PyTorch eager does on them.

    tools/.venv/bin/python tools/python/bench/qwen35_gguf.py convert CHECKPOINT OUT_DIR   # f32, bf16, q4_0 .gguf
    tools/.venv/bin/python tools/python/bench/qwen35_gguf.py check CHECKPOINT OUT_DIR     # greedy tokens + logits

The converter: `convert_hf_to_gguf.py` of a llama.cpp source tree — $LLAMA_CPP_SRC, else the tree vendored in
llama-cpp-python 0.3.36's sdist (the version tools/bench builds for its llamacpp peer), fetched with
`pip download --no-binary :all: --no-deps` into tools/.work/llamacpp/ and unpacked. That tree registers
`Qwen3_5MoeForCausalLM` (conversion/qwen.py: Qwen3_5MoeTextModel, GGUF architecture `qwen35moe`; src/models/
qwen35moe.cpp). Two things the tiny checkpoint needs, both passed to the converter unchanged otherwise:
  - `--no-mtp`: Qwen 3.5's converter expects multi-token-prediction layers unless told there are none;
  - the zoo's 512-token tokenizer is byte-level BPE with GPT-2's split regex, whose token hash the converter's
    table does not list ("BPE pre-tokenizer was not recognized"): the driver names it `gpt-2` (llama.cpp's
    pre-tokenizer for exactly that regex) — only when tokenizer.json's pre_tokenizer is a plain ByteLevel with
    use_regex. The bench feeds token ids, so the pre-tokenizer never runs there.
q4_0 is quantized from the f32 file by llama.cpp's own llama_model_quantize (llama-cpp-python).
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1]
WORK = TOOLS / ".work" / "llamacpp"
VERSION = "0.3.36"


def log(msg: str) -> None:
    print(f"qwen35 gguf: {msg}", file=sys.stderr, flush=True)


def source_tree() -> Path:
    if os.environ.get("LLAMA_CPP_SRC"):
        return Path(os.environ["LLAMA_CPP_SRC"])
    tree = WORK / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if (tree / "convert_hf_to_gguf.py").exists():
        return tree
    WORK.mkdir(parents=True, exist_ok=True)
    sdist = WORK / f"llama_cpp_python-{VERSION}.tar.gz"
    if not sdist.exists():
        log(f"pip download llama-cpp-python=={VERSION} (sdist: llama.cpp's source tree)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(WORK),
                        f"llama-cpp-python=={VERSION}"], check=True, stdout=sys.stderr)
    with tarfile.open(sdist) as t:
        t.extractall(WORK, filter="data")
    return tree


def convert_in_process(tree: Path, ckpt: Path, outtype: str, out: Path) -> None:
    """Runs the converter's main with the one pre-tokenizer name it cannot derive for the zoo tokenizer."""
    sys.path[:0] = [str(tree), str(tree / "gguf-py")]
    import conversion.base as base

    pre = json.loads((ckpt / "tokenizer.json").read_text()).get("pre_tokenizer") or {}
    original = base.TextModel.get_vocab_base_pre

    def vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
                return "gpt-2"
            raise

    base.TextModel.get_vocab_base_pre = vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", str(ckpt), "--no-mtp", "--outtype", outtype, "--outfile", str(out)]
    runpy.run_path(str(tree / "convert_hf_to_gguf.py"), run_name="__main__")


def convert(ckpt: Path, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {q: out_dir / f"qwen35moe_bench-{q}.gguf" for q in ("f32", "bf16", "q4_0")}
    tree = source_tree()
    for q in ("f32", "bf16"):
        if not files[q].exists():
            log(f"convert_hf_to_gguf.py --outtype {q}")
            subprocess.run([sys.executable, __file__, "convert-one", str(tree), str(ckpt), q, str(files[q])], check=True,
                           stdout=sys.stderr, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if not files["q4_0"].exists():
        import llama_cpp

        log("llama_model_quantize f32 -> q4_0")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
        params.nthread = 2
        rc = llama_cpp.llama_model_quantize(str(files["f32"]).encode(), str(files["q4_0"]).encode(), params)
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize returned {rc}")
    return files


def check(ckpt: Path, out_dir: Path, n_prompt: int = 12, n_new: int = 13) -> dict:
    """Greedy tokens and logits of llama.cpp (f32 and bf16 GGUF) against transformers' eager model in fp32."""
    import numpy as np
    import torch
    import transformers as tf
    import llama_cpp
    from llama_cpp import Llama

    files = convert(ckpt, out_dir)
    cfg = json.loads((ckpt / "config.json").read_text())
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(11, cfg["vocab_size"], n_prompt)]
    model = tf.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        eager_logits = []
        for _ in range(n_new):
            logits = model(ids).logits[0, -1]
            eager_logits.append(logits.numpy())
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    eager_tokens = [int(t) for t in ids[0, n_prompt:]]
    out = {"prompt": prompt, "eager_fp32_tokens": eager_tokens, "llama_cpp_python": llama_cpp.__version__}
    for q in ("f32", "bf16", "q4_0"):
        llm = Llama(model_path=str(files[q]), n_ctx=64, n_batch=64, n_threads=2, logits_all=True, verbose=False, seed=0)
        tokens, worst = [], 0.0
        seq = list(prompt)
        llm.reset()
        llm.eval(seq)
        for step in range(n_new):
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()
            # teacher-forced on eager's tokens: logits comparable at every step
            ref = eager_logits[step]
            worst = max(worst, float(np.abs(logits - ref).max() / np.abs(ref).max()))
            tokens.append(int(logits.argmax()))
            llm.eval([eager_tokens[step]])
        same = next((i for i, (a, b) in enumerate(zip(tokens, eager_tokens)) if a != b), len(tokens))
        out[q] = {"tokens": tokens, "agree_with_eager": f"{same}/{n_new}", "worst_logit_error_vs_max_eager": worst}
        log(f"{q}: greedy {same}/{n_new} = eager fp32, logits within {worst:.2e} of max |eager| (teacher-forced)")
    (out_dir / "check.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "convert-one":
        tree, ckpt, outtype, out = sys.argv[2:6]
        convert_in_process(Path(tree), Path(ckpt), outtype, Path(out))
        return 0
    if cmd in ("convert", "check") and len(sys.argv) == 4:
        ckpt, out_dir = Path(sys.argv[2]), Path(sys.argv[3])
        r = convert(ckpt, out_dir) if cmd == "convert" else check(ckpt, out_dir)
        print(json.dumps({k: str(v) for k, v in r.items()} if cmd == "convert" else r, indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
