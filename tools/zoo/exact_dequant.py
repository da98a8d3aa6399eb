"""Eager with 4-/8-bit weights dequantized exactly, as MLX's quantized matmuls compute them (a study of the
bf16 reference's own rounding, used by `capture.py --eager-variant exact-dequant`).

Eager PyTorch on a `--qlinear 4w` module dequantizes every weight in the activation dtype: torchao's
IntxUnpackedToInt8Tensor linear computes `(q - zero) * scale` in bf16, and the MLX delegate's eager
`mlx::gather_qmm` computes `q.to(bf16) * scale + bias` in bf16 — each weight rounded to bf16's 8 bits (a 4-bit code
times a bf16 scale has up to 12). The exported program is MLX's `quantized_matmul` / `gather_qmm`, whose kernels (MLX's
and mlxc's alike) scale the codes in f32 and accumulate in f32: no weight is rounded. Inside `exact()` both eager
paths compute that way instead — weights in f32, x widened to f32, one f32 matmul, the result rounded once to the
activation dtype — which is the program's arithmetic with eager's op order everywhere else. Comparing eager with
this variant measures how far eager's own weight rounding moves the logits (the reference's noise floor).
"""

from __future__ import annotations

import contextlib

import torch


def _exact_gather_qmm(x, w, scales, biases=None, rhs_indices=None, lhs_indices=None, transpose=True, group_size=32,
                      bits=4, mode="affine", sorted_indices=None):
    """`mlx::gather_qmm`'s eager definition (backends/mlx/custom_ops.py) with the dequantization and the matmul
    in f32, rounded once to x's dtype."""
    if lhs_indices is not None or mode != "affine":
        raise NotImplementedError("exact_dequant: gather_qmm with lhs_indices or a non-affine mode")
    w_sel = w[rhs_indices] if rhs_indices is not None else w
    s_sel = scales[rhs_indices] if rhs_indices is not None else scales
    b_sel = (biases[rhs_indices] if rhs_indices is not None else biases) if biases is not None else None
    if w_sel.dtype == torch.uint8:  # two 4-bit codes per byte, value + 8
        lo, hi = (w_sel & 0x0F).to(torch.int16), ((w_sel >> 4) & 0x0F).to(torch.int16)
        w_sel = torch.stack([lo, hi], dim=-1).reshape(*w_sel.shape[:-1], -1) - 2 ** (bits - 1)
    w_f = w_sel.float() * s_sel.float().repeat_interleave(group_size, dim=-1)
    if b_sel is not None:
        w_f = w_f + b_sel.float().repeat_interleave(group_size, dim=-1)
    if transpose:
        w_f = w_f.transpose(-1, -2)
    return torch.matmul(x.float(), w_f).to(x.dtype)


def _switch_linear_forward(self, x, indices, sorted_indices=None):
    if not self._is_quantized:
        return _ORIGINAL["switch"](self, x, indices, sorted_indices)
    return _exact_gather_qmm(x, self.qdata, self.scale, biases=self.zero_point, rhs_indices=indices,
                             group_size=self.group_size)


def _intx_linear(func, types, args, kwargs):
    """torchao's IntxUnpackedToInt8Tensor linear (weight-only), the weight dequantized in f32."""
    x, weight, bias = args[0], args[1], (args[2] if len(args) > 2 else None)
    if weight.activation_quantization is not None:
        raise NotImplementedError("exact_dequant: dynamic activation quantization")
    from torchao.quantization.quant_primitives import _DTYPE_TO_QVALUE_BOUNDS, dequantize_affine
    qmin, qmax = _DTYPE_TO_QVALUE_BOUNDS[weight.target_dtype]
    w = dequantize_affine(weight.qdata, weight.block_size, weight.scale.float(), weight.zero_point, torch.int8,
                          qmin, qmax, output_dtype=torch.float32)
    out = torch.nn.functional.linear(x.float(), w, None if bias is None else bias.float())
    return out.to(x.dtype)


_ORIGINAL = {}


@contextlib.contextmanager
def exact():
    """Within: SwitchLinear (gather_qmm) and torchao IntxUnpackedToInt8Tensor linears compute with exact weights."""
    from executorch.backends.mlx.llm.switch import SwitchLinear
    from torchao.quantization import IntxUnpackedToInt8Tensor
    table = IntxUnpackedToInt8Tensor._ATEN_OP_TABLE[IntxUnpackedToInt8Tensor]
    functions = IntxUnpackedToInt8Tensor._TORCH_FN_TABLE[IntxUnpackedToInt8Tensor]
    aten_linear, fn_linear = torch.ops.aten.linear.default, torch.nn.functional.linear
    _ORIGINAL.update(switch=SwitchLinear.forward, aten=table[aten_linear], fn=functions[fn_linear])
    SwitchLinear.forward = _switch_linear_forward
    table[aten_linear] = _intx_linear
    functions[fn_linear] = _intx_linear
    try:
        yield
    finally:
        SwitchLinear.forward = _ORIGINAL["switch"]
        table[aten_linear] = _ORIGINAL["aten"]
        functions[fn_linear] = _ORIGINAL["fn"]
