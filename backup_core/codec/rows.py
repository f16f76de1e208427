"""Rows: one raw BSON document <-> one CSV row (list of cells), by the fastest path that vouches for it.

``RowEncoder.encode`` and ``RowDecoder.decode`` first try the compiled
accelerator (``accel.py``, C, when built); whenever it cannot vouch for its
result ("not handled here"), or is not built, the exact walker
(``_exact_row`` / ``_exact_document``) runs, which also raises the errors the
format defines. Both follow the same ``cells`` table, so the text and bytes
written never depend on which path ran.

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
from .accel import COUNTS
from .bsonwalk import MAX_BSON_SIZE, cstring, document, iter_elements
from .cells import BY_BSON_TYPE, BY_NAME, PLAIN
from .dialect import Pairs, dumps, from_json_text, loads, obj_to_value, to_json_text, value_to_json_text
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


class RowEncoder:
    """Second pass: one raw BSON document -> one CSV row (list of cells)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._index = {c.name: i for i, c in enumerate(schema.columns)}
        self._types = [c.type for c in schema.columns]
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
        COUNTS["encode_exact"] += 1
        return self._exact_row(raw)

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


class RowDecoder:
    """One CSV row -> raw BSON bytes, strictly validated."""

    MAX_PLANS = 1024

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._names = [cstring(c.name) for c in schema.columns]
        self._types = [c.type for c in schema.columns]
        self._all = list(range(len(schema.columns)))
        # meta cell text -> what the compiled accelerator takes for rows with it: (int32 pairs (column, cell
        # type code) in field order, int32 missing columns), or None when the exact walker must decide
        self._plans: dict[str, tuple[bytes, bytes] | None] = {}
        names = _compiled_names(schema) if accel.speedups is not None else None
        self._compiled = None if names is None else accel.speedups.RowDecoder(names)

    def decode(self, row: Sequence[str]) -> bytes:
        n = len(self._types)
        if len(row) != n + 1:
            raise CodecError(f"row has {len(row)} cells, expected {n + 1}")
        if accel.on and self._compiled is not None:
            plan = self._plan(row[n])
            if plan is not None:
                raw = self._compiled.decode(row, *plan)
                if raw is not None:
                    COUNTS["decode_compiled"] += 1
                    return self._check_size(raw)
        COUNTS["decode_exact"] += 1
        return self._check_size(self._exact_document(row))

    def _plan(self, meta_cell: str) -> tuple[bytes, bytes] | None:
        """The accelerator's arguments for rows with this meta cell; None for a meta cell that is not
        valid JSON of the usual shape, or holds ``doc`` (the exact walker decides and explains).

        These are ``_exact_document``'s checks (a plain dict keeps the last of
        repeated keys, as ``Pairs`` does there). Meta cells repeat (the same
        fields missing or null in many rows), so plans are cached by text.
        """
        try:
            return self._plans[meta_cell]
        except KeyError:
            pass
        if len(self._plans) >= self.MAX_PLANS:
            self._plans.clear()
        plan = self._plans[meta_cell] = self._make_plan(meta_cell)
        return plan

    def _make_plan(self, meta_cell: str) -> tuple[bytes, bytes] | None:
        order, types, missing = self._all, {}, []
        if meta_cell:
            try:
                meta = json.loads(meta_cell)
            except ValueError:
                return None
            if type(meta) is not dict or not meta.keys() <= {"missing", "types", "order"}:
                return None
            types = meta.get("types") or {}
            missing = meta.get("missing") or []
            order = meta.get("order")
            if order is None and type(missing) is list:
                absent = set(missing)
                order = [i for i in self._all if i not in absent] if missing else self._all
            if (type(types) is not dict or type(order) is not list or type(missing) is not list
                    or not all(type(i) is int for i in order + missing) or sorted(order + missing) != self._all):
                return None
        codes = []
        for i in order:
            ctype = types.get(str(i), self._types[i])
            code = _COMPILED_CODES.get(ctype) if type(ctype) is str else None
            if code is None:
                return None  # not a known cell type: the exact walker names it
            codes += (i, code)
        return struct.pack(f"<{len(codes)}i", *codes), struct.pack(f"<{len(missing)}i", *missing)

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
