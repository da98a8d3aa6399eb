"""Tiny test models for mlxc fixtures (see export_fixtures.py).

Every model is a plain nn.Module written for two lowering styles, chosen by `impl`:
  * "plain": only ATen ops that ExecuTorch's portable runtime has kernels for. The KV cache is written
    with `cache[:, :, idx] = new` (index_put_), RoPE uses precomputed cos/sin tables.
  * "mlx": ops the MLX partitioner fuses, so the whole model stays in one MLX delegate:
    the cache is written with `index_copy_` (IndexCopyNode), RoPE is `mlx::rope` (RopeNode),
    MoE experts are the backend's SwitchMLP (`mlx::gather_mm` / `gather_qmm`).
Both styles compute the same function; export_fixtures.py checks this in eager mode.

Shapes: tokens int64 [1, T] (T dynamic), input_pos int64 [1] → logits [1, T, vocab] (all positions).
KV caches are registered buffers in BHSD layout, zero-initialised, mutated in place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LMConfig:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 16
    hidden_dim: int = 128          # dense MLP hidden size
    vocab_size: int = 256
    max_context_len: int = 64      # KV cache length of full-attention layers
    max_seq_len: int = 32          # largest T of one call
    rope_base: float = 10000.0
    rope_interleaved: bool = True  # True: (2i, 2i+1) pairs (ET Llama); False: split-half (HF)
    norm_eps: float = 1e-5
    mlp: str = "swiglu"            # "swiglu" (SiLU gate) or "geglu" (tanh-GELU gate)
    embed_scale: bool = False      # multiply embeddings by sqrt(dim) (Gemma)
    sliding_window: Optional[int] = None
    layer_types: List[str] = field(default_factory=list)  # per layer: "full" | "sliding"
    n_experts: int = 0             # > 0: MoE MLP in every layer
    top_k: int = 2
    moe_hidden_dim: int = 64

    def __post_init__(self):
        if not self.layer_types:
            self.layer_types = ["full"] * self.n_layers
        assert len(self.layer_types) == self.n_layers

    def ring_size(self) -> int:
        """Slots of a sliding layer's ring cache: window + largest write − 1 (see cache.py upstream)."""
        assert self.sliding_window is not None and self.max_seq_len <= self.sliding_window
        return self.sliding_window + self.max_seq_len - 1

    def to_json(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """HF-style RMSNorm (computed in float32, cast back); the MLX FuseRMSNormPass turns this op
    pattern into RMSNormNode. For float32 models the casts are no-ops."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    i = torch.arange(head_dim // 2, dtype=torch.float32)
    return base ** (-2.0 * i / head_dim)


def apply_rope_tables(x, cos, sin, interleaved: bool):
    """x [B, H, T, D]; cos/sin [T, D/2]. Same math as mlx::rope's eager reference."""
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def repeat_kv(x, n_rep: int):
    """[B, Hkv, S, D] → [B, Hkv*n_rep, S, D] (the HF pattern the MLX SDPA handler folds into GQA)."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig, layer_type: str, impl: str):
        super().__init__()
        self.cfg, self.impl, self.layer_type = cfg, impl, layer_type
        d, h, hk, hd = cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wq = nn.Linear(d, h * hd, bias=False)
        self.wk = nn.Linear(d, hk * hd, bias=False)
        self.wv = nn.Linear(d, hk * hd, bias=False)
        self.wo = nn.Linear(h * hd, d, bias=False)
        self.cache_len = cfg.ring_size() if layer_type == "sliding" else cfg.max_context_len
        shape = (1, hk, self.cache_len, hd)
        self.register_buffer("k_cache", torch.zeros(shape))
        self.register_buffer("v_cache", torch.zeros(shape))
        if impl == "plain":
            ang = torch.outer(torch.arange(cfg.max_context_len, dtype=torch.float32),
                              rope_inv_freq(hd, cfg.rope_base))
            self.register_buffer("rope_cos", ang.cos(), persistent=False)
            self.register_buffer("rope_sin", ang.sin(), persistent=False)

    def rope(self, x, start_pos: int, seqlen: int):
        if self.impl == "mlx":
            return torch.ops.mlx.rope(x, self.cfg.head_dim, start_pos, self.cfg.rope_interleaved,
                                      self.cfg.rope_base, 1.0, None)
        cos = self.rope_cos.narrow(0, start_pos, seqlen).to(x.dtype)
        sin = self.rope_sin.narrow(0, start_pos, seqlen).to(x.dtype)
        return apply_rope_tables(x, cos, sin, self.cfg.rope_interleaved)

    def mask(self, q_pos, dtype):
        """Additive mask [T, cache_len]: 0 where query q may see the slot, -inf elsewhere."""
        slots = torch.arange(self.cache_len)
        qp = q_pos.view(-1, 1)
        if self.layer_type == "sliding":
            # Slot s holds the newest position p ≤ last with p ≡ s (mod ring); p < 0 means never written.
            last = q_pos[-1:]
            kp = last - torch.remainder(last - slots, self.cache_len)
            delta = qp - kp
            ok = (kp >= 0) & (delta >= 0) & (delta < self.cfg.sliding_window)
        else:
            ok = slots.view(1, -1) <= qp
        zero = torch.zeros(1, dtype=dtype)
        neg_inf = torch.full((1,), float("-inf"), dtype=dtype)
        return torch.where(ok, zero, neg_inf)

    def write_cache(self, cache, idx, new):
        if self.impl == "mlx":
            cache.index_copy_(2, idx, new)
        else:
            cache[:, :, idx] = new

    def forward(self, x, input_pos, start_pos: int):
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q = self.rope(q, start_pos, t)
        k = self.rope(k, start_pos, t)

        q_pos = input_pos + torch.arange(t)
        slot = torch.remainder(q_pos, self.cache_len) if self.layer_type == "sliding" else q_pos
        self.write_cache(self.k_cache, slot, k)
        self.write_cache(self.v_cache, slot, v)

        n_rep = cfg.n_heads // cfg.n_kv_heads
        keys = repeat_kv(self.k_cache[:, :, :, :], n_rep)
        values = repeat_kv(self.v_cache[:, :, :, :], n_rep)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=self.mask(q_pos, x.dtype),
                                             scale=cfg.head_dim ** -0.5)
        return self.wo(out.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim))


class GatedMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, kind: str):
        super().__init__()
        self.kind = kind
        self.w1 = nn.Linear(dim, hidden, bias=False)  # gate
        self.w3 = nn.Linear(dim, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, dim, bias=False)  # down

    def forward(self, x):
        g = self.w1(x)
        g = F.silu(g) if self.kind == "swiglu" else F.gelu(g, approximate="tanh")
        return self.w2(g * self.w3(x))


class MoE(nn.Module):
    """Softmax router, top-k experts (weights renormalised), SwiGLU experts.

    plain: every expert runs on every token (stacked weights, einsum) and a dense [N, E] routing matrix
    picks the outputs — no data-dependent shapes, portable kernels only.
    mlx: `use_switch_mlp()` moves the same weights into the backend's SwitchMLP (gather_mm/gather_qmm).
    """

    def __init__(self, dim: int, hidden: int, n_experts: int, top_k: int):
        super().__init__()
        self.dim, self.hidden, self.n_experts, self.top_k = dim, hidden, n_experts, top_k
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.w_gate = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.w_up = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.w_down = nn.Parameter(torch.empty(n_experts, dim, hidden))
        for w in (self.w_gate, self.w_up, self.w_down):
            nn.init.normal_(w, std=w.shape[-1] ** -0.5)
        self.switch = None

    def use_switch_mlp(self):
        from executorch.backends.mlx.llm.switch import SwitchMLP

        sw = SwitchMLP(self.dim, self.hidden, self.n_experts)
        with torch.no_grad():
            for e in range(self.n_experts):
                sw.gate_proj.experts[e].weight.copy_(self.w_gate[e])
                sw.up_proj.experts[e].weight.copy_(self.w_up[e])
                sw.down_proj.experts[e].weight.copy_(self.w_down[e])
        del self.w_gate, self.w_up, self.w_down
        self.switch = sw

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, self.dim)
        probs = torch.softmax(self.router(x), dim=-1)
        top_w, top_i = torch.topk(probs, self.top_k, dim=-1)
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        if self.switch is not None:
            return self.switch(x, top_w, top_i, self.top_k).reshape(shape)
        gate = torch.einsum("nd,ehd->neh", x, self.w_gate)
        up = torch.einsum("nd,ehd->neh", x, self.w_up)
        y = torch.einsum("neh,edh->ned", F.silu(gate) * up, self.w_down)
        onehot = (top_i.unsqueeze(-1) == torch.arange(self.n_experts)).to(x.dtype)  # [N, k, E]
        route = (onehot * top_w.unsqueeze(-1)).sum(dim=1)                           # [N, E]
        return (y * route.unsqueeze(-1)).sum(dim=1).reshape(shape)


class Block(nn.Module):
    def __init__(self, cfg: LMConfig, layer_type: str, impl: str):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg, layer_type, impl)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        if cfg.n_experts:
            self.feed_forward = MoE(cfg.dim, cfg.moe_hidden_dim, cfg.n_experts, cfg.top_k)
        else:
            self.feed_forward = GatedMLP(cfg.dim, cfg.hidden_dim, cfg.mlp)

    def forward(self, x, input_pos, start_pos: int):
        h = x + self.attention(self.attention_norm(x), input_pos, start_pos)
        return h + self.feed_forward(self.ffn_norm(h))


class DecoderLM(nn.Module):
    """Llama / Gemma-sliding / MoE decoder, depending on LMConfig."""

    def __init__(self, cfg: LMConfig, impl: str):
        super().__init__()
        assert impl in ("plain", "mlx")
        self.cfg, self.impl = cfg, impl
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList([Block(cfg, lt, impl) for lt in cfg.layer_types])
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if impl == "mlx":
            import executorch.backends.mlx.custom_ops  # noqa: F401  (registers mlx::rope)

    def forward(self, tokens, input_pos):
        cfg = self.cfg
        t = tokens.shape[1]
        start_pos = input_pos[0].item()
        torch._check(start_pos >= 0)
        torch._check(start_pos + t <= cfg.max_context_len)
        h = self.tok_embeddings(tokens)
        if cfg.embed_scale:
            h = h * math.sqrt(cfg.dim)
        for layer in self.layers:
            h = layer(h, input_pos, start_pos)
        return self.output(self.norm(h))


# ---------------------------------------------------------------------------------------------------
# Whisper-style audio encoder (stateless)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


@dataclass
class WhisperConfig:
    n_mels: int = 80
    n_frames: int = 64     # input frames; the stride-2 conv halves them
    dim: int = 64
    n_heads: int = 4
    n_layers: int = 2
    mlp_dim: int = 256

    def to_json(self) -> dict:
        return asdict(self)


class WhisperBlock(nn.Module):
    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        d = cfg.dim
        self.n_heads = cfg.n_heads
        self.attn_ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.mlp_ln = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.n_heads
        h = self.attn_ln(x)
        q = self.q(h).view(b, t, self.n_heads, hd).transpose(1, 2)
        k = self.k(h).view(b, t, self.n_heads, hd).transpose(1, 2)
        v = self.v(h).view(b, t, self.n_heads, hd).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v)  # non-causal
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """mel [1, n_mels, n_frames] → [1, n_frames/2, dim]."""

    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(cfg.dim, cfg.dim, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(cfg.n_frames // 2, cfg.dim))
        self.blocks = nn.ModuleList([WhisperBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_post = nn.LayerNorm(cfg.dim)

    def forward(self, mel):
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1) + self.positional_embedding
        for blk in self.blocks:
            x = blk(x)
        return self.ln_post(x)


# ---------------------------------------------------------------------------------------------------
# Small linear model (for the external-constants `.ptd` fixture)


class TinyMLP(nn.Module):
    """x [2, 16] → [2, 8]: Linear → ReLU → Linear, plus a constant bias table."""

    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(16, 32)
        self.lin2 = nn.Linear(32, 8)
        self.register_buffer("offset", torch.linspace(-1.0, 1.0, 8))

    def forward(self, x):
        return self.lin2(torch.relu(self.lin1(x))) + self.offset


class PerChannelInt8Linear(nn.Module):
    """A linear whose weight is int8 codes with one scale per output channel (symmetric, zero points 0),
    dequantized with ExecuTorch's `quantized_decomposed::dequantize_per_channel` (the form PT2E weight-only
    quantization folds to; ExecuTorch's portable runtime has its kernel) and then applied."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        w = lin.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        q = torch.clamp(torch.round(w / scale[:, None]), -128, 127).to(torch.int8)
        self.register_buffer("weight_q", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(w.shape[0], dtype=torch.int64))
        self.bias = None if lin.bias is None else nn.Parameter(lin.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        import torch.ao.quantization.fx._decomposed  # noqa: F401  (defines quantized_decomposed::*)

        w = torch.ops.quantized_decomposed.dequantize_per_channel(
            self.weight_q, self.weight_scale, self.weight_zero_point, 0, -128, 127, torch.int8)
        return F.linear(x, w, self.bias)


class QuantizedMLP(nn.Module):
    """x [1, 5, 64] → [1, 5, 64]: gated MLP (SiLU gate 64 → 128 with a bias, up 64 → 128, down 128 → 64) on
    per-channel int8 weights (`PerChannelInt8Linear`), plus x (a residual)."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(64, 128, bias=True)
        self.up = nn.Linear(64, 128, bias=False)
        self.down = nn.Linear(128, 64, bias=False)

    def quantize_(self):
        for name in ("gate", "up", "down"):
            setattr(self, name, PerChannelInt8Linear(getattr(self, name)))
        return self

    def forward(self, x):
        return x + self.down(F.silu(self.gate(x)) * self.up(x))


# ---------------------------------------------------------------------------------------------------
# Deterministic initialisation


def init_weights_(model: nn.Module, seed: int) -> None:
    """Fixed-seed random weights. Norm weights (RMSNorm / LayerNorm) are 1 + 0.1·randn, LayerNorm
    biases 0.1·randn, so nothing is left uninitialised and the norms are not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            leaf = name.rsplit(".", 1)[-1]
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if isinstance(owner, (RMSNorm, nn.LayerNorm)):
                base = 1.0 if leaf == "weight" else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif isinstance(owner, nn.Embedding):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = p.shape[1] * p.shape[2] if isinstance(owner, nn.Conv1d) else p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * fan_in ** -0.5)
            else:  # linear / conv biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
