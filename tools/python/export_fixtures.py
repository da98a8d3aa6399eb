#!/usr/bin/env python3
"""Export mlxc's test fixtures: small `.pte` programs plus reference outputs.

Usage: tools/.venv/bin/python tools/python/export_fixtures.py [--only NAME ...] [--list]
  NAME is a fixture name (llama_mlx_4bit) or a model name (llama: all its fixtures).

Writes Tests/Fixtures/<model>_<variant>/ (the directory is replaced):
  model.pte, model.ptd (external constants only),
  step<K>.input<I>.npy        inputs of call K (calls run in order on one loaded program: KV state carries over)
  step<K>.output<J>.npy       eager PyTorch outputs of the same module (bf16 widened to float32)
  step<K>.et_output<J>.npy    ExecuTorch's Python runtime outputs (families plain and xnnpack only)
  meta.json                   see META below

META = {"model": str, "variant": str, "family": "plain"|"mlx"|"xnnpack", "dtype": "fp32"|"bf16",
        "quant": null | {"bits": 4|8, "group_size": 32, "scheme": str},
        "steps": int, "calls": [{"inputs": [[dims]...], "outputs": [[dims]...], "input_pos": int|null}],
        "input_names": [str], "config": {...model dims...},
        "reference": <pte_reference.py JSON of model.pte>,
        "ptd_reference": null | <pte_reference.py JSON of model.ptd>, "et_vs_eager_max_abs": float|null,
        "et_vs_eager_max_abs_per_step": [float]|null, "notes": [str]}

Models (tools/python/models.py) × variants:
  plain      fp32, no delegate (to_edge_transform_and_lower + to_executorch); KV cache via index_put_
  mlx_fp32   MLXPartitioner, one MLX delegate (index_copy_ cache, mlx::rope, SwitchMLP for MoE)
  mlx_bf16   same, module cast to bfloat16
  mlx_4bit   same, linears + embeddings quantized by the MLX backend's helper (torchao
             IntxWeightOnlyConfig int4, PerGroup(32), "hqq_scale_only": symmetric, zero points 0)
  mlx_8bit   same with int8, group 32
  xnnpack_fp32 (llama only)  XnnpackPartitioner: opaque XNNPACK delegates + portable ops
  plain_8bit (llama only)   no delegate; linears int8 weight-only, group 32 (quantize_model_ "8w": torchao
             IntxWeightOnlyConfig, hqq_scale_only, symmetric, zero points 0). torch.export writes each weight as
             torchao::dequantize_affine(int8 codes [N, K], block [1, 32], scale [N, K/32], zero_point int8
             [N, K/32], int8, qmin, qmax) → permute_copy → mm. Embeddings stay fp32.
  plain_8bit_channel (mlp only)  gated MLP on int8 per-channel weights dequantized by
             quantized_decomposed::dequantize_per_channel (ExecuTorch's runtime has this kernel: et_output is its run
             of model.pte itself)
  plain_4bit (llama only)   same with int4 codes (stored one per int8 byte, qmin −8, qmax 7), group 32,
             ASYMMETRIC (non-zero zero points)
  plain_ptd  (linear only)    external constants in model.ptd
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch
from torch.export import Dim

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from pte_reference import ptd_reference, pte_reference  # noqa: E402

# Known, harmless noise from torch / executorch on every export.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message="Mutation on a buffer")
warnings.filterwarnings("ignore", message=".*register_constant.*")

REPO = Path(__file__).resolve().parents[2]
OUT_ROOT = REPO / "Tests" / "Fixtures"
GROUP_SIZE = 32

# --------------------------------------------------------------------------------------------------
# Models and their call sequences


def llama_config() -> models.LMConfig:
    # Context 96: room for the 4-token prompt + 64 greedy tokens of greedy.json.
    return models.LMConfig(max_context_len=96)


def gemma_config() -> models.LMConfig:
    # Sliding window 8 on layer 0 (ring cache of 8 + 8 − 1 = 15 slots), full attention on layer 1.
    return models.LMConfig(rope_interleaved=False, mlp="geglu", embed_scale=True, max_context_len=96,
                           sliding_window=8, max_seq_len=8, layer_types=["sliding", "full"])


def moe_config() -> models.LMConfig:
    return models.LMConfig(n_experts=4, top_k=2, moe_hidden_dim=64, max_context_len=96)


@dataclass
class ModelSpec:
    name: str
    seed: int
    variants: List[str]
    config: Callable[[], object]
    # (T, input_pos) per call for decoders; None for stateless models
    steps: Optional[List[tuple]] = None


MLX_VARIANTS = ["mlx_fp32", "mlx_bf16", "mlx_4bit", "mlx_8bit"]
PLAIN_QUANT_VARIANTS = ["plain_8bit", "plain_4bit"]
SPECS = [
    ModelSpec("llama", 1001, ["plain", *MLX_VARIANTS, "xnnpack_fp32", *PLAIN_QUANT_VARIANTS], llama_config,
              steps=[(5, 0), (1, 5), (1, 6), (3, 7)]),
    # 7 calls, 36 tokens in all: more than 4 windows, so the ring wraps several times, also mid-chunk.
    ModelSpec("gemma_sliding", 1002, ["plain", *MLX_VARIANTS], gemma_config,
              steps=[(6, 0), (8, 6), (1, 14), (8, 15), (5, 23), (1, 28), (7, 29)]),
    ModelSpec("moe", 1003, ["plain", *MLX_VARIANTS], moe_config,
              steps=[(5, 0), (1, 5), (1, 6), (3, 7)]),
    ModelSpec("whisper_encoder", 1004, ["plain", *MLX_VARIANTS], models.WhisperConfig),
    ModelSpec("linear", 1005, ["plain_ptd"], lambda: None),
    ModelSpec("mlp", 1006, ["plain_8bit_channel"], lambda: None),
]


def variant_info(variant: str):
    """→ (family, dtype, quant bits or None)"""
    if variant.startswith("mlx_"):
        kind = variant[4:]
        return "mlx", ("bf16" if kind == "bf16" else "fp32"), {"4bit": 4, "8bit": 8}.get(kind)
    if variant.startswith("xnnpack"):
        return "xnnpack", "fp32", None
    return "plain", "fp32", {"plain_4bit": 4, "plain_8bit": 8, "plain_8bit_channel": 8}.get(variant)


def plain_quant_config(variant: str):
    """torchao config of a plain weight-only quantized variant (linears only)."""
    from executorch.extension.llm.export.quantize import _make_linear_config
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_api import IntxWeightOnlyConfig
    from torchao.quantization.quant_primitives import MappingType

    if variant == "plain_8bit":
        return _make_linear_config("8w", GROUP_SIZE)  # what quantize_model_ uses (hqq_scale_only, symmetric)
    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(GROUP_SIZE),
                                mapping_type=MappingType.ASYMMETRIC)


def quant_scheme(variant: str) -> str:
    if variant == "plain_8bit_channel":
        return ("int8 codes, one scale per output channel (symmetric, int64 zero points 0), "
                "quantized_decomposed::dequantize_per_channel → permute_copy → mm/addmm, no delegate")
    if variant == "plain_8bit":
        return ("torchao IntxWeightOnlyConfig int8 PerGroup(32) hqq_scale_only (symmetric, zero points 0), linears only; "
                "torchao::dequantize_affine → permute_copy → mm, no delegate")
    if variant == "plain_4bit":
        return ("torchao IntxWeightOnlyConfig int4 PerGroup(32) ASYMMETRIC (int8 zero points, codes one per int8 byte in "
                "[-8, 7]), linears only; torchao::dequantize_affine → permute_copy → mm, no delegate")
    return "torchao IntxWeightOnlyConfig hqq_scale_only (symmetric, zero points 0); MLX affine mode"


_DEQUANT_OUT_LIB = None


def register_dequantize_affine_out() -> None:
    """executorch 1.5.1's to_executorch needs an out variant of every call and torchao 0.18 defines none
    for torchao::dequantize_affine ("Missing out variants: {'torchao::dequantize_affine'}"). Define
    `torchao::dequantize_affine.out` (the functional schema plus `out`) so the program keeps the op
    exactly as torch.export wrote it."""
    global _DEQUANT_OUT_LIB
    if _DEQUANT_OUT_LIB is not None:
        return
    import torchao  # noqa: F401  (defines torchao::dequantize_affine)

    lib = torch.library.Library("torchao", "FRAGMENT")
    lib.define("dequantize_affine.out(Tensor input, SymInt[] block_size, Tensor scale, Tensor? zero_point, "
               "ScalarType input_dtype, Scalar? quant_min=None, Scalar? quant_max=None, ScalarType output_dtype=6, *, "
               "Tensor(a!) out) -> Tensor(a!)")

    def out_impl(input, block_size, scale, zero_point, input_dtype, quant_min=None, quant_max=None,
                 output_dtype=torch.float32, *, out):
        r = torch.ops.torchao.dequantize_affine.default(input, block_size, scale, zero_point, input_dtype,
                                                        quant_min, quant_max, output_dtype)
        out.resize_(r.shape)
        return out.copy_(r)

    lib.impl("dequantize_affine.out", out_impl, "CompositeExplicitAutograd")
    lib.impl("dequantize_affine.out", lambda *a, out, **k: out, "Meta")
    _DEQUANT_OUT_LIB = lib


def dequantized_twin(m: torch.nn.Module) -> torch.nn.Module:
    """A float copy of a quantized module whose linear weights are torchao's own dequantization of the
    quantized ones (IntxUnpackedToInt8Tensor.dequantize, the dequantize_affine the program calls).
    ExecuTorch's runtime has no torchao::dequantize_affine kernel, so this twin is what it runs."""
    import copy

    twin = copy.deepcopy(m)
    for sub in twin.modules():
        if isinstance(sub, torch.nn.Linear) and type(sub.weight) is not torch.nn.Parameter \
                and type(sub.weight) is not torch.Tensor:
            sub.weight = torch.nn.Parameter(sub.weight.dequantize(), requires_grad=False)
    return twin


def pass_expert_bits_(model, bits: int):
    """Works around an ExecuTorch 1.5.1 bug: SwitchLinear.forward calls mlx::gather_qmm without
    `bits`, so the lowering assumes 4 and repacks 8-bit expert weights as 4-bit (the exported program
    then disagrees with the eager module). Passing the real bit width keeps both the same."""
    from executorch.backends.mlx.llm.switch import SwitchLinear

    for sub in model.modules():
        if isinstance(sub, SwitchLinear) and sub._is_quantized:
            def forward(x, indices, sorted_indices=None, _s=sub):
                return torch.ops.mlx.gather_qmm(x, _s.qdata, _s.scale, biases=_s.zero_point, rhs_indices=indices,
                                                transpose=True, group_size=_s.group_size, bits=bits,
                                                sorted_indices=sorted_indices)
            sub.forward = forward


def build_module(spec: ModelSpec, variant: str):
    family, dtype, bits = variant_info(variant)
    cfg = spec.config()
    if spec.name == "linear":
        m = models.TinyMLP()
    elif spec.name == "mlp":
        m = models.QuantizedMLP()
    elif spec.name == "whisper_encoder":
        m = models.WhisperEncoder(cfg)
    else:
        m = models.DecoderLM(cfg, "mlx" if family == "mlx" else "plain")
    models.init_weights_(m, spec.seed)

    if family == "mlx":
        for sub in m.modules():
            if isinstance(sub, models.MoE):
                sub.use_switch_mlp()
    if dtype == "bf16":
        m = m.to(torch.bfloat16)
    if spec.name == "mlp":
        m.quantize_()  # per-channel int8 codes, quantized_decomposed::dequantize_per_channel
    elif family == "plain" and bits is not None:
        from torchao.quantization.quant_api import quantize_

        register_dequantize_affine_out()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_(m, plain_quant_config(variant), filter_fn=lambda mod, fqn: isinstance(mod, torch.nn.Linear))
    elif bits is not None:
        from executorch.extension.llm.export.quantize import quantize_model_

        q = "4w" if bits == 4 else "8w"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_model_(m, qlinear_config=q, qlinear_group_size=GROUP_SIZE,
                            qembedding_config=None if spec.name == "whisper_encoder" else q,
                            qembedding_group_size=GROUP_SIZE)
    if family == "mlx":
        from executorch.backends.mlx.llm.switch import pack_all_switch_linears

        pack_all_switch_linears(m)
        if bits is not None and bits != 4:
            pass_expert_bits_(m, bits)
    m.eval()
    m.requires_grad_(False)
    return m, cfg


def example_and_dynamic(spec: ModelSpec, cfg):
    if spec.steps is not None:
        ex = (torch.zeros(1, 4, dtype=torch.long), torch.tensor([0], dtype=torch.long))
        return ex, ({1: Dim("T", min=1, max=cfg.max_seq_len)}, None), ["tokens", "input_pos"]
    if spec.name == "whisper_encoder":
        return (torch.zeros(1, cfg.n_mels, cfg.n_frames),), None, ["mel"]
    if spec.name == "mlp":
        return (torch.zeros(1, 5, 64),), None, ["x"]
    return (torch.zeros(2, 16),), None, ["x"]


def call_inputs(spec: ModelSpec, cfg, dtype: torch.dtype) -> List[tuple]:
    """The fixed call sequence (same for every variant of a model)."""
    g = torch.Generator().manual_seed(spec.seed + 7)
    if spec.steps is not None:
        return [(torch.randint(0, cfg.vocab_size, (1, t), generator=g), torch.tensor([p], dtype=torch.long))
                for t, p in spec.steps]
    if spec.name == "whisper_encoder":
        return [(torch.randn(1, cfg.n_mels, cfg.n_frames, generator=g).to(dtype),)]
    if spec.name == "mlp":
        return [(torch.randn(1, 5, 64, generator=g),)]
    return [(torch.randn(2, 16, generator=g),)]


def constant_methods(spec: ModelSpec, cfg) -> Optional[dict]:
    if spec.steps is None:
        return None
    return {"get_max_seq_len": cfg.max_seq_len, "get_max_context_len": cfg.max_context_len,
            "get_vocab_size": cfg.vocab_size, "get_n_layers": cfg.n_layers,
            "use_kv_cache": True, "enable_dynamic_shape": True}


# --------------------------------------------------------------------------------------------------
# Lowering


def mlx_passes() -> list:
    """The MLX backend's default edge passes, with its CSEPass replaced by TypedCSEPass (below)."""
    from executorch.backends.mlx.passes import get_default_passes
    from executorch.exir.passes.cse_pass import CSEPass

    class TypedCSEPass(CSEPass):
        """executorch 1.5.1's CSEPass keys a node argument by its bare value number (an int), so a node
        whose number equals a literal int argument is treated as that literal: in the quantized llama,
        `arange(0, sym_size)` (T) and `arange(0, 64)` were merged and the export failed, and such a
        merge can also silently miscompile. Tag nodes and literals so they can never compare equal
        (this also keeps True / 1 / 1.0 apart)."""

        def _make_hashable(self, obj):
            if isinstance(obj, torch.fx.Node):
                return ("node", self._value_number(obj))
            if isinstance(obj, (bool, int, float, str, type(None))):
                return (type(obj).__name__, obj)
            return super()._make_hashable(obj)

    return [TypedCSEPass() if type(p) is CSEPass else p for p in get_default_passes()]


def lower(ep, family: str, methods: Optional[dict], external_constants: bool, quantized: bool = False):
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass

    kwargs = {"constant_methods": methods}
    if family == "mlx":
        from executorch.backends.mlx import MLXPartitioner

        edge = to_edge_transform_and_lower(
            ep, transform_passes=mlx_passes(), partitioner=[MLXPartitioner()],
            compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True), **kwargs)
    else:
        # Like extension/llm/export/builder.py: XNNPACK (optional), then ConvertToLinearPass
        # (aten::linear.out instead of permute + mm), then quant fusion / constant propagation.
        from executorch.backends.xnnpack._passes.convert_to_linear import ConvertToLinearPass

        parts = []
        if family == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            parts = [XnnpackPartitioner()]
        edge = to_edge_transform_and_lower(ep, partitioner=parts,
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
                                           **kwargs)
        # Not for weight-only quantized programs: executorch 1.5.1's ConvertToLinearPass looks through the
        # weight's torchao::dequantize_affine and writes aten::linear(x, int8 codes), which the runtime rejects
        # (dtype mismatch). Those keep dequantize_affine → permute_copy → mm.
        if not quantized:
            edge = edge.transform([ConvertToLinearPass()])
        else:
            import executorch.kernels.quantized  # noqa: F401  (out variants of quantized_decomposed::*)
    return edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True,
        do_quant_fusion_and_const_prop=(family != "mlx"),
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
        external_constants=external_constants,
    ))


# --------------------------------------------------------------------------------------------------
# Running


def reset_state(m: torch.nn.Module) -> None:
    for name, buf in m.named_buffers():
        if name.endswith("_cache"):
            buf.zero_()


def as_list(out) -> List[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.contiguous().numpy()


class RouterMargin:
    """Smallest gap between the k-th and (k+1)-th router probability seen (routing flips below ~1e-6)."""

    def __init__(self, m: torch.nn.Module):
        self.margin = float("inf")
        self.handles = [sub.router.register_forward_hook(self.hook(sub.top_k))
                        for sub in m.modules() if isinstance(sub, models.MoE)]

    def hook(self, k):
        def fn(_mod, _inp, out):
            p = torch.softmax(out.float(), dim=-1).sort(dim=-1, descending=True).values
            self.margin = min(self.margin, (p[:, k - 1] - p[:, k]).min().item())
        return fn

    def close(self):
        for h in self.handles:
            h.remove()


def run_executorch(pte: Path, ptd: Optional[Path], calls: List[tuple]) -> List[List[torch.Tensor]]:
    import executorch.kernels.quantized  # noqa: F401  (quantized_decomposed kernels, if any)
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    prog = _load_for_executorch(str(pte), data_path=str(ptd) if ptd else None)
    return [as_list(prog.forward(list(inputs))) for inputs in calls]


# --------------------------------------------------------------------------------------------------


def export_fixture(spec: ModelSpec, variant: str) -> dict:
    name = f"{spec.name}_{variant}"
    family, dtype, bits = variant_info(variant)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    t0 = time.time()

    m, cfg = build_module(spec, variant)
    example, dynamic, input_names = example_and_dynamic(spec, cfg)
    example = tuple(x.to(torch_dtype) if x.is_floating_point() else x for x in example)
    with torch.no_grad():
        ep = torch.export.export(m, example, dynamic_shapes=dynamic)
    quantized_plain = family == "plain" and bits is not None
    et = lower(ep, family, constant_methods(spec, cfg), external_constants=(variant == "plain_ptd"), quantized=quantized_plain)

    out_dir = OUT_ROOT / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    pte = out_dir / "model.pte"
    pte.write_bytes(et.buffer)
    ptd = None
    if variant == "plain_ptd":
        tmp = out_dir / "_ptd"
        tmp.mkdir()
        et.write_tensor_data_to_file(str(tmp))
        files = list(tmp.glob("*.ptd"))
        assert len(files) == 1, files
        ptd = out_dir / "model.ptd"
        files[0].rename(ptd)
        tmp.rmdir()

    # Eager reference: the same module object, calls in order, caches starting from zero.
    calls = call_inputs(spec, cfg, torch_dtype)
    reset_state(m)
    margin = RouterMargin(m)
    with torch.no_grad():
        eager = [as_list(m(*inputs)) for inputs in calls]
    margin.close()

    et_diff = per_step = None
    et_outs = None
    et_note = None
    if quantized_plain:
        # ExecuTorch's runtime cannot load model.pte (no torchao::dequantize_affine kernel): it runs the
        # dequantized twin, lowered the plain way, on the same calls.
        try:
            et_outs = run_executorch(pte, None, calls)
            et_note = "et_output: ExecuTorch's runtime on model.pte"
        except Exception as e:  # noqa: BLE001
            twin = dequantized_twin(m)
            reset_state(twin)
            with torch.no_grad():
                twin_ep = torch.export.export(twin, example, dynamic_shapes=dynamic)
            twin_et = lower(twin_ep, "plain", constant_methods(spec, cfg), external_constants=False)
            tmp = out_dir / "_twin.pte"
            tmp.write_bytes(twin_et.buffer)
            try:
                et_outs = run_executorch(tmp, None, calls)
            finally:
                tmp.unlink()
            et_note = (f"et_output: ExecuTorch's runtime cannot run model.pte ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120]}); it ran an fp32 twin whose linear weights are torchao's "
                       "dequantize_affine of the same codes (not stored)")
        per_step = [max((e.float() - r.float()).abs().max().item() for e, r in zip(eo, ro))
                    for eo, ro in zip(et_outs, eager)]
        et_diff = max(per_step)
    elif family in ("plain", "xnnpack"):
        et_outs = run_executorch(pte, ptd, calls)
        per_step = [max((e.float() - r.float()).abs().max().item() for e, r in zip(eo, ro))
                    for eo, ro in zip(et_outs, eager)]
        et_diff = max(per_step)

    for k, inputs in enumerate(calls):
        for i, x in enumerate(inputs):
            np.save(out_dir / f"step{k}.input{i}.npy", to_numpy(x))
        for j, y in enumerate(eager[k]):
            np.save(out_dir / f"step{k}.output{j}.npy", to_numpy(y))
        if et_outs is not None:
            for j, y in enumerate(et_outs[k]):
                np.save(out_dir / f"step{k}.et_output{j}.npy", to_numpy(y))

    if spec.steps is not None and dtype != "bf16" and family != "xnnpack":
        (out_dir / "greedy.json").write_text(json.dumps(greedy_reference(m, spec, cfg)) + "\n")

    notes = []
    if spec.steps is not None:
        notes.append("tokens int64 [1,T], input_pos int64 [1] (start position of the call); "
                     "output: logits [1,T,vocab] for every position; KV state carries across steps")
    if margin.handles:
        notes.append(f"moe_min_topk_router_margin={margin.margin:.3g} (smallest p[k-1]-p[k] over all tokens)")
    if dtype == "bf16":
        notes.append("bf16 tensors (float inputs and outputs) are stored widened to float32 in the .npy files")
    if et_note:
        notes.append(et_note)
    meta = {
        "model": spec.name,
        "variant": variant,
        "family": family,
        "dtype": dtype,
        "quant": None if bits is None else {"bits": bits, "group_size": GROUP_SIZE, "scheme": quant_scheme(variant)},
        "steps": len(calls),
        "calls": [{"inputs": [list(x.shape) for x in inputs],
                   "outputs": [list(y.shape) for y in eager[k]],
                   "input_pos": int(inputs[1][0]) if spec.steps is not None else None}
                  for k, inputs in enumerate(calls)],
        "input_names": input_names,
        "config": (cfg.to_json() if cfg is not None else
                   {"dim": 64, "hidden": 128, "tokens": 5} if spec.name == "mlp" else
                   {"in_features": 16, "hidden": 32, "out_features": 8, "batch": 2}),
        "reference": pte_reference(str(pte)),
        "ptd_reference": ptd_reference(str(ptd)) if ptd else None,
        "et_vs_eager_max_abs": et_diff,
        "et_vs_eager_max_abs_per_step": per_step,
        "notes": notes,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    print(f"[fixture] {name}: {size / 1024:.0f} KiB, {len(calls)} steps, "
          f"et_vs_eager={et_diff if et_diff is None else f'{et_diff:.3g}'}, {time.time() - t0:.1f}s", flush=True)
    return {"name": name, "bytes": size, "et_vs_eager_max_abs": et_diff}


GREEDY_TOKENS = 64


def greedy_reference(m, spec: ModelSpec, cfg) -> dict:
    """Greedy decoding by the eager module: a fixed 4-token prompt, then 64 tokens one call each
    (argmax; the lowest id wins a tie). The runtime must produce the same ids."""
    g = torch.Generator().manual_seed(spec.seed + 99)
    prompt = torch.randint(0, cfg.vocab_size, (1, 4), generator=g)
    reset_state(m)
    tokens = []
    with torch.no_grad():
        logits = as_list(m(prompt, torch.tensor([0], dtype=torch.long)))[0]
        pos = prompt.shape[1]
        for _ in range(GREEDY_TOKENS):
            nxt = int(torch.argmax(logits[0, -1].float()))
            tokens.append(nxt)
            logits = as_list(m(torch.tensor([[nxt]], dtype=torch.long), torch.tensor([pos], dtype=torch.long)))[0]
            pos += 1
    return {"prompt": prompt[0].tolist(), "tokens": tokens,
            "note": "greedy (argmax, lowest id on ties) from eager PyTorch, one token per call after the prompt"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="fixture or model name (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the fixture names and exit")
    args = ap.parse_args()

    jobs = [(s, v) for s in SPECS for v in s.variants]
    if args.only:
        wanted = set(args.only)
        jobs = [(s, v) for s, v in jobs if s.name in wanted or f"{s.name}_{v}" in wanted]
        if not jobs:
            print(f"no fixture matches {sorted(wanted)}", file=sys.stderr)
            return 2
    if args.list:
        print("\n".join(f"{s.name}_{v}" for s, v in jobs))
        return 0

    logging.disable(logging.INFO)  # the MLX partitioner's per-export INFO summary
    torch.manual_seed(0)
    results, failed = [], []
    for spec, variant in jobs:
        try:
            results.append(export_fixture(spec, variant))
        except Exception as e:  # keep going; report at the end
            traceback.print_exc()
            failed.append((f"{spec.name}_{variant}", f"{type(e).__name__}: {e}"))
            print(f"[skip] {spec.name}_{variant}: {type(e).__name__}: {str(e)[:300]}", flush=True)

    total = sum(r["bytes"] for r in results)
    print(f"\n{len(results)} fixtures, {total / 1024:.0f} KiB in {OUT_ROOT}")
    for name, why in failed:
        print(f"  SKIPPED {name}: {why[:300]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
