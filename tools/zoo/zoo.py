#!/usr/bin/env python3
"""The model zoo: programs written by ExecuTorch's own export scripts, from tiny Hugging Face checkpoints.

Usage (through tools/zoo/zoo, which picks the venv):
  zoo list                          the entries: family × variant, the exact export command
  zoo build [NAME|PREFIX ...]       make the checkpoints, export, record eager references (tools/.work/zoo/)
  zoo check [NAME|PREFIX ...]       run mlxc on every built entry as a user would; a table of what held
  zoo commit NAME ...               copy built entries into Tests/Fixtures/zoo/ (what ZooTests runs)
  zoo mutate NAME expert|router     a broken program against NAME's references: check must fail it (mutate.py)
  zoo --held-out build|check …      the same entries on checkpoints of other sizes and seed (tools/.work/zoo-heldout)
  zoo [--held-out] whisper list|build|check|commit …   Whisper's programs (whisper_entries.py)
  zoo [--held-out] voxtral list|build|check|commit …   Voxtral's programs (voxtral_entries.py)
  zoo [--held-out] parakeet list|build|check|commit …  Parakeet TDT (parakeet_entries.py; NeMo: tools/zoo/setup-nemo)
  zoo voxtral_rt list|build|check|commit …             Voxtral Realtime, offline and streaming (voxtral_rt_entries.py)

An entry is one export command run unchanged (through capture.py, which records the eager references
of the module the script exported) on one checkpoint (checkpoint.py: a family at toy sizes). What is
expected of every entry, checked by `zoo check` and, for committed ones, by the Swift ZooTests:
  - `mlxc run --jit model.pte --prompt-tokens P --temperature 0 --print-token-ids` prints eager
    PyTorch's greedy tokens (a step whose top-2 logits are within 1e-3, or within twice the program's own
    teacher-forced deviation at that step, may differ, and ends the comparison there; so may a mixture-of-experts
    step whose router scores tie within router_ties.TIE_ULPS);
  - fed eager's tokens (teacher forcing), its logits at every step within the entry's bound of eager's — for a
    mixture of experts whose eager router ties, of eager's with the program's choice at each tie (router_ties.py);
  - `mlxc compile model.pte --stats-json` has fallback_ops 0 and one rope_attention per attention layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "tools" / ".work" / "zoo"
# `zoo --held-out …`: the same entries on checkpoints of other sizes and seed (checkpoint.py --held-out),
# in their own folder: programs no committed fixture was made from.
HELD_OUT = False
VENV = REPO / "tools" / ".venv"
TF5RC1 = VENV / "tf5rc1"          # transformers 5.0.0rc1 overlay (REAL-MODELS.md: optimum-executorch's pin)
FIXTURES = REPO / "Tests" / "Fixtures" / "zoo"
MLX_HF = "executorch.backends.mlx.examples.llm.export_llm_hf"


@dataclass
class Entry:
    name: str
    family: str                 # checkpoint.py family
    command: list               # the export command after `python`; {ckpt} and {out} are filled in
    layers: int                 # attention layers (one rope_attention each)
    transformers_rc1: bool = False
    notes: str = ""
    capture: dict = field(default_factory=dict)  # capture.py options (prompt-len, decode)
    expect_error: str = ""      # a program the script writes wrongly: mlxc must refuse it with this message
    # A configuration ExecuTorch's script cannot export with the pinned toolchain: `build` must fail with these
    # lines in its log (so a toolchain that starts exporting it is noticed), `notes` says why; no program.
    expect_export_failure: tuple = ()
    # "eager" (the module the script exported), or "executorch" (its runtime on the file) where the two
    # disagree because the script wrote a program that is not its module; `notes` says why.
    reference: str = "eager"
    dtype: str = ""             # the activation dtype when the command has no --dtype (fp32 | bf16 | fp16)
    logits_tolerance: float = 0.0  # ZooTests' logits bound when the dtype's does not hold (`notes` says why)

    @property
    def runs_on_executorch(self) -> bool:
        """Plain and XNNPACK programs run on ExecuTorch's Python runtime here; MLX ones need Apple GPUs."""
        text = " ".join(self.command)
        return "export_llm_hf" not in text and "backend.mlx" not in text and "--backend mlx" not in text


def mlx_hf(*flags, ctx=64):
    return ["-m", MLX_HF, "--model-id", "{ckpt}", "--output", "{out}/model.pte", "--max-ctx-len", str(ctx), *flags]


def optimum(recipe, *flags, seq=64):
    return ["{venv}/bin/optimum-cli", "export", "executorch", "--model", "{ckpt}", "--task", "text-generation",
         "--recipe", recipe, "--max_seq_len", str(seq), *flags, "--output_dir", "{out}"]


LAYERS = {"llama": 2, "smollm2": 2, "qwen3": 2, "qwen2": 2, "gemma3": 3, "phi3": 2, "phi4": 2}

ENTRIES: list[Entry] = []


def add(name, family, command, **kw):
    ENTRIES.append(Entry(name=name, family=family, command=command, layers=LAYERS[family], **kw))


# export_llm_hf.py, default path (optimum-executorch's pipeline) and its flags, across families.
for fam in ["llama", "qwen3", "qwen2", "gemma3", "phi3", "smollm2"]:
    add(f"{fam}_mlx_fp32", fam, mlx_hf("--dtype", "fp32"))
add("llama_mlx_bf16", "llama", mlx_hf("--dtype", "bf16"))
add("qwen3_mlx_bf16_4w", "qwen3", mlx_hf("--dtype", "bf16", "--qlinear", "4w", "--qembedding", "4w"))
add("llama_mlx_fp32_8w", "llama", mlx_hf("--dtype", "fp32", "--qlinear", "8w", "--qembedding", "8w"))
add("llama_mlx_fp32_4w", "llama", mlx_hf("--dtype", "fp32", "--qlinear", "4w", "--qlinear-group-size", "32"))
add("qwen3_mlx_bf16_nvfp4", "qwen3", mlx_hf("--dtype", "bf16", "--qlinear", "nvfp4"))
add("llama_mlx_fp32_nvfp4_embed", "llama", mlx_hf("--dtype", "fp32", "--qlinear", "nvfp4", "--qembedding", "nvfp4"))
# Phi-4-mini's longrope: per-pair short/long factors and the attention scaling sqrt(1 + ln(256/64)/ln 64),
# a context (64) within original_max_position_embeddings, so the short factors apply as on a real Phi-4-mini.
add("phi4_mlx_longrope_fp32", "phi4", mlx_hf("--dtype", "fp32"))
add("phi4_mlx_custom_longrope_fp32", "phi4", mlx_hf("--dtype", "fp32", "--use-custom-sdpa", "--use-custom-kv-cache",
                                                   "--prefill-chunk-size", "32"), transformers_rc1=True,
    expect_export_failure=("Data-dependent branching", "longrope_frequency_update"),
    notes="Not exportable with ExecuTorch 1.5.1's script: its custom KV cache needs transformers 5.0.0rc1 (5.25 calls "
          "cache.update(..., kwargs=...), which the script's cache does not take: 'failed to bind arguments'), and "
          "5.0.0rc1's longrope picks short or long factors with `if seq_len > original_max_position_embeddings`, "
          "a data-dependent branch torch.export refuses. Phi-4-mini's default export (phi4_mlx_longrope_fp32) runs.")
add("phi3_mlx_bf16_8w_untied", "phi3", mlx_hf("--dtype", "bf16", "--qlinear", "8w", "--qembedding", "8w",
                                               "--no-tie-word-embeddings"))
# Custom MLX components: mlx::custom_sdpa + mlx::kv_cache_update (ring buffers for sliding layers).
# The script's --prefill-chunk-size defaults to 512, above these contexts: the largest step is given
# (for Gemma at most its window: 8, or 5 in the held-out sizes).
for fam in ["llama", "qwen3", "gemma3", "phi3"]:
    chunk = "5" if fam == "gemma3" else "32"
    add(f"{fam}_mlx_custom_fp32", fam, mlx_hf("--dtype", "fp32", "--use-custom-sdpa", "--use-custom-kv-cache",
                                              "--prefill-chunk-size", chunk), transformers_rc1=True)
add("gemma3_mlx_custom_chunk4", "gemma3",
    mlx_hf("--dtype", "fp32", "--use-custom-sdpa", "--use-custom-kv-cache", "--prefill-chunk-size", "4"),
    transformers_rc1=True, capture={"prompt-len": 10, "decode": 20})
add("llama_mlx_custom_chunk5_4w", "llama",
    mlx_hf("--dtype", "bf16", "--use-custom-sdpa", "--use-custom-kv-cache", "--prefill-chunk-size", "5",
           "--qlinear", "4w"), transformers_rc1=True)
add("llama_mlx_offgraph_fp32", "llama", mlx_hf("--dtype", "fp32", "--use-offgraph-cache", "--prefill-chunk-size", "32"), transformers_rc1=True)
# etLLM (`export_llm`, Hydra config) on the same Llama weights in Meta's layout (checkpoint.py writes
# meta/): signature (tokens [1, T], input_pos [1]), logits of the last position; MLX, and plain with
# ExecuTorch's CPU custom ops llama::custom_sdpa / llama::update_cache.
def etllm(*flags, ctx=64, seq=None, dynamic=True):
    return ["-m", "executorch.extension.llm.export.export_llm", "base.model_class=llama3",
            "base.checkpoint={ckpt}/meta/consolidated.pth", "base.params={ckpt}/meta/params.json",
            "base.metadata='{{\"get_bos_id\":0,\"get_eos_ids\":[4,1]}}'", "model.use_kv_cache=true",
            f"model.enable_dynamic_shape={str(dynamic).lower()}", f"export.max_seq_length={seq or ctx}", f"export.max_context_length={ctx}",
            "export.output_name={out}/model.pte", *flags]


add("etllm_llama_mlx_fp32", "llama", etllm("model.use_sdpa_with_kv_cache=true", "backend.mlx.enabled=true"))
add("etllm_llama_portable_fp32", "llama", etllm("model.use_sdpa_with_kv_cache=true"))
# Sliding-window layers (`local_global_attention`: layer 0 global, layer 1 a ring of 8 over a context of
# 64): CustomRingKVCache writes with llama::update_cache_with_indices and masks by each cell's position.
# The ring holds 2 × 8 cells, so a call takes at most 16 tokens (the export refuses a longer max_seq_length).
# The pattern must divide the layer count: the held-out checkpoint's 3 layers take [0,5,5] (rings of 5 cells × 2,
# so at most 10 tokens a call) — {ring} and {ring_seq} are filled in by fill().
add("etllm_llama_portable_ring", "llama", etllm("model.use_sdpa_with_kv_cache=true", "model.local_global_attention={ring}",
                                               seq="{ring_seq}"))
add("etllm_llama_xnnpack_ring", "llama", etllm("model.use_sdpa_with_kv_cache=true", "backend.xnnpack.enabled=true",
                                              "model.local_global_attention={ring}", seq="{ring_seq}"))
# Static shapes (enable_dynamic_shape=false): tokens [1, 1] only, the prompt fed one token per call.
add("etllm_llama_xnnpack_static", "llama", etllm("model.use_sdpa_with_kv_cache=true", "backend.xnnpack.enabled=true",
                                                dynamic=False))
# 8da4w without a backend: ExecuTorch 1.5.1 writes aten::linear over the int8 codes of torchao's
# IntxUnpackedToInt8Tensor with its scales dropped — a program that computes garbage. mlxc must say so.
add("etllm_llama_portable_8da4w", "llama", etllm("model.use_sdpa_with_kv_cache=true", "quantization.qmode=8da4w",
                                                "quantization.group_size=32"),
    expect_error="integer codes times floats is not a matrix product")
# XNNPACK-delegated programs (optimum-executorch's xnnpack recipe; etLLM with XNNPACK): ExecuTorch's default
# CPU path. They run once mlxc reads XNNPACK payloads (issue: XNNPACK-delegated programs run).
add("llama_xnnpack_fp32", "llama", optimum("xnnpack"), transformers_rc1=True)
# 8da4w: XNNPACK quantizes activations to int8 per token and the file keeps bf16 weight scales; eager's torchao
# fake-quantization differs from that by ~3e-2 of the logits' scale (ExecuTorch's own runtime vs eager), so the
# file's semantics, ExecuTorch's runtime, are the reference.
DYNAMIC_QUANT_NOTE = "int8 dynamic activations and bf16 scales as XNNPACK computes them: reference = ExecuTorch's runtime"
add("llama_xnnpack_custom_8da4w", "llama", optimum("xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache",
                                                   "--qlinear", "8da4w", "--qembedding", "8w"), transformers_rc1=True,
    reference="executorch", notes=DYNAMIC_QUANT_NOTE)
add("qwen3_xnnpack_custom_fp32", "qwen3", optimum("xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache"),
    transformers_rc1=True)
add("etllm_llama_xnnpack_8da4w", "llama", etllm("model.use_sdpa_with_kv_cache=true", "backend.xnnpack.enabled=true",
                                               "quantization.qmode=8da4w", "quantization.group_size=32"),
    reference="executorch", notes=DYNAMIC_QUANT_NOTE)
# Plain programs (no delegate): optimum-executorch's portable recipe.
for fam in ["llama", "qwen3"]:
    add(f"{fam}_portable_fp32", fam, optimum("portable"), transformers_rc1=True)
# Gemma 3 on the portable recipe: optimum traces transformers 5.0.0rc1's sliding-window cache for a static
# T = 1, and the program writes past the window's 8 slots once it is full: eager PyTorch (IndexError in
# index_copy_) and ExecuTorch's runtime (error 0x12) both stop at position 8. mlxc must give eager's tokens
# until then and stop there with one line.
add("gemma3_portable_fp32", "gemma3", optimum("portable"), transformers_rc1=True,
    capture={"prompt-len": 4, "decode": 12}, expect_error="index 8 is out of range for size 8",
    notes="the exported program cannot pass its sliding window (eager and ExecuTorch fail at position 8 too)")
add("llama_portable_custom_fp32", "llama", optimum("portable", "--use_custom_sdpa", "--use_custom_kv_cache"),
    transformers_rc1=True)
# Qwen 3.5 MoE (GatedDeltaNet + routed experts): its own script and checkpoints, in qwen35_entries.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import qwen35_entries  # noqa: E402
LAYERS.update(qwen35_entries.LAYERS)
for _name, _family, _command, _kw in qwen35_entries.ENTRIES:
    add(_name, _family, _command, **_kw)
# Dense Qwen 3.5 through etLLM (llama::gated_delta_rule between XNNPACK delegates): etllm_qwen35_entries.py.
import etllm_qwen35_entries  # noqa: E402
LAYERS.update(etllm_qwen35_entries.LAYERS)
for _name, _family, _command, _kw in etllm_qwen35_entries.ENTRIES:
    add(_name, _family, _command, **_kw)
# GGUF-quantized MLX exports (ExecuTorch's Gemma 4 GGUF path on tiny GGUF files): gguf_entries.py.
import gguf_entries  # noqa: E402
LAYERS.update(gguf_entries.LAYERS)
for _name, _family, _command, _kw in gguf_entries.ENTRIES:
    add(_name, _family, _command, **_kw)


def select(patterns):
    if not patterns:
        return ENTRIES
    out = [e for e in ENTRIES if any(e.name == p or e.name.startswith(p) for p in patterns)]
    if not out:
        raise SystemExit(f"no zoo entry matches {patterns}")
    return out


def fill(parts, **kv):
    """The command with {ckpt}, {out}, {venv} and {zoo} (this folder: scripts of the zoo's own) filled in."""
    kv.setdefault("zoo", "tools/zoo")
    # etLLM's local_global_attention pattern and the longest call its rings allow (2 × the window), per checkpoint size.
    kv.setdefault("ring", "[0,5,5]" if HELD_OUT else "[0,8]")
    kv.setdefault("ring_seq", "10" if HELD_OUT else "16")
    return [p.format(**kv) for p in parts]


def checkpoint(family: str) -> Path:
    ckpt = WORK / "ckpt" / family
    gguf = family in gguf_entries.LAYERS
    if not (ckpt / (gguf_entries.MARKER if gguf else "model.safetensors")).exists():
        extra = ["--held-out", "--seed", "7"] if HELD_OUT else []
        qwen35 = family in qwen35_entries.LAYERS or family in etllm_qwen35_entries.LAYERS
        script = (gguf_entries.CHECKPOINT if gguf else qwen35_entries.CHECKPOINT if qwen35
                  else REPO / "tools" / "zoo" / "checkpoint.py")
        run([str(VENV / "bin" / "python"), str(script), family, str(ckpt), *extra],
            WORK / "ckpt" / f"{family}.log")
    return ckpt


def layers_of(e: Entry) -> int:
    """Attention layers of the entry's checkpoint (one rope_attention each)."""
    info = WORK / "ckpt" / e.family / "zoo_checkpoint.json"
    return json.loads(info.read_text()).get("layers", e.layers) if info.exists() else e.layers


def env_for(e: Entry):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if e.transformers_rc1:
        env["PYTHONPATH"] = str(TF5RC1) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(cmd, log: Path, env=None) -> bool:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        # Hydra-based scripts write their run folders into the working directory: keep them in the entry's.
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    return r.returncode == 0


def build(e: Entry) -> bool:
    out = WORK / "out" / e.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ckpt = checkpoint(e.family)
    cmd = fill(e.command, ckpt=ckpt, out=out, venv=VENV, zoo=REPO / "tools" / "zoo")
    opts = []
    for k, v in e.capture.items():
        opts += [f"--{k}", str(v)]
    py = str(VENV / "bin" / "python")
    if cmd[0].endswith("optimum-cli"):
        # optimum-cli is a console script: run its entry point under capture.py.
        cmd = ["-m", "optimum.commands.optimum_cli"] + cmd[1:]
    full = [py, str(REPO / "tools" / "zoo" / "capture.py"), "--out", str(out), *opts, "--", *cmd]
    t = time.time()
    ok = run(full, out / "export.log", env_for(e))
    # optimum writes model.pte into its output dir; the MLX script where --output says.
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json", "generation_config.json"]:
        if (ckpt / f).exists():
            shutil.copy(ckpt / f, out / f)
    (out / "entry.json").write_text(json.dumps(entry_meta(e), indent=1) + "\n")
    if e.expect_export_failure:
        ok = export_failed_as_expected(e, out)
        print(f"{'ok  ' if ok else 'FAIL'} {e.name:32s} {time.time() - t:5.0f}s  export fails as expected: {ok}", flush=True)
        return ok
    ok = ok and (out / "model.pte").exists() and (out / "reference.json").exists()
    if ok and e.runs_on_executorch and not e.expect_error:
        ok = run([py, str(REPO / "tools" / "zoo" / "et_runtime.py"), str(out)], out / "et_runtime.log", env_for(e))
    print(f"{'ok  ' if ok else 'FAIL'} {e.name:32s} {time.time() - t:5.0f}s  {out / 'export.log'}", flush=True)
    return ok


def export_failed_as_expected(e: Entry, out: Path) -> bool:
    """The script wrote no program and its log names every expected reason."""
    log = out / "export.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return bool(text) and not (out / "model.pte").exists() and all(m in text for m in e.expect_export_failure)


def entry_meta(e: Entry) -> dict:
    """entry.json: what the entry is and what is expected of it (read by ZooTests)."""
    return {"name": e.name, "family": e.family, "layers": layers_of(e), "held_out": HELD_OUT,
            "command": " ".join(["python"] + fill(e.command, ckpt=f"<checkpoint {e.family}>", out="<out>", venv="tools/.venv")),
            "transformers": "5.0.0rc1" if e.transformers_rc1 else "5.25", "notes": e.notes,
            "dtype": e.dtype or activation_dtype(e.command), "reference": e.reference,
            **({"logits_tolerance": e.logits_tolerance} if e.logits_tolerance else {})}


def activation_dtype(command) -> str:
    """fp32 | bf16 | fp16: the dtype the program computes in (its tolerance follows from it)."""
    for flag in ("--dtype",):
        if flag in command:
            v = command[command.index(flag) + 1]
            return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(v, v)
    return "fp32"


def mlxc_binary() -> str:
    for p in [os.environ.get("MLXC"), REPO / ".build" / "release" / "mlxc", REPO / ".build" / "debug" / "mlxc"]:
        if p and Path(p).exists():
            return str(p)
    raise SystemExit("no mlxc binary: swift build first (or set MLXC)")


def eos_ids(out: Path) -> set:
    ids = set()
    for f in ("config.json", "generation_config.json"):
        if (out / f).exists():
            v = json.loads((out / f).read_text()).get("eos_token_id")
            ids.update(v if isinstance(v, list) else [v] if v is not None else [])
    return ids


# Mixture-of-experts router ties (router_ties.py): a token whose k-th and (k+1)-th router scores are at most
# router_ties.TIE_ULPS ulps of their dtype apart, where another rounding order may select the other expert.
import router_ties  # noqa: E402
ROUTER_TIE_ULPS = router_ties.TIE_ULPS


def logits_bound(e: Entry) -> float:
    """ZooTests' bound on a step's logits, relative to max |eager|: the entry's own, else its dtype's
    (ZooTests.tolerance: 1e-4 for fp32, 4e-2 for bf16/fp16 — eager rounds every op to bf16, a fused kernel once)."""
    if e.logits_tolerance:
        return e.logits_tolerance
    return 4e-2 if activation_dtype(e.command) in ("bf16", "fp16") or e.dtype in ("bf16", "fp16") else 1e-4


def logits_prefix(e: Entry) -> str:
    """The reference logits files: eager's step<K>, or ExecuTorch's runtime's et_step<K> (reference "executorch")."""
    return "et_step" if e.reference == "executorch" else "step"


def teacher_forced(e: Entry, out: Path, ref: dict, mlxc: str, logits_prefix: str = "step"):
    """Runs the program on the reference's own tokens (the prompt in the chunks the reference was fed, then
    each greedy token), one call per step through `mlxc run --jit --inputs-dir`, and compares the last
    position's logits after the prompt and after each step with the reference's (`<logits_prefix><K>.logits.npy`:
    eager's `step`, ExecuTorch's runtime's `et_step`). The program's outputs stay in out/teacher_forced.
    → (worst relative error over the steps, the error per step) or (None, [])."""
    import numpy as np
    chunk = max(1, int(ref.get("chunk") or len(ref["prompt"])))
    prompt_calls = [ref["prompt"][i:i + chunk] for i in range(0, len(ref["prompt"]), chunk)]
    calls = prompt_calls + [[t] for t in ref["greedy"][:-1]]
    first = len(prompt_calls) - 1          # the call whose logits are step 0's
    work = out / "teacher_forced"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    position = 0
    for k, toks in enumerate(calls):
        np.save(work / f"step{k}.input0.npy", np.array([toks], dtype=np.int64))
        if ref["signature"] == "cache_position":
            pos = np.arange(position, position + len(toks), dtype=np.int64)
        else:
            pos = np.array([position], dtype=np.int64)
        np.save(work / f"step{k}.input1.npy", pos)
        position += len(toks)
    r = subprocess.run([mlxc, "run", "--jit", str(out / "model.pte"), "--inputs-dir", str(work),
                        "--output-dir", str(work)], capture_output=True, text=True)
    if r.returncode != 0:
        (work / "mlxc.stderr").write_text(r.stderr)
        return None, []
    errors = []
    for k in range(len(ref["steps"][:len(calls) - first])):
        want = np.load(out / f"{logits_prefix}{k}.logits.npy")
        got = np.load(work / f"step{k + first}.output0.npy").astype(np.float32).reshape(-1, want.shape[-1])[-1]
        errors.append(float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
    return max(errors, default=0.0), errors


def has_routers(ref: dict) -> bool:
    """A mixture-of-experts reference: capture.py recorded its routers' gaps (router_gap_ulps)."""
    return any("router_gap_ulps" in step for step in ref["steps"])


def resolve_router_ties(e: Entry, out: Path):
    """Eager re-run with the program's choice at each router tie (capture.py --resolve-ties: the export script
    runs again up to its export call, on the same checkpoint) against the program's teacher-forced logits.
    → ties.json's dict, or None with the reason in out/resolve_ties.log."""
    ckpt = checkpoint(e.family)
    cmd = fill(e.command, ckpt=ckpt, out=out / "resolve_ties", venv=VENV, zoo=REPO / "tools" / "zoo")
    (out / "resolve_ties").mkdir(exist_ok=True)
    (out / "ties.json").unlink(missing_ok=True)
    full = [str(VENV / "bin" / "python"), str(REPO / "tools" / "zoo" / "capture.py"), "--out", str(out),
            "--resolve-ties", str(out / "teacher_forced"), "--", *cmd]
    if not run(full, out / "resolve_ties.log", env_for(e)) or not (out / "ties.json").exists():
        return None
    return json.loads((out / "ties.json").read_text())


def check(e: Entry, mlxc: str) -> dict:
    out = WORK / "out" / e.name
    if e.expect_export_failure:
        if not (out / "export.log").exists():
            return {"name": e.name, "status": "not built"}
        ok = export_failed_as_expected(e, out)
        return {"name": e.name, "ok": ok,
                "export": "fails upstream, as expected (see notes)" if ok else f"did not fail as expected: {out / 'export.log'}"}
    if not (out / "reference.json").exists():
        return {"name": e.name, "status": "not built"}
    ref = json.loads((out / "reference.json").read_text())
    row = {"name": e.name}
    if (out / "et_reference.json").exists():
        et = json.loads((out / "et_reference.json").read_text())
        n = len(ref["greedy"])
        row["executorch_vs_eager"] = ("agree" if et["greedy"][:n] == ref["greedy"] else "DIFFER") + \
            (f" (eager stopped after {n})" if ref.get("eager_error") else "")
        if e.reference == "executorch":
            ref = et
    stats = out / "stats.json"
    r = subprocess.run([mlxc, "compile", str(out / "model.pte"), "--stats-json", str(stats), "-o", str(out / "model.mlxc")],
                       capture_output=True, text=True)
    if r.returncode == 0 and stats.exists():
        s = json.loads(stats.read_text())
        row["fallback_ops"] = s.get("fallback_ops")
        row["rope_attention"] = f"{s.get('fusions', {}).get('rope_attention')}/{layers_of(e)}"
    else:
        row["compile"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
    prompt = ",".join(map(str, ref["prompt"]))
    n = ref.get("decode_steps") or len(ref["greedy"])
    r = subprocess.run([mlxc, "run", "--jit", str(out / "model.pte"), "--prompt-tokens", prompt, "--temperature", "0",
                        "--max-new-tokens", str(n), "--print-token-ids"], capture_output=True, text=True)
    if e.expect_error:
        lines = r.stderr.strip().splitlines()
        row["refused"] = lines[-1][:160] if lines else ""
        row["ok"] = r.returncode == 1 and e.expect_error in r.stderr and len(lines) == 1
        if ref.get("eager_error"):
            # Up to where the module itself stops, the program must still give eager's tokens.
            n = len(ref["greedy"])
            r2 = subprocess.run([mlxc, "run", "--jit", str(out / "model.pte"), "--prompt-tokens", prompt,
                                 "--temperature", "0", "--max-new-tokens", str(n), "--print-token-ids"],
                                capture_output=True, text=True)
            got = [int(x) for x in r2.stdout.split()]
            row["tokens_before_error"] = f"{sum(1 for a, b in zip(got, ref['greedy']) if a == b)}/{n}"
            row["ok"] = row["ok"] and got == ref["greedy"]
        return row
    if r.returncode != 0:
        row["run"] = (r.stderr.strip().splitlines() or ["?"])[-1][:160]
        return row
    got = [int(x) for x in r.stdout.split()]
    want = ref["greedy"]
    agree = 0
    for g, w in zip(got, want):
        if g != w:
            break
        agree += 1
    # Every step's logits, fed the reference's tokens (so steps past a mismatch are compared too), within the
    # entry's bound (ZooTests' for committed entries).
    worst, errors = teacher_forced(e, out, ref, mlxc, logits_prefix(e))
    # Mixture of experts: where eager's router had a tie (router_ties.py), the program may route that token to the
    # other expert, and everything after reads that token's state. The logits are then held to the same bound
    # against eager with the program's choice at each tie (and only there: a flip elsewhere is not tried).
    if worst is not None and has_routers(ref) and worst > logits_bound(e):
        found = resolve_router_ties(e, out)
        if found is None:
            row["router_ties"] = f"resolving them failed ({out / 'resolve_ties.log'})"
            worst = None
        else:
            ties = sum(1 for call in found["ties"] for t in call if t["gap_ulps"] <= ROUTER_TIE_ULPS)
            row["router_ties"] = (f"eager's routing {worst:.1e} at step {errors.index(worst)}; {ties} ties "
                                  f"(<= {ROUTER_TIE_ULPS:g} ulps), the program's choice flips "
                                  f"{', '.join('call %d layer %d token %d' % (f['call'], f['layer'], f['row']) for f in found['flips']) or 'none'}")
            worst = found["worst"]
    # A greedy mismatch at a step whose eager top-2 margin is tiny is a tie, not an error; so is one at a step
    # where eager's router had a tie, if the logits (tie-resolved) hold the bound at every step — the row says which.
    tie = None
    if agree < len(want) and agree < len(got):
        step = ref["steps"][agree]
        margin = step["top2_margin"]
        # The program's own deviation at that step (fed eager's tokens up to it), absolute: its two top logits
        # may each move by that much, so a margin within twice it is a logits tie (bf16 logits: one ulp apart).
        deviation = None
        if agree < len(errors):
            import numpy as np
            deviation = errors[agree] * float(np.abs(np.load(out / f"{logits_prefix(e)}{agree}.logits.npy")).max())
        if margin < 1e-3:
            tie = "tie"
        elif deviation is not None and errors[agree] <= logits_bound(e) and margin <= 2 * deviation:
            tie = f"logits tie: eager's top-2 margin {margin:.3g} within twice the program's deviation {deviation:.3g} there"
        elif "router_ties" in row and worst is not None and worst <= logits_bound(e):
            # Up to the mismatch the program was fed eager's tokens, so eager with its tie choices must pick its token.
            import numpy as np
            alt = np.load(out / f"tie_step{agree}.logits.npy")
            if int(np.argmax(alt)) == got[agree]:
                tie = f"router tie: eager with the program's tie choices picks {got[agree]}"
    # Generation stops at an end-of-sequence token; eager's greedy list goes on past it.
    stopped = agree == len(got) and agree < len(want) and want[agree] in eos_ids(out)
    row["tokens"] = f"{agree}/{len(want)}" + (f" ({tie})" if tie else "") + (" (eos)" if stopped else "")
    row["logits_err"] = f"{worst:.1e} (bound {logits_bound(e):.0e})" if worst is not None else "did not run"
    row["ok"] = (agree == len(want) or tie is not None or stopped) and row.get("fallback_ops") == 0 and \
        row.get("rope_attention") == f"{layers_of(e)}/{layers_of(e)}" and worst is not None and worst <= logits_bound(e)
    return row


def main(argv) -> int:
    global WORK, HELD_OUT
    if argv and argv[0] == "--held-out":
        HELD_OUT, WORK, argv = True, WORK.parent / "zoo-heldout", argv[1:]
    cmd = argv[0] if argv else "list"
    rest = argv[1:]
    if cmd == "whisper":  # encoder-decoder speech programs: their own entries, capture and checks
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import whisper_entries
        return whisper_entries.main(rest, WORK, HELD_OUT, FIXTURES)
    if cmd == "voxtral":  # audio LLM: model.pte (audio_encoder, token_embedding, text_decoder) + preprocessor.pte
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import voxtral_entries
        return voxtral_entries.main(rest, WORK, HELD_OUT, FIXTURES)
    if cmd == "voxtral_rt":  # Voxtral Realtime: export_voxtral_rt.py (offline / --streaming) + mel_spectrogram.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import voxtral_rt_entries
        return voxtral_rt_entries.main(rest, WORK, HELD_OUT, FIXTURES)
    if cmd == "parakeet":  # NeMo's FastConformer-TDT through export_parakeet_tdt.py (parakeet_entries.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import parakeet_entries
        return parakeet_entries.main(rest, WORK, HELD_OUT, FIXTURES)
    if cmd == "vision":  # image classifiers through optimum-executorch's image-classification task (vision_entries.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import vision_entries
        return vision_entries.main(rest, WORK, HELD_OUT, FIXTURES)
    if cmd == "list":
        for e in ENTRIES:
            print(f"{e.name:32s} python {' '.join(fill(e.command, ckpt='<ckpt>', out='<out>', venv='tools/.venv'))}")
        return 0
    if cmd == "build":
        fails = [e.name for e in select(rest) if not build(e)]
        print(f"{len(select(rest)) - len(fails)} built, {len(fails)} failed" + (f": {' '.join(fails)}" if fails else ""))
        return 1 if fails else 0
    if cmd == "check":
        mlxc = mlxc_binary()
        rows = [check(e, mlxc) for e in select(rest)]
        for r in rows:
            print(json.dumps(r))
        good = sum(1 for r in rows if r.get("ok"))
        print(f"{good} passed, {len(rows) - good} failed")
        return 0 if good == len(rows) else 1
    if cmd == "mutate":  # a broken program against the clean references: zoo check must fail it (mutate.py)
        import dataclasses
        import mutate
        if len(rest) != 2:
            raise SystemExit("usage: zoo mutate NAME expert|router")
        (e,) = [x for x in ENTRIES if x.name == rest[0]] or [None]
        if e is None or not (WORK / "out" / e.name / "reference.json").exists():
            raise SystemExit(f"zoo mutate: build {rest[0]} first")
        broken = dataclasses.replace(e, name=f"{e.name}__{rest[1]}")
        ckpt, out = WORK / "ckpt" / f"{e.family}__{rest[1]}", WORK / "out" / broken.name
        mutate.broken_checkpoint(checkpoint(e.family), ckpt, rest[1])
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        cmd = fill(e.command, ckpt=ckpt, out=out, venv=VENV, zoo=REPO / "tools" / "zoo")
        if not run([str(VENV / "bin" / "python"), *cmd], out / "export.log", env_for(e)):
            raise SystemExit(f"zoo mutate: the export failed ({out / 'export.log'})")
        mutate.references(WORK / "out" / e.name, out)
        row = check(broken, mlxc_binary())
        print(json.dumps(row))
        print("caught" if not row.get("ok") else "NOT CAUGHT")
        return 0 if not row.get("ok") else 1
    if cmd == "commit":
        if HELD_OUT:
            raise SystemExit("held-out programs are for checking, not for committing")
        for e in select(rest):
            if e.expect_export_failure:
                print(f"skipped {e.name}: the script cannot export it (expected), nothing to commit")
                continue
            src, dst = WORK / "out" / e.name, FIXTURES / e.name
            if dst.exists():
                shutil.rmtree(dst)
            dst.mkdir(parents=True)
            (src / "entry.json").write_text(json.dumps(entry_meta(e), indent=1) + "\n")
            for f in src.iterdir():
                if f.suffix in (".pte", ".json", ".npy", ".jinja") and f.name not in ("stats.json",) \
                        and not f.name.startswith("et_"):
                    shutil.copy(f, dst / f.name)
            if e.reference == "executorch":  # the file's own semantics are the reference (see the entry's notes)
                shutil.copy(src / "et_reference.json", dst / "reference.json")
                for f in src.glob("et_step*.logits.npy"):
                    shutil.copy(f, dst / f.name[len("et_"):])
            print(f"committed {e.name}: {sum(f.stat().st_size for f in dst.iterdir()) / 1e6:.2f} MB")
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
