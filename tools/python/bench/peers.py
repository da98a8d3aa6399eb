"""One peer measurement, run in its own process (so its peak RSS is its own):

    tools/.venv/bin/python tools/python/bench/peers.py PEER --model FILE [--size small] [--precision fp32]
        [--prompt-length 128] [--decode 128] [--runs 5] [--threads 2]

PEER: xnnpack | portable (ExecuTorch Python runtime) | eager (PyTorch) | llamacpp (llama-cpp-python). (mlxc is its own
`mlxc bench`; bench/run.py runs it directly.)
Prints one JSON object on stdout: prefill_tokens_per_s, decode_tokens_per_s (medians over --runs measured runs
after a warm-up run on the same loaded model), load_s, time_to_first_token_s (= load + the FIRST, cold
prefill call: ExecuTorch's Python runtime loads methods and initialises delegates lazily on the first call;
mlxc reports load+compile + median prefill, its load having compiled everything), peak_rss_mb (this process; the driver also takes the child's ru_maxrss),
base_rss_mb (after imports, before loading the model), tokens (the greedy continuation of the last run).

--budget-s caps slow peers (see measure()). Every peer: a seeded random prompt of --prompt-length tokens prefilled in ONE call (llama.cpp: n_batch =
n_ubatch = prompt length), then --decode single-token calls, greedy (argmax of the last logits row), with the
KV cache carried across calls. A rerun starts again at position 0: the models mask every slot past the
current position, so what earlier runs left in the cache is never read.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prompt_tokens(n: int, vocab: int) -> list:
    import random

    rng = random.Random(0x5EED)
    return [rng.randrange(vocab) for _ in range(n)]


def measure(load, prefill, step, args) -> dict:
    """load() → state; prefill(state, tokens) → next token; step(state, token, pos) → next token.

    Time budget: two warm-up runs decode at most WARM_DECODE tokens each; the second gives the cost of a
    prefill and of a decode step; if --runs full runs would exceed --budget-s, the decode count is cut (not below
    WARM_DECODE), then the run count (not below 3). Both are reported (decode_tokens, runs, capped)."""
    base = rss_mb()
    t0 = time.perf_counter()
    state = load()
    load_s = time.perf_counter() - t0
    prompt = prompt_tokens(args.prompt_length, args.vocab)

    def one_run(n_decode):
        t0 = time.perf_counter()
        tok = prefill(state, prompt)
        t1 = time.perf_counter()
        out = [tok]
        for i in range(n_decode):
            tok = step(state, tok, args.prompt_length + i)
            out.append(tok)
        return t1 - t0, time.perf_counter() - t1, out

    warm_n = min(args.decode, WARM_DECODE)
    cold_prefill, _, _ = one_run(warm_n)
    # the cold run includes lazy initialisation: estimate the costs from a second short run
    t_pre, warm_dec, _ = one_run(warm_n)
    t_tok = warm_dec / max(warm_n, 1)
    n_decode, runs = args.decode, args.runs
    if args.budget_s and runs * (t_pre + n_decode * t_tok) > args.budget_s:
        n_decode = max(warm_n, min(n_decode, int((args.budget_s / runs - t_pre) / max(t_tok, 1e-9))))
        if runs * (t_pre + n_decode * t_tok) > args.budget_s:
            runs = max(3, int(args.budget_s / (t_pre + n_decode * t_tok)))
    pre, dec, out = [], [], []
    for _ in range(runs):
        p, d, out = one_run(n_decode)
        pre.append(p)
        dec.append(d)
    mp, md = statistics.median(pre), statistics.median(dec)
    return {"prefill_tokens_per_s": args.prompt_length / mp,
            "decode_tokens_per_s": n_decode / md if n_decode else None,
            "load_s": load_s, "cold_prefill_s": cold_prefill, "time_to_first_token_s": load_s + cold_prefill,
            "prefill_s_all": pre, "decode_s_all": dec, "decode_tokens": n_decode, "runs": runs,
            "capped": n_decode < args.decode or runs < args.runs,
            "peak_rss_mb": rss_mb(), "base_rss_mb": base, "tokens": out[:16]}


WARM_DECODE = 8


# ------------------------------------------------------------------------------------------------- peers


def run_executorch(args) -> dict:
    import torch
    import executorch.kernels.quantized  # noqa: F401  (quantized_decomposed kernels)
    from executorch.extension.pybindings import portable_lib as pl

    pl._unsafe_reset_threadpool(args.threads)

    def load():
        return pl._load_for_executorch(args.model)

    def argmax_last(out):
        return int(torch.argmax(out[0][0, -1]).item())

    def prefill(prog, prompt):
        return argmax_last(prog.forward([torch.tensor([prompt], dtype=torch.long), torch.tensor([0], dtype=torch.long)]))

    def step(prog, tok, pos):
        return argmax_last(prog.forward([torch.tensor([[tok]], dtype=torch.long), torch.tensor([pos], dtype=torch.long)]))

    r = measure(load, prefill, step, args)
    r["threadpool_threads"] = pl._threadpool_get_thread_count()
    return r


def run_eager(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import export_bench_models as ebm
    import models

    def load():
        cfg = ebm.config(args.size)
        m = models.DecoderLM(cfg, "plain")
        sd = torch.load(args.model, map_location="cpu")
        m.load_state_dict(sd, strict=False)
        m.eval()
        m.requires_grad_(False)
        if args.precision == "bf16":
            m = m.to(torch.bfloat16)
        elif args.precision in ("8bit", "4bit"):
            ebm.quantize_(m, "8w" if args.precision == "8bit" else "4w", embeddings=True)
        return m

    def prefill(m, prompt):
        with torch.inference_mode():
            return int(torch.argmax(m(torch.tensor([prompt]), torch.tensor([0]))[0, -1]).item())

    def step(m, tok, pos):
        with torch.inference_mode():
            return int(torch.argmax(m(torch.tensor([[tok]]), torch.tensor([pos]))[0, -1]).item())

    r = measure(load, prefill, step, args)
    r["torch_threads"] = torch.get_num_threads()
    return r


def run_llamacpp(args) -> dict:
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    def load():
        llm = Llama(model_path=args.model, n_ctx=512, n_batch=args.prompt_length, n_ubatch=args.prompt_length,
                    n_threads=args.threads, n_threads_batch=args.threads, logits_all=False, verbose=False, seed=0)
        return llm

    def last_argmax(llm):
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))))

    def prefill(llm, prompt):
        llm.reset()
        llm.eval(prompt)
        return last_argmax(llm)

    def step(llm, tok, pos):
        assert llm.n_tokens == pos
        llm.eval([tok])
        return last_argmax(llm)

    r = measure(load, prefill, step, args)
    r["llama_cpp_python"] = llama_cpp.__version__
    r["system_info"] = llama_cpp.llama_print_system_info().decode().strip()
    return r


PEERS = {"xnnpack": run_executorch, "portable": run_executorch, "eager": run_eager,
         "llamacpp": run_llamacpp}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", choices=sorted(PEERS))
    ap.add_argument("--model", required=True, help=".pte, .gguf, or (eager) the state dict .pt")
    ap.add_argument("--size", default="small")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=0, help="cap decode tokens / runs to fit (0: no cap)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    r = PEERS[args.peer](args)
    r.update(peer=args.peer, model=args.model, precision=args.precision, prompt_tokens=args.prompt_length,
             requested_decode_tokens=args.decode, requested_runs=args.runs, threads=args.threads)
    print("BENCH_JSON " + json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
