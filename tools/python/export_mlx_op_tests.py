#!/usr/bin/env python3
"""Export ExecuTorch's MLX op-test suite as a conformance corpus for mlxc (export only, no runner).

Usage: tools/.venv/bin/python tools/python/export_mlx_op_tests.py [--only SUBSTRING ...] [--jobs N]
                                                                  [--out DIR] [--timeout SECS] [--list]
                                                                  [--seed S]
  (or tools/export-mlx-op-tests [same options], which first runs `tools/setup --python`)

  --only SUBSTRING  export only the configs whose config name or test name contains SUBSTRING
                    (repeatable; the default is all ~895 configs of the ~106 registered tests)
  --jobs N          worker processes (default 1: the machine has 2 cores shared with others)
  --out DIR         output folder (default <repo>/conformance, which git ignores)
  --timeout SECS    per-case limit; a worker that exceeds it is killed and replaced (default 900)
  --list            print the config names (with their test names) and exit
  --seed S          seed the configs with S instead of their own (OpTestCase.seed, 42 upstream): the same
                    modules and shapes with other random weights and inputs, to see a case's error across seeds

Source: `executorch/backends/mlx/test/test_ops.py` of the pinned executorch wheel (and the OpTestCase
classes of `backends/mlx/custom_kernel_ops/test/test_{gated_delta_rule,tq4_compress,tq_norm,tq_dequant}.py` and
`custom_kernel_ops/gguf/test/test_{linear,embedding}.py`, the Metal kernels' own tests, which are not registered).
Importing it
registers the tests (`@register_test`); `test_utils.get_registered_tests()` yields the configs, each an
`OpTestCase` whose `generate_test_files()` seeds torch, builds the module and inputs, computes the
expected outputs with eager PyTorch, exports with `MLXPartitioner` and writes model.pte, input.bin and
expected_output.bin into `get_test_dir()` -- which we point at our output folder instead of the
installed package's `test/op_tests/`. See /work/shared/docs/FORMATS.md §3.7-3.8.

Writes, per config, DIR/<case>/ (replaced atomically once the export has succeeded):
  model.pte            the MLX-delegated program
  input.bin            test inputs     } format of test_utils.save_tensors_to_bin, all little-endian:
  expected_output.bin  eager outputs   } uint32 count, then per tensor uint32 dtype code (0 f32, 1 f16,
                                         2 i32, 3 i64, 4 bf16, 5 bool, 6 u8), uint32 ndim, int32 dims[ndim],
                                         raw data (this script re-reads both files to check that)
  case.json            CASE below
and, for a config that fails, DIR/<case>/export.log (its captured output; no case.json).
DIR/index.json = {"generated_by", "executorch", "torch", "cases": [{"case", "test", "status": "ok"|"failed",
                  "seconds", "cpu_seconds", "error"?}]} (wall and the worker's CPU time of the export); a run
                  with --only updates the listed cases and keeps the others.

CASE = {"test": str (registered test name), "case": str (folder name: the config name, made unique --
        a few tests reuse one config name for several configs; the 2nd, 3rd, ... get "__2", "__3", ...),
        "config_name": str (upstream config name),
        "rtol": float, "atol": float, "skip_comparison": bool,
        "needs_metal": bool (an MLX payload holds a MetalKernelNode, which cannot run on CPU),
        "notes": str (human-readable caveats: skip reason, Metal, off-graph KV cache, dynamic shapes, ...),
        "skip_comparison_reason": str, "kv_cache": str|null (off-graph KV cache spec
        "capacity,n_layers,n_kv_heads,head_dim,kv_scalar_type" that op_test_runner installs for
        kvcache::update_and_attend), "dynamic_shapes": bool (exported with dynamic dims; the test inputs
        may differ from the export inputs), "expected_mlx_segments": int (what upstream asserts),
        "mlx_delegates": int (found in model.pte), "mlx_nodes": {node name: count, all chains of all MLX
        payloads} | null if decoding failed, "non_delegated_ops": [operator names left to ExecuTorch
        kernels], "params": {the config's constructor parameters, non-JSON values as strings},
        "inputs"/"outputs": [{"dtype": "f32"|..., "shape": [int]}]}

Environment fixes applied before importing the suite (none touches the installed package):
  * `executorch.extension.llm.modules` imports torchtune, which is not installed (and does not import
    against torchao 0.18): empty stand-in modules for torchtune.modules.{attention, attention_utils,
    kv_cache} go into sys.modules. No MLX test uses them; they only satisfy module-level imports.
  * `import executorch.backends.mlx` needs generated serializer files: run mlx_generated_files.py
    (tools/setup --python does) if it fails.

Robustness: each worker is a subprocess of this script (`--worker`) that imports the suite once and
exports the cases it is sent one at a time; an exception fails only that case, and a worker that crashes
or exceeds --timeout is killed and replaced. The last line printed is "exported N cases, M failed".
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "conformance"
CASE_FILES = ("model.pte", "input.bin", "expected_output.bin", "case.json")
BIN_DTYPES = {0: ("f32", 4), 1: ("f16", 2), 2: ("i32", 4), 3: ("i64", 8), 4: ("bf16", 2), 5: ("bool", 1), 6: ("u8", 1)}


# ----------------------------------------------------------------------------------------------------
# Worker side: import the suite once, export cases on request.
# ----------------------------------------------------------------------------------------------------


def install_torchtune_stand_ins() -> None:
    """Empty torchtune modules, enough for `executorch.extension.llm.modules` to import."""
    try:
        import torchtune.modules.attention  # noqa: F401
        import torchtune.modules.attention_utils  # noqa: F401
        import torchtune.modules.kv_cache  # noqa: F401
        return  # the real one works
    except Exception:
        pass
    import torch

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("torchtune stand-in: not available in export_mlx_op_tests.py")

    class MultiHeadAttention(torch.nn.Module):  # subclassed / isinstance-checked only
        pass

    class KVCache(torch.nn.Module):  # base class of executorch.extension.llm.modules.KVCache
        pass

    contents = {
        "torchtune": {},
        "torchtune.modules": {},
        "torchtune.modules.attention": {"MultiHeadAttention": MultiHeadAttention},
        "torchtune.modules.attention_utils": {"_MaskType": torch.Tensor, "_sdpa_or_flex_attention": unavailable},
        "torchtune.modules.kv_cache": {"KVCache": KVCache},
    }
    for name, attrs in contents.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mod.__path__ = []  # a package, so submodule imports resolve through sys.modules
        sys.modules[name] = mod
    sys.modules["torchtune"].modules = sys.modules["torchtune.modules"]
    for sub in ("attention", "attention_utils", "kv_cache"):
        setattr(sys.modules["torchtune.modules"], sub, sys.modules[f"torchtune.modules.{sub}"])


def load_suite() -> Dict[str, tuple]:
    """Imports test_ops (registering the tests); returns {config name: (test name, OpTestCase)}."""
    import warnings

    warnings.filterwarnings("ignore")
    install_torchtune_stand_ins()
    from executorch.backends.mlx.test import test_ops  # noqa: F401  (registers the tests)
    from executorch.backends.mlx.test.test_utils import get_registered_tests

    configs: Dict[str, tuple] = {}
    for test_name, cases in get_registered_tests().items():
        for config_name, case in cases:
            # Some tests give several configs one name (upstream they overwrite each other's
            # op_tests/<name>/); the 2nd, 3rd, ... become <name>__2, <name>__3, ...
            case_name, k = config_name, 1
            while case_name in configs:
                k += 1
                case_name = f"{config_name}__{k}"
            configs[case_name] = (test_name, case)
    # The custom kernel ops' own tests (Metal kernels the delegate emits: gated_delta_rule, TurboQuant) use the
    # same OpTestCase harness but are not registered: their OpTestCase classes give the configs.
    import importlib
    from executorch.backends.mlx.test.test_utils import OpTestCase
    for module_name in CUSTOM_KERNEL_TESTS:
        module = importlib.import_module(module_name)
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, OpTestCase) and cls.__module__ == module_name:
                for case in cls.get_test_configs():
                    case_name, k = case.name, 1
                    while case_name in configs:
                        k += 1
                        case_name = f"{case.name}__{k}"
                    configs[case_name] = (cls.name, case)
    return configs


CUSTOM_KERNEL_TESTS = [f"executorch.backends.mlx.custom_kernel_ops.test.test_{name}"
                       for name in ("gated_delta_rule", "tq4_compress", "tq_norm", "tq_dequant")] + \
    [f"executorch.backends.mlx.custom_kernel_ops.gguf.test.test_{name}" for name in ("linear", "embedding")]


def jsonable(value):
    """Config parameters for case.json: plain JSON values stay, anything else (dtypes, ...) is repr'd."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def read_bin_summary(path: Path) -> List[dict]:
    """Parses a test_utils .bin file (checking the layout end to end); returns dtype/shape per tensor."""
    data = path.read_bytes()
    pos = 0

    def u32(signed: bool = False) -> int:
        nonlocal pos
        v = int.from_bytes(data[pos : pos + 4], "little", signed=signed)
        pos += 4
        return v

    out = []
    for _ in range(u32()):
        code, ndim = u32(), u32()
        if code not in BIN_DTYPES:
            raise ValueError(f"{path.name}: unknown dtype code {code}")
        shape = [u32(signed=True) for _ in range(ndim)]
        name, size = BIN_DTYPES[code]
        numel = 1
        for d in shape:
            numel *= d
        pos += numel * size
        out.append({"dtype": name, "shape": shape})
    if pos != len(data):
        raise ValueError(f"{path.name}: {len(data)} bytes, layout accounts for {pos}")
    return out


def inspect_pte(pte_path: Path) -> dict:
    """MLX delegate count, MLX node counts (all chains, all payloads) and non-delegated operators."""
    from executorch.backends.mlx.pte_inspector import _get_fb_graph, _load_mlx_payload
    from executorch.backends.mlx.serialization._generated_serializers import MLX_OP_TYPE_NAMES
    from executorch.exir._serialize._program import _flatbuffer_to_program, _get_extended_header

    pte = pte_path.read_bytes()
    header = _get_extended_header(pte)
    program = _flatbuffer_to_program(pte[: header.program_size] if header else pte)
    n_mlx = sum("mlx" in d.id.lower() for plan in program.execution_plan for d in plan.delegates)
    ops = sorted({f"{o.name}.{o.overload}" if o.overload else o.name
                  for plan in program.execution_plan for o in plan.operators})
    info = {"mlx_delegates": n_mlx, "non_delegated_ops": ops, "mlx_nodes": None, "decode_error": None}
    try:
        counts: Dict[str, int] = {}
        for i in range(n_mlx):
            graph = _get_fb_graph(_load_mlx_payload(pte, delegate_index=i).fb_data)
            for c in range(graph.InstructionChainsLength()):
                chain = graph.InstructionChains(c)
                for k in range(chain.InstructionsLength()):
                    t = chain.Instructions(k).OpType()
                    name = MLX_OP_TYPE_NAMES.get(t, f"Unknown({t})")
                    counts[name] = counts.get(name, 0) + 1
        info["mlx_nodes"] = dict(sorted(counts.items()))
    except Exception as e:  # keep the export; report the decoding problem in notes
        info["decode_error"] = f"{type(e).__name__}: {e}"
    return info


def case_metadata(test_name: str, case_name: str, case, case_dir: Path) -> dict:
    info = inspect_pte(case_dir / "model.pte")
    nodes = info["mlx_nodes"] or {}
    needs_metal = nodes.get("MetalKernelNode", 0) > 0
    dynamic = bool(case.get_dynamic_shapes())
    kv_cache = getattr(case, "kv_cache", None)
    reason = getattr(case, "skip_comparison_reason", "") or ""

    notes = []
    if case.skip_comparison:
        notes.append("skip_comparison: " + (reason or "upstream runs it but does not compare outputs"))
    if needs_metal:
        notes.append("MetalKernelNode in the MLX payload: needs Metal, cannot run on CPU")
    if kv_cache:
        notes.append(f"needs the off-graph KV cache installed before execute (op_test_runner --kv-cache {kv_cache})")
    if dynamic:
        notes.append("exported with dynamic shapes; input.bin holds the test inputs, which may differ in shape from the export inputs")
    if info["mlx_delegates"] != case.expected_mlx_segments:
        notes.append(f"{info['mlx_delegates']} MLX delegates, upstream expects {case.expected_mlx_segments}")
    if info["non_delegated_ops"]:
        notes.append("non-delegated ops: " + ", ".join(info["non_delegated_ops"]))
    if info["decode_error"]:
        notes.append("MLX payload decoding failed (needs_metal unknown, reported false): " + info["decode_error"])

    params = {k: jsonable(v) for k, v in vars(case).items()
              if not k.startswith("_") and k not in ("name", "kv_cache", "get_test_dir")}
    return {
        "test": test_name,
        "case": case_name,
        "config_name": case.name,
        "rtol": float(case.rtol),
        "atol": float(case.atol),
        "skip_comparison": bool(case.skip_comparison),
        "needs_metal": needs_metal,
        "notes": "; ".join(notes),
        "skip_comparison_reason": reason,
        "kv_cache": kv_cache,
        "dynamic_shapes": dynamic,
        "expected_mlx_segments": int(case.expected_mlx_segments),
        "mlx_delegates": info["mlx_delegates"],
        "mlx_nodes": info["mlx_nodes"],
        "non_delegated_ops": info["non_delegated_ops"],
        "params": params,
        "inputs": read_bin_summary(case_dir / "input.bin"),
        "outputs": read_bin_summary(case_dir / "expected_output.bin"),
    }


class CapturedOutput:
    """Redirects fds 1 and 2 (Python and C++ output alike) into a file for the duration of a case."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        self.file = open(self.path, "w")
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.file.close()
        return False


def export_case(out: Path, case_name: str, test_name: str, case) -> dict:
    """Exports one config into out/<case_name>/; returns its index entry (never raises)."""
    final = out / case_name
    tmp = out / f".tmp-{case_name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    case.get_test_dir = lambda: tmp  # instance attribute shadows the method: no writes into site-packages
    start, cpu_start = time.monotonic(), time.process_time()
    error = None
    with CapturedOutput(tmp / "export.log"):
        try:
            case.generate_test_files()
            meta = case_metadata(test_name, case_name, case, tmp)
            (tmp / "case.json").write_text(json.dumps(meta, indent=2) + "\n")
        except BaseException as e:  # noqa: B902 -- one failing case must not stop the others
            traceback.print_exc()
            error = f"{type(e).__name__}: {e}".strip()
            if isinstance(e, KeyboardInterrupt):
                raise
    # Wall time and this worker's CPU time: on a shared machine the two differ by the wait for a core.
    entry = {"case": case_name, "test": test_name, "seconds": round(time.monotonic() - start, 2),
             "cpu_seconds": round(time.process_time() - cpu_start, 2)}
    shutil.rmtree(final, ignore_errors=True)
    if error is None:
        for f in tmp.iterdir():
            if f.name not in CASE_FILES:
                f.unlink()
            else:
                f.chmod(0o644)  # test_utils writes through mkstemp (0600)
        entry["status"] = "ok"
    else:
        for f in tmp.iterdir():
            if f.name != "export.log":
                f.unlink()
        entry["status"] = "failed"
        entry["error"] = error[:2000]
    tmp.rename(final)
    return entry


def worker_main(out: Path, threads: int, seed: Optional[int]) -> None:
    """Protocol: first line {"configs": [[case, test], ...]} or {"fatal": str}; then for each case name
    read from stdin, one JSON index entry. Results go to the original stdout; all other output is
    captured per case or discarded."""
    results = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints between cases must not corrupt the result stream
    try:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        configs = load_suite()
    except BaseException as e:  # noqa: B902
        results.write(json.dumps({"fatal": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}) + "\n")
        return
    results.write(json.dumps({"configs": [[name, t] for name, (t, _) in configs.items()]}) + "\n")
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        if name not in configs:
            entry = {"case": name, "test": None, "status": "failed", "seconds": 0, "error": "unknown config"}
        else:
            test_name, case = configs.pop(name)  # drop our reference once exported (memory)
            if seed is not None:
                case.seed = seed
            entry = export_case(out, name, test_name, case)
        results.write(json.dumps(entry) + "\n")


# ----------------------------------------------------------------------------------------------------
# Parent side: spawn workers, hand out cases, enforce timeouts, write index.json.
# ----------------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, out: Path, threads: int, seed: Optional[int] = None):
        cmd = [sys.executable, "-u", str(Path(__file__).resolve()), "--worker", "--out", str(out),
               "--threads", str(threads)] + ([] if seed is None else ["--seed", str(seed)])
        # stderr (import-time noise from torchao/executorch) is discarded; per-case output is captured.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.case: Optional[str] = None
        self.deadline = 0.0

    def send(self, case: str, timeout: float) -> None:
        self.case = case
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write(case + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only this worker, by its own process handle
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def read_handshake(w: Worker) -> dict:
    line = w.proc.stdout.readline()
    if not line:
        w.kill()
        sys.exit(f"export_mlx_op_tests: worker exited during start-up (code {w.proc.returncode}); "
                 "try: tools/.venv/bin/python tools/python/mlx_generated_files.py")
    msg = json.loads(line)
    if "fatal" in msg:
        w.kill()
        sys.exit("export_mlx_op_tests: importing the MLX op suite failed:\n" + msg["fatal"])
    return msg


def keep_log_of_killed_case(out: Path, case: str) -> None:
    """A killed worker leaves out/.tmp-<case>/: keep its export.log as out/<case>/export.log."""
    tmp = out / f".tmp-{case}"
    if not tmp.is_dir():
        return
    final = out / case
    shutil.rmtree(final, ignore_errors=True)
    final.mkdir()
    if (tmp / "export.log").exists():
        (tmp / "export.log").rename(final / "export.log")
    shutil.rmtree(tmp, ignore_errors=True)


def failed_entry(case: str, test: str, error: str, seconds: float) -> dict:
    return {"case": case, "test": test, "status": "failed", "seconds": round(seconds, 2), "error": error}


def run(out: Path, todo: List[List[str]], jobs: int, timeout: float, first: Worker, threads: int,
        seed: Optional[int]) -> List[dict]:
    """Distributes `todo` ([case, test] pairs) over up to `jobs` workers; returns the index entries."""
    tests = dict(todo)
    queue = [name for name, _ in todo]
    queue.reverse()  # pop() from the end keeps the suite's order
    results: List[dict] = []
    sel = selectors.DefaultSelector()
    workers: List[Worker] = [first]
    started = {}  # case -> monotonic start
    t0 = time.monotonic()

    def start_worker() -> Worker:
        w = Worker(out, threads, seed)
        read_handshake(w)
        return w

    def assign(w: Worker) -> None:
        if queue:
            name = queue.pop()
            started[name] = time.monotonic()
            w.send(name, timeout)
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        else:
            w.close()
            workers.remove(w)

    def report(entry: dict) -> None:
        results.append(entry)
        n = len(results)
        mark = "ok " if entry["status"] == "ok" else "FAIL"
        tail = "" if entry["status"] == "ok" else "  " + entry["error"].splitlines()[0][:160]
        cpu = f", cpu {entry['cpu_seconds']}s" if "cpu_seconds" in entry else ""
        print(f"[{n}/{len(todo)} {time.monotonic() - t0:6.0f}s] {mark} {entry['case']} ({entry['seconds']}s{cpu}){tail}",
              flush=True)

    for _ in range(1, min(jobs, len(queue))):
        workers.append(start_worker())
    for w in list(workers):
        assign(w)

    while workers:
        now = time.monotonic()
        wait = max(0.1, min(w.deadline for w in workers) - now)
        events = sel.select(timeout=wait)
        done = []
        for key, _ in events:
            w: Worker = key.data
            line = w.proc.stdout.readline()
            sel.unregister(w.proc.stdout)
            if line:
                report(json.loads(line))
                done.append((w, False))
            else:  # the worker died mid-case
                w.kill()
                keep_log_of_killed_case(out, w.case)
                report(failed_entry(w.case, tests[w.case], f"worker crashed (exit code {w.proc.returncode})",
                                    time.monotonic() - started[w.case]))
                done.append((w, True))
        now = time.monotonic()
        for w in list(workers):
            if w.case and now > w.deadline and all(w is not d for d, _ in done):
                sel.unregister(w.proc.stdout)
                w.kill()
                keep_log_of_killed_case(out, w.case)
                report(failed_entry(w.case, tests[w.case], f"timeout after {timeout:g}s",
                                    now - started[w.case]))
                done.append((w, True))
        for w, dead in done:
            w.case = None
            if dead:
                workers.remove(w)
                if queue:
                    nw = start_worker()
                    workers.append(nw)
                    assign(nw)
            else:
                assign(w)
    for tmp in out.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def write_index(out: Path, results: List[dict], full_run: bool) -> dict:
    path = out / "index.json"
    old = {}
    if not full_run and path.exists():
        try:
            old = {e["case"]: e for e in json.loads(path.read_text()).get("cases", [])}
        except (ValueError, KeyError):
            old = {}
    merged = dict(old)
    merged.update({e["case"]: e for e in results})
    try:
        from importlib.metadata import version

        versions = {"executorch": version("executorch"), "torch": version("torch")}
    except Exception:
        versions = {}
    index = {"generated_by": "tools/python/export_mlx_op_tests.py", **versions,
             "cases": sorted(merged.values(), key=lambda e: e["case"])}
    path.write_text(json.dumps(index, indent=1) + "\n")
    return index


def remove_previous_corpus(out: Path) -> None:
    """Before a full run: remove case folders (and the index) left by an earlier run, nothing else."""
    for d in out.iterdir():
        if d.is_dir() and ((d / "case.json").exists() or (d / "export.log").exists() or d.name.startswith(".tmp-")):
            shutil.rmtree(d)
    (out / "index.json").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTRING")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()

    if args.worker:
        worker_main(out, args.threads, args.seed)
        return

    out.mkdir(parents=True, exist_ok=True)
    jobs = max(1, args.jobs)
    threads = 0 if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs)  # 0: torch's default
    t0 = time.monotonic()
    first = Worker(out, threads, args.seed)
    configs = read_handshake(first)["configs"]
    todo = [c for c in configs if not args.only or any(s in c[0] or s in c[1] for s in args.only)]
    if args.list:
        first.close()
        for name, test in todo:
            print(f"{name}  ({test})")
        print(f"{len(todo)} configs in {len({t for _, t in todo})} tests")
        return
    if not todo:
        first.close()
        sys.exit(f"export_mlx_op_tests: no config matches {args.only}")
    full_run = not args.only
    if full_run:
        remove_previous_corpus(out)
    print(f"exporting {len(todo)} configs of {len({t for _, t in todo})} tests into {out} with {jobs} job(s)",
          flush=True)
    try:
        results = run(out, todo, jobs, args.timeout, first, threads, args.seed)
    except KeyboardInterrupt:
        sys.exit("export_mlx_op_tests: interrupted (index.json not written)")
    write_index(out, results, full_run)

    failed = [e for e in results if e["status"] != "ok"]
    size = sum(f.stat().st_size for e in results if e["status"] == "ok" for f in (out / e["case"]).iterdir())
    if failed:
        print("failed:")
        for e in failed:
            print(f"  {e['case']}: {e['error'].splitlines()[0][:200]}")
    print(f"{size / 1e6:.1f} MB in {out}, {time.monotonic() - t0:.0f} s")
    print(f"exported {len(results) - len(failed)} cases, {len(failed)} failed")


if __name__ == "__main__":
    main()
