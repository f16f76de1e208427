"""Columns and their types: the first pass over a collection, and the typing the manifest stores.

Columns are the top-level field names in first-seen order; a column's type
is the most common cell type of its non-null values (ties: the first seen).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import CodecError
from . import accel
from .accel import COUNTS
from .bsonwalk import I64, T_DATE, cstring, iter_elements
from .cells import CELL_TYPES, MAX_ISO_MS, MIN_ISO_MS, PLAIN_TYPES, guard

META_COLUMN = "__bson_row__"


@dataclass
class Column:
    name: str
    type: str

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type}


@dataclass
class Schema:
    """Column typing of one CSV file; stored in the manifest."""

    columns: list[Column] = field(default_factory=list)

    def header(self) -> list[str]:
        return [guard(c.name) for c in self.columns] + [META_COLUMN]

    def to_json(self) -> dict:
        return {"columns": [c.to_json() for c in self.columns], "meta_column": META_COLUMN}

    @classmethod
    def from_json(cls, data: Any) -> "Schema":
        try:
            cols = [Column(str(c["name"]), str(c["type"])) for c in data["columns"]]
        except (TypeError, KeyError) as exc:
            raise CodecError(f"invalid column typing in manifest: {exc}") from None
        for c in cols:
            if c.type not in CELL_TYPES:
                raise CodecError(f"unknown column type {c.type!r} for column {c.name!r}")
            cstring(c.name)
        if len({c.name for c in cols}) != len(cols):
            raise CodecError("duplicate column names in manifest")
        return cls(cols)


def _column_vote(t: int, buf: bytes, vs: int) -> str:
    """The type a value counts as for its column: its BSON type's plain type, else ``json``.

    Cheap, by type byte (the accelerator's ``shape_key`` follows the same rule): only a date
    outside years 1..9999 counts as ``json``. The rare double or Decimal128
    whose bits only the dialect holds still counts as ``double`` /
    ``decimal`` (its cell then gets a type note); format version 1 typed
    columns so, and changing it would change the CSV written.
    """
    name = PLAIN_TYPES.get(t)
    if name is None:
        return "json"
    if t == T_DATE:
        ms = I64.unpack_from(buf, vs)[0]
        return "date" if MIN_ISO_MS <= ms <= MAX_ISO_MS else "json"
    return name


Shape = tuple[tuple[str, str], ...]


class SchemaBuilder:
    """First pass: sees every document once, decides columns and their types.

    Documents of one collection mostly share their *shape*: the sequence of
    (field name, cell type) of their top-level fields. So ``add`` only finds a
    document's shape and counts shapes; ``_flush`` turns shape counts into
    per-column type counts (in first-seen order, so ``build`` breaks ties as
    if every document had been counted one by one). A flush also happens
    every ``MAX_SHAPES`` distinct shapes, which bounds memory for collections
    whose documents all differ.
    """

    MAX_SHAPES = 4096

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._counts: list[Counter] = []
        self._shapes: dict[Shape, int] = {}  # shape -> documents, in first-seen order
        self._known: dict[bytes, Shape] = {}  # the accelerator's shape key -> shape

    def add(self, raw: bytes) -> None:
        raw = bytes(raw)  # pymongo may hand out memoryviews
        # the compiled walk: one bytes key (type byte, name, NUL per field; a date without ISO text
        # has type byte 0xFE), or None when the exact walker must look at the document
        ckey = accel.speedups.shape_key(raw) if accel.on else None
        if ckey is not None:
            shape = self._known.get(ckey)
            if shape is None:
                shape = self._known[ckey] = self._named_shape(ckey.split(b"\x00")[:-1], raw)
            COUNTS["shape_compiled"] += 1
        else:
            shape = self._exact_shape(raw)
            COUNTS["shape_exact"] += 1
        shapes = self._shapes
        shapes[shape] = shapes.get(shape, 0) + 1
        if len(shapes) >= self.MAX_SHAPES:
            self._flush()

    @staticmethod
    def _named_shape(key: Sequence[bytes], raw: bytes) -> Shape:
        """Decode a new shape key; stop before the first repeated name, as ``_exact_shape``."""
        shape: list[tuple[str, str]] = []
        seen: set[str] = set()
        for item in key:
            ctype = PLAIN_TYPES.get(item[0], "json")  # type byte 0xFE: a date without ISO text
            try:
                text = item[1:].decode("utf-8")
            except UnicodeDecodeError:
                return SchemaBuilder._exact_shape(raw)  # raises the walker's error
            if text in seen:
                break
            seen.add(text)
            shape.append((text, ctype))
        return tuple(shape)

    @staticmethod
    def _exact_shape(raw: bytes) -> Shape:
        """The shape by the exact walker: fields up to the first repeated name (such a
        document keeps the whole document in its row, its fields still count)."""
        shape: list[tuple[str, str]] = []
        seen: set[str] = set()
        for t, name, vs, _ve in iter_elements(raw):
            if name in seen:
                break
            seen.add(name)
            shape.append((name, _column_vote(t, raw, vs)))
        return tuple(shape)

    def _flush(self) -> None:
        index, names, counts = self._index, self._names, self._counts
        for shape, n in self._shapes.items():
            for name, ctype in shape:
                i = index.get(name)
                if i is None:
                    i = index[name] = len(names)
                    names.append(name)
                    counts.append(Counter())
                counts[i][ctype] += n
        self._shapes.clear()
        self._known.clear()

    def build(self) -> Schema:
        self._flush()
        cols = []
        for name, counts in zip(self._names, self._counts):
            non_null = [(n, k) for k, n in counts.items() if k != "null"]
            # most common type wins; ties go to the first seen
            ctype = max(non_null, key=lambda p: p[0])[1] if non_null else "null"
            cols.append(Column(name, ctype))
        return Schema(cols)
