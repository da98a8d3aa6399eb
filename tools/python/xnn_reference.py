#!/usr/bin/env python3
"""What ExecuTorch's own XNNPACK deserialization sees in each `XnnpackBackend` payload of a `.pte`:
the reference `mlxc inspect --json`'s XNN summaries are checked against.

Usage: tools/.venv/bin/python tools/python/xnn_reference.py MODEL.pte [OUT.json]

The payload header is parsed by ExecuTorch's `XNNHeader.from_bytes` (xnnpack_graph_serialize.py), the
XNNGraph flatbuffer is turned into JSON by ExecuTorch's `_flatc_decompile` with the wheel's own
`backends/xnnpack/serialization/schema.fbs`, so node names are that schema's union member names.

JSON shape: {"<method>": [XNN per delegate, in Plan.delegates order, null for other backends]}
XNN = {"flatbuffer_offset", "flatbuffer_size", "constant_data_offset", "constant_data_size": int,
       "version": str, "num_externs": int, "input_ids": [int], "output_ids": [int],
       "nodes": {"<XNodeUnion member>": count},              # sorted by key
       "values": {"XNNTensorValue"|"XNNQuantizedTensorValue": count},
       "quant_params": {"<XNNQuantParams member>": count},
       "datatypes": {"<XNNDatatype name>": count},            # of every value's tensor_value.datatype
       "num_constant_data": int, "num_named_constants": int}  # constant_data entries; those with a named_key
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections import Counter
from importlib import resources

from executorch.backends.xnnpack import serialization as xnn_serialization
from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
from executorch.exir._serialize._flatbuffer import _flatc_decompile
from pte_reference import _delegate_payload, _flatbuffer_to_program, _get_extended_header  # noqa: E402

DATATYPES = ["invalid", "fp32", "fp16", "qint8", "quint8", "qint32", "qcint8", "qcint32", "qcint4",
             "qdint8", "qbint4", "qpint8", "int32", "pfp32", "bf16"]


def _sorted(c: Counter) -> dict:
    return {k: c[k] for k in sorted(c)}


def _decompile(flatbuffer: bytes) -> dict:
    schema = resources.files(xnn_serialization).joinpath("schema.fbs").read_bytes()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "schema.fbs"), "wb") as f:
            f.write(schema)
        with open(os.path.join(d, "graph.bin"), "wb") as f:
            f.write(flatbuffer)
        _flatc_decompile(d, os.path.join(d, "schema.fbs"), os.path.join(d, "graph.bin"), ["--raw-binary"])
        with open(os.path.join(d, "graph.json")) as f:
            # flatc writes non-finite floats bare (a max pool's output_min -inf); JSON spells them Infinity/NaN.
            text = re.sub(r"(?<=[\s:\[,])(-?)inf\b", r"\1Infinity", f.read())
            return json.loads(re.sub(r"(?<=[\s:\[,])-?nan\b", "NaN", text))


def xnn_summary(payload: bytes) -> dict:
    header = XNNHeader.from_bytes(payload[:XNNHeader.EXPECTED_LENGTH])
    assert header.is_valid(), "XNNHeader.is_valid() failed"
    fb = payload[header.flatbuffer_offset: header.flatbuffer_offset + header.flatbuffer_size]
    g = _decompile(fb)
    values, quant, dtypes = Counter(), Counter(), Counter()
    for v in g.get("xvalues", []):
        kind = v["xvalue_union_type"]
        values[kind] += 1
        tv = v["xvalue_union"]
        if kind == "XNNQuantizedTensorValue":
            quant[tv["quant_params_type"]] += 1
            tv = tv["tensor_value"]
        dt = tv["datatype"]
        dtypes[dt if isinstance(dt, str) else f"xnn_datatype_{DATATYPES[dt]}"] += 1
    constants = g.get("constant_data", [])
    return {
        "flatbuffer_offset": header.flatbuffer_offset,
        "flatbuffer_size": header.flatbuffer_size,
        "constant_data_offset": header.constant_data_offset,
        "constant_data_size": header.constant_data_size,
        "version": g.get("version", ""),
        "num_externs": g.get("num_externs", 0),
        "input_ids": g.get("input_ids", []),
        "output_ids": g.get("output_ids", []),
        "nodes": _sorted(Counter(n["xnode_union_type"] for n in g.get("xnodes", []))),
        "values": _sorted(values),
        "quant_params": _sorted(quant),
        "datatypes": _sorted(dtypes),
        "num_constant_data": len(constants),
        "num_named_constants": sum(1 for c in constants if c.get("named_key")),
    }


def xnn_reference(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    eh = _get_extended_header(data)
    program_size, seg_base = len(data), 0
    if eh is not None and eh.is_valid():
        program_size, seg_base = eh.program_size, eh.segment_base_offset
    program = _flatbuffer_to_program(data[:program_size])
    out = {}
    for plan in program.execution_plan:
        out[plan.name] = [xnn_summary(_delegate_payload(program, d, data, seg_base)) if d.id == "XnnpackBackend" else None
                          for d in plan.delegates]
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    text = json.dumps(xnn_reference(sys.argv[1]), indent=1)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(text + "\n")
    else:
        print(text)
