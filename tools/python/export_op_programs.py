"""Small plain ExecuTorch programs for the ops LLM exports emit that the zoo's checkpoints may not:
the dim-order ops (`.contiguous()`, `.to(dtype)`, `.clone()` exported WITHOUT _skip_dim_order, as
ExecuTorch's own export_llama does), fmod, split (split_with_sizes_copy / split_copy), max reductions and
the addmm forms (bias, alpha/beta != 1, batched x), and the quantized embeddings of `--qembedding 8w|4w`
(quantized_decomposed::embedding_byte / embedding_4bit, per-row and per-group scales, zero points, bf16 out).

Writes Tests/Fixtures/ops/<name>.pte with <name>.input<I>.npy and eager-PyTorch <name>.output<J>.npy
(run from the repo root with the export venv: tools/.venv/bin/python tools/python/export_op_programs.py [NAME…],
only the named programs when names are given).
The directory has no model.pte, so the fixture walkers skip it; OpProgramTests reads it.
"""
from pathlib import Path

import numpy as np
import torch
from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
from executorch.exir.passes import MemoryPlanningPass

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "ops"


class DimOrderOps(torch.nn.Module):
    """transpose(...).contiguous(), .to(bf16), .clone(), .to(f32): _clone_dim_order / _to_dim_order_copy."""

    def forward(self, x):
        y = x.transpose(1, 2).contiguous()
        z = (y * 2).to(torch.bfloat16)
        w = z.clone() + 1
        return w.to(torch.float32), y.to(torch.int64)


class ChannelsLast(torch.nn.Module):
    """A permuted result memory layout: _clone_dim_order with dim_order [0, 2, 3, 1]."""

    def forward(self, x):
        return (x * 2).contiguous(memory_format=torch.channels_last) + 1


class SplitMax(torch.nn.Module):
    """split with sizes and with a chunk size (the last part shorter), max over an axis (values and
    indices), amax over two axes, and the fused-QKV split of a linear's result (Phi-3)."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48, bias=False)

    def forward(self, x):
        a, b, c = torch.split(x, [1, 2, 3], dim=1)
        d, e, f = torch.split(x, 6, dim=2)
        m, i = torch.max(x, dim=-1)
        q, k, v = self.qkv(x).split([16, 16, 16], dim=-1)
        return a, b, c, d, e, f, m, i, torch.amax(x, dim=(1, 2)), q, k, v


class Addmm(torch.nn.Module):
    """addmm with a bias and alpha/beta != 1, x @ W (W [K, N] not transposed), and batched x [1, T, K]
    through nn.Linear with a bias."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.nn.Parameter(torch.randn(16, 24, generator=g) * 0.2)      # [K, N]
        self.bias = torch.nn.Parameter(torch.randn(24, generator=g))
        self.lin = torch.nn.Linear(16, 12)

    def forward(self, x, x3):
        return (torch.addmm(self.bias, x, self.w, beta=0.5, alpha=2.0), torch.addmm(self.bias, x, self.w), x @ self.w,
                self.lin(x3))


class Fmod(torch.nn.Module):
    """fmod by a scalar on int64 positions (Gemma's ring-buffer cache slots), negative ones included."""

    def forward(self, positions):
        return torch.fmod(positions + 3, 8), torch.fmod(positions, -5)


class QuantizedEmbeddings(torch.nn.Module):
    """The host op `--qembedding 8w` leaves between XNNPACK delegates (embedding_byte, one scale per row,
    as ExecuTorch's export writes it), per-group scales with zero points, bf16 rows (`.dtype`), and
    embedding_4bit (two codes per byte in uint8, the even column in the high nibble)."""

    def __init__(self):
        super().__init__()
        from executorch.exir.passes._quant_patterns_and_replacements import quantized_decomposed_lib  # noqa: F401
        g = torch.Generator().manual_seed(5)
        vocab, dim = 40, 64
        self.register_buffer("w8", torch.randint(-128, 128, (vocab, dim), generator=g, dtype=torch.int8))
        self.register_buffer("s_row", torch.rand(vocab, generator=g) * 0.02 + 0.001)
        self.register_buffer("s_group", torch.rand(vocab, 4, generator=g) * 0.02 + 0.001)
        self.register_buffer("z_group", torch.randint(-8, 8, (vocab, 4), generator=g).to(torch.float32))
        self.register_buffer("w4", torch.randint(0, 256, (vocab, dim // 2), generator=g, dtype=torch.uint8))
        self.register_buffer("s4", (torch.rand(vocab, 2, generator=g) * 0.02 + 0.001).to(torch.bfloat16))

    def forward(self, tokens):
        qd = torch.ops.quantized_decomposed
        return (qd.embedding_byte.default(self.w8, self.s_row, None, -128, 127, tokens),
                qd.embedding_byte.default(self.w8, self.s_group, self.z_group, -128, 127, tokens),
                qd.embedding_byte.dtype(self.w8, self.s_row, None, -128, 127, tokens, dtype=torch.bfloat16),
                qd.embedding_4bit.dtype(self.w4, self.s4, None, -8, 7, tokens, dtype=torch.bfloat16))


class GatedDeltaRule(torch.nn.Module):
    """`llama::gated_delta_rule` (etLLM's GatedDeltaNet op) on its own: heads first, q/k [B, H, T, Dk], v [B, H, T, Dv],
    the decay (already exponentiated) and beta [B, H, T], state [B, H, Dk, Dv] -> (y, final state). Dk != Dv, so a
    state read in the wrong orientation cannot pass; T = 35 takes the C++ kernel's chunked prefill route. A 4-D
    decay [B, H, T, Dk] (the channelwise form) is the program mlxc must refuse by name."""

    def forward(self, q, k, v, decay, beta, state):
        return torch.ops.llama.gated_delta_rule(q, k, v, decay, beta, state)


def gated_delta_inputs(g, heads=3, t=35, dk=32, dv=16, channelwise=False):
    q = torch.randn(1, heads, t, dk, generator=g) / dk ** 0.5
    k = torch.nn.functional.normalize(torch.randn(1, heads, t, dk, generator=g), dim=-1)
    v = torch.randn(1, heads, t, dv, generator=g)
    decay = torch.rand(1, heads, t, *([dk] if channelwise else []), generator=g) * 0.5 + 0.5
    beta = torch.sigmoid(torch.randn(1, heads, t, generator=g))
    state = torch.randn(1, heads, dk, dv, generator=g)
    return q, k, v, decay, beta, state


def export(name: str, module: torch.nn.Module, inputs: tuple) -> None:
    module.eval()
    ep = torch.export.export(module, inputs, strict=True)
    edge = to_edge_transform_and_lower(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    program = edge.to_executorch(ExecutorchBackendConfig(memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False)))
    (OUT / f"{name}.pte").write_bytes(program.buffer)
    with torch.no_grad():
        outputs = module(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for i, t in enumerate(inputs):
        np.save(OUT / f"{name}.input{i}.npy", t.numpy())
    for j, t in enumerate(outputs):
        np.save(OUT / f"{name}.output{j}.npy", t.to(torch.float32).numpy() if t.dtype == torch.bfloat16 else t.numpy())
    ops = sorted({f"{op.name}.{op.overload}" for plan in program.executorch_program.execution_plan for op in plan.operators})
    print(name, ops)


def main() -> None:
    import sys
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:])
    global export
    if wanted:
        everything = export
        export = lambda name, module, inputs: everything(name, module, inputs) if name in wanted else None  # noqa: E731
    g = torch.Generator().manual_seed(1)
    export("dim_order_ops", DimOrderOps(), (torch.randn(2, 3, 5, generator=g),))
    export("dim_order_channels_last", ChannelsLast(), (torch.randn(1, 2, 3, 4, generator=g),))
    torch.manual_seed(2)
    export("split_max", SplitMax(), (torch.randn(2, 6, 16, generator=g),))
    export("fmod", Fmod(), (torch.arange(-20, 20, dtype=torch.int64),))
    torch.manual_seed(4)
    export("addmm_forms", Addmm(), (torch.randn(5, 16, generator=g), torch.randn(1, 7, 16, generator=g)))
    export("quantized_embedding", QuantizedEmbeddings(), (torch.tensor([[3, 0, 39, 17, 17, 8, 21]], dtype=torch.int64),))
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (registers llama::gated_delta_rule)
    g = torch.Generator().manual_seed(5)
    export("gated_delta_rule", GatedDeltaRule(), gated_delta_inputs(g))
    export("gated_delta_rule_channelwise", GatedDeltaRule(), gated_delta_inputs(g, t=2, channelwise=True))


if __name__ == "__main__":
    main()
