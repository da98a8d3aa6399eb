"""The benchmark driver behind tools/bench: exports the models, measures the machine's roofline, runs every
peer on every model × precision (each measurement in its own process, peers alternating), writes the report.

    tools/.venv/bin/python tools/python/bench/run.py [--sizes small,stories110m] [--precisions fp32,bf16,8bit,4bit]
        [--runs 5] [--peers mlxc,xnnpack,portable,eager,llamacpp] [--rounds 2] [--quick] [--budget-s 90]
        [--out BENCHMARKS.md] [--report-only] [--force-export]

--quick: small model only, 2 runs, 1 round, 20 s budget per measurement; writes tools/.work/bench/BENCHMARKS.quick.md
unless --out is given. Results (raw, per measurement) go to tools/.work/bench/results[.quick].json as they come;
--report-only rewrites the report from that file.
Peers alternate: within each model × precision the peers run one after another, the starting peer rotating
from case to case; --rounds R repeats every case's sweep R times (the report takes the median over rounds).
Shared machines: before each measurement the driver waits (up to --max-wait-s) for other processes to go
quiet, and repeats a measurement they disturbed (--noisy, --retries); --resume re-measures only what failed or
was disturbed in the last results file.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import export as bexport  # noqa: E402
import report  # noqa: E402
import roofline  # noqa: E402

REPO = HERE.parents[2]
OUT = bexport.OUT
MLXC = Path(os.environ.get("MLXC") or REPO / ".build" / "release" / "mlxc")   # MLXC=…: another build
ALL_PEERS = ["mlxc", "mlxc-avx2", "mlxc-unfused", "mlxc-plain", "mlxc-plain-unfused", "mlxc-xnnpack", "xnnpack", "portable", "eager", "llamacpp"]
# mlxc-unfused: the same mlxc without the fusion passes (canonicalization only), to show what fusion buys;
# mlxc-plain(-unfused): mlxc on the plain (non-delegated) export that ExecuTorch portable runs, where every
# fusion must first recognise the decomposed ops; mlxc-xnnpack: mlxc on the XNNPACK export the xnnpack peer runs
# (the same file on both runtimes); mlxc-avx2: mlxc on the MLX export compiled as for an AVX2 + FMA CPU (MLXC_ISA=avx2:
# 8-lane kernels, no AVX-512/VNNI — the Zen 3 CI machine class) on this host, in the same run as the native build.
MLXC_PEERS = ("mlxc", "mlxc-avx2", "mlxc-unfused", "mlxc-plain", "mlxc-plain-unfused", "mlxc-xnnpack")
MLXC_ISA = {"mlxc-avx2": "avx2"}   # peer → MLXC_ISA for its process (the others: the host's own ISA)
UNFUSED_PIPELINE = "fold-scalar-constants,cse,dce,last-position-logits"
ALL_PRECISIONS = ["fp32", "bf16", "8bit", "4bit"]
ALL_SIZES = ["small", "stories110m", "llama1b"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_busy_seconds() -> float:
    """All CPUs' non-idle time (s) from /proc/stat."""
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_child(cmd, timeout_s: float, env: dict | None = None) -> dict:
    """Runs cmd; → stdout, stderr, returncode, peak RSS of that process (wait4), wall time, and the CPU share
    that other processes on the machine used meanwhile (noise indicator)."""
    busy0, t0 = cpu_busy_seconds(), time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, **env) if env else None)
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read())) for s, b in ((p.stdout, out), (p.stderr, err))]
    for r in readers:
        r.start()
    timer = threading.Timer(timeout_s, lambda: os.killpg(p.pid, 9))
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    for r in readers:
        r.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    own = ru.ru_utime + ru.ru_stime
    foreign = max(0.0, (cpu_busy_seconds() - busy0 - own) / (wall * os.cpu_count()))
    return {"stdout": "".join(out), "stderr": "".join(err), "returncode": p.returncode, "timed_out": wall >= timeout_s,
            "rss_mb": ru.ru_maxrss / 1024.0, "wall_s": wall, "cpu_s": own, "others_cpu_share": foreign}


def others_share(seconds: float) -> float:
    """CPU share other processes use over `seconds` (this process sleeps meanwhile)."""
    b0, t0 = cpu_busy_seconds(), time.time()
    time.sleep(seconds)
    return (cpu_busy_seconds() - b0) / ((time.time() - t0) * os.cpu_count())


def wait_idle(max_wait_s: float, threshold: float) -> float:
    """Waits (at most max_wait_s) until the machine's other processes use < threshold of the CPU for 2 s;
    → seconds waited."""
    t0 = time.time()
    while time.time() - t0 < max_wait_s:
        if others_share(2.0) < threshold:
            break
    return time.time() - t0


def measure_quiet(peer: str, size: str, precision: str, args, vocab: int) -> dict:
    """measure() after waiting for the machine to be quiet; a measurement disturbed by other processes
    (others' CPU share > --noisy) is repeated up to --retries times and the least disturbed one kept."""
    best = None
    for attempt in range(args.retries + 1):
        waited = wait_idle(args.max_wait_s, args.idle_threshold) if args.max_wait_s > 0 else 0.0
        bw = roofline.bandwidth(args.threads, 6) if peer in MLXC_PEERS else None
        rec = measure(peer, size, precision, args, vocab)
        if bw:
            rec["bandwidth_gb_s"] = bw  # measured right before: the roofline at that moment
        rec["waited_for_idle_s"] = waited
        rec["attempt"] = attempt
        if best is None or (rec.get("ok") and (not best.get("ok") or rec["others_cpu_share"] < best["others_cpu_share"])):
            best = rec
        if rec.get("others_cpu_share", 0) <= args.noisy:
            break  # undisturbed: a result, or a real failure
        log(f"  disturbed (others' CPU {100 * rec['others_cpu_share']:.0f}%): measuring again")
    return best


@contextlib.contextmanager
def busy_neighbour(procs: int):
    """`procs` other processes spinning on the CPU while the block runs (a laptop's browser, a build): the
    contention rows measure how each runtime's threads share the machine. The scheduler places them."""
    children = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(procs)]
    try:
        if children:
            time.sleep(0.5)  # let them get going
        yield
    finally:
        for c in children:
            c.kill()
            c.wait()


def measure(peer: str, size: str, precision: str, args, vocab: int, contention: bool = False) -> dict:
    path, label = bexport.artifact(peer, size, precision)
    rec = {"peer": peer, "size": size, "precision": precision, "artifact": label, "file": str(path.relative_to(REPO)),
           "file_mb": path.stat().st_size / 1e6 if path.exists() else None}
    if contention:
        rec["contention"] = args.contention_procs
    capped, env = False, None
    if peer in MLXC_PEERS:
        # A kernel cache of its own: the first start below compiles every kernel (cold), the measured one loads them.
        cache_dir = OUT / "kernel-cache" / f"{peer}-{size}-{precision}-{os.getpid()}"
        shutil.rmtree(cache_dir, ignore_errors=True)

        def mlxc_cmd(decode, runs):
            return [str(MLXC), "bench", str(path), "--prompt-length", str(args.prompt_length), "--decode", str(decode),
                    "--runs", str(runs), "--threads", str(args.threads), "--json", "--cache-dir", str(cache_dir)] + \
                (["--pipeline", UNFUSED_PIPELINE] if peer.endswith("-unfused") else [])
        env = {"MLXC_ISA": MLXC_ISA[peer]} if peer in MLXC_ISA else None
        if env:
            rec["isa"] = MLXC_ISA[peer]
        cold = run_child(mlxc_cmd(1, 1), args.timeout_s, env)
        try:
            j = json.loads([ln for ln in cold["stdout"].splitlines() if ln.startswith("{")][-1])
            rec["cold_start"] = {"time_to_first_token_s": j["time_to_first_token_s"], "load_compile_s": j["load_compile_s"],
                                 "kernels": j.get("kernels"), "kernels_optimized": j.get("kernels_optimized")}
        except (IndexError, ValueError, KeyError):
            pass
        decode, runs = bexport.SHORTENED.get(size, (args.decode, args.runs))
        decode, runs = min(decode, args.decode), min(runs, args.runs)
        if args.budget_s:
            # probe (1 run of 8 decode steps): a pathologically slow variant gets fewer decode tokens / runs
            # under the same rule as the Python peers (peers.py measure())
            pr = run_child(mlxc_cmd(8, 1), args.timeout_s, env)
            try:
                j = json.loads([ln for ln in pr["stdout"].splitlines() if ln.startswith("{")][-1])
                t_pre, t_tok = args.prompt_length / j["prefill_tokens_per_s"], 1.0 / j["decode_tokens_per_s"]
                rec["probe"] = {"prefill_tokens_per_s": j["prefill_tokens_per_s"], "decode_tokens_per_s": j["decode_tokens_per_s"]}
                if (runs + 1) * (t_pre + decode * t_tok) > args.budget_s:
                    decode = max(8, min(decode, int((args.budget_s / (runs + 1) - t_pre) / t_tok)))
                    if (runs + 1) * (t_pre + decode * t_tok) > args.budget_s:
                        runs = max(3, int(args.budget_s / (t_pre + decode * t_tok)) - 1)
            except (IndexError, ValueError, KeyError, ZeroDivisionError):
                pass  # the real run reports the failure
        capped = decode < args.decode or runs < args.runs
        cmd = mlxc_cmd(decode, runs)
    else:
        decode, runs = bexport.SHORTENED.get(size, (args.decode, args.runs))
        decode, runs = min(decode, args.decode), min(runs, args.runs)
        capped = decode < args.decode or runs < args.runs
        cmd = [sys.executable, str(HERE / "peers.py"), peer, "--model", str(path), "--size", size, "--precision", precision,
               "--vocab", str(vocab), "--prompt-length", str(args.prompt_length), "--decode", str(decode),
               "--runs", str(runs), "--threads", str(args.threads), "--budget-s", str(args.budget_s)]
    with busy_neighbour(args.contention_procs if contention else 0):
        r = run_child(cmd, args.timeout_s, env)
    if peer in MLXC_PEERS:
        shutil.rmtree(cache_dir, ignore_errors=True)
    rec.update(command=" ".join(shlex.quote(str(c)) for c in cmd), wall_s=r["wall_s"],
               peak_rss_mb=r["rss_mb"], others_cpu_share=r["others_cpu_share"], loadavg=os.getloadavg()[0])
    line = None
    for ln in r["stdout"].splitlines():
        if peer in MLXC_PEERS and ln.startswith("{"):
            line = ln
        elif ln.startswith("BENCH_JSON "):
            line = ln[len("BENCH_JSON "):]
    if r["returncode"] != 0 or line is None:
        rec["ok"] = False
        rec["error"] = ("timed out after %.0f s; " % args.timeout_s if r["timed_out"] else "") + \
            f"exit {r['returncode']}: " + (r["stderr"].strip().splitlines() or ["(no output)"])[-1][:300]
        return rec
    j = json.loads(line)
    rec["ok"] = True
    rec["prefill_tokens_per_s"] = j["prefill_tokens_per_s"]
    rec["decode_tokens_per_s"] = j["decode_tokens_per_s"]
    rec["time_to_first_token_s"] = j["time_to_first_token_s"]
    rec["load_s"] = j.get("load_s", j.get("load_compile_s"))
    rec["self_reported_peak_rss_mb"] = j.get("peak_rss_mb")
    rec["base_rss_mb"] = j.get("base_rss_mb")
    rec["decode_tokens"] = j.get("decode_tokens", args.decode)  # mlxc: the count it was asked for
    rec["runs"] = j.get("runs", args.runs)
    rec["capped"] = bool(j.get("capped")) or capped
    rec["tokens"] = j.get("tokens")
    rec["extra"] = {k: j[k] for k in ("llvm_compile_s", "threadpool_threads", "torch_threads", "system_info",
                                      "llama_cpp_python", "cold_prefill_s", "kernels", "kernels_cached",
                                      "kernels_optimized") if k in j}
    return rec


def log_record(rec: dict) -> None:
    if rec["ok"]:
        cold = rec.get("cold_start", {}).get("time_to_first_token_s")
        log(f"  prefill {rec['prefill_tokens_per_s']:.1f} tok/s, decode {rec['decode_tokens_per_s']:.1f} tok/s"
            f" ({rec['decode_tokens']} tokens x {rec['runs']} runs), TTFT {rec['time_to_first_token_s']:.2f} s"
            + (f" (cold {cold:.2f} s)" if cold else "") +
            f", RSS {rec['peak_rss_mb']:.0f} MB, others' CPU {100 * rec['others_cpu_share']:.0f}%")
    else:
        log(f"  FAILED: {rec['error']}")


def merge_roofline(rf: dict, other: dict) -> None:
    """Keeps the better of two roofline measurements (peaks: other processes only ever lower them)."""
    rf["read_bandwidth_gb_s"] = max(rf["read_bandwidth_gb_s"], other["read_bandwidth_gb_s"])
    for w, v in other["fma_gflops_by_width"].items():
        rf["fma_gflops_by_width"][w] = max(rf["fma_gflops_by_width"].get(w, 0), v)
    rf["fma_best_width"] = max(rf["fma_gflops_by_width"], key=rf["fma_gflops_by_width"].get)
    rf["fma_peak_gflops"] = rf["fma_gflops_by_width"][rf["fma_best_width"]]


def ensure_mlxc(log) -> None:
    if not MLXC.exists():
        log("building mlxc (swift build -c release --product mlxc)")
        subprocess.run(["swift", "build", "-c", "release", "--product", "mlxc"], cwd=REPO, check=True, stdout=sys.stderr)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(ALL_SIZES))
    ap.add_argument("--precisions", default=",".join(ALL_PRECISIONS))
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="sweeps over all cases (quick: 1); medians over rounds")
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=90.0,
                    help="per Python-peer measurement: slow peers get fewer decode tokens / runs to fit (mlxc never)")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="kill a measurement after this long")
    ap.add_argument("--max-wait-s", type=float, default=120.0,
                    help="before each measurement wait up to this long for other processes to go quiet (0: never)")
    ap.add_argument("--idle-threshold", type=float, default=0.10, help="'quiet': others use less than this CPU share")
    ap.add_argument("--noisy", type=float, default=0.20,
                    help="a measurement during which others used more than this CPU share is repeated (--retries)")
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--contention", action="store_true",
                    help="also measure every case with busy processes beside it (decode under contention)")
    ap.add_argument("--contention-procs", type=int, default=1, help="how many busy processes (default 1: one core taken)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the results file's successful, undisturbed (≤ --noisy) measurements; measure the rest")
    ap.add_argument("--quick", action="store_true", help="smoke run: small model, 2 runs, 20 s budget")
    ap.add_argument("--out", default=None, help="report path (default BENCHMARKS.md; quick: tools/.work/bench/BENCHMARKS.quick.md)")
    ap.add_argument("--results", default=None, help="raw results JSON (default tools/.work/bench/results[.quick].json)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--force-export", action="store_true")
    ap.add_argument("--unavailable", action="append", default=[], help="PEER=reason: report the peer as unavailable")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)  # the user-facing command, for the report
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = "small" if "--sizes" not in " ".join(argv or sys.argv) else args.sizes
        args.runs = 2 if "--runs" not in " ".join(argv or sys.argv) else args.runs
        args.budget_s = 20.0 if "--budget-s" not in " ".join(argv or sys.argv) else args.budget_s
        args.rounds = 1 if "--rounds" not in " ".join(argv or sys.argv) else args.rounds
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.peers = [p for p in args.peers.split(",") if p]
    for s in args.sizes:
        assert s in ALL_SIZES, f"unknown size {s}"
    for p in args.precisions:
        assert p in ALL_PRECISIONS, f"unknown precision {p}"
    for p in args.peers:
        assert p in ALL_PEERS, f"unknown peer {p}"
    args.unavailable = dict(u.split("=", 1) for u in args.unavailable)
    args.peers = [p for p in args.peers if p not in args.unavailable]
    suffix = ".quick" if args.quick else ""
    args.out = Path(args.out) if args.out else (OUT / "BENCHMARKS.quick.md" if args.quick else REPO / "BENCHMARKS.md")
    args.results = Path(args.results) if args.results else OUT / f"results{suffix}.json"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        data = json.loads(args.results.read_text())
        inst = OUT / "install_times.md"
        if inst.exists():
            data["meta"]["install_times"] = inst.read_text().strip()
        report.write(args.out, report.render(data))
        log(f"wrote {args.out}")
        return 0
    t_start = time.time()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": args.command or " ".join(sys.argv),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "command"},
            "machine": report.machine_info(), "versions": report.versions(REPO, MLXC),
            "unavailable": args.unavailable}
    inst = OUT / "install_times.md"
    if inst.exists():
        meta["install_times"] = inst.read_text().strip()
    data = {"meta": meta, "results": []}
    kept, old_roofline = {}, None
    if args.resume and args.results.exists():
        old = json.loads(args.results.read_text())
        for r in old["results"]:
            if r.get("ok") and r.get("others_cpu_share", 1) <= args.noisy and not r.get("contention"):
                kept[(r["size"], r["precision"], r["peer"], r.get("round", 0))] = r
        meta["resumed_from"] = old["meta"].get("started")
        old_roofline = old["meta"].get("roofline")
        log(f"resume: keeping {len(kept)} undisturbed measurements from {args.results}")

    def save():
        data["meta"]["elapsed_s"] = time.time() - t_start
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(data, indent=1) + "\n")
        report.write(args.out, report.render(data))

    if any(p in MLXC_PEERS for p in args.peers):
        ensure_mlxc(log)
    log(f"exports for sizes {args.sizes} (missing files only)")
    meta["export"] = bexport.ensure(args.sizes, args.precisions, args.peers, args.force_export, log)
    log("roofline: bandwidth and FMA kernels")
    if args.max_wait_s > 0:
        wait_idle(args.max_wait_s, args.idle_threshold)
    meta["roofline"] = roofline.machine_roofline(args.threads)
    meta["roofline"]["llc_bytes"] = roofline.llc_bytes()
    if old_roofline:
        merge_roofline(meta["roofline"], old_roofline)
    meta["model_configs"] = {s: json.loads((OUT / f"{s}_config.json").read_text()) for s in args.sizes}
    save()

    case = 0
    for rnd in range(args.rounds):
        for size in args.sizes:
            vocab = meta["model_configs"][size]["vocab_size"]
            for precision in args.precisions:
                peers = [p for p in args.peers if bexport.artifact(p, size, precision)]
                k = case % len(peers) if peers else 0
                case += 1
                for peer in peers[k:] + peers[:k]:
                    if (size, precision, peer, rnd) in kept:
                        data["results"].append(kept[(size, precision, peer, rnd)])
                        continue
                    log(f"round {rnd + 1}/{args.rounds} {size} {precision} {peer}")
                    rec = measure_quiet(peer, size, precision, args, vocab)
                    rec["round"] = rnd
                    data["results"].append(rec)
                    log_record(rec)
                    save()
                    if args.contention:
                        log(f"round {rnd + 1}/{args.rounds} {size} {precision} {peer}, {args.contention_procs} busy process(es) beside it")
                        if args.max_wait_s > 0:
                            wait_idle(args.max_wait_s, args.idle_threshold)
                        rec = measure(peer, size, precision, args, vocab, contention=True)
                        rec["round"] = rnd
                        data["results"].append(rec)
                        log_record(rec)
                        save()
    log("roofline again (the best of the measurements is kept)")
    if args.max_wait_s > 0:
        wait_idle(args.max_wait_s, args.idle_threshold)
    merge_roofline(meta["roofline"], roofline.machine_roofline(args.threads))
    samples = [r["bandwidth_gb_s"] for r in data["results"] if r.get("bandwidth_gb_s")]
    rf = meta["roofline"]
    rf["bandwidth_samples_gb_s"] = [rf["read_bandwidth_gb_s"]] + samples
    rf["read_bandwidth_gb_s"] = max(rf["bandwidth_samples_gb_s"])
    rf["method"] += "; bandwidth also before every mlxc measurement; FMA before and after the peers; best kept"
    data["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    save()
    log(f"wrote {args.out} and {args.results} in {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
