#!/usr/bin/env python3
"""What ExecuTorch's own deserializer sees in a `.pte` — the reference `mlxc inspect --json` is checked against.

Usage: tools/.venv/bin/python tools/python/pte_reference.py MODEL.pte|MODEL.ptd   (prints the JSON below)
       from pte_reference import pte_reference; pte_reference(path) -> dict

The program is parsed with ExecuTorch's Python deserializer (executorch.exir._serialize: the extended
header, then `_flatbuffer_to_program` on [0, program_size) — the same parse `deserialize_pte_binary`
starts with, but before it folds segments back into the program, so segment counts stay as stored).
Delegate payloads and named-data keys are cross-checked against `deserialize_pte_binary` itself.
MLX delegate payloads are decoded with the flatc bindings that mlx_generated_files.py generated
(the MLXGraph flatbuffer starts at byte 24 of the payload, after the "MLX0" header).

JSON shape (every key always present; `null` where noted):
{
  "file_size": int,                                  # bytes of the .pte
  "extended_header": null | {"program_size": int, "segment_base_offset": int, "segment_data_size": int},
  "version": int,                                    # Program.version
  "num_segments": int,                               # len(Program.segments)
  "segment_sizes": [int],                            # Program.segments[i].size, in order
  "constant_segment": {"segment_index": int, "num_offsets": int},   # offsets incl. reserved index 0
  "num_constant_buffer": int,                        # deprecated inline constants (0 in current files)
  "num_backend_delegate_data": int,                  # inline delegate blobs (0: delegates are segments)
  "num_named_data": int,                             # len(Program.named_data) (keys)
  "num_named_data_segments": int,                    # distinct segment_index among named_data
  "num_mutable_data_segments": int,                  # len(Program.mutable_data_segments)
  "methods": {                                       # keyed by ExecutionPlan.name, in file order
    "<name>": {
      "num_values": int,
      "value_types": {"<KernelTypes name>": count},  # Tensor, Int, Bool, Double, Null, IntList, ...
      "num_chains": int,
      "instructions_per_chain": [int],
      "instruction_types": {"KernelCall"|"DelegateCall"|"MoveCall"|"JumpFalseCall"|"FreeCall": count},
      "inputs":  [VALUE],                            # Plan.inputs, in order
      "outputs": [VALUE],                            # Plan.outputs, in order
      "num_operators": int,                          # len(Plan.operators)
      "operators": {"<name>.<overload>" (or "<name>" when overload is empty): KernelCall count},
                                                     # every operator of the table, count may be 0
      "delegates": [DELEGATE],                       # Plan.delegates, in order
      "non_const_buffer_sizes": [int],
      "tensor_storage": {"constant": int,            # data_buffer_idx > 0, no allocation_info
                         "external": int,            # extra_tensor_info.location EXTERNAL (.ptd), no allocation
                         "external_mutable": int,    # EXTERNAL with allocation_info
                         "planned": int,             # allocation_info, data_buffer_idx 0
                         "planned_initialized": int, # allocation_info and data_buffer_idx > 0
                         "unbacked": int}            # neither (inputs, et_view outputs, ...)  (FORMATS §2.1)
    }
  }
}
VALUE = {"index": int, "type": "<KernelTypes name>",
         # for "Tensor": "dtype": "<ScalarType name>" (FLOAT, LONG, BFLOAT16, ...), "sizes": [int],
         #               "dynamism": "STATIC"|"DYNAMIC_BOUND"|"DYNAMIC_UNBOUND"
         # for "Int"/"Bool"/"Double": "value": the scalar
        }
DELEGATE = {"index": int, "id": str, "location": "INLINE"|"SEGMENT", "data_index": int,
            "payload_size": int, "num_compile_specs": int, "num_calls": int (DelegateCalls using it),
            "mlx": null | MLX}                       # MLX only for id == "MLXBackend"
MLX = {"version": str, "data_segment_offset": int, "data_segment_size": int,   # payload header
       "num_constant_tensors": int, "num_input_tensors": int, "num_output_tensors": int,
       "num_mutable_buffer_tensors": int, "num_temp_tensors": int, "num_values": int,
       "num_chains": int, "main_chain_idx": int, "init_chain_idx": int,
       "instructions_per_chain": [int],
       "main_chain_nodes": {"<OpNode name>": count},  # union type names from schema.fbs, e.g. "RMSNormNode"
       "all_chains_nodes": {"<OpNode name>": count},  # summed over every chain (init, main, sub-chains)
       "num_input_map": int, "num_output_map": int, "num_mutable_buffer_map": int,
       "num_named_slots": int, "num_tensor_meta": int}
Histograms are dicts sorted by key.

For a `.ptd` (FlatTensor) file, `ptd_reference(path)` / `pte_reference.py MODEL.ptd` gives:
{"file_size": int, "header": {"flatbuffer_offset", "flatbuffer_size", "segment_base_offset",
 "segment_data_size"}, "version": int, "num_segments": int, "segment_sizes": [int],
 "named_data": {"<key>": {"segment_index": int, "dtype": "<ScalarType name>"|null, "sizes": [int]|null,
                          "dim_order": [int]|null}}}
"""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from typing import Optional

from executorch.exir import schema
from executorch.exir._serialize._flatbuffer_program import _flatbuffer_to_program
from executorch.exir._serialize._program import _get_extended_header, deserialize_pte_binary

MLX_HEADER_LEN = 24


def _sorted(counter: Counter) -> dict:
    return {k: counter[k] for k in sorted(counter)}


def _kernel_type(val) -> str:
    return type(val).__name__


def _value(plan: schema.ExecutionPlan, index: int) -> dict:
    val = plan.values[index].val
    out = {"index": index, "type": _kernel_type(val)}
    if isinstance(val, schema.Tensor):
        out["dtype"] = val.scalar_type.name
        out["sizes"] = list(val.sizes)
        out["dynamism"] = schema.TensorShapeDynamism(val.shape_dynamism).name
    elif isinstance(val, schema.Int):
        out["value"] = val.int_val
    elif isinstance(val, schema.Bool):
        out["value"] = bool(val.bool_val)
    elif isinstance(val, schema.Double):
        out["value"] = val.double_val
    return out


def _op_key(op: schema.Operator) -> str:
    return f"{op.name}.{op.overload}" if op.overload else op.name


def mlx_summary(payload: bytes) -> dict:
    from executorch.backends.mlx.serialization._generated.mlx_delegate.MLXGraph import MLXGraph
    from executorch.backends.mlx.serialization._generated.mlx_delegate.OpNode import OpNode

    if payload[4:8] != b"MLX0":
        raise ValueError(f"MLX payload magic {payload[4:8]!r} != b'MLX0'")
    seg_off, seg_size = struct.unpack_from("<QQ", payload, 8)
    names = {v: k for k, v in vars(OpNode).items() if isinstance(v, int)}
    g = MLXGraph.GetRootAs(payload[MLX_HEADER_LEN:], 0)

    per_chain, chain_hists = [], []
    for c in range(g.InstructionChainsLength()):
        chain = g.InstructionChains(c)
        hist = Counter()
        for i in range(chain.InstructionsLength()):
            tag = chain.Instructions(i).OpType()
            if tag not in names:
                raise ValueError(f"unknown MLX OpNode tag {tag}")
            hist[names[tag]] += 1
        per_chain.append(chain.InstructionsLength())
        chain_hists.append(hist)
    main = g.MainChainIdx()
    all_nodes = sum(chain_hists, Counter())
    version = g.Version()
    return {
        "version": version.decode() if version is not None else "",
        "data_segment_offset": seg_off,
        "data_segment_size": seg_size,
        "num_constant_tensors": g.NumConstantTensors(),
        "num_input_tensors": g.NumInputTensors(),
        "num_output_tensors": g.NumOutputTensors(),
        "num_mutable_buffer_tensors": g.NumMutableBufferTensors(),
        "num_temp_tensors": g.NumTempTensors(),
        "num_values": g.NumValues(),
        "num_chains": g.InstructionChainsLength(),
        "main_chain_idx": main,
        "init_chain_idx": g.InitChainIdx(),
        "instructions_per_chain": per_chain,
        "main_chain_nodes": _sorted(chain_hists[main]) if chain_hists else {},
        "all_chains_nodes": _sorted(all_nodes),
        "num_input_map": g.InputMapLength(),
        "num_output_map": g.OutputMapLength(),
        "num_mutable_buffer_map": g.MutableBufferMapLength(),
        "num_named_slots": g.NamedSlotsLength(),
        "num_tensor_meta": g.TensorMetaLength(),
    }


def _delegate_payload(program: schema.Program, d: schema.BackendDelegate, data: bytes,
                      seg_base: int) -> bytes:
    if d.processed.location == schema.DataLocation.INLINE:
        return bytes(program.backend_delegate_data[d.processed.index].data)
    seg = program.segments[d.processed.index]
    return data[seg_base + seg.offset: seg_base + seg.offset + seg.size]


def _tensor_storage(plan: schema.ExecutionPlan) -> dict:
    c = Counter({k: 0 for k in ("constant", "external", "external_mutable", "planned",
                                "planned_initialized", "unbacked")})
    for v in plan.values:
        t = v.val
        if not isinstance(t, schema.Tensor):
            continue
        ext = t.extra_tensor_info is not None and t.extra_tensor_info.location == schema.TensorDataLocation.EXTERNAL
        planned = t.allocation_info is not None
        if ext:
            c["external_mutable" if planned else "external"] += 1
        elif planned:
            c["planned_initialized" if t.data_buffer_idx > 0 else "planned"] += 1
        else:
            c["constant" if t.data_buffer_idx > 0 else "unbacked"] += 1
    return dict(c)


def _method(program: schema.Program, plan: schema.ExecutionPlan, data: bytes, seg_base: int) -> dict:
    instr_types, op_counts, delegate_calls = Counter(), Counter(), Counter()
    for chain in plan.chains:
        for ins in chain.instructions:
            a = ins.instr_args
            instr_types[type(a).__name__] += 1
            if isinstance(a, schema.KernelCall):
                op_counts[a.op_index] += 1
            elif isinstance(a, schema.DelegateCall):
                delegate_calls[a.delegate_index] += 1
    operators = Counter()
    for i, op in enumerate(plan.operators):
        operators[_op_key(op)] += op_counts[i]

    delegates = []
    for i, d in enumerate(plan.delegates):
        payload = _delegate_payload(program, d, data, seg_base)
        delegates.append({
            "index": i,
            "id": d.id,
            "location": schema.DataLocation(d.processed.location).name,
            "data_index": d.processed.index,
            "payload_size": len(payload),
            "num_compile_specs": len(d.compile_specs),
            "num_calls": delegate_calls[i],
            "mlx": mlx_summary(payload) if d.id == "MLXBackend" else None,
        })

    return {
        "num_values": len(plan.values),
        "value_types": _sorted(Counter(_kernel_type(v.val) for v in plan.values)),
        "num_chains": len(plan.chains),
        "instructions_per_chain": [len(c.instructions) for c in plan.chains],
        "instruction_types": _sorted(instr_types),
        "inputs": [_value(plan, i) for i in plan.inputs],
        "outputs": [_value(plan, i) for i in plan.outputs],
        "num_operators": len(plan.operators),
        "operators": _sorted(operators),
        "delegates": delegates,
        "non_const_buffer_sizes": list(plan.non_const_buffer_sizes),
        "tensor_storage": _tensor_storage(plan),
    }


def pte_reference(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    eh = _get_extended_header(data)
    header: Optional[dict] = None
    program_size, seg_base = len(data), 0
    if eh is not None and eh.is_valid():
        program_size, seg_base = eh.program_size, eh.segment_base_offset
        header = {"program_size": eh.program_size, "segment_base_offset": eh.segment_base_offset,
                  "segment_data_size": eh.segment_data_size}
    program = _flatbuffer_to_program(data[:program_size])
    named = program.named_data or []
    ref = {
        "file_size": len(data),
        "extended_header": header,
        "version": program.version,
        "num_segments": len(program.segments),
        "segment_sizes": [s.size for s in program.segments],
        "constant_segment": {"segment_index": program.constant_segment.segment_index,
                             "num_offsets": len(program.constant_segment.offsets)},
        "num_constant_buffer": len(program.constant_buffer),
        "num_backend_delegate_data": len(program.backend_delegate_data),
        "num_named_data": len(named),
        "num_named_data_segments": len({n.segment_index for n in named}),
        "num_mutable_data_segments": len(program.mutable_data_segments or []),
        "methods": {p.name: _method(program, p, data, seg_base) for p in program.execution_plan},
    }
    _cross_check(data, program, seg_base)
    return ref


def _cross_check(data: bytes, program: schema.Program, seg_base: int) -> None:
    """The public `deserialize_pte_binary` must see the same delegate payloads and named-data keys."""
    pte = deserialize_pte_binary(data)
    for plan, restored in zip(program.execution_plan, pte.program.execution_plan):
        for d, r in zip(plan.delegates, restored.delegates):
            ours = _delegate_payload(program, d, data, seg_base)
            theirs = bytes(pte.program.backend_delegate_data[r.processed.index].data)
            if ours != theirs:
                raise AssertionError(f"delegate payload mismatch in {plan.name}")
    keys = {n.key for n in program.named_data or []}
    restored_keys = set(pte.named_data.pte_data) if pte.named_data else set()
    if keys != restored_keys:
        raise AssertionError("named_data keys differ from deserialize_pte_binary")


def ptd_reference(path: str) -> dict:
    from executorch.extension.flat_tensor.serialize.serialize import (
        _deserialize_to_flat_tensor,
        FlatTensorHeader,
    )

    with open(path, "rb") as f:
        data = f.read()
    h = FlatTensorHeader.from_bytes(data[8:])
    if not h.is_valid():
        raise ValueError(f"{path}: invalid FlatTensor header")
    ft = _deserialize_to_flat_tensor(data[: h.flatbuffer_offset + h.flatbuffer_size])
    named = {}
    for nd in ft.named_data:
        lay = nd.tensor_layout
        named[nd.key] = {
            "segment_index": nd.segment_index,
            "dtype": lay.scalar_type.name if lay is not None else None,
            "sizes": list(lay.sizes) if lay is not None else None,
            "dim_order": list(lay.dim_order) if lay is not None else None,
        }
    return {
        "file_size": len(data),
        "header": {"flatbuffer_offset": h.flatbuffer_offset, "flatbuffer_size": h.flatbuffer_size,
                   "segment_base_offset": h.segment_base_offset, "segment_data_size": h.segment_data_size},
        "version": ft.version,
        "num_segments": len(ft.segments),
        "segment_sizes": [s.size for s in ft.segments],
        "named_data": {k: named[k] for k in sorted(named)},
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: pte_reference.py MODEL.pte|MODEL.ptd")
    path = sys.argv[1]
    ref = ptd_reference(path) if path.endswith(".ptd") else pte_reference(path)
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main()
