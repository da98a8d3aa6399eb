"""The `zoo FAMILY list|build|check|commit …` commands shared by the multi-program families (whisper_entries.py,
voxtral_entries.py, parakeet_entries.py): each family module brings its entries and how to build, check and commit
one; this module runs the command over the selected entries and prints the summary line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]


def mlxc_binary() -> str:
    """The mlxc the checks run: $MLXC, else this checkout's release build, else its debug build."""
    for p in [os.environ.get("MLXC"), REPO / ".build" / "release" / "mlxc", REPO / ".build" / "debug" / "mlxc"]:
        if p and Path(p).exists():
            return str(p)
    raise SystemExit("no mlxc binary: swift build first (or set MLXC)")


def compile_and_run(mlxc: str, pte: Path, method: str, inputs: Path, got: Path, artifact: Path, stats: Path):
    """One method of a program as a check runs it: `mlxc compile` (its fallback_ops and the fusions that fired, or the
    compile error's last line), then `mlxc run --jit` on the recorded inputs into `got` (or the run's error). Returns
    the row's fields and whether the run produced outputs."""
    row = {}
    r = subprocess.run([mlxc, "compile", str(pte), "--method", method, "--stats-json", str(stats), "--remarks",
                        "-o", str(artifact)], capture_output=True, text=True)
    if r.returncode == 0 and stats.exists():
        s = json.loads(stats.read_text())
        row["fallback_ops"] = s.get("fallback_ops")
        row["fusions"] = {k: v for k, v in s.get("fusions", {}).items() if v}
    else:
        row["compile"] = (r.stderr.strip().splitlines() or ["?"])[-1][:200]
    shutil.rmtree(got, ignore_errors=True)
    r = subprocess.run([mlxc, "run", "--jit", str(pte), "--method", method, "--inputs-dir", str(inputs),
                        "--output-dir", str(got)], capture_output=True, text=True)
    if r.returncode != 0:
        row["run"] = (r.stderr.strip().splitlines() or ["?"])[-1][:200]
        return row, False
    return row, True


def run_family(argv, *, entries, select: Callable, build: Callable, check: Callable, commit: Callable,
               command_text: Callable, work: Path, held_out: bool, fixtures: Path, doc: str,
               name_width: int = 28) -> int:
    """`list`: every entry's export command; `build [NAMES]`; `check [NAMES]` (check(e, work, mlxc) → rows, one JSON
    line each, then 'N passed, M failed'); `commit NAMES` (not for held-out programs)."""
    cmd, rest = (argv[0] if argv else "list"), argv[1:]
    if cmd == "list":
        for e in entries:
            print(f"{e.name:{name_width}s} python {command_text(e)}")
        return 0
    if cmd == "build":
        chosen = select(rest)
        fails = [e.name for e in chosen if not build(e, work, held_out)]
        print(f"{len(chosen) - len(fails)} built, {len(fails)} failed" + (f": {' '.join(fails)}" if fails else ""))
        return 1 if fails else 0
    if cmd == "check":
        mlxc = mlxc_binary()
        rows = [r for e in select(rest) for r in check(e, work, mlxc)]
        for r in rows:
            print(json.dumps(r))
        good = sum(1 for r in rows if r.get("ok"))
        print(f"{good} passed, {len(rows) - good} failed")
        return 0 if good == len(rows) else 1
    if cmd == "commit":
        if held_out:
            raise SystemExit("held-out programs are for checking, not for committing")
        for e in select(rest):
            commit(e, work, fixtures)
        return 0
    raise SystemExit(doc)
