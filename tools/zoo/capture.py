#!/usr/bin/env python3
"""Run one of ExecuTorch's export scripts unchanged, and record eager PyTorch references of the very
module it exports.

Usage: tools/.venv/bin/python tools/zoo/capture.py --out DIR [--prompt-len N] [--decode N] [--seed S]
           [--vocab-lo L] [--resolve-ties TF_DIR [--eager-variant exact-dequant] [--against-eager]]
           -- -m some.export.module ARGS…   (or  -- path/to/script.py ARGS…)

With --resolve-ties (zoo check, for mixture-of-experts entries whose eager routers tie), nothing is exported or
recorded: the module is run on DIR/reference.json's calls with the program's choice at each router tie
(router_ties.py), against the program's teacher-forced logits in TF_DIR; DIR/ties.json says what was found.
Two study options (the reference's own noise floor; they write DIR/ties_<variant>_vs_<target>.json instead):
`--eager-variant exact-dequant` runs the module with its quantized weights dequantized exactly, as the program's
kernels compute them (exact_dequant.py); `--against-eager` holds that run to eager's own logits (DIR/step<K>.logits.npy)
instead of the program's.

`torch.export.export` is wrapped for the script's run. On each call (the module as the script
built it: after its quantization and source transforms, with its KV cache), the module is run eagerly:
  step 0          the prompt, in chunks no longer than the traced sequence bound (so a ring-buffer
                  cache is fed as the exported program will be);
  step 1…N        greedy decode, one token per call (argmax, lowest id on ties).
Every call is recorded, the last one overwriting the others (a script that exports twice, before and
after quantizing, writes the program from the last). The eager run is on a deep copy of the module (its KV caches, ring positions and the Python-side state
of transformers' caches), so the export itself traces exactly what it would without this wrapper. The two LLM signatures are recognised from the
example inputs: `(input_ids [1, T], cache_position [T])` (Hugging Face exports) and
`(tokens [1, T], input_pos [1])` (etLLM).

Writes DIR/reference.json: {"signature", "prompt", "greedy", "chunk", "logits_rank",
"steps": [{"tokens", "positions", "argmax", "top2_margin", "router_gap_ulps"?}]} and DIR/step<K>.logits.npy (the logits
of the last position of call K, float32). The script writes the program itself wherever its own
arguments say. For mixture-of-experts models (a module with an int `top_k` and a `gate` child, the router),
`router_gap_ulps` is the smallest gap, over every layer and token of the call, between the k-th and (k+1)-th
router score, in ulps of the score's dtype at the magnitude of the scores' dot products (Σ|x||w|): a gap of a few
ulps is a routing tie, where a different rounding order may pick another expert (RouterGaps, router_ties.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import router_ties  # noqa: E402


def seq_bound(dynamic_shapes, default: int) -> int:
    """The largest sequence length the export traces (the max of its Dim), or `default`."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif x is not None and hasattr(x, "max"):
            m = getattr(x, "max")
            if isinstance(m, int):
                found.append(m)
    walk(dynamic_shapes)
    return min(found) if found else default


class RouterGaps:
    """Forward hooks on every router (`gate` of a module with an int `top_k`): the smallest gap between the
    k-th and (k+1)-th scores seen since the last `take()`, in ulps of the scores' dtype at the scale of the
    scores' dot products (router_ties.ulp_gap)."""

    def __init__(self, mod):
        self.smallest = None
        self.handles = []
        for m in mod.modules():
            k, gate = getattr(m, "top_k", None), getattr(m, "gate", None)
            if isinstance(k, int) and isinstance(gate, torch.nn.Module):
                self.handles.append(gate.register_forward_hook(self.hook(k)))

    def hook(self, k):
        def record(module, inputs, out):
            scores = out[0] if isinstance(out, (tuple, list)) else out
            if not torch.is_tensor(scores) or scores.shape[-1] <= k:
                return
            flat = scores.reshape(-1, scores.shape[-1])
            gap = float(router_ties.ulp_gap(flat, k, router_ties.dot_scale(module, inputs[0]))[0].min())
            self.smallest = gap if self.smallest is None else min(self.smallest, gap)
        return record

    def take(self):
        gap, self.smallest = self.smallest, None
        return gap

    def remove(self):
        for h in self.handles:
            h.remove()


class Resolved(Exception):
    """Ends the export script's run once `--resolve-ties` has what it needs."""


class Recorder:
    def __init__(self, out: Path, prompt_len: int, decode: int, seed: int, vocab_lo: int, resolve_dir=None,
                 variant: str = "", against_eager: bool = False):
        self.out, self.prompt_len, self.decode, self.seed, self.vocab_lo = out, prompt_len, decode, seed, vocab_lo
        self.resolve_dir, self.variant, self.against_eager = resolve_dir, variant, against_eager
        self.done = False
        self.calls = 0

    def __call__(self, real_export, mod, args=(), kwargs=None, *rest, **kw):
        kwargs = kwargs or {}
        # Scripts may export more than once (etLLM: before and after quantization; optimum: again after a
        # graph rewrite): every call is recorded and the last one wins, as its module is the program's.
        # Lowering passes export small pattern modules of their own (XNNPACK's ConvertToUpsampleBilinear2d):
        # only a call with the LLM's (tokens, positions) inputs is the model.
        if isinstance(mod, torch.nn.Module) and len(args) + len(kwargs) == 2:
            self.done = True
            self.calls += 1
            if self.resolve_dir is not None:
                # The module the script would export, on the reference's calls; the export itself is not needed.
                self.resolve_ties(copy.deepcopy(mod), args, kwargs)
                raise Resolved()
            try:
                # On a copy: running the module changes more than its buffers (transformers' sliding-window
                # caches keep Python ints such as cumulative_length), and the export must trace the module
                # exactly as the script left it, as it does without this wrapper.
                self.record(copy.deepcopy(mod), args, kwargs, kw.get("dynamic_shapes"))
            except Exception as e:  # the export must still run: say why there is no reference
                print(f"capture: no eager reference: {type(e).__name__}: {e}", file=sys.stderr)
                raise
        return real_export(mod, args, kwargs, *rest, **kw)

    @staticmethod
    def example_inputs(args, kwargs):
        """→ (input names, example tokens, example positions, the positions' dict key or None, signature)."""
        values = list(args) + list(kwargs.values())
        names = list(kwargs.keys()) if kwargs else [f"arg{i}" for i in range(len(args))]
        if len(values) != 2:
            raise RuntimeError(f"expected (tokens, positions) example inputs, found {len(values)}")
        tokens_ex, pos_ex = values
        # etLLM passes the position as `{"input_pos": tensor}` (its attention options).
        pos_key = None
        if isinstance(pos_ex, dict):
            pos_key = next(iter(pos_ex))
            pos_ex = pos_ex[pos_key]
        per_token_positions = pos_ex.dim() == 1 and pos_ex.shape[0] == tokens_ex.shape[1] and tokens_ex.shape[1] > 1
        signature = "cache_position" if per_token_positions or "cache_position" in names else "input_pos"
        return names, tokens_ex, pos_ex, pos_key, signature

    @staticmethod
    def call_inputs(toks, position, tokens_ex, pos_ex, pos_key, signature):
        """The (tokens, positions) of one call at `position`, in the example inputs' dtypes and form."""
        t = torch.tensor([toks], dtype=tokens_ex.dtype)
        if signature == "cache_position":
            p = torch.arange(position, position + len(toks), dtype=pos_ex.dtype)
        else:
            p = torch.tensor([position], dtype=pos_ex.dtype)
        return t, ({pos_key: p} if pos_key is not None else p)

    def resolve_ties(self, mod, args, kwargs):
        """`--resolve-ties DIR`: eager on the reference's calls with the program's choice at each router tie
        (router_ties.resolve) against the program's teacher-forced logits DIR/step<K>.output0.npy (as zoo check
        wrote them). Writes OUT/ties.json and OUT/tie_step<K>.logits.npy (eager's logits on the routing kept)."""
        names, tokens_ex, pos_ex, pos_key, signature = self.example_inputs(args, kwargs)
        ref = json.loads((self.out / "reference.json").read_text())
        chunk = max(1, int(ref.get("chunk") or len(ref["prompt"])))
        calls = [ref["prompt"][i:i + chunk] for i in range(0, len(ref["prompt"]), chunk)]
        first = len(calls) - 1
        calls += [[t] for t in ref["greedy"][:-1]]
        starts = [sum(len(c) for c in calls[:i]) for i in range(len(calls))]
        if self.against_eager:
            program = [np.load(self.out / f"step{s}.logits.npy") for s in range(len(calls) - first)]
        else:
            program = [np.load(self.resolve_dir / f"step{c}.output0.npy").astype(np.float32).reshape(-1, ref["vocab"])[-1]
                       for c in range(first, len(calls))]
        offgraph = self.offgraph_cache_scope(mod)
        import contextlib
        import exact_dequant
        variant = exact_dequant.exact if self.variant == "exact-dequant" else contextlib.nullcontext
        study = bool(self.variant or self.against_eager)
        tag = f"{self.variant or 'eager'}_vs_{'eager' if self.against_eager else 'program'}" if study else ""

        def call(m, c):
            t, p = self.call_inputs(calls[c], starts[c], tokens_ex, pos_ex, pos_key, signature)
            with torch.no_grad(), offgraph(), variant():
                out = m(**{names[0]: t, names[1]: p}) if kwargs else m(t, p)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if hasattr(out, "logits"):
                out = out.logits
            return out.reshape(-1, out.shape[-1])[-1].float()

        found = router_ties.resolve(mod, call, calls, first, program)
        for s, logits in enumerate(found.pop("logits")):
            np.save(self.out / f"tie{'_' + tag if study else ''}_step{s}.logits.npy", logits)
        found.update(tie_ulps=router_ties.TIE_ULPS, beam=router_ties.BEAM, variant=self.variant or "eager",
                     against="eager" if self.against_eager else "program")
        (self.out / (f"ties_{tag}.json" if study else "ties.json")).write_text(json.dumps(found, indent=1) + "\n")
        print(f"capture: router ties resolved{' (' + tag + ')' if study else ''}: worst {found['worst']:.2e} "
              f"with {len(found['flips'])} flips", file=sys.stderr)

    def record(self, mod, args, kwargs, dynamic_shapes):
        names, tokens_ex, pos_ex, pos_key, signature = self.example_inputs(args, kwargs)
        chunk = seq_bound(dynamic_shapes, tokens_ex.shape[1])
        if dynamic_shapes is None:
            chunk = tokens_ex.shape[1]  # a static export takes exactly its example length
        # A later export's module may be a bare graph module: the vocabulary is the first one's.
        vocab = self.vocab = getattr(self, "vocab", None) or self.vocab_size(mod)
        g = torch.Generator().manual_seed(self.seed)
        prompt = torch.randint(self.vocab_lo, vocab, (self.prompt_len,), generator=g).tolist()

        snapshot = {n: b.detach().clone() for n, b in mod.named_buffers()}
        routers = RouterGaps(mod)
        offgraph = self.offgraph_cache_scope(mod)
        steps, greedy = [], []
        position = 0

        def call(toks):
            nonlocal position
            t, p = self.call_inputs(toks, position, tokens_ex, pos_ex, pos_key, signature)
            inputs = {names[0]: t, names[1]: p} if kwargs else None
            with torch.no_grad(), offgraph():
                out = mod(**inputs) if inputs else mod(t, p)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if hasattr(out, "logits"):
                out = out.logits
            position += len(toks)
            last = out.reshape(-1, out.shape[-1])[-1].float()
            return out, last

        eager_error = None
        logits_rank = None
        try:
            # Prefill in chunks the program accepts; the reference of the step is its last chunk's logits.
            start = 0
            while start < len(prompt):
                piece = prompt[start:start + chunk]
                out, last = call(piece)
                start += len(piece)
            logits_rank = out.dim()
            for k in range(self.decode + 1):
                top = torch.topk(last, 2)
                nxt = int(torch.argmax(last))
                step = {"argmax": nxt, "top2_margin": float(top.values[0] - top.values[1])}
                gap = routers.take()  # the routers of every call since the last step's (the prompt's chunks)
                if routers.handles and gap is not None:
                    step["router_gap_ulps"] = gap
                steps.append(step)
                np.save(self.out / f"step{k}.logits.npy", last.numpy().astype(np.float32))
                greedy.append(nxt)
                if k < self.decode:
                    out, last = call([nxt])
        except (IndexError, RuntimeError) as e:
            # The module itself cannot go on (e.g. a sliding-window cache traced for static shapes writing
            # past its window): the reference stops here, and the entry says so; the export still runs.
            eager_error = f"{type(e).__name__}: {e}"
            print(f"capture: eager stopped after {len(greedy)} greedy steps: {eager_error}", file=sys.stderr)
        finally:
            routers.remove()
            with torch.no_grad():
                for n, b in mod.named_buffers():
                    if n in snapshot:
                        b.copy_(snapshot[n])
        ref = {"signature": signature, "input_names": names, "prompt": prompt, "greedy": greedy, "chunk": chunk,
               "logits_rank": logits_rank, "vocab": vocab, "steps": steps, "export_call": self.calls,
               "eager_error": eager_error, "decode_steps": self.decode + 1,
               "note": "eager PyTorch on the module passed to torch.export.export; greedy = argmax, lowest id on ties; "
                       "step K's logits are those of the last position of call K (0: the prompt)"}
        (self.out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
        print(f"capture: {signature} signature, chunk {chunk}, prompt {len(prompt)}, greedy {greedy}", file=sys.stderr)

    @staticmethod
    def offgraph_cache_scope(mod):
        """For `--use-offgraph-cache` exports (kvcache::update_and_attend: the KV history lives outside the
        graph), ExecuTorch's own reference cache, installed for the eager run: flat layers, and rings of the
        sliding window for sliding layers, as the script's runtime metadata describes them."""
        import contextlib
        if type(mod).__name__ != "OffGraphExportWrapper":
            return contextlib.nullcontext
        from executorch.backends.mlx.llm.cache import resolve_hf_cache_layout
        from executorch.extension.llm.cache.reference_cache import (CacheConfig, ContiguousReferenceCache,
                                                                    LayerPolicy)
        from executorch.extension.llm.cache.update_and_attend import REGISTRY
        config = mod.model.config
        layer_types, kv_heads, head_dims = resolve_hf_cache_layout(config)
        window = getattr(config.get_text_config(), "sliding_window", None) or 0
        policies = [LayerPolicy.ring(window) if t == "sliding_attention" else LayerPolicy.flat() for t in layer_types]
        dtype = next(mod.parameters()).dtype
        cache = ContiguousReferenceCache(CacheConfig(n_layers=len(layer_types), n_kv_heads=kv_heads[0],
                                                     head_dim=head_dims[0], capacity=4096, dtype=dtype,
                                                     layers=policies))
        REGISTRY.install("zoo-capture", cache)
        return lambda: REGISTRY.active("zoo-capture")

    @staticmethod
    def vocab_size(mod) -> int:
        for m in mod.modules():
            cfg = getattr(m, "config", None)
            if cfg is not None:
                try:
                    cfg = cfg.get_text_config()
                except Exception:
                    pass
                v = getattr(cfg, "vocab_size", None)
                if v:
                    return int(v)
            v = getattr(m, "vocab_size", None)
            if isinstance(v, int):
                return v
        for m in mod.modules():
            if isinstance(m, torch.nn.Embedding):
                return m.num_embeddings
        raise RuntimeError("cannot tell the vocabulary size of the exported module")


def split_argv(argv, doc):
    """`[own options] -- [-m module | script.py] [its arguments]` → (own options, the script's command)."""
    if "--" not in argv:
        raise SystemExit(doc)
    split = argv.index("--")
    return argv[:split], argv[split + 1:]


def run_export_script(command, export_hook) -> None:
    """Runs an export script (`-m module …` or `script.py …`) unchanged, with `torch.export.export` replaced
    by `export_hook` for the run."""
    torch.export.export = export_hook
    if command[0] == "-m":
        sys.argv = [command[1]] + command[2:]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


def main() -> int:
    own, rest = split_argv(sys.argv[1:], __doc__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prompt-len", type=int, default=12)
    ap.add_argument("--decode", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab-lo", type=int, default=20, help="prompt ids are drawn from [lo, vocab): no special tokens")
    ap.add_argument("--resolve-ties", type=Path, default=None, metavar="DIR",
                    help="no export: eager with the program's choice at each router tie, against DIR/step<K>.output0.npy")
    ap.add_argument("--eager-variant", choices=["exact-dequant"], default="",
                    help="with --resolve-ties: quantized weights dequantized exactly (exact_dequant.py)")
    ap.add_argument("--against-eager", action="store_true",
                    help="with --resolve-ties: hold the run to eager's own logits, not the program's")
    a = ap.parse_args(own)
    a.out.mkdir(parents=True, exist_ok=True)

    recorder = Recorder(a.out, a.prompt_len, a.decode, a.seed, a.vocab_lo, a.resolve_ties, a.eager_variant,
                        a.against_eager)
    real_export = torch.export.export

    def wrapped(mod, args=(), kwargs=None, *r, **kw):
        return recorder(real_export, mod, args, kwargs, *r, **kw)
    try:
        run_export_script(rest, wrapped)
    except Resolved:
        return 0
    if not recorder.done:
        raise SystemExit("capture: the script never called torch.export.export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
