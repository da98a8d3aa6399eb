"""Qwen 3.5 MoE speed: mlxc on ExecuTorch's own export vs PyTorch eager (transformers) on the same checkpoint.

    tools/bench --qwen35 [--runs 3] [--rounds 1] [--prompt-length 128] [--decode 64] [--threads 2]
    (= tools/.venv/bin/python tools/python/bench/qwen35.py …; `eager` as the first argument is one eager measurement)

The model: tools/zoo/qwen35_checkpoint.py's `qwen35moe_bench` (transformers' Qwen3_5MoeTextConfig, random weights,
seed 0): hidden 512, 8 layers (3 GatedDeltaNet per full attention), 16 experts top-4 + a shared expert, vocab 512
(the zoo's tokenizer), ~60M parameters. Exported unchanged by `examples/models/qwen3_5_moe/export.py --backend mlx`
(bf16 — the script casts the model — and `--qlinear 4w --qlinear-group-size 32`), max_seq_len 256.

Peers, alternating within each round, each in its own process (`--peers mlxc,eager,llamacpp`, the default):
  mlxc   `mlxc bench MODEL.pte --prompt-length P --decode D --runs R --threads T --json` (compiled; its fallback_ops
         from `mlxc compile --stats-json` are reported: a row with fallbacks is not a speed claim)
  eager  transformers' Qwen3_5MoeForCausalLM from the checkpoint folder in bf16 and in fp32 (PyTorch's bf16 CPU
         matmuls can be much slower than its fp32 ones: the ratio column is against the faster), torch threads T, a DynamicCache;
         prefill of the prompt in one call, then single-token greedy steps (measure() of peers.py: medians after
         warm-up runs). transformers runs the GatedDeltaNet with its torch fallback (no flash-linear-attention here).
  llamacpp llama.cpp (llama-cpp-python 0.3.36, compiled for this CPU by tools/bench) on GGUF files of the same
         checkpoint written by llama.cpp's own convert_hf_to_gguf.py (architecture qwen35moe; bf16, and q4_0 by
         llama_model_quantize: qwen35_gguf.py), the prompt in one llama_eval batch then single-token evals, greedy
         over its logits (peers.run_llamacpp). Before timing, qwen35_gguf.py's check holds llama.cpp to eager fp32:
         greedy tokens and teacher-forced logits on a 12-token prompt (f32, bf16, q4_0 files).
Writes tools/.work/bench/qwen35/report.md and results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1]
REPO = TOOLS.parent
OUT = TOOLS / ".work" / "bench" / "qwen35"
PY = sys.executable
sys.path.insert(0, str(HERE))

EXPORTS = {"bf16": [], "4w": ["--qlinear", "4w", "--qlinear-group-size", "32"]}


def log(msg: str) -> None:
    print(f"qwen35 bench: {msg}", file=sys.stderr, flush=True)


def prepare() -> Path:
    ckpt = OUT / "checkpoint"
    if not (ckpt / "config.json").exists():
        log("checkpoint (qwen35moe_bench)")
        subprocess.run([PY, str(TOOLS / "zoo" / "qwen35_checkpoint.py"), "qwen35moe_bench", str(ckpt)], check=True,
                       stdout=sys.stderr)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for name, flags in EXPORTS.items():
        d = OUT / name
        if (d / "model.pte").exists():
            continue
        log(f"export {name}")
        subprocess.run([PY, "-m", "executorch.examples.models.qwen3_5_moe.export", "--model-dir", str(ckpt),
                        "--backend", "mlx", "--output-dir", str(d), "--max-seq-len", "256", *flags],
                       check=True, env=env, stdout=sys.stderr)
    return ckpt


def run_mlxc(mlxc: str, model: Path, a) -> dict:
    stats = model.with_suffix(".stats.json")
    r = subprocess.run([mlxc, "compile", str(model), "--stats-json", str(stats), "-o", str(model.with_suffix(".mlxc"))],
                       capture_output=True, text=True)
    fallback = json.loads(stats.read_text()).get("fallback_ops") if r.returncode == 0 else None
    r = subprocess.run([mlxc, "bench", str(model), "--prompt-length", str(a.prompt_length), "--decode", str(a.decode),
                        "--runs", str(a.runs), "--threads", str(a.threads), "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["fallback_ops"] = fallback
    return res


def run_eager_process(ckpt: Path, a, dtype: str) -> dict:
    r = subprocess.run([PY, __file__, "eager", "--checkpoint", str(ckpt), "--dtype", dtype,
                        "--prompt-length", str(a.prompt_length),
                        "--decode", str(a.decode), "--runs", str(a.runs), "--threads", str(a.threads)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}


def run_llamacpp_process(gguf: Path, a) -> dict:
    r = subprocess.run([PY, __file__, "llamacpp", "--gguf", str(gguf), "--prompt-length", str(a.prompt_length),
                        "--decode", str(a.decode), "--runs", str(a.runs), "--threads", str(a.threads)],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}


def llamacpp_main(argv) -> int:
    from peers import run_llamacpp

    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    ckpt = OUT / "checkpoint"
    a.model, a.budget_s = a.gguf, 0
    a.vocab = json.loads((ckpt / "config.json").read_text())["vocab_size"]
    print("BENCH_JSON " + json.dumps(run_llamacpp(a)), flush=True)
    return 0


def llamacpp_setup(ckpt: Path) -> tuple[dict, dict]:
    """GGUF files and the agreement check, or the reason llama.cpp is not measured."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return {}, {"error": "llama-cpp-python is not installed (tools/bench --qwen35 builds it unless --peers leaves llamacpp out)"}
    r = subprocess.run([PY, str(HERE / "qwen35_gguf.py"), "check", str(ckpt), str(OUT / "gguf")], capture_output=True, text=True,
                       env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if r.returncode != 0:
        return {}, {"error": "GGUF conversion/check failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]}
    check = json.loads(r.stdout)
    return {q: OUT / "gguf" / f"qwen35moe_bench-{q}.gguf" for q in ("bf16", "q4_0")}, check


def eager_main(argv) -> int:
    import torch
    import transformers as tf
    from peers import measure

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = json.loads((a.checkpoint / "config.json").read_text())
    a.vocab, a.budget_s = cfg["vocab_size"], 0

    def load():
        m = tf.AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=torch.bfloat16 if a.dtype == "bf16" else torch.float32)
        m.eval()
        return {"model": m, "cache": None}

    def prefill(s, prompt):
        with torch.inference_mode():
            s["cache"] = tf.DynamicCache(config=s["model"].config)
            out = s["model"](torch.tensor([prompt]), past_key_values=s["cache"], use_cache=True)
            s["cache"] = out.past_key_values
            return int(torch.argmax(out.logits[0, -1]))

    def step(s, tok, pos):
        with torch.inference_mode():
            out = s["model"](torch.tensor([[tok]]), past_key_values=s["cache"], use_cache=True,
                             cache_position=torch.tensor([pos]))
            s["cache"] = out.past_key_values
            return int(torch.argmax(out.logits[0, -1]))

    r = measure(load, prefill, step, a)
    r["torch_threads"] = torch.get_num_threads()
    print("BENCH_JSON " + json.dumps(r), flush=True)
    return 0


def fmt(x, digits=3):
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if x < 1000 else f"{x:.0f}"


def report(results: dict, a, started: str, seconds: float) -> str:
    def med(peer, key):
        xs = [r[key] for r in results.get(peer, []) if r.get(key) is not None]
        return statistics.median(xs) if xs else None

    load = os.getloadavg()
    lines = ["## Qwen 3.5 MoE (tiny, random weights): mlxc vs PyTorch eager and llama.cpp", "",
             f"`tools/bench --qwen35 --runs {a.runs} --rounds {a.rounds} --prompt-length {a.prompt_length} "
             f"--decode {a.decode} --threads {a.threads}` — started {started}, {seconds / 60:.1f} min; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average at the end "
             f"{load[0]:.1f}. Model: `qwen35moe_bench` (hidden 512, 8 layers: 6 GatedDeltaNet + 2 full attention, "
             "16 experts top-4 + shared expert, vocab 512), exported by `examples/models/qwen3_5_moe/export.py "
             "--backend mlx` unchanged; eager = transformers' Qwen3_5MoeForCausalLM (DynamicCache, its torch "
             "GatedDeltaNet; bf16 and fp32). Prompt in one call, then greedy single-token steps; medians of the runs, then of the "
             "rounds.", ""]
    if load[0] > 1.5:
        lines += [f"> **Busy machine** (load average {load[0]:.1f} on {os.cpu_count()} cores at the end): every peer "
                  "shared the CPU with other work, eager most (its runs are longest); re-run on a quiet machine "
                  "before quoting figures.", ""]
    check = results.get("llamacpp check", [{}])[-1]
    if check.get("error"):
        lines += [f"llama.cpp: not measured — {check['error']}", ""]
    elif check:
        agree = "; ".join(f"{q} greedy {check[q]['agree_with_eager']}, logits within {check[q]['worst_logit_error_vs_max_eager']:.1e}"
                          for q in ("f32", "bf16", "q4_0") if q in check)
        lines += [f"llama.cpp (llama-cpp-python {check.get('llama_cpp_python')}) against eager fp32 on a 12-token prompt, 13 greedy "
                  f"steps, logits teacher-forced and relative to max |eager|: {agree}.", ""]
    lines += [
             "| peer | weights | prefill tok/s | decode tok/s | decode vs the faster eager | time to first token s | fallback_ops |",
             "|---|---|---|---|---|---|---|"]
    eager_dec = max((d for d in (med("eager bf16", "decode_tokens_per_s"), med("eager fp32", "decode_tokens_per_s"))
                     if d), default=None)
    for peer, weights in (("mlxc bf16", "bf16"), ("mlxc 4w", "4-bit g32 (MLX affine)"), ("eager bf16", "bf16"),
                          ("eager fp32", "fp32"), ("llamacpp bf16", "bf16 (GGUF)"), ("llamacpp q4_0", "q4_0 (GGUF; 4.5 bits)")):
        if peer not in results:
            continue
        dec = med(peer, "decode_tokens_per_s")
        ratio = f"{dec / eager_dec:.2f}×" if dec and eager_dec else "—"
        ttft = med(peer, "time_to_first_token_s")
        fb = results.get(peer, [{}])[-1].get("fallback_ops", "—") if peer.startswith("mlxc") else "—"
        lines.append(f"| {peer} | {weights} | {fmt(med(peer, 'prefill_tokens_per_s'))} | {fmt(dec)} | {ratio} | "
                     f"{fmt(ttft)} | {fb} |")
    errors = [f"- {p}: {r['error']}" for p, rs in results.items() for r in rs if r.get("error") and p != "llamacpp check"]
    return "\n".join(lines + ([""] + errors if errors else [])) + "\n"


MARK_BEGIN, MARK_END = "<!-- qwen35: tools/bench --qwen35 writes this section -->", "<!-- /qwen35 -->"


def splice(path: Path, section: str) -> None:
    """Replaces the Qwen 3.5 section of BENCHMARKS.md (between its markers; the LLM report keeps it), or appends it."""
    section = f"{MARK_BEGIN}\n{section.rstrip()}\n{MARK_END}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_BEGIN in text and MARK_END in text:
        a, b = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END) + 1
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "eager":
        return eager_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "llamacpp":
        return llamacpp_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlxc", default=str(REPO / ".build" / "release" / "mlxc"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers", default="mlxc,eager,llamacpp")
    a = ap.parse_args()
    peers = set(a.peers.split(","))
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    ckpt = prepare()
    results: dict = {}
    ggufs: dict = {}
    if "llamacpp" in peers:
        log("llama.cpp: GGUF files and their check against eager")
        ggufs, check = llamacpp_setup(ckpt)
        results["llamacpp check"] = [check]
    for rnd in range(a.rounds):
        for name in ("bf16", "4w") if "mlxc" in peers else ():
            log(f"round {rnd + 1}: mlxc {name}")
            results.setdefault(f"mlxc {name}", []).append(run_mlxc(a.mlxc, OUT / name / "model.pte", a))
        for dtype in ("bf16", "fp32") if "eager" in peers else ():
            log(f"round {rnd + 1}: eager {dtype}")
            results.setdefault(f"eager {dtype}", []).append(run_eager_process(ckpt, a, dtype))
        for q, path in ggufs.items():
            log(f"round {rnd + 1}: llama.cpp {q}")
            results.setdefault(f"llamacpp {q}", []).append(run_llamacpp_process(path, a))
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = report(results, a, started, time.time() - t0)
    (OUT / "report.md").write_text(md)
    splice(REPO / "BENCHMARKS.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
