"""Rows: one raw BSON document <-> one CSV row (list of cells), by the fastest path that vouches for it.

``RowEncoder.encode`` and ``RowDecoder.decode`` first try the compiled
accelerator (``accel.py``, C, when built), then the fast path (``_fast_row`` /
``_fast_document``, through pymongo's C extension, see ``fast.py``);
whenever neither can vouch for its result, the exact walker (``_exact_row`` /
``_exact_document``) runs, which also raises the errors the format defines.
All follow the same ``cells`` table, so the text and bytes written never
depend on which path ran.

A cell of the column's type is plain text; a cell of another type is noted
in the row's meta cell (``types``), as are missing fields, a field order
other than the column order, and whole documents with repeated names
(``doc``); see docs/FORMAT.md, "The meta cell".
"""

from __future__ import annotations

import csv
import json
import struct
from typing import Any, Iterable, Sequence

from ..errors import CodecError
from . import accel
from .bsonwalk import MAX_BSON_SIZE, cstring, document, iter_elements
from .cells import BY_BSON_TYPE, BY_NAME, PLAIN, STRING, NotFast
from .dialect import Pairs, dumps, from_json_text, loads, obj_to_value, to_json_text, value_to_json_text
from .fast import COUNTS, obj_from_json, value_json, walked_json
from .fast import cell as fast_cell
from .fast import decode as fast_decode
from .fast import encode as fast_encode
from .schema import Schema, SchemaBuilder

# A cell holds at most one 16 MiB document; JSON escaping can grow it, but
# never beyond this. Larger cells are hostile input and are refused.
MAX_CELL_CHARS = 48 * 1024 * 1024
csv.field_size_limit(MAX_CELL_CHARS)



def _exact_cell(t: int, buf: bytes, vs: int, ve: int) -> tuple[str, str]:
    """(cell text, cell type) of one value: plain text where its type has it, else the JSON dialect."""
    ct = BY_BSON_TYPE.get(t)
    if ct is not None:
        text = ct.text_from_bytes(buf, vs, ve)
        if text is not None:
            return text, ct.name
    return value_to_json_text(t, buf, vs, ve), "json"


def _exact_value(ctype: str, cell: str) -> tuple[int, bytes]:
    """(BSON type, value bytes) of a cell read as type ``ctype``."""
    if ctype == "json":
        return obj_to_value(loads(cell))
    try:
        ct = BY_NAME[ctype]
    except KeyError:
        raise CodecError(f"unknown cell type {ctype!r}") from None
    try:
        return ct.bson_type, ct.bytes_from_text(cell)
    except (ValueError, struct.error, ArithmeticError, CodecError) as exc:
        raise CodecError(f"invalid {ctype} cell {cell[:60]!r}: {exc}") from None


# cell type -> its code in the compiled accelerator (the BSON type of the plain form; json: 0)
_COMPILED_CODES = {ct.name: ct.bson_type for ct in PLAIN} | {"json": 0}


def _compiled_names(schema: Schema) -> list[bytes] | None:
    """Column names as the accelerator takes them (UTF-8, no NUL, distinct), or None: no accelerator."""
    try:
        names = [cstring(c.name)[:-1] for c in schema.columns]
    except CodecError:
        return None
    if len(set(names)) != len(names) or not all(c.type in _COMPILED_CODES for c in schema.columns):
        return None
    return names


_FieldPlan = tuple[int, "type | None", Any]  # (column, expected Python type, formatter)
# (fields, meta ``missing``, meta ``order``, meta cell when no cell needs a type note)
_RowPlan = tuple[list[_FieldPlan], "list[int] | None", "list[int] | None", str]


class RowEncoder:
    """Second pass: one raw BSON document -> one CSV row (list of cells)."""

    MAX_PLANS = 1024

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._index = {c.name: i for i, c in enumerate(schema.columns)}
        self._types = [c.type for c in schema.columns]
        # per column: (the decoded type whose values are plain cells of the column's type, its cell text);
        # (None, None) for json columns
        self._formats = [(ct.py_type, ct.text_from_obj) if (ct := BY_NAME.get(t)) else (None, None)
                         for t in self._types]
        # field names in document order -> what _fast_row needs for them (None: a name without column)
        self._plans: dict[tuple[str, ...], _RowPlan | None] = {}
        names = _compiled_names(schema) if accel.speedups is not None else None
        self._compiled = None if names is None else accel.speedups.RowEncoder(
            names, bytes(_COMPILED_CODES[t] for t in self._types))

    def encode(self, raw: bytes) -> list[str]:
        raw = bytes(raw)  # pymongo may hand out memoryviews
        if accel.on and self._compiled is not None:
            cells = self._compiled.encode(raw)
            if cells is not None:
                COUNTS["encode_compiled"] += 1
                return cells
        try:
            cells = self._fast_row(raw)
        except Exception:  # NotFast, or anything the exact walker turns into its own error
            COUNTS["encode_exact"] += 1
            return self._exact_row(raw)
        COUNTS["encode_fast"] += 1
        return cells

    def _plan(self, names: tuple[str, ...]) -> _RowPlan | None:
        """Per field (column, expected type, formatter), the meta cell's ``missing`` and ``order``
        and the meta cell when no cell needs a type note. Documents share few name sequences, so
        this is cached."""
        try:
            return self._plans[names]
        except KeyError:
            pass
        if len(self._plans) >= self.MAX_PLANS:
            self._plans.clear()
        index = self._index
        if not all(name in index for name in names):
            plan = None
        else:
            present = [index[name] for name in names]
            missing, order = self._layout(present)
            plan = ([(i, *self._formats[i]) for i in present], missing, order, self._meta_text(missing, None, order))
        self._plans[names] = plan
        return plan

    def _fast_row(self, raw: bytes) -> list[str]:
        """The row from pymongo's decoded objects (see ``fast.decode`` for why they are exact)."""
        doc = fast_decode(raw)
        plan = self._plan(tuple(doc))  # names are unique: a dict that encodes back to raw
        if plan is None:
            return self._whole_doc(raw)
        fields, missing, order, meta_text = plan
        cells = [""] * (len(self._types) + 1)
        types: dict[str, str] = {}
        to_json = value_json if b"$" not in raw else walked_json
        for (i, expected, fmt), v in zip(fields, doc.values()):
            if type(v) is expected:  # the common case: a plain cell of the column's type
                cells[i] = fmt(v)
            elif expected is None:  # a json column
                cells[i] = to_json(v)
            else:
                cells[i], ctype = fast_cell(v)
                if ctype != self._types[i]:
                    types[str(i)] = ctype
        cells[-1] = self._meta_text(missing, types, order) if types else meta_text
        return cells

    def _exact_row(self, raw: bytes) -> list[str]:
        """The row by the exact byte walker: every BSON document, and the errors for corrupt ones."""
        n = len(self._types)
        cells = [""] * (n + 1)
        present: list[int] = []
        types: dict[str, str] = {}
        index, ctypes = self._index, self._types
        for t, name, vs, ve in iter_elements(raw):
            i = index.get(name)
            if i is None:
                return self._whole_doc(raw)
            present.append(i)
            if ctypes[i] == "json":
                cells[i] = value_to_json_text(t, raw, vs, ve)
                continue
            text, ctype = _exact_cell(t, raw, vs, ve)
            cells[i] = text
            if ctype != ctypes[i]:
                types[str(i)] = ctype
        if len(set(present)) != len(present):
            return self._whole_doc(raw)  # repeated field names
        missing, order = self._layout(present)
        cells[n] = self._meta_text(missing, types, order)
        return cells

    def _layout(self, present: list[int]) -> tuple[list[int] | None, list[int] | None]:
        """The meta cell's ``missing`` and ``order`` for a document with fields in columns ``present``."""
        n = len(self._types)
        missing = None
        if len(present) != n:
            have = set(present)
            missing = [i for i in range(n) if i not in have]
        return missing, (present if present != sorted(present) else None)

    @staticmethod
    def _meta_text(missing: list[int] | None, types: dict[str, str] | None, order: list[int] | None) -> str:
        meta: dict[str, Any] = {}
        if missing:
            meta["missing"] = missing
        if types:
            meta["types"] = types
        if order:
            meta["order"] = order
        return dumps(meta) if meta else ""

    def _whole_doc(self, raw: bytes) -> list[str]:
        cells = [""] * (len(self._types) + 1)
        cells[-1] = dumps({"doc": to_json_text(raw)})
        return cells


# cell type -> parser of a cell into the object pymongo encodes as the exact walker's bytes
# (None for strings: unguarding is inlined, most cells are strings)
_OBJ_FROM_TEXT = {ct.name: None if ct is STRING else ct.obj_from_text for ct in BY_NAME.values()}
_OBJ_FROM_TEXT["json"] = obj_from_json


class RowDecoder:
    """One CSV row -> raw BSON bytes, strictly validated."""

    MAX_PLANS = 1024

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._names = [cstring(c.name) for c in schema.columns]
        self._keys = [c.name for c in schema.columns]
        self._types = [c.type for c in schema.columns]
        self._all = list(range(len(schema.columns)))
        # meta cell text -> (per field in order: (column, name, parser; None for strings), missing columns,
        # the same for the compiled accelerator: (int32 pairs (column, cell type code), int32 missing columns))
        self._plans: dict[str, tuple[list[tuple[int, str, Any]], list[int], tuple[bytes, bytes]]] = {}
        names = _compiled_names(schema) if accel.speedups is not None else None
        self._compiled = None if names is None else accel.speedups.RowDecoder(names)

    def decode(self, row: Sequence[str]) -> bytes:
        n = len(self._types)
        if len(row) != n + 1:
            raise CodecError(f"row has {len(row)} cells, expected {n + 1}")
        try:
            raw = self._fast_document(row)  # counts the path it took
        except Exception:  # NotFast, or anything the exact walker turns into its own error
            COUNTS["decode_exact"] += 1
            raw = self._exact_document(row)
        return self._check_size(raw)

    def _plan(self, meta_cell: str) -> tuple[list[tuple[int, str, Any]], list[int], tuple[bytes, bytes]]:
        """What ``_fast_document`` does for rows with this meta cell (valid, without ``doc``; else ``NotFast``).

        A plain dict is what ``_exact_document`` makes of the pairs too (the
        last of repeated keys wins in both), so these are its checks. Meta
        cells repeat (the same fields missing or null in many rows), so plans
        are cached by text.
        """
        try:
            return self._plans[meta_cell]
        except KeyError:
            pass
        order, types, missing = self._all, {}, []
        if meta_cell:
            meta = json.loads(meta_cell)
            if type(meta) is not dict or not meta.keys() <= {"missing", "types", "order"}:
                raise NotFast
            types = meta.get("types") or {}
            missing = meta.get("missing") or []
            order = meta.get("order")
            if order is None and type(missing) is list:
                absent = set(missing)
                order = [i for i in self._all if i not in absent] if missing else self._all
            if (type(types) is not dict or type(order) is not list or type(missing) is not list
                    or not all(type(i) is int for i in order + missing) or sorted(order + missing) != self._all):
                raise NotFast
        fields, codes = [], []
        for i in order:
            ctype = types.get(str(i), self._types[i])
            fields.append((i, self._keys[i], _OBJ_FROM_TEXT[ctype]))
            codes += (i, _COMPILED_CODES[ctype])
        compiled = (struct.pack(f"<{len(codes)}i", *codes), struct.pack(f"<{len(missing)}i", *missing))
        if len(self._plans) >= self.MAX_PLANS:
            self._plans.clear()
        plan = self._plans[meta_cell] = fields, missing, compiled
        return plan

    def _fast_document(self, row: Sequence[str]) -> bytes:
        """The document by the compiled accelerator, else as pymongo objects (``CellType.obj_from_text``)
        encoded by pymongo's C code in one call."""
        fields, missing, compiled = self._plan(row[len(self._types)])
        if accel.on and self._compiled is not None:
            raw = self._compiled.decode(row, *compiled)
            if raw is not None:
                COUNTS["decode_compiled"] += 1
                return raw
        if missing and any(row[i] for i in missing):
            raise NotFast  # the exact walker refuses it
        doc = {}
        for i, name, parse in fields:
            cell = row[i]
            doc[name] = (cell[1:] if cell[:1] == "'" else cell) if parse is None else parse(cell)
        raw = fast_encode(doc)
        COUNTS["decode_fast"] += 1
        return raw

    def _exact_document(self, row: Sequence[str]) -> bytes:
        """The document by the exact byte writer: every valid row, and the errors for invalid ones."""
        n = len(self._types)
        meta_cell = row[n]
        order: list[int] = self._all
        types: dict = {}
        if meta_cell:
            meta = loads(meta_cell)
            if not isinstance(meta, Pairs) or set(dict(meta)) - {"missing", "types", "order", "doc"}:
                raise CodecError("row meta cell must be a JSON object with keys missing/types/order/doc")
            meta = dict(meta)
            if "doc" in meta:
                if any(row[:n]) or not isinstance(meta["doc"], str):
                    raise CodecError("a whole-document row must hold the document in its meta cell only")
                return from_json_text(meta["doc"])
            types = meta.get("types") or {}
            if isinstance(types, Pairs):
                types = dict(types)
            missing = meta.get("missing") or []
            order = meta.get("order")
            if order is None:
                order = [i for i in self._all if i not in set(missing)] if missing else self._all
            if (not isinstance(types, dict) or not isinstance(order, list) or not isinstance(missing, list)
                    or not all(type(i) is int for i in order + missing)
                    or sorted(order + missing) != self._all):
                raise CodecError("row meta cell: order and missing must together list every column once")
            if any(row[i] for i in missing):
                raise CodecError("row meta cell marks a field missing but its cell is not empty")
        names, ctypes = self._names, self._types
        parts = []
        try:
            for i in order:
                ctype = types.get(str(i), ctypes[i]) if types else ctypes[i]
                t, data = _exact_value(ctype, row[i])
                parts.append(bytes((t,)) + names[i] + data)
        except (TypeError, IndexError):
            raise CodecError("row meta refers to a column that does not exist") from None
        return document(b"".join(parts))

    @staticmethod
    def _check_size(raw: bytes) -> bytes:
        if len(raw) > MAX_BSON_SIZE:
            raise CodecError(f"document of {len(raw)} bytes exceeds MongoDB's 16 MiB limit")
        return raw


# --------------------------------------------------------------------------
# Convenience for whole in-memory lists (tests, small tools)


def encode_documents(raw_docs: Sequence[bytes]) -> tuple[Schema, list[list[str]]]:
    builder = SchemaBuilder()
    for raw in raw_docs:
        builder.add(raw)
    schema = builder.build()
    enc = RowEncoder(schema)
    return schema, [enc.encode(raw) for raw in raw_docs]


def decode_rows(schema: Schema, rows: Iterable[Sequence[str]]) -> list[bytes]:
    dec = RowDecoder(schema)
    return [dec.decode(row) for row in rows]
