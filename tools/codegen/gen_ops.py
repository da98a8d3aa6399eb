#!/usr/bin/env python3
"""Generates mlxc's op set and MLX payload decoder from FlatBuffers schema text.

Usage (from the repository root; Python 3, standard library only):

    python3 tools/codegen/gen_ops.py [--mlx-schema PATH] [--mlxc-schema PATH] [--check]

    --mlx-schema PATH   the MLX delegate schema (default: the copy shipped with the executorch
                        package in tools/.venv, backends/mlx/serialization/schema.fbs)
    --mlxc-schema PATH  mlxc's own ops (default: tools/codegen/mlxc_ops.fbs)
    --check             do not write; exit 1 if a generated file is out of date

Inputs:
  * the MLX schema: node tables listed in `union OpNode` (tag = 1-based union position), the
    core types Tid/Vid/IntOrVid/FloatOrVid/VidOrTid/IntOrVidOrTid, and the container tables
    reachable from the root type (MLXGraph).
  * mlxc_ops.fbs: more node tables with the same conventions; they join the IR's op set after the
    MLX ones but never appear in an MLX payload.

Writes (both are committed; re-run this script by hand after changing a schema):
  * Sources/MLXCIR/Op.generated.swift — `enum Op` (one case per node table, payload struct
    `<Name>Op`), op names, the uniform text form (`fields`, `init(name:fields:)`), `results`,
    `operands`, `mapValues`.
  * Sources/MLXCFrontend/MLXPayload/MLXSchema.generated.swift — the MLXGraph container tables,
    the union tag table and `decodeMLXOp`, a bounds-checked decoder of every node table.

FlatBuffers rules applied: field id = declaration order (no explicit ids); a union field takes two
ids (`<name>_type` ubyte, then the offset); structs are stored inline in tables and vectors;
`= null` on a scalar makes it optional; `(required)` on reference fields; defaults as declared.
"""

import argparse
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MLX = os.path.join(ROOT, "tools/.venv/lib/python3.11/site-packages/executorch/backends/mlx/serialization/schema.fbs")
DEFAULT_MLXC = os.path.join(ROOT, "tools/codegen/mlxc_ops.fbs")
OUT_OP = os.path.join(ROOT, "Sources/MLXCIR/Op.generated.swift")
OUT_MLX = os.path.join(ROOT, "Sources/MLXCFrontend/MLXPayload/MLXSchema.generated.swift")

# Table names whose mechanical spelling reads badly: base name -> (lowerCamel, snake_case, struct).
NAME_OVERRIDES = {
    "ARange": ("arange", "arange", "ARangeOp"),
}

SWIFT_KEYWORDS = set("""
    associatedtype class deinit enum extension fileprivate func import init inout internal let open
    operator private precedencegroup protocol public rethrows static struct subscript typealias var
    break case catch continue default defer do else fallthrough for guard if in repeat return throw
    switch where while as false is nil self Self super throws true try Any Type Protocol
""".split())

INT_TYPES = {
    "byte": "Int8", "int8": "Int8", "ubyte": "UInt8", "uint8": "UInt8", "bool": None,
    "short": "Int16", "int16": "Int16", "ushort": "UInt16", "uint16": "UInt16",
    "int": "Int32", "int32": "Int32", "uint": "UInt32", "uint32": "UInt32",
    "long": "Int64", "int64": "Int64", "ulong": "UInt64", "uint64": "UInt64",
}
FLOAT_TYPES = {"float": "Float", "float32": "Float", "double": "Double", "float64": "Double"}
VALUE_STRUCTS = ("Tid", "Vid")
DTYPE_FIELDS = ("scalar_type", "dtype", "out_dtype")
RESULT_FIELDS = ("out", "outs", "outputs")


class SchemaError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Schema parsing
# ---------------------------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan|infinity))
  | (?P<id>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}()\[\]:;=,])
""", re.X | re.S)


def tokenize(text, path):
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise SchemaError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group(kind), line))
        line += m.group(0).count("\n")
        pos = m.end()
    return tokens


class Field:
    def __init__(self, name, type_, default, attrs, line):
        self.name, self.type, self.default, self.attrs, self.line = name, type_, default, attrs, line
        self.id = None  # assigned by the owning table

    @property
    def is_vector(self):
        return self.type.startswith("[")

    @property
    def elem(self):
        return self.type[1:-1] if self.is_vector else self.type

    @property
    def required(self):
        return "required" in self.attrs

    @property
    def null_default(self):
        return self.default == "null"


class Decl:
    def __init__(self, kind, name, line, path):
        self.kind, self.name, self.line, self.path = kind, name, line, path
        self.fields = []     # table / struct
        self.values = []     # enum: (name, int); union: member type names
        self.base = None     # enum underlying type


class Schema:
    def __init__(self, path):
        self.path = path
        self.decls = {}
        self.order = []
        self.root_type = None
        text = open(path, encoding="utf-8").read()
        self.lines = text.split("\n")
        self._parse(tokenize(text, path))

    def _parse(self, toks):
        i = 0

        def expect(value):
            nonlocal i
            if i >= len(toks) or toks[i][1] != value:
                got = toks[i][1] if i < len(toks) else "end of file"
                line = toks[i][2] if i < len(toks) else "EOF"
                raise SchemaError(f"{self.path}:{line}: expected {value!r}, got {got!r}")
            i += 1

        def ident():
            nonlocal i
            if i >= len(toks) or toks[i][0] != "id":
                raise SchemaError(f"{self.path}: expected an identifier near token {i}")
            i += 1
            return toks[i - 1][1]

        def skip_statement():
            nonlocal i
            while toks[i][1] != ";":
                i += 1
            i += 1

        def metadata():
            nonlocal i
            attrs = {}
            if i < len(toks) and toks[i][1] == "(":
                i += 1
                while toks[i][1] != ")":
                    key = ident()
                    value = True
                    if toks[i][1] == ":":
                        i += 1
                        value = toks[i][1]
                        i += 1
                    attrs[key] = value
                    if toks[i][1] == ",":
                        i += 1
                i += 1
            return attrs

        while i < len(toks):
            kind, word, line = toks[i]
            if word in ("namespace", "include", "attribute", "file_identifier", "file_extension"):
                skip_statement()
            elif word == "root_type":
                i += 1
                self.root_type = ident()
                expect(";")
            elif word in ("table", "struct"):
                i += 1
                decl = Decl(word, ident(), line, self.path)
                metadata()
                expect("{")
                while toks[i][1] != "}":
                    fline = toks[i][2]
                    fname = ident()
                    expect(":")
                    if toks[i][1] == "[":
                        i += 1
                        ftype = "[" + ident() + "]"
                        expect("]")
                    else:
                        ftype = ident()
                    default = None
                    if toks[i][1] == "=":
                        i += 1
                        default = toks[i][1]
                        i += 1
                    attrs = metadata()
                    expect(";")
                    if "id" in attrs:
                        raise SchemaError(f"{self.path}:{fline}: explicit field ids are not supported")
                    decl.fields.append(Field(fname, ftype, default, attrs, fline))
                expect("}")
                self._add(decl)
            elif word == "enum":
                i += 1
                decl = Decl("enum", ident(), line, self.path)
                expect(":")
                decl.base = ident()
                metadata()
                expect("{")
                nxt = 0
                while toks[i][1] != "}":
                    vname = ident()
                    if toks[i][1] == "=":
                        i += 1
                        nxt = int(toks[i][1], 0)
                        i += 1
                    decl.values.append((vname, nxt))
                    nxt += 1
                    if toks[i][1] == ",":
                        i += 1
                expect("}")
                self._add(decl)
            elif word == "union":
                i += 1
                decl = Decl("union", ident(), line, self.path)
                metadata()
                expect("{")
                while toks[i][1] != "}":
                    member = ident()
                    if toks[i][1] == ":":  # aliased member `Alias: Type`
                        i += 1
                        member = ident()
                    decl.values.append(member)
                    if toks[i][1] == ",":
                        i += 1
                expect("}")
                self._add(decl)
            else:
                raise SchemaError(f"{self.path}:{line}: unexpected {word!r}")
        for decl in self.order:
            next_id = 0
            for f in decl.fields:
                f.id = next_id
                union = self.decls.get(f.elem)
                next_id += 2 if (union is not None and union.kind == "union") else 1

    def comment_before(self, line):
        """The `//` comment block right above 1-based `line` (separator rules dropped), as text lines."""
        out, i = [], line - 2
        while i >= 0 and self.lines[i].strip().startswith("//"):
            text = self.lines[i].strip()[2:].strip()
            if not re.fullmatch(r"[=\-]{3,}", text):
                out.insert(0, text)
            i -= 1
        while out and not out[0]:
            out.pop(0)
        while out and not out[-1]:
            out.pop()
        return out

    def comment_after(self, line):
        """The trailing `//` comment on 1-based `line`, or None."""
        text = self.lines[line - 1]
        at = text.find("//", text.find(";") + 1 if ";" in text else 0)
        return text[at + 2:].strip() or None if at >= 0 else None

    def _add(self, decl):
        if decl.name in self.decls:
            raise SchemaError(f"{self.path}:{decl.line}: {decl.name} declared twice")
        self.decls[decl.name] = decl
        self.order.append(decl)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def base_name(table):
    return table[:-4] if table.endswith("Node") else table


def lower_camel_type(base):
    if base in NAME_OVERRIDES:
        return NAME_OVERRIDES[base][0]
    m = re.match(r"^([A-Z]+)(?=[A-Z][a-z])", base) or re.match(r"^([A-Z]+)", base)
    head = m.group(1) if m else ""
    return head.lower() + base[len(head):]


def snake_type(base):
    if base in NAME_OVERRIDES:
        return NAME_OVERRIDES[base][1]
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", base)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return s.lower()


def struct_name(base):
    if base in NAME_OVERRIDES:
        return NAME_OVERRIDES[base][2]
    return base + "Op"


def camel_field(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def upper_camel(name):
    return name[:1].upper() + name[1:]


def esc(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


def fill(template, **values):
    """`template` with each `{key}` replaced (templates also contain Swift braces, so no str.format)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def swift_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------------
# Field kinds: one per (schema type, optionality) combination the IR supports
# ---------------------------------------------------------------------------------------------

class Kind:
    """How one node-table field maps to Swift, to Attribute, to the text reader and to the decoder."""

    def __init__(self, swift, attr, reader, decode, collect, remap, default=None):
        self.swift = swift        # Swift type
        self.attr = attr          # format: Attribute expression from `{v}`
        self.reader = reader      # format: FieldReader call with `{n}` (quoted name)
        self.decode = decode      # format: MLXNodeReader call with `{id}`, `{n}`
        self.collect = collect    # None (no values) | "plain" | "opt" | "all" | helper name for [ValueID].<helper>
        self.remap = remap        # format: expression mapping `{v}` through `f`, or None
        self.default = default    # Swift default for the memberwise init, or None (argument required)


def float_literal(text, is_float32):
    value = float(text)
    if is_float32:
        value = struct.unpack("<f", struct.pack("<f", value))[0]
    if value != value or value in (float("inf"), float("-inf")):
        raise SchemaError(f"unsupported float default {text}")
    r = repr(value)
    return r if ("." in r or "e" in r) else r + ".0"


def field_kind(table, f, decls):
    """The Kind of node-table field `f`, or a SchemaError naming what is unsupported."""
    where = f"{table}.{f.name}"
    elem, req, null = f.elem, f.required, f.null_default
    if f.is_vector:
        if f.default is not None:
            raise SchemaError(f"{where}: vectors cannot have defaults")
        r = "true" if req else "false"
        if elem == "Tid":
            return Kind("[ValueID]", ".values({v})", "values({n}, " + r + ")", "tids({id}, {n}, " + r + ")",
                        "all", "{v}.map(f)", None if req else "[]")
        if elem in ("IntOrVid", "IntOrVidOrTid"):
            helper = "intOrVids" if elem == "IntOrVid" else "intOrVidOrTids"
            return Kind("[IntOrValue]", ".intOrValues({v})", "intOrValues({n}, " + r + ")",
                        helper + "({id}, {n}, " + r + ")", "intOrValues", "{v}.map { $0.mapped(f) }",
                        None if req else "[]")
        if elem == "string":
            return Kind("[String]", ".strings({v})", "strings({n}, " + r + ")", "strings({id}, {n}, " + r + ")",
                        None, None, None if req else "[]")
        if elem in INT_TYPES and INT_TYPES[elem]:
            t = INT_TYPES[elem]
            if f.name == "output_dtypes" and elem == "int8":
                return Kind("[DType]", ".dtypes({v})", "dtypes({n}, " + r + ")", "dtypes({id}, {n}, " + r + ")",
                            None, None, None if req else "[]")
            return Kind("[Int]", "intsAttr({v})", "ints({n}, " + r + ", " + t + ".self)",
                        "ints({id}, {n}, " + t + ".self, " + r + ")", None, None, None if req else "[]")
        raise SchemaError(f"{where}: unsupported vector type [{elem}]")
    if req and elem in INT_TYPES | FLOAT_TYPES:
        raise SchemaError(f"{where}: scalars cannot be (required)")
    if elem in VALUE_STRUCTS:
        fn = "tid" if elem == "Tid" else "vid"
        if req:
            return Kind("ValueID", ".value({v})", "value({n})", fn + "({id}, {n})", "plain", "f({v})")
        return Kind("ValueID?", "optValueAttr({v})", "optValue({n})", "opt" + upper_camel(fn) + "({id}, {n})",
                    "opt", "{v}.map(f)", "nil")
    if elem in ("IntOrVid", "IntOrVidOrTid"):
        fn = "intOrVid" if elem == "IntOrVid" else "intOrVidOrTid"
        if req:
            return Kind("IntOrValue", ".intOrValue({v})", "intOrValue({n})", fn + "({id}, {n})",
                        "intOrValue", "{v}.mapped(f)")
        return Kind("IntOrValue?", "optIntOrValueAttr({v})", "optIntOrValue({n})",
                    "opt" + upper_camel(fn) + "({id}, {n})", "optIntOrValue", "{v}.map { $0.mapped(f) }", "nil")
    if elem == "FloatOrVid":
        if not req:
            raise SchemaError(f"{where}: optional FloatOrVid is not supported")
        return Kind("FloatOrValue", ".floatOrValue({v})", "floatOrValue({n})", "floatOrVid({id}, {n})",
                    "floatOrValue", "{v}.mapped(f)")
    if elem == "VidOrTid":
        if not req:
            raise SchemaError(f"{where}: optional VidOrTid is not supported")
        return Kind("ValueID", ".value({v})", "value({n})", "vidOrTid({id}, {n})", "plain", "f({v})")
    if elem == "string":
        if req:
            return Kind("String", ".string({v})", "string({n})", "string({id}, {n})", None, None)
        return Kind("String?", "optStringAttr({v})", "optString({n})", "optString({id}, {n})", None, None, "nil")
    if elem == "bool":
        d = {"true": "true", "false": "false", None: "false"}.get(f.default)
        if d is None:
            raise SchemaError(f"{where}: unsupported bool default {f.default}")
        return Kind("Bool", ".bool({v})", "bool({n}, " + d + ")", "bool({id}, {n}, " + d + ")", None, None, d)
    if elem in FLOAT_TYPES:
        is32 = FLOAT_TYPES[elem] == "Float"
        fn = "float" if is32 else "double"
        if null:
            return Kind("Double?", "optFloatAttr({v})", "optDouble({n})", "opt" + upper_camel(fn) + "({id}, {n})",
                        None, None, "nil")
        d = float_literal(f.default or "0", is32)
        return Kind("Double", ".float({v})", "double({n}, " + d + ")", fn + "({id}, {n}, " + d + ")",
                    None, None, d)
    if elem in INT_TYPES and INT_TYPES[elem]:
        t = INT_TYPES[elem]
        if f.name in DTYPE_FIELDS and elem == "int8":
            if null:
                return Kind("DType?", "optDTypeAttr({v})", "optDType({n})", "optDType({id}, {n})", None, None, "nil")
            d = int(f.default or "0", 0)
            return Kind("DType", ".dtype({v})", "dtype({n})", "dtype({id}, {n}, " + str(d) + ")", None, None)
        if null:
            return Kind("Int?", "optIntAttr({v})", "optInt({n}, " + t + ".self)",
                        "optInt({id}, {n}, " + t + ".self)", None, None, "nil")
        try:
            d = int(f.default or "0", 0)
        except ValueError:
            raise SchemaError(f"{where}: unsupported integer default {f.default}")
        return Kind("Int", "intAttr({v})", "int({n}, " + str(d) + ", " + t + ".self)",
                    "int({id}, {n}, " + t + ".self, " + str(d) + ")", None, None, str(d))
    decl = decls.get(elem)
    raise SchemaError(f"{where}: unsupported field type {elem}" + (f" ({decl.kind})" if decl else ""))


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

class OpDef:
    def __init__(self, table, decl, is_mlx, tag, decls, schema):
        self.doc = schema.comment_before(decl.line)
        self.field_docs = [schema.comment_before(f.line) + [c for c in [schema.comment_after(f.line)] if c]
                           for f in decl.fields]
        self.table, self.decl, self.is_mlx, self.tag = table, decl, is_mlx, tag
        base = base_name(table)
        self.case = lower_camel_type(base)
        self.name = snake_type(base)
        self.struct = struct_name(base)
        self.fields = []
        for f in decl.fields:
            self.fields.append((f, camel_field(f.name), field_kind(table, f, decls)))


CORE_LAYOUTS = {
    # name -> [(field, type)] in declaration order; the decoder's helpers rely on these ids.
    "Tid": [("idx", "uint32")],
    "Vid": [("idx", "uint32")],
    "IntOrVid": [("literal", "int64"), ("vid", "Vid"), ("is_vid", "bool")],
    "FloatOrVid": [("literal", "double"), ("vid", "Vid"), ("is_vid", "bool")],
    "VidOrTid": [("vid", "Vid"), ("tid", "Tid"), ("is_vid", "bool")],
    "IntOrVidOrTid": [("literal", "int64"), ("vid", "Vid"), ("tid", "Tid"), ("kind", "uint8")],
}


def check_core(schema):
    for name, layout in CORE_LAYOUTS.items():
        decl = schema.decls.get(name)
        if decl is None:
            raise SchemaError(f"{schema.path}: core type {name} is missing")
        got = [(f.name, f.type) for f in decl.fields]
        if got != layout:
            raise SchemaError(f"{schema.path}: core type {name} has fields {got}, expected {layout}; "
                              "update gen_ops.py's decoder helpers")
        if name in ("Tid", "Vid") and decl.kind != "struct":
            raise SchemaError(f"{schema.path}: {name} must be a struct")


def build_ops(mlx, mlxc):
    check_core(mlx)
    unions = [d for d in mlx.order if d.kind == "union" and d.name == "OpNode"]
    if not unions:
        raise SchemaError(f"{mlx.path}: union OpNode not found")
    union = unions[0]
    if len(union.values) > 255:
        raise SchemaError("OpNode has more than 255 members")
    ops = []
    for tag, table in enumerate(union.values, start=1):
        decl = mlx.decls.get(table)
        if decl is None or decl.kind != "table":
            raise SchemaError(f"{mlx.path}: union member {table} is not a table")
        ops.append(OpDef(table, decl, True, tag, mlx.decls, mlx))
    for decl in mlxc.order:
        if decl.kind != "table":
            raise SchemaError(f"{mlxc.path}:{decl.line}: only tables are allowed, found {decl.kind} {decl.name}")
        if decl.name in mlx.decls:
            raise SchemaError(f"{mlxc.path}:{decl.line}: {decl.name} is already an MLX table")
        merged = dict(mlx.decls)
        merged.update(mlxc.decls)
        ops.append(OpDef(decl.name, decl, False, None, merged, mlxc))
    for attr in ("case", "name", "struct"):
        seen = {}
        for op in ops:
            key = getattr(op, attr)
            if key in seen:
                raise SchemaError(f"{op.table} and {seen[key]} both map to {attr} {key!r}")
            seen[key] = op.table
    return union, ops


# ---------------------------------------------------------------------------------------------
# Op.generated.swift
# ---------------------------------------------------------------------------------------------

def header(sources):
    return ("// GENERATED by tools/codegen/gen_ops.py from the MLX delegate schema (executorch\n"
            "// backends/mlx/serialization/schema.fbs) and tools/codegen/mlxc_ops.fbs.\n"
            "// Do not edit by hand: change the schema or the generator and run `python3 tools/codegen/gen_ops.py`.\n")


OP_PRELUDE = r'''
// MARK: - Text-form helpers

private func intAttr(_ x: Int) -> Attribute { .int(Int64(x)) }
private func intsAttr(_ xs: [Int]) -> Attribute { .ints(xs.map { Int64($0) }) }
private func optIntAttr(_ x: Int?) -> Attribute { x.map { .int(Int64($0)) } ?? Attribute.none }
private func optFloatAttr(_ x: Double?) -> Attribute { x.map { .float($0) } ?? Attribute.none }
private func optStringAttr(_ x: String?) -> Attribute { x.map { .string($0) } ?? Attribute.none }
private func optDTypeAttr(_ x: DType?) -> Attribute { x.map { .dtype($0) } ?? Attribute.none }
private func optValueAttr(_ x: ValueID?) -> Attribute { x.map { .value($0) } ?? Attribute.none }
private func optIntOrValueAttr(_ x: IntOrValue?) -> Attribute { x.map { .intOrValue($0) } ?? Attribute.none }

extension IntOrValue {
    fileprivate func mapped(_ f: (ValueID) -> ValueID) -> IntOrValue {
        if case .value(let v) = self { return .value(f(v)) } else { return self }
    }
}

extension FloatOrValue {
    fileprivate func mapped(_ f: (ValueID) -> ValueID) -> FloatOrValue {
        if case .value(let v) = self { return .value(f(v)) } else { return self }
    }
}

extension Array where Element == ValueID {
    fileprivate mutating func opt(_ v: ValueID?) { if let v { append(v) } }
    fileprivate mutating func all(_ vs: [ValueID]) { append(contentsOf: vs) }
    fileprivate mutating func intOrValue(_ x: IntOrValue) { if let v = x.valueID { append(v) } }
    fileprivate mutating func optIntOrValue(_ x: IntOrValue?) { if let v = x?.valueID { append(v) } }
    fileprivate mutating func intOrValues(_ xs: [IntOrValue]) { for x in xs { if let v = x.valueID { append(v) } } }
    fileprivate mutating func floatOrValue(_ x: FloatOrValue) { if let v = x.valueID { append(v) } }
}

extension Attribute {
    /// The attribute's kind as IR text would describe it, for error messages.
    fileprivate var kindName: String {
        switch self {
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .string: return "string"
        case .ints: return "int list"
        case .floats: return "float list"
        case .strings: return "string list"
        case .value: return "value"
        case .values: return "value list"
        case .intOrValue: return "int or value"
        case .intOrValues: return "int-or-value list"
        case .floatOrValue: return "float or value"
        case .dtype: return "dtype"
        case .dtypes: return "dtype list"
        case .none: return "none"
        }
    }

    /// True for an empty list of any element kind (IR text cannot tell `[]` kinds apart).
    fileprivate var isEmptyList: Bool {
        switch self {
        case .ints(let xs): return xs.isEmpty
        case .floats(let xs): return xs.isEmpty
        case .strings(let xs): return xs.isEmpty
        case .values(let xs): return xs.isEmpty
        case .intOrValues(let xs): return xs.isEmpty
        case .dtypes(let xs): return xs.isEmpty
        default: return false
        }
    }
}

/// Reads one op's fields from the text form, remembering which names the op asked for so that
/// leftovers are reported as unknown fields. A `nil` default means the field is required.
private final class FieldReader {
    let op: String
    let fields: [String: Attribute]
    var asked: Set<String> = []

    init(op: String, fields: [String: Attribute]) {
        self.op = op
        self.fields = fields
    }

    /// The attribute for `name`; nil when absent or `none`. Throws when absent and required.
    func get(_ name: String, required: Bool) throws -> Attribute? {
        asked.insert(name)
        guard let a = fields[name] else {
            if required { throw IRError("\(op): missing required field '\(name)'") }
            return nil
        }
        if case .none = a {
            if required { throw IRError("\(op).\(name): required field is none") }
            return nil
        }
        return a
    }

    func wrong(_ name: String, _ expected: String, _ a: Attribute) -> IRError {
        IRError("\(op).\(name): expected \(expected), got \(a.kindName)")
    }

    func finish() throws {
        let unknown = fields.keys.filter { !asked.contains($0) }.sorted()
        if !unknown.isEmpty {
            let list = unknown.map { "'\($0)'" }.joined(separator: ", ")
            throw IRError("\(op): unknown field\(unknown.count == 1 ? "" : "s") \(list) (known: \(asked.sorted().joined(separator: ", ")))")
        }
    }

    private func fit<T: FixedWidthInteger>(_ name: String, _ x: Int64, _ type: T.Type) throws -> Int {
        guard T(exactly: x) != nil, let n = Int(exactly: x) else {
            throw IRError("\(op).\(name): \(x) does not fit in \(T.self)")
        }
        return n
    }

    func value(_ name: String) throws -> ValueID {
        guard let v = try optValue(name, required: true) else { throw IRError("\(op): missing required field '\(name)'") }
        return v
    }

    func optValue(_ name: String, required: Bool = false) throws -> ValueID? {
        guard let a = try get(name, required: required) else { return nil }
        guard case .value(let v) = a else { throw wrong(name, "value", a) }
        return v
    }

    func values(_ name: String, _ required: Bool) throws -> [ValueID] {
        guard let a = try get(name, required: required) else { return [] }
        if case .values(let vs) = a { return vs }
        if a.isEmptyList { return [] }
        throw wrong(name, "value list", a)
    }

    func int<T: FixedWidthInteger>(_ name: String, _ defaultValue: Int, _ type: T.Type) throws -> Int {
        try optInt(name, type) ?? defaultValue
    }

    func optInt<T: FixedWidthInteger>(_ name: String, _ type: T.Type) throws -> Int? {
        guard let a = try get(name, required: false) else { return nil }
        switch a {
        case .int(let x): return try fit(name, x, type)
        case .intOrValue(.literal(let x)): return try fit(name, x, type)
        default: throw wrong(name, "int", a)
        }
    }

    func ints<T: FixedWidthInteger>(_ name: String, _ required: Bool, _ type: T.Type) throws -> [Int] {
        guard let a = try get(name, required: required) else { return [] }
        if case .ints(let xs) = a { return try xs.map { try fit(name, $0, type) } }
        if a.isEmptyList { return [] }
        throw wrong(name, "int list", a)
    }

    func double(_ name: String, _ defaultValue: Double) throws -> Double {
        try optDouble(name) ?? defaultValue
    }

    func optDouble(_ name: String) throws -> Double? {
        guard let a = try get(name, required: false) else { return nil }
        switch a {
        case .float(let x): return x
        case .int(let x): return Double(x)
        default: throw wrong(name, "float", a)
        }
    }

    func bool(_ name: String, _ defaultValue: Bool) throws -> Bool {
        guard let a = try get(name, required: false) else { return defaultValue }
        guard case .bool(let b) = a else { throw wrong(name, "bool", a) }
        return b
    }

    func string(_ name: String) throws -> String {
        guard let s = try optString(name, required: true) else { throw IRError("\(op): missing required field '\(name)'") }
        return s
    }

    func optString(_ name: String, required: Bool = false) throws -> String? {
        guard let a = try get(name, required: required) else { return nil }
        guard case .string(let s) = a else { throw wrong(name, "string", a) }
        return s
    }

    func strings(_ name: String, _ required: Bool) throws -> [String] {
        guard let a = try get(name, required: required) else { return [] }
        if case .strings(let xs) = a { return xs }
        if a.isEmptyList { return [] }
        throw wrong(name, "string list", a)
    }

    func dtype(_ name: String) throws -> DType {
        guard let d = try optDType(name, required: true) else { throw IRError("\(op): missing required field '\(name)'") }
        return d
    }

    func optDType(_ name: String, required: Bool = false) throws -> DType? {
        guard let a = try get(name, required: required) else { return nil }
        guard case .dtype(let d) = a else { throw wrong(name, "dtype", a) }
        return d
    }

    func dtypes(_ name: String, _ required: Bool) throws -> [DType] {
        guard let a = try get(name, required: required) else { return [] }
        if case .dtypes(let xs) = a { return xs }
        if a.isEmptyList { return [] }
        throw wrong(name, "dtype list", a)
    }

    func intOrValue(_ name: String) throws -> IntOrValue {
        guard let x = try optIntOrValue(name, required: true) else { throw IRError("\(op): missing required field '\(name)'") }
        return x
    }

    func optIntOrValue(_ name: String, required: Bool = false) throws -> IntOrValue? {
        guard let a = try get(name, required: required) else { return nil }
        switch a {
        case .intOrValue(let x): return x
        case .int(let n): return .literal(n)
        case .value(let v): return .value(v)
        default: throw wrong(name, "int or value", a)
        }
    }

    func intOrValues(_ name: String, _ required: Bool) throws -> [IntOrValue] {
        guard let a = try get(name, required: required) else { return [] }
        switch a {
        case .intOrValues(let xs): return xs
        case .ints(let xs): return xs.map { .literal($0) }
        case .values(let vs): return vs.map { .value($0) }
        default:
            if a.isEmptyList { return [] }
            throw wrong(name, "int-or-value list", a)
        }
    }

    func floatOrValue(_ name: String) throws -> FloatOrValue {
        guard let a = try get(name, required: true) else { throw IRError("\(op): missing required field '\(name)'") }
        switch a {
        case .floatOrValue(let x): return x
        case .float(let x): return .literal(x)
        case .int(let n): return .literal(Double(n))
        case .value(let v): return .value(v)
        default: throw wrong(name, "float or value", a)
        }
    }
}
'''


def gen_collect(fields, wanted):
    """Swift expression/body listing the ValueIDs of `fields` selected by `wanted(schema_name)`."""
    sel = [(f, sw, k) for f, sw, k in fields if k.collect and wanted(f.name)]
    if not sel:
        return "[]"
    if all(k.collect == "plain" for _, _, k in sel):
        return "[" + ", ".join(esc(sw) for _, sw, _ in sel) + "]"
    if len(sel) == 1 and sel[0][2].collect == "all":
        return esc(sel[0][1])
    lines, plain = [], []
    for f, sw, k in sel:
        if k.collect == "plain" and not lines:
            plain.append(esc(sw))
            continue
        if not lines:
            lines.append("var ids: [ValueID] = [" + ", ".join(plain) + "]")
        if k.collect == "plain":
            lines.append(f"ids.append({esc(sw)})")
        else:
            lines.append(f"ids.{k.collect}({esc(sw)})")
    lines.append("return ids")
    return "{ " + "; ".join(lines) + " }"


def gen_op_struct(op, out):
    w = out.append
    src = "MLX delegate schema" if op.is_mlx else "mlxc_ops.fbs"
    tag = f" (union tag {op.tag})" if op.is_mlx else ""
    w(f"/// `{op.name}`: {op.table} from the {src}{tag}.")
    for line in op.doc:
        w(f"/// {line}".rstrip())
    w(f"public struct {op.struct}: Hashable, Sendable {{")
    for (f, sw, k), docs in zip(op.fields, op.field_docs):
        for line in docs:
            w(f"    /// {line}".rstrip())
        w(f"    public var {esc(sw)}: {k.swift}")
    params = []
    for f, sw, k in op.fields:
        p = f"{esc(sw)}: {k.swift}"
        if k.default is not None:
            p += f" = {k.default}"
        params.append(p)
    if op.fields:
        w("")
        w(f"    public init({', '.join(params)}) {{")
        w("        " + "; ".join(f"self.{esc(sw)} = {esc(sw)}" for f, sw, k in op.fields))
        w("    }")
    else:
        w("    public init() {}")
    # text form
    attrs = ", ".join(f"({swift_string(f.name)}, {fill(k.attr, v=esc(sw))})" for f, sw, k in op.fields)
    w("")
    w(f"    fileprivate var attributes: [(name: String, value: Attribute)] {{ [{attrs}] }}")
    if op.fields:
        w("    fileprivate init(_ r: FieldReader) throws {")
        for f, sw, k in op.fields:
            w(f"        self.{esc(sw)} = try r.{fill(k.reader, n=swift_string(f.name))}")
        w("    }")
    else:
        w("    fileprivate init(_ r: FieldReader) {}")
    results = gen_collect(op.fields, lambda n: n in RESULT_FIELDS)
    operands = gen_collect(op.fields, lambda n: n not in RESULT_FIELDS)
    for name, body in (("resultIDs", results), ("operandIDs", operands)):
        body = body if body.startswith("{") else "{ " + body + " }"
        w(f"    fileprivate var {name}: [ValueID] {body}")
    remaps = [(sw, k) for f, sw, k in op.fields if k.remap]
    if remaps:
        body = "; ".join(f"o.{esc(sw)} = {fill(k.remap, v='o.' + esc(sw))}" for sw, k in remaps)
        w(f"    fileprivate func mapped(_ f: (ValueID) -> ValueID) -> Self {{ var o = self; {body}; return o }}")
    else:
        w("    fileprivate func mapped(_ f: (ValueID) -> ValueID) -> Self { self }")
    w("}")
    w("")


def gen_op_file(ops, sources):
    out = [header(sources)]
    w = out.append
    n_mlx = sum(1 for op in ops if op.is_mlx)
    w("/// The closed op set of the graph IR: one case per node table of the MLX delegate schema (in")
    w("/// `union OpNode` order, so MLX tag N is the N-th case) followed by mlxc's own ops (mlxc_ops.fbs).")
    w("/// Fields that name values (`Tid`/`Vid` in the schemas) are `ValueID`s; `out`/`outs`/`outputs` are results.")
    w("public enum Op: Hashable, Sendable {")
    for op in ops:
        w(f"    case {esc(op.case)}({op.struct})")
    w("}")
    w("")
    w("extension Op {")
    w(f"    /// How many leading cases come from the MLX schema (union tags 1...{n_mlx}).")
    w(f"    public static let mlxNodeCount = {n_mlx}")
    w("")
    w("    /// Every op name as IR text spells it, in case order.")
    w("    public static let allNames: [String] = [")
    for i in range(0, len(ops), 6):
        w("        " + " ".join(swift_string(op.name) + "," for op in ops[i:i + 6]))
    w("    ]")
    w("")
    w("    /// The schema table of every op (`QuantizedMatmulNode`), in case order.")
    w("    public static let schemaTableNames: [String] = [")
    for i in range(0, len(ops), 5):
        w("        " + " ".join(swift_string(op.table) + "," for op in ops[i:i + 5]))
    w("    ]")
    w("")
    w("    /// Position of this case in `allNames` (MLX union tag minus one for MLX nodes).")
    w("    public var ordinal: Int {")
    w("        switch self {")
    for i, op in enumerate(ops):
        w(f"        case .{esc(op.case)}: return {i}")
    w("        }")
    w("    }")
    w("")
    w("    /// The op's name in IR text, e.g. `quantized_matmul`.")
    w("    public var name: String { Op.allNames[ordinal] }")
    w("    /// True for ops that are MLX delegate nodes (false for mlxc's own ops).")
    w("    public var isMLXNode: Bool { ordinal < Op.mlxNodeCount }")
    w("    /// The schema table name, e.g. `QuantizedMatmulNode` (for mlxc's own ops, their mlxc_ops.fbs table).")
    w("    public var mlxNodeTypeName: String { Op.schemaTableNames[ordinal] }")
    w("")
    w("    /// Every field in schema declaration order, under its schema (snake_case) name; absent optionals are `.none`.")
    w("    public var fields: [(name: String, value: Attribute)] {")
    w("        switch self {")
    for op in ops:
        w(f"        case .{esc(op.case)}(let o): return o.attributes")
    w("        }")
    w("    }")
    w("")
    w("    /// The values this op writes: its `out`, `outs` or `outputs` fields.")
    w("    public var results: [ValueID] {")
    w("        switch self {")
    for op in ops:
        w(f"        case .{esc(op.case)}(let o): return o.resultIDs")
    w("        }")
    w("    }")
    w("")
    w("    /// Every other value the op names, in declaration order (including values inside IntOrValue/FloatOrValue).")
    w("    public var operands: [ValueID] {")
    w("        switch self {")
    for op in ops:
        w(f"        case .{esc(op.case)}(let o): return o.operandIDs")
    w("        }")
    w("    }")
    w("")
    w("    /// The same op with every value (results and operands) renumbered through `f`.")
    w("    public func mapValues(_ f: (ValueID) -> ValueID) -> Op {")
    w("        switch self {")
    for op in ops:
        w(f"        case .{esc(op.case)}(let o): return .{esc(op.case)}(o.mapped(f))")
    w("        }")
    w("    }")
    w("")
    w("    /// Rebuilds an op from its text form (`name` and `fields` as `name`/`fields` produce them).")
    w("    /// Fields the schema does not mark required may be left out (they take the schema default), except")
    w("    /// dtype fields without `= null`, which must be given;")
    w("    /// a missing required field, an unknown field, a wrong attribute kind or an unknown name throws.")
    w("    public init(name: String, fields: [String: Attribute]) throws {")
    w("        let r = FieldReader(op: name, fields: fields)")
    w("        switch name {")
    for op in ops:
        t = "try " if op.fields else ""
        w(f"        case {swift_string(op.name)}: self = .{esc(op.case)}({t}{op.struct}(r))")
    w("        default: throw IRError(\"unknown op '\\(name)'\")")
    w("        }")
    w("        try r.finish()")
    w("    }")
    w("}")
    w(OP_PRELUDE)
    w("// MARK: - Op payloads")
    w("")
    for op in ops:
        gen_op_struct(op, out)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# MLXSchema.generated.swift
# ---------------------------------------------------------------------------------------------

MLX_PRELUDE = r'''
/// Turns the slot indices of an MLX payload into IR values and ET ScalarType codes into dtypes.
/// `context` names the field (`RopeNode.offset`, `SplitNode.outs`); `offset` is the absolute file
/// offset of the index (the FlatBuffer's `fileOffset` included), ready for `FormatError(context, at: offset, …)`.
/// `isResult` is true for the fields a node writes (`out`, `outs`, `outputs`), read in declaration order.
public protocol MLXSlotResolver {
    func tensor(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID
    func scalar(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID
    func dtype(_ code: Int8, _ context: String, _ offset: Int) throws -> DType
}

/// Reads the fields of one node table; every helper takes the field id and schema name.
struct MLXNodeReader {
    let t: FBTable
    /// The node table's name, e.g. `RopeNode`.
    let node: String
    let resolver: MLXSlotResolver

    func ctx(_ field: String) -> String { "\(node).\(field)" }

    /// Absolute file offset of a position in the payload's FlatBuffer (what resolvers report).
    func abs(_ position: Int) -> Int { t.fb.fileOffset + position }

    /// Whether a field is one the node writes (see `Op.results`).
    func isResult(_ field: String) -> Bool { field == "out" || field == "outs" || field == "outputs" }

    func missing(_ id: Int, _ field: String, _ what: String = "required field is missing") -> FormatError {
        t.fb.error(ctx(field), t.positionOf(id), what)
    }

    private func exact<T: FixedWidthInteger>(_ x: T, _ id: Int, _ field: String) throws -> Int {
        guard let n = Int(exactly: x) else { throw missing(id, field, "\(x) does not fit in Int") }
        return n
    }

    // Tid / Vid (inline structs)

    func tid(_ id: Int, _ field: String) throws -> ValueID {
        guard let v = try optTid(id, field) else { throw missing(id, field) }
        return v
    }

    func optTid(_ id: Int, _ field: String) throws -> ValueID? {
        guard let (idx, at) = try t.structUInt32(id, field) else { return nil }
        return try resolver.tensor(idx, ctx(field), abs(at), isResult: isResult(field))
    }

    func vid(_ id: Int, _ field: String) throws -> ValueID {
        guard let v = try optVid(id, field) else { throw missing(id, field) }
        return v
    }

    func optVid(_ id: Int, _ field: String) throws -> ValueID? {
        guard let (idx, at) = try t.structUInt32(id, field) else { return nil }
        return try resolver.scalar(idx, ctx(field), abs(at), isResult: isResult(field))
    }

    func tids(_ id: Int, _ field: String, _ required: Bool) throws -> [ValueID] {
        guard let v = try t.vector(id, field, elementSize: 4) else {
            if required { throw missing(id, field) }
            return []
        }
        let name = ctx(field), result = isResult(field)
        var out: [ValueID] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count {
            out.append(try resolver.tensor(v.scalar(i, UInt32.self), name, abs(v.elementPosition(i)), isResult: result))
        }
        return out
    }

    // Scalars

    func int<T: FixedWidthInteger>(_ id: Int, _ field: String, _ type: T.Type, _ defaultValue: T) throws -> Int {
        try exact(try t.scalar(id, field, default: defaultValue), id, field)
    }

    func optInt<T: FixedWidthInteger>(_ id: Int, _ field: String, _ type: T.Type) throws -> Int? {
        guard let x = try t.optionalScalar(id, field, type) else { return nil }
        return try exact(x, id, field)
    }

    func ints<T: FixedWidthInteger>(_ id: Int, _ field: String, _ type: T.Type, _ required: Bool) throws -> [Int] {
        guard let v = try t.vector(id, field, elementSize: MemoryLayout<T>.size) else {
            if required { throw missing(id, field) }
            return []
        }
        var out: [Int] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count { out.append(try exact(v.scalar(i, type), id, field)) }
        return out
    }

    func bool(_ id: Int, _ field: String, _ defaultValue: Bool) throws -> Bool {
        try t.bool(id, field, default: defaultValue)
    }

    func float(_ id: Int, _ field: String, _ defaultValue: Float) throws -> Double {
        Double(try t.float(id, field, default: defaultValue))
    }

    func optFloat(_ id: Int, _ field: String) throws -> Double? {
        t.has(id) ? Double(try t.float(id, field)) : nil
    }

    func double(_ id: Int, _ field: String, _ defaultValue: Double) throws -> Double {
        try t.double(id, field, default: defaultValue)
    }

    func optDouble(_ id: Int, _ field: String) throws -> Double? {
        t.has(id) ? try t.double(id, field) : nil
    }

    func dtype(_ id: Int, _ field: String, _ defaultValue: Int8) throws -> DType {
        try resolver.dtype(try t.scalar(id, field, default: defaultValue), ctx(field), abs(t.positionOf(id)))
    }

    func optDType(_ id: Int, _ field: String) throws -> DType? {
        guard let code = try t.optionalScalar(id, field, Int8.self) else { return nil }
        return try resolver.dtype(code, ctx(field), abs(t.positionOf(id)))
    }

    func dtypes(_ id: Int, _ field: String, _ required: Bool) throws -> [DType] {
        guard let v = try t.vector(id, field, elementSize: 1) else {
            if required { throw missing(id, field) }
            return []
        }
        let name = ctx(field)
        var out: [DType] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count { out.append(try resolver.dtype(v.scalar(i, Int8.self), name, abs(v.elementPosition(i)))) }
        return out
    }

    // Strings

    func string(_ id: Int, _ field: String) throws -> String {
        guard let s = try t.string(id, field) else { throw missing(id, field) }
        return s
    }

    func optString(_ id: Int, _ field: String) throws -> String? {
        try t.string(id, field)
    }

    func strings(_ id: Int, _ field: String, _ required: Bool) throws -> [String] {
        guard let v = try t.vector(id, field, elementSize: 4) else {
            if required { throw missing(id, field) }
            return []
        }
        return try (0..<v.count).map { try v.string($0) }
    }

    // IntOrVid { literal: int64; vid: Vid; is_vid: bool }, IntOrVidOrTid { literal; vid; tid; kind: uint8 },
    // FloatOrVid { literal: double; vid: Vid; is_vid: bool }, VidOrTid { vid; tid; is_vid }

    private func scalarSlot(_ s: FBTable, _ id: Int, _ name: String) throws -> ValueID {
        guard let (idx, at) = try s.structUInt32(id, "vid") else {
            throw t.fb.error("\(name).vid", s.position, "is_vid is set but vid is missing")
        }
        return try resolver.scalar(idx, name, abs(at), isResult: false)
    }

    private func tensorSlot(_ s: FBTable, _ id: Int, _ name: String) throws -> ValueID {
        guard let (idx, at) = try s.structUInt32(id, "tid") else {
            throw t.fb.error("\(name).tid", s.position, "a tensor is selected but tid is missing")
        }
        return try resolver.tensor(idx, name, abs(at), isResult: false)
    }

    private func readIntOrVid(_ s: FBTable, _ name: String) throws -> IntOrValue {
        if try s.bool(2, "is_vid") { return .value(try scalarSlot(s, 1, name)) }
        return .literal(try s.scalar(0, "literal", default: Int64(0)))
    }

    private func readIntOrVidOrTid(_ s: FBTable, _ name: String) throws -> IntOrValue {
        let kind = try s.scalar(3, "kind", default: UInt8(0))
        switch kind {
        case 0: return .literal(try s.scalar(0, "literal", default: Int64(0)))
        case 1: return .value(try scalarSlot(s, 1, name))
        case 2: return .value(try tensorSlot(s, 2, name))
        default: throw t.fb.error("\(name).kind", s.positionOf(3), "unknown kind \(kind) (0 literal, 1 vid, 2 tid)")
        }
    }

    func intOrVid(_ id: Int, _ field: String) throws -> IntOrValue {
        guard let x = try optIntOrVid(id, field) else { throw missing(id, field) }
        return x
    }

    func optIntOrVid(_ id: Int, _ field: String) throws -> IntOrValue? {
        let name = ctx(field)
        guard let s = try t.table(id, field, name) else { return nil }
        return try readIntOrVid(s, name)
    }

    func intOrVidOrTid(_ id: Int, _ field: String) throws -> IntOrValue {
        guard let x = try optIntOrVidOrTid(id, field) else { throw missing(id, field) }
        return x
    }

    func optIntOrVidOrTid(_ id: Int, _ field: String) throws -> IntOrValue? {
        let name = ctx(field)
        guard let s = try t.table(id, field, name) else { return nil }
        return try readIntOrVidOrTid(s, name)
    }

    func intOrVids(_ id: Int, _ field: String, _ required: Bool) throws -> [IntOrValue] {
        try tableVector(id, field, required, readIntOrVid)
    }

    func intOrVidOrTids(_ id: Int, _ field: String, _ required: Bool) throws -> [IntOrValue] {
        try tableVector(id, field, required, readIntOrVidOrTid)
    }

    private func tableVector(_ id: Int, _ field: String, _ required: Bool,
                             _ read: (FBTable, String) throws -> IntOrValue) throws -> [IntOrValue] {
        guard let v = try t.vector(id, field, elementSize: 4) else {
            if required { throw missing(id, field) }
            return []
        }
        let name = ctx(field)
        var out: [IntOrValue] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count {
            let element = "\(name)[\(i)]"
            out.append(try read(try v.table(i, element), element))
        }
        return out
    }

    func floatOrVid(_ id: Int, _ field: String) throws -> FloatOrValue {
        let name = ctx(field)
        guard let s = try t.table(id, field, name) else { throw missing(id, field) }
        if try s.bool(2, "is_vid") { return .value(try scalarSlot(s, 1, name)) }
        return .literal(try s.double(0, "literal"))
    }

    func vidOrTid(_ id: Int, _ field: String) throws -> ValueID {
        let name = ctx(field)
        guard let s = try t.table(id, field, name) else { throw missing(id, field) }
        if try s.bool(2, "is_vid") { return try scalarSlot(s, 0, name) }
        return try tensorSlot(s, 1, name)
    }
}
'''


def container_tables(mlx, node_tables):
    """Tables, enums and unions reachable from the root type, root first."""
    root = mlx.root_type
    if not root or root not in mlx.decls:
        raise SchemaError(f"{mlx.path}: root_type is missing")
    seen, order, queue = set(), [], [root]
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        decl = mlx.decls[name]
        order.append(decl)
        if decl.kind == "table":
            for f in decl.fields:
                d = mlx.decls.get(f.elem)
                if d is not None and d.kind in ("table", "enum", "union") and f.elem not in node_tables:
                    queue.append(f.elem)
    return order


def container_swift_name(name):
    return "MLXGraphTable" if name == "MLXGraph" else "MLX" + name


def gen_container(decl, mlx, out):
    """A plain struct (or enum) for one container table of the MLX schema, decoded from an FBTable."""
    w = out.append
    sname = container_swift_name(decl.name)
    if decl.kind == "enum":
        base = INT_TYPES.get(decl.base)
        if not base:
            raise SchemaError(f"{decl.name}: unsupported enum base {decl.base}")
        w(f"/// `enum {decl.name} : {decl.base}` of the MLX schema.")
        w(f"public enum {sname}: {base}, Sendable, Hashable, CaseIterable {{")
        for vname, value in decl.values:
            w(f"    case {esc(lower_camel_type(vname))} = {value}")
        w("}")
        w("")
        return
    if decl.kind == "union":
        return
    props, reads = [], []
    for f in decl.fields:
        sw = esc(camel_field(f.name))
        q = swift_string(f.name)
        d = mlx.decls.get(f.elem)
        if d is not None and d.kind == "union":
            tag, tbl = camel_field(f.name) + "Tag", camel_field(f.name) + "Table"
            if f.elem == "OpNode":
                tag, tbl = "tag", "table"
                props.append(("tag", "UInt8", f"union `{f.name}` type: an `OpNode` tag (see `mlxNodeTypeNames`)"))
                props.append(("table", "FBTable?", "the node table, undecoded (`decodeMLXOp` reads it)"))
                type_name = "mlxNodeTypeName(tag: tag) ?? \"OpNode member \\(tag)\""
            else:
                props.append((tag, "UInt8", f"union `{f.name}` type"))
                props.append((tbl, "FBTable?", f"union `{f.name}` value, undecoded"))
                type_name = swift_string(f.elem)
            reads.append(f"{tag} = try t.scalar({f.id}, {swift_string(f.name + '_type')}, default: UInt8(0))")
            if f.required:
                reads.append(f"{tbl} = try t.requiredTable({f.id + 1}, {q}, {type_name})")
            else:
                reads.append(f"{tbl} = try t.table({f.id + 1}, {q}, {type_name})")
            continue
        if f.is_vector:
            if d is not None and d.kind == "table":
                elem_sw = container_swift_name(f.elem)
                props.append((sw, f"[{elem_sw}]", None))
                reads.append(f"{sw} = try mlxTables(t, {f.id}, {q}, {swift_string(f.elem)}, {'true' if f.required else 'false'}, {elem_sw}.init)")
            elif f.elem in INT_TYPES and INT_TYPES[f.elem]:
                st = INT_TYPES[f.elem]
                props.append((sw, f"[{st}]", None))
                reads.append(f"{sw} = try mlxScalars(t, {f.id}, {q}, {st}.self, {'true' if f.required else 'false'})")
            elif f.elem == "string":
                props.append((sw, "[String]", None))
                reads.append(f"{sw} = try mlxStrings(t, {f.id}, {q}, {'true' if f.required else 'false'})")
            else:
                raise SchemaError(f"{decl.name}.{f.name}: unsupported container vector [{f.elem}]")
        elif d is not None and d.kind == "table":
            st = container_swift_name(f.elem)
            if f.required:
                props.append((sw, st, None))
                reads.append(f"{sw} = try {st}(t.requiredTable({f.id}, {q}, {swift_string(f.elem)}))")
            else:
                props.append((sw, st + "?", None))
                reads.append(f"{sw} = try t.table({f.id}, {q}, {swift_string(f.elem)}).map {{ try {st}($0) }}")
        elif d is not None and d.kind == "enum":
            st = container_swift_name(f.elem)
            base = INT_TYPES[d.base]
            dflt = f.default or "0"
            names = dict(d.values)
            raw = names[dflt] if dflt in names else int(dflt, 0)
            props.append((sw, st, None))
            reads.append(f"{sw} = try mlxEnum(t, {f.id}, {q}, {swift_string(f.elem)}, {base}({raw}), {st}.init(rawValue:))")
        elif f.elem == "string":
            if f.required:
                props.append((sw, "String", None))
                reads.append(f"{sw} = try mlxString(t, {f.id}, {q})")
            else:
                props.append((sw, "String?", None))
                reads.append(f"{sw} = try t.string({f.id}, {q})")
        elif f.elem == "bool":
            props.append((sw, "Bool", None))
            reads.append(f"{sw} = try t.bool({f.id}, {q}, default: {'true' if f.default == 'true' else 'false'})")
        elif f.elem in INT_TYPES and INT_TYPES[f.elem]:
            st = INT_TYPES[f.elem]
            if f.null_default:
                props.append((sw, st + "?", None))
                reads.append(f"{sw} = try t.optionalScalar({f.id}, {q}, {st}.self)")
            else:
                props.append((sw, st, None))
                reads.append(f"{sw} = try t.scalar({f.id}, {q}, default: {st}({int(f.default or '0', 0)}))")
        else:
            raise SchemaError(f"{decl.name}.{f.name}: unsupported container field type {f.type}")
    w(f"/// Table `{decl.name}` of the MLX schema.")
    w(f"public struct {sname} {{")
    for name, type_, doc in props:
        if doc:
            w(f"    /// {doc[:1].upper() + doc[1:]}.")
        w(f"    public var {name}: {type_}")
    w("    /// Position of the table in the payload's FlatBuffer.")
    w("    public var position: Int")
    w("")
    w("    public init(_ t: FBTable) throws {")
    for line in reads:
        w("        " + line)
    w("        position = t.position")
    w("    }")
    w("}")
    w("")


CONTAINER_HELPERS = r'''
// MARK: - Container helpers

private func mlxTables<T>(_ t: FBTable, _ id: Int, _ field: String, _ typeName: String, _ required: Bool,
                          _ make: (FBTable) throws -> T) throws -> [T] {
    guard let v = try t.vector(id, field, elementSize: 4) else {
        if required { throw t.fb.error("\(t.name).\(field)", t.position, "required field is missing") }
        return []
    }
    var out: [T] = []
    out.reserveCapacity(v.count)
    for i in 0..<v.count { out.append(try make(try v.table(i, typeName))) }
    return out
}

private func mlxScalars<T: FixedWidthInteger>(_ t: FBTable, _ id: Int, _ field: String, _ type: T.Type,
                                              _ required: Bool) throws -> [T] {
    guard let v = try t.vector(id, field, elementSize: MemoryLayout<T>.size) else {
        if required { throw t.fb.error("\(t.name).\(field)", t.position, "required field is missing") }
        return []
    }
    return v.scalars(type)
}

private func mlxStrings(_ t: FBTable, _ id: Int, _ field: String, _ required: Bool) throws -> [String] {
    guard let v = try t.vector(id, field, elementSize: 4) else {
        if required { throw t.fb.error("\(t.name).\(field)", t.position, "required field is missing") }
        return []
    }
    return try (0..<v.count).map { try v.string($0) }
}

private func mlxString(_ t: FBTable, _ id: Int, _ field: String) throws -> String {
    guard let s = try t.string(id, field) else {
        throw t.fb.error("\(t.name).\(field)", t.position, "required field is missing")
    }
    return s
}

private func mlxEnum<Raw: FixedWidthInteger, E>(_ t: FBTable, _ id: Int, _ field: String, _ enumName: String,
                                                _ defaultValue: Raw, _ make: (Raw) -> E?) throws -> E {
    let raw = try t.scalar(id, field, default: defaultValue)
    guard let value = make(raw) else {
        throw t.fb.error("\(t.name).\(field)", t.positionOf(id), "unknown \(enumName) value \(raw)")
    }
    return value
}
'''


def gen_mlx_file(union, ops, mlx, sources):
    out = [header(sources)]
    w = out.append
    w("import MLXCIR")
    mlx_ops = [op for op in ops if op.is_mlx]
    n = len(mlx_ops)
    w("")
    w("/// `union OpNode` member names by tag (index 0 is `NONE`).")
    w("public let mlxNodeTypeNames: [String] = [")
    names = ["NONE"] + [op.table for op in mlx_ops]
    for i in range(0, len(names), 5):
        w("    " + " ".join(swift_string(x) + "," for x in names[i:i + 5]))
    w("]")
    w("")
    w("/// The node table name for a union tag, or nil for `NONE` and tags this reader does not know.")
    w("public func mlxNodeTypeName(tag: UInt8) -> String? {")
    w("    let i = Int(tag)")
    w("    return i >= 1 && i < mlxNodeTypeNames.count ? mlxNodeTypeNames[i] : nil")
    w("}")
    w("")
    node_tables = set(union.values)
    for decl in container_tables(mlx, node_tables):
        gen_container(decl, mlx, out)
    w("extension MLXGraphTable {")
    w(f"    /// Decodes the root `{mlx.root_type}` table of a payload.")
    w("    public init(_ fb: FlatBuffer) throws {")
    w(f"        try self.init(fb.root({swift_string(mlx.root_type)}))")
    w("    }")
    w("}")
    w(CONTAINER_HELPERS)
    w(MLX_PRELUDE)
    w("/// Decodes one MLX node table (the `Instruction.op` union value with type `tag`) into an IR op,")
    w("/// resolving slot indices through `resolver`. Every field is read and checked; nothing traps on bad data.")
    w("public func decodeMLXOp(tag: UInt8, table: FBTable, resolver: MLXSlotResolver) throws -> Op {")
    w("    guard let node = mlxNodeTypeName(tag: tag) else {")
    w(f"        throw table.fb.error(\"Instruction.op\", table.position, \"unknown MLX node type tag \\(tag) (this reader knows 1...{n})\")")
    w("    }")
    w("    let d = MLXNodeReader(t: table, node: node, resolver: resolver)")
    w("    switch tag {")
    for op in mlx_ops:
        args = ", ".join(f"{esc(sw)}: d.{fill(k.decode, id=f.id, n=swift_string(f.name))}" for f, sw, k in op.fields)
        t = "try " if op.fields else ""
        w(f"    case {op.tag}: return .{esc(op.case)}({t}{op.struct}({args}))")
    w(f"    default: throw table.fb.error(\"Instruction.op\", table.position, \"unknown MLX node type tag \\(tag) (this reader knows 1...{n})\")")
    w("    }")
    w("}")
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mlx-schema", default=DEFAULT_MLX)
    ap.add_argument("--mlxc-schema", default=DEFAULT_MLXC)
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = ap.parse_args(argv)
    try:
        mlx = Schema(args.mlx_schema)
        mlxc = Schema(args.mlxc_schema)
        union, ops = build_ops(mlx, mlxc)
        sources = [args.mlx_schema, args.mlxc_schema]
        files = {OUT_OP: gen_op_file(ops, sources), OUT_MLX: gen_mlx_file(union, ops, mlx, sources)}
    except (SchemaError, OSError) as e:
        print(f"gen_ops.py: {e}", file=sys.stderr)
        return 1
    stale = []
    for path, text in files.items():
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old == text:
            continue
        stale.append(path)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
    n_mlx = sum(1 for op in ops if op.is_mlx)
    for path in files:
        rel = os.path.relpath(path, ROOT)
        state = ("out of date" if args.check else "written") if path in stale else "unchanged"
        print(f"{rel}: {state}")
    print(f"{len(ops)} ops ({n_mlx} MLX nodes, {len(ops) - n_mlx} mlxc ops)")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
