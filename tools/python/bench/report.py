"""BENCHMARKS.md from the driver's results (bench/run.py): machine, versions, roofline, the comparison tables,
where mlxc stands against its targets, llama.cpp's GGUF agreement check."""
from __future__ import annotations

import glob
import importlib.metadata as md
import os
import platform
import statistics
import subprocess
from pathlib import Path

import export as bexport
import roofline

PEER_NAMES = {"mlxc": "mlxc", "mlxc-avx2": "mlxc AVX2", "mlxc-unfused": "mlxc unfused", "mlxc-plain": "mlxc on the plain export",
              "mlxc-plain-unfused": "mlxc plain unfused", "mlxc-xnnpack": "mlxc on the XNNPACK export", "xnnpack": "ExecuTorch XNNPACK", "portable": "ExecuTorch portable",
              "eager": "PyTorch eager", "llamacpp": "llama.cpp"}
NOISY = 0.20  # others' CPU share above which a measurement is marked † (set from the run's --noisy)
LLAMA_TYPES = {"fp32": "F32", "bf16": "F16", "8bit": "Q8_0", "4bit": "Q4_0"}
# mlxc's builds in the roofline and targets: peer → (label, FMA width its kernels use; None: the host's best)
MLXC_BUILDS = {"mlxc": ("native", None), "mlxc-avx2": ("AVX2 (MLXC_ISA=avx2)", "256bit")}


# ------------------------------------------------------------------------------------------- environment


def _sh(cmd, cwd=None) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    cpu, flags = "?", []
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and cpu == "?":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile"]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 1048576, 1),
            "simd": [f for f in wanted if f in flags], "llc_mb": roofline.llc_bytes() / 1048576,
            "kernel": platform.release(), "os": _sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])}


def versions(repo: Path, mlxc: Path) -> dict:
    v = {}
    head = _sh(["git", "rev-parse", "HEAD"], cwd=repo)
    dirty = _sh(["git", "status", "--porcelain", "--", "Sources", "Runtime", "Passes", "Package.swift"], cwd=repo)
    v["mlxc"] = head[:12] + (" + uncommitted changes under Sources/Runtime/Passes" if dirty else "")
    if mlxc.exists():
        import time
        built = mlxc.stat().st_mtime
        v["mlxc_binary_built"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(built))
        last = _sh(["git", "log", "-1", "--format=%ct", "--", "Sources", "Runtime", "Passes", "Package.swift"], cwd=repo)
        if last and int(last) > built:
            v["mlxc_binary_built"] += " — OLDER than the last commit to the Swift sources (run without --no-build)"
    for pkg in ("torch", "executorch", "torchao", "llama_cpp_python", "gguf", "numpy"):
        try:
            v[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            v[pkg] = "not installed"
    libs = glob.glob(str(Path(os.__file__).parent / "site-packages" / "llama_cpp" / "lib" / "libggml-base.so.*.*.*"))
    if not libs:
        import sys
        libs = glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages", "llama_cpp", "lib", "libggml-base.so.*.*.*"))
    if libs:
        v["ggml"] = libs[0].rsplit(".so.", 1)[1]
    v["python"] = platform.python_version()
    v["gcc"] = _sh(["gcc", "-dumpfullversion"])
    v["swift"] = (_sh(["swift", "--version"]).splitlines() or [""])[0]
    return v


# ---------------------------------------------------------------------------------------------- tables


def aggregate(results):
    """(size, precision, peer) → merged record (median over rounds of ok measurements) or the failure."""
    groups = {}
    for r in results:
        if r.get("contention"):
            continue  # contention_table's
        groups.setdefault((r["size"], r["precision"], r["peer"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        if not ok:
            out[key] = dict(rs[-1])
            continue
        m = dict(ok[-1])
        for f in ("prefill_tokens_per_s", "decode_tokens_per_s", "time_to_first_token_s", "peak_rss_mb", "load_s",
                  "bandwidth_gb_s"):
            vals = [r[f] for r in ok if r.get(f) is not None]
            m[f] = statistics.median(vals) if vals else None
        m["others_cpu_share"] = max(r.get("others_cpu_share", 0) for r in ok)
        m["rounds"] = len(ok)
        out[key] = m
    return out


def ratio(q: float) -> str:
    return f"{q:.2f}×" if q >= 0.1 else f"{q:.2g}×"


def fmt(x, digits=1):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def metric_table(agg, sizes, precisions, peers, field, title, higher_better, digits=1) -> list:
    lines = [f"**{title}** — " + ("mlxc ÷ peer in parentheses, > 1 means mlxc is faster"
                                  if higher_better else "mlxc ÷ peer in parentheses, < 1 means mlxc is better"), ""]
    lines.append("| model | precision | " + " | ".join(PEER_NAMES[p] for p in peers) + " |")
    lines.append("|---|---|" + "---|" * len(peers))
    for size in sizes:
        for prec in precisions:
            row = [size, prec]
            base = agg.get((size, prec, "mlxc"))
            bval = base.get(field) if base and base.get("ok") else None
            for p in peers:
                r = agg.get((size, prec, p))
                if r is None:
                    row.append("—")
                    continue
                if not r.get("ok"):
                    row.append("failed¹")
                    continue
                v = r.get(field)
                cell = fmt(v, digits)
                if p != "mlxc" and bval and v:
                    cell += f" ({ratio(bval / v)})"
                if r.get("others_cpu_share", 0) > NOISY:
                    cell += " †"
                if r.get("capped") and field in ("decode_tokens_per_s", "prefill_tokens_per_s"):
                    cell += f" [{r['decode_tokens']} tok × {r['runs']}]"
                if p != "mlxc" and r.get("artifact") and field == "decode_tokens_per_s" and p in ("xnnpack", "llamacpp"):
                    cell = f"{cell} `{r['artifact']}`"
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def fusion_table(agg, sizes, precisions) -> list:
    """Fused ÷ unfused mlxc, decode and prefill, on the MLX-delegated and on the plain export."""
    pairs = [("MLX-delegated", "mlxc", "mlxc-unfused"), ("plain", "mlxc-plain", "mlxc-plain-unfused")]
    lines = ["**What fusion buys** — mlxc with its default pipeline ÷ the same mlxc with canonicalization only "
             "(`--pipeline " + "fold-scalar-constants,cse,dce,last-position-logits`), tokens/s; > 1 means fusion is faster", "",
             "| model | precision | export | decode fused | decode unfused | decode ratio | prefill fused | prefill unfused | prefill ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    any_row = False
    for size in sizes:
        for prec in precisions:
            for label, fused, unfused in pairs:
                f, u = agg.get((size, prec, fused)), agg.get((size, prec, unfused))
                if not (f and u and f.get("ok") and u.get("ok")):
                    continue
                any_row = True
                row = [size, prec, label]
                for field in ("decode_tokens_per_s", "prefill_tokens_per_s"):
                    a, b = f.get(field), u.get(field)
                    row += [fmt(a), fmt(b), ratio(a / b) if a and b else "—"]
                lines.append("| " + " | ".join(row) + " |")
    return lines + [""] if any_row else []


def same_file_table(agg, sizes, precisions) -> list:
    """mlxc and ExecuTorch on the same XNNPACK .pte (mlxc-xnnpack vs xnnpack): every metric, mlxc ÷ ExecuTorch."""
    lines = ["**The same XNNPACK file on both runtimes** — mlxc (the delegates inlined, fused, compiled) against "
             "ExecuTorch's own runtime (XNNPACK) on the identical `.pte`; ratio mlxc ÷ ExecuTorch (tok/s: > 1 mlxc faster; "
             "time and memory: < 1 mlxc better)", "",
             "| model | file | decode mlxc | decode ExecuTorch | ratio | prefill mlxc | prefill ExecuTorch | ratio | "
             "TTFT mlxc, s | TTFT ExecuTorch, s | peak RSS mlxc, MB | peak RSS ExecuTorch, MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    any_row = False
    for size in sizes:
        for prec in precisions:
            m, x = agg.get((size, prec, "mlxc-xnnpack")), agg.get((size, prec, "xnnpack"))
            if not (m and x and m.get("ok") and x.get("ok")):
                continue
            any_row = True
            row = [size, f"`{x['artifact']}`"]
            for field in ("decode_tokens_per_s", "prefill_tokens_per_s"):
                a, b = m.get(field), x.get(field)
                row += [fmt(a), fmt(b), ratio(a / b) if a and b else "—"]
            row += [fmt(m.get("time_to_first_token_s"), 2), fmt(x.get("time_to_first_token_s"), 2),
                    fmt(m.get("peak_rss_mb"), 0), fmt(x.get("peak_rss_mb"), 0)]
            lines.append("| " + " | ".join(row) + " |")
    return lines + [""] if any_row else []


def start_table(agg, sizes, precisions) -> list:
    """mlxc's time to first token from an empty kernel cache (every kernel optimized by LLVM) and with the kernels
    cached by that first start, beside the peers' (which have no compile step)."""
    lines = ["**Time to first token, cold and cached** — mlxc's first start with an empty kernel cache (LLVM optimizes "
             "every kernel) and the measured starts that load the kernels it stored; load, compile and a 128-token "
             "prefill included, s", "",
             "| model | precision | mlxc variant | cold | kernels optimized | cached | kernels cached | XNNPACK | llama.cpp |",
             "|---|---|---|---|---|---|---|---|---|"]
    any_row = False
    for size in sizes:
        for prec in precisions:
            for variant in ("mlxc", "mlxc-plain", "mlxc-xnnpack", "mlxc-unfused", "mlxc-plain-unfused"):
                m = agg.get((size, prec, variant))
                if not (m and m.get("ok") and m.get("cold_start")):
                    continue
                any_row = True
                cold, extra = m["cold_start"], m.get("extra", {})
                peer = lambda p: fmt((agg.get((size, prec, p)) or {}).get("time_to_first_token_s"), 2)
                lines.append(f"| {size} | {prec} | {PEER_NAMES[variant]} | {fmt(cold.get('time_to_first_token_s'), 2)} | "
                             f"{cold.get('kernels_optimized', '—')} | {fmt(m.get('time_to_first_token_s'), 2)} | "
                             f"{extra.get('kernels_cached', '—')} | {peer('xnnpack')} | {peer('llamacpp')} |")
    return lines + [""] if any_row else []


def contention_table(results, sizes, precisions, peers) -> list:
    """Decode with busy processes beside each runtime (`--contention`) against its own idle figure."""
    busy = {}
    for r in results:
        if r.get("contention") and r.get("ok"):
            busy.setdefault((r["size"], r["precision"], r["peer"]), []).append(r)
    if not busy:
        return []
    idle = aggregate(results)
    procs = next(iter(busy.values()))[0]["contention"]
    lines = [f"**Decode under contention** — {procs} busy process(es) (`python -c 'while True: pass'`) beside the "
             "runtime, placed by the scheduler; tokens/s, and slowdown against the same peer's idle figure (1.00× = "
             "unaffected; the issue's target for mlxc: ≤ 1.25×)", "",
             "| model | precision | " + " | ".join(f"{PEER_NAMES[p]} idle | busy | slowdown" for p in peers) + " |",
             "|---|---|" + "---|---|---|" * len(peers)]
    for size in sizes:
        for prec in precisions:
            row = [size, prec]
            for p in peers:
                b = busy.get((size, prec, p))
                i = idle.get((size, prec, p))
                bv = statistics.median(r["decode_tokens_per_s"] for r in b) if b else None
                iv = i.get("decode_tokens_per_s") if i and i.get("ok") else None
                row += [fmt(iv), fmt(bv), f"{iv / bv:.2f}×" if iv and bv else "—"]
            lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def fma_peak(rf, width) -> float:
    """GFLOP/s the build can reach: its vector width's measured peak (the host's best when width is None)."""
    return rf["fma_gflops_by_width"].get(width, rf["fma_peak_gflops"]) if width else rf["fma_peak_gflops"]


def roofline_rows(meta, agg, sizes, precisions) -> tuple:
    rf = meta["roofline"]
    bw = rf["read_bandwidth_gb_s"] * 1e9
    llc = rf.get("llc_bytes", 0)
    lines = ["| model | precision | mlxc build | weights MB/token | KV MB/token | > LLC | decode bound (weights) tok/s | "
             "mlxc decode tok/s | % of bound | % of bound incl. KV | bandwidth just before, GB/s | % of that bound | "
             "FMA peak GFLOP/s | prefill bound tok/s | mlxc prefill tok/s | % |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pct = {}
    for size in sizes:
        cfg = meta["model_configs"][size]
        for prec in precisions:
            c = roofline.model_costs(cfg, prec)
            dec_bound = bw / c["weights_bytes_per_token"]
            dec_bound_kv = bw / (c["weights_bytes_per_token"] + c["kv_bytes_per_token"])
            big = c["weights_bytes_per_token"] > llc
            for peer, (label, width) in MLXC_BUILDS.items():
                r = agg.get((size, prec, peer))
                if (r is None and peer != "mlxc") or not bexport.artifact(peer, size, prec):
                    continue
                fma = fma_peak(rf, width) * 1e9
                pre_bound = fma / c["flops_per_token"]
                dec = r.get("decode_tokens_per_s") if r and r.get("ok") else None
                pre = r.get("prefill_tokens_per_s") if r and r.get("ok") else None
                pct[(size, prec, peer)] = (dec / dec_bound if dec else None, big, pre / pre_bound if pre else None)
                local = r.get("bandwidth_gb_s") if r and r.get("ok") else None
                local_pct = f"{100 * dec * c['weights_bytes_per_token'] / (local * 1e9):.0f}%" if local and dec else "—"
                lines.append(f"| {size} | {prec} | {label} | {c['weights_bytes_per_token'] / 1e6:.1f} | {c['kv_bytes_per_token'] / 1e6:.1f} | "
                             f"{'yes' if big else 'no'} | {dec_bound:.0f} | {fmt(dec)} | "
                             f"{'—' if dec is None else f'{100 * dec / dec_bound:.0f}%'} | "
                             f"{'—' if dec is None else f'{100 * dec / dec_bound_kv:.0f}%'} | {fmt(local)} | {local_pct} | "
                             f"{fma / 1e9:.0f} | {pre_bound:.0f} | {fmt(pre)} | "
                             f"{'—' if pre is None else f'{100 * pre / pre_bound:.0f}%'} |")
    return lines, pct


def targets(agg, sizes, pct, meta=None) -> list:
    """Issue 16's "done when" points that one run of the benchmark can decide, for each mlxc build measured."""
    out = []

    def get(size, prec, peer, field):
        r = agg.get((size, prec, peer))
        return r.get(field) if r and r.get("ok") else None

    def dec(size, prec, peer):
        return get(size, prec, peer, "decode_tokens_per_s")

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    for size in sizes:
        m, x = dec(size, "fp32", "mlxc"), dec(size, "fp32", "xnnpack")
        if m and x:
            out.append(f"- {size}: decode ≥ 1.5× XNNPACK fp32 — {ratio(m / x)} ({fmt(m)} vs {fmt(x)} tok/s): {verdict(m / x >= 1.5)}")
        for peer in MLXC_BUILDS:
            m, x = dec(size, "4bit", peer), dec(size, "4bit", "xnnpack")
            if m and x:
                out.append(f"- {size} {PEER_NAMES[peer]}: 4-bit decode ≥ 3× XNNPACK 8da4w — {ratio(m / x)} ({fmt(m)} vs {fmt(x)} tok/s): {verdict(m / x >= 3)}")
        for prec, name in (("fp32", "xnnpack_fp32"), ("4bit", "xnnpack_8da4w")):
            m, x = agg.get((size, prec, "mlxc-xnnpack")), agg.get((size, prec, "xnnpack"))
            if m and x and m.get("ok") and x.get("ok"):
                d = m["decode_tokens_per_s"] / x["decode_tokens_per_s"]
                p = m["prefill_tokens_per_s"] / x["prefill_tokens_per_s"]
                out.append(f"- {size} `{name}`, the same file: decode ≥ 1.5× ExecuTorch — {ratio(d)}: {verdict(d >= 1.5)}; "
                           f"prefill ≥ ExecuTorch — {ratio(p)}: {verdict(p >= 1)}")
        for peer in MLXC_BUILDS:
            who = PEER_NAMES[peer]
            for prec in ("fp32", "bf16", "8bit", "4bit"):
                m, l = dec(size, prec, peer), dec(size, prec, "llamacpp")
                if m and l:
                    out.append(f"- {size} {prec} {who}: decode ≥ llama.cpp {LLAMA_TYPES[prec]} — {ratio(m / l)} ({fmt(m)} vs {fmt(l)} tok/s): {verdict(m >= l)}")
            for prec in ("8bit", "4bit"):
                m, l = get(size, prec, peer, "prefill_tokens_per_s"), get(size, prec, "llamacpp", "prefill_tokens_per_s")
                if m and l:
                    out.append(f"- {size} {prec} {who}: prefill ≥ 1.5× llama.cpp {LLAMA_TYPES[prec]} — {ratio(m / l)} ({fmt(m)} vs {fmt(l)} tok/s): {verdict(m >= 1.5 * l)}")
            for prec in ("fp32", "bf16"):
                q = pct.get((size, prec, peer), (None, False, None))[2]
                if q is not None:
                    out.append(f"- {size} {prec} {who}: prefill ≥ 80% of the FMA peak — {100 * q:.0f}%: {verdict(q >= 0.8)}")
            for prec in ("fp32", "bf16", "8bit", "4bit"):
                p, big, _ = pct.get((size, prec, peer), (None, False, None))
                if p is None:
                    continue
                r = agg.get((size, prec, peer)) or {}
                local = ""
                if r.get("bandwidth_gb_s") and meta:
                    c = roofline.model_costs(meta["model_configs"][size], prec)
                    local = (f" ({100 * r['decode_tokens_per_s'] * c['weights_bytes_per_token'] / (r['bandwidth_gb_s'] * 1e9):.0f}% "
                             f"of the bound at the {r['bandwidth_gb_s']:.0f} GB/s measured just before)")
                if big:
                    out.append(f"- {size} {prec} {who}: decode ≥ 92% of the bandwidth bound (weights exceed the LLC) — "
                               f"{100 * p:.0f}% of the run's best bandwidth{local}: {verdict(p >= 0.92)}")
                else:
                    out.append(f"- {size} {prec} {who}: weights fit in the LLC; the 92% roofline target does not apply ({100 * p:.0f}% of the DRAM bound)")
            if size == "llama1b" and meta:
                for prec in ("bf16", "4bit"):
                    r = agg.get((size, prec, peer))
                    if not (r and r.get("ok") and r.get("file_mb")):
                        continue
                    c = roofline.model_costs(meta["model_configs"][size], prec)
                    limit = r["file_mb"] + c["kv_bytes_per_token"] / 1e6 + 64 * 1.048576
                    out.append(f"- {size} {prec} {who}: peak RSS ≤ file + KV cache + 64 MiB — {fmt(r['peak_rss_mb'], 0)} MB "
                               f"against {limit:.0f} MB: {verdict(r['peak_rss_mb'] <= limit)}; load (and compile) "
                               f"{fmt(r.get('load_s'), 2)} s, time to first token {fmt(r.get('time_to_first_token_s'), 2)} s")
    return out


def greedy_lines(agg, sizes, peers) -> list:
    """Sanity: the Python peers' first greedy tokens against PyTorch eager fp32 (mlxc bench does not print its
    tokens; its numerics are checked by the test suite against the same kind of exports)."""
    out = []
    for size in sizes:
        ref = agg.get((size, "fp32", "eager"))
        if not ref or not ref.get("ok") or not ref.get("tokens"):
            continue
        cells = []
        order = {p: i for i, p in enumerate(("fp32", "bf16", "8bit", "4bit"))}
        for (sz, prec, peer), r in sorted(agg.items(), key=lambda kv: (order.get(kv[0][1], 9), kv[0][2])):
            if sz != size or peer.startswith("mlxc") or not r.get("ok") or not r.get("tokens") or (prec, peer) == ("fp32", "eager"):
                continue
            n = next((i for i, (a, b) in enumerate(zip(r["tokens"], ref["tokens"])) if a != b), min(len(r["tokens"]), len(ref["tokens"])))
            cells.append(f"{PEER_NAMES[peer]} {prec} {n}/{len(ref['tokens'])}")
        if cells:
            out.append(f"- {size}: " + ", ".join(cells))
    if not out:
        return []
    return (["Greedy continuation check: leading tokens (of the first 16 after the prompt) equal to PyTorch eager "
             "fp32's. fp32 peers must agree; quantized ones drift early on these random-weight models, whose "
             "logits are nearly flat.", ""] + out + [""])


def gguf_check_lines(meta) -> list:
    checks = (meta.get("export") or {}).get("gguf_check") or {}
    if not checks:
        return []
    lines = ["| model | precision | GGUF | llama.cpp vs eager fp32: max abs Δ (÷ max logit) | argmax agree | "
             "eager at that precision vs eager fp32 | llama.cpp vs eager at that precision |", "|---|---|---|---|---|---|---|"]
    for size, c in checks.items():
        for prec, e in c["by_precision"].items():
            a = e["llamacpp_vs_eager_fp32"]
            s = e.get("eager_same_precision_vs_eager_fp32")
            q = e.get("llamacpp_vs_eager_same_precision")
            lines.append(f"| {size} | {prec} | {e['gguf_type']} | {a['max_abs']:.2g} ({a['max_rel_to_max_logit']:.2g}) | "
                         f"{a['argmax_agree']}/{a['rows']} | "
                         + (f"{s['max_abs']:.2g} ({s['max_rel_to_max_logit']:.2g}), argmax {s['argmax_agree']}/{s['rows']}" if s else "—")
                         + " | "
                         + (f"{q['max_abs']:.2g} ({q['max_rel_to_max_logit']:.2g}), argmax {q['argmax_agree']}/{q['rows']}" if q else "—")
                         + " |")
    return lines


def render(data) -> str:
    meta, results = data["meta"], data["results"]
    opts = meta["options"]
    sizes, precisions, peers = opts["sizes"], opts["precisions"], opts["peers"]
    global NOISY
    NOISY = opts.get("noisy", NOISY)
    agg = aggregate(results)
    mach, ver = meta["machine"], meta["versions"]
    rf = meta.get("roofline")
    L = ["# Benchmarks", ""]
    others = [r.get("others_cpu_share", 0) for r in results if r.get("ok") and not r.get("contention")]
    done = len(results)
    L += [f"Generated by `{meta['command']}` — started {meta['started']}"
          + (f", finished {meta['finished']}" if meta.get("finished") else f" (**partial: {done} measurements so far**)")
          + f", {meta.get('elapsed_s', 0) / 60:.0f} min.", ""]
    if others:
        hi = max(others)
        noisy = hi > 0.05
        L += [("> **Noisy numbers.** Other processes used up to " if noisy else "> Other processes used at most ")
              + f"{100 * hi:.0f}% of the machine's CPU time during a measurement (median {100 * statistics.median(others):.0f}%)"
              + ("; the peers alternate, so the comparison is fairer than the absolute values, but re-run on an idle"
                 " machine before quoting numbers." if noisy else "."), ""]
    samples = (rf or {}).get("bandwidth_samples_gb_s") or []
    if samples and max(samples) > 1.2 * min(samples):
        L += [f"> **Memory bandwidth moved between {min(samples):.0f} and {max(samples):.0f} GB/s during the run** "
              "(the 1 GiB read kernel, run before every mlxc measurement). This is contention on the host, invisible "
              "inside the VM: memory-bound decode numbers can move by as much from one measurement to the next. "
              "Peers within a row ran minutes apart, alternating; compare ratios, and use --rounds to average.", ""]
    L += ["Reproduce: `tools/bench` (everything: venv, llama-cpp-python, mlxc release build, exports, roofline, all peers; "
          "~30 min with the default 2 rounds on an idle 2-core machine once installed and exported; the first time adds ~11 min to compile "
          "llama-cpp-python and ~8 min of exports) — `tools/bench --quick` for a ~5 min smoke run (small model, 2 runs). "
          "Options: `--sizes small,stories110m --precisions fp32,bf16,8bit,4bit --runs 5 "
          "--peers mlxc,mlxc-unfused,mlxc-plain,mlxc-plain-unfused,mlxc-xnnpack,xnnpack,portable,eager,llamacpp --rounds 2 --budget-s 90` (mlxc-unfused: mlxc without its fusion passes; mlxc-plain: mlxc on the plain export; mlxc-xnnpack: mlxc on the XNNPACK export itself). Raw results: "
          f"`{Path(opts['results']).name}` in tools/.work/bench/.", ""]

    L += ["## Machine and versions", "",
          f"- CPU: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gb']} GB RAM, last-level cache {mach['llc_mb']:.0f} MiB, "
          f"SIMD: {', '.join(mach['simd'])}; {mach.get('os', '')}, Linux {mach['kernel']}",
          f"- mlxc {ver.get('mlxc')} (binary built {ver.get('mlxc_binary_built', '?')}); {ver.get('swift', '')}",
          f"- executorch {ver.get('executorch')}, torch {ver.get('torch')}, torchao {ver.get('torchao')}, "
          f"llama-cpp-python {ver.get('llama_cpp_python')} (ggml {ver.get('ggml', '?')}, built for this CPU's ISA with AMX off: ggml's AMX int8 path dies of SIGILL on this VM), "
          f"gguf {ver.get('gguf')}, Python {ver.get('python')}, gcc {ver.get('gcc')}",
          f"- threads: {opts['threads']} for every peer; prompt {opts['prompt_length']} tokens in one call, then "
          f"{opts['decode']} greedy single-token decode steps; median of {opts['runs']} runs after a warm-up run, "
          f"then the median over {opts.get('rounds', 1)} round(s) (each round a fresh process per peer, peers alternating)"]
    if "mlxc-avx2" in peers:
        L += ["- ISA: **mlxc AVX2** is the same binary and export with `MLXC_ISA=avx2` (kernels compiled as for an AVX2 + FMA "
              "CPU, Zen 3: 8 f32 lanes, no AVX-512, no VNNI); every other peer, llama.cpp included, uses this host's full ISA"]
    L += [""]
    if rf:
        L += [f"Roofline ({rf['threads']} threads): read bandwidth **{rf['read_bandwidth_gb_s']:.1f} GB/s**, "
              f"FMA peak **{rf['fma_peak_gflops']:.0f} GFLOP/s** fp32 ({rf['fma_best_width']} vectors; "
              + ", ".join(f"{k}: {v:.0f}" for k, v in rf["fma_gflops_by_width"].items()) + "). " + rf["method"] + "."
              + (f" Bandwidth samples over the run: {min(rf['bandwidth_samples_gb_s']):.1f}–{max(rf['bandwidth_samples_gb_s']):.1f} GB/s"
                 f" (median {statistics.median(rf['bandwidth_samples_gb_s']):.1f})." if rf.get("bandwidth_samples_gb_s") else ""), ""]

    L += ["## Results", ""]
    L += metric_table(agg, sizes, precisions, peers, "decode_tokens_per_s", "Decode, tokens/s", True)
    L += metric_table(agg, sizes, precisions, peers, "prefill_tokens_per_s", "Prefill (128-token prompt), tokens/s", True)
    L += fusion_table(agg, sizes, precisions)
    L += same_file_table(agg, sizes, precisions)
    L += metric_table(agg, sizes, precisions, peers, "time_to_first_token_s", "Time to first token, s (load/compile included)", False, 2)
    L += start_table(agg, sizes, precisions)
    L += contention_table(results, sizes, precisions, peers)
    L += metric_table(agg, sizes, precisions, peers, "peak_rss_mb", "Peak RSS, MB (whole process)", False, 0)
    for peer, why in (meta.get("unavailable") or {}).items():
        L += [f"**{PEER_NAMES.get(peer, peer)} unavailable**: {why}", ""]
    fails = [r for r in agg.values() if not r.get("ok")]
    if fails:
        L += ["¹ Failures:", ""] + [f"- {r['size']} {r['precision']} {PEER_NAMES[r['peer']]}: {r['error']}" for r in fails] + [""]
    disturbed = [r for r in agg.values() if r.get("ok") and r.get("others_cpu_share", 0) > NOISY]
    if disturbed:
        L += [f"† other processes used more than {100 * NOISY:.0f}% of the CPU during this measurement (up to "
              f"{100 * max(r['others_cpu_share'] for r in disturbed):.0f}%): with 2 cores and 2 threads per peer, "
              "OpenMP/threadpool spin-waits make such numbers much worse than the peer's real speed.", ""]
    capped = [r for r in agg.values() if r.get("ok") and r.get("capped")]
    if capped:
        L += ["`[N tok × R]`: slow peer capped to N decode tokens and R runs to fit the per-measurement budget "
              f"({opts['budget_s']:.0f} s); llama1b is measured with at most 32 decode tokens × 3 runs by every peer", ""]

    if rf:
        L += ["## Roofline", "",
              "Bytes per decoded token: every matrix (output projection included) read once in mlxc's storage format "
              "(fp32 4 B, bf16 2 B, 8-bit 1 B + 2-byte scale and bias per 32, 4-bit 0.5 B + the same) plus norms; "
              "decode bound = bandwidth ÷ those bytes. The exported graphs also attend over the whole 512-slot KV "
              "cache on every step (masked), whose bytes are the KV column (\"incl. KV\" bound). Prefill bound = FMA "
              "peak ÷ (2 × matrix parameters) (fp32 FMA; int8 dot-product instructions could exceed it); the AVX2 build "
              "(MLXC_ISA=avx2) is held to the 256-bit FMA peak. The bound uses "
              "the best bandwidth measured during the run; the memory bandwidth of this (virtual) machine varies over "
              "time, so the bandwidth measured right before mlxc's measurement is shown too.", ""]
        rows, pct = roofline_rows(meta, agg, sizes, precisions)
        L += rows + [""]
    else:
        pct = {}
    L += ["## Where mlxc stands", ""]
    t = targets(agg, sizes, pct, meta)
    met = sum("**met**" in x for x in t)
    missed = sum("**not met**" in x for x in t)
    if t:
        L += [f"{met} of {met + missed} applicable targets met on this run."]
        slow = sorted({(size, prec) for (size, prec, peer), r in agg.items() if not peer.startswith("mlxc") and r.get("ok")
                       and agg.get((size, prec, "mlxc"), {}).get("ok") and r.get("decode_tokens_per_s")
                       and agg[(size, prec, "mlxc")]["decode_tokens_per_s"] < 0.1 * r["decode_tokens_per_s"]})
        if slow:
            L += ["Outliers — mlxc decodes more than 10× slower than a peer (an unoptimized path, not a tuning gap): "
                  + ", ".join(f"{a} {b}" for a, b in slow) + "."]
        L += [""]
    L += (t or ["- (no mlxc results yet)"]) + [""]
    L += greedy_lines(agg, sizes, peers)

    g = gguf_check_lines(meta)
    if g:
        L += ["## llama.cpp model check", "",
              "The GGUF files come from the same state dict (tools/python/bench/gguf_export.py). models.py's Llama "
              "rotates adjacent pairs (interleaved RoPE), which is llama.cpp's NORM rope type for LLM_ARCH_LLAMA, so "
              "Q/K are written unpermuted (writing them permuted, as convert_hf_to_gguf.py does for HF checkpoints, gave "
              "0.49 relative error and 6/12 argmax agreement on the small model when tried: the check is sensitive to "
              "the layout). 12 prompt tokens in one batch, all rows compared:", ""]
        L += g + [""]

    L += ["## What each peer runs", "",
          "- **mlxc**: `.build/release/mlxc bench <size>_mlx_<precision>.pte --threads 2 --json` — the MLX-delegated "
          "`.pte` (one delegate; 8/4-bit: torchao weight-only group 32 via the MLX backend's quantize_model_, "
          "embeddings too). TTFT = load + LLVM compile + median prefill; peak RSS from wait4 (the process).",
          "- **ExecuTorch XNNPACK / portable**: ExecuTorch's Python runtime (`_load_for_executorch`, threadpool set "
          "to 2) on `<size>_xnnpack_fp32.pte`, `<size>_xnnpack_8da4w.pte` (int8 dynamic activations, int4 "
          "weights, group 32; embedding fp32) and `<size>_plain.pte` (no delegate; the pip wheel's kernel library). "
          "forward(tokens [1,T], input_pos [1]); KV cache is mutable state carried across calls.",
          "- **PyTorch eager**: the same `DecoderLM` (plain variant) from the state dict, torch.set_num_threads(2), "
          "inference_mode; 8/4-bit = torchao weight-only quantization as for MLX (eager dequantizes, so it is slow).",
          "- **llama.cpp**: llama-cpp-python, n_threads = n_threads_batch = 2, n_batch = n_ubatch = 128, flash "
          "attention off (the wrapper's default), `eval` of the prompt, then single-token `eval`s, argmax of "
          "`llama_get_logits_ith(-1)`.",
          "- Python peers: TTFT = load + the first (cold) prefill call (ExecuTorch initialises delegates lazily); "
          "peak RSS includes the interpreter and imported libraries (torch + executorch import ≈ 350 MB before any "
          "model is loaded; llama-cpp-python much less).", ""]
    inst = meta.get("install_times")
    if inst:
        L += ["## Install times", "", inst, ""]
    return "\n".join(L) + "\n"


def write(path: Path, text: str) -> None:
    """Writes the LLM report, keeping the sections tools/bench --speech and --qwen35 wrote into the same file."""
    old = path.read_text() if path.exists() else ""
    for begin, end in (("<!-- speech: tools/bench --speech writes this section -->", "<!-- /speech -->"),
                       ("<!-- qwen35: tools/bench --qwen35 writes this section -->", "<!-- /qwen35 -->")):
        if begin in old and end in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
    path.write_text(text)
