"""The fast paths: pymongo's C extension does the byte work, and a switch and counters to watch it.

The exact walker (``bsonwalk``, ``dialect``, the exact halves of ``cells``)
does every byte in Python. The fast paths let pymongo's C extension turn
bytes into Python objects (``decode``, for encoding rows) and objects into
bytes (``encode``, for decoding rows); only the mapping between those
objects and cell text runs in Python, through the object halves of the
``cells`` table and the object side of the dialect below. The schema pass
has a shortcut of its own (``shape_key``: the top-level walk without
decoding names).

pymongo's object model is not lossless (Symbol decodes as str, Undefined as
None, DBPointer as DBRef, repeated names collapse, array element names are
dropped, a bare integer above int32 would become int64, ...), so each fast
step only accepts what it can prove is lossless and raises ``NotFast``
otherwise (any other exception counts the same); the caller then runs the
exact walker, which also raises the errors the format defines. The text or
bytes a fast path returns are always the ones the exact walker returns for
the same input (property-tested in ``tests/codec/test_fast_path.py``).

``available()`` says whether this pymongo build has the C functions (a
pymongo upgrade that drops them fails a test instead of silently slowing
down); ``disabled()`` switches every fast path off, the compiled
accelerator (``accel.py``) included, e.g. to compare with the exact walker;
``stats()`` counts which path each document took.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

try:
    from bson import _cbson
except ImportError:  # pragma: no cover - pymongo wheels ship the C extension
    _cbson = None
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion, TypeCodec, TypeDecoder, TypeRegistry
from bson.int64 import Int64

from . import accel
from .bsonwalk import FIXED_SIZE, I32, I64, LEN_PREFIXED, T_DATE
from .cells import BY_PY_TYPE, BY_WRAPPER, INT32_MAX, INT32_MIN, INT64, MAX_ISO_MS, MIN_ISO_MS, NotFast
from .dialect import READ_WRAPPERS, binary_json, binary_parts, double_from_ext, dumps

# --------------------------------------------------------------------------
# The switch and the counters

_C_DECODE = getattr(_cbson, "_bson_to_dict", None)
_C_ENCODE = getattr(_cbson, "_dict_to_bson", None)


def available() -> bool:
    """Whether pymongo's C extension offers the two functions the fast paths call."""
    return _C_DECODE is not None and _C_ENCODE is not None


def _unavailable(*_args: Any) -> Any:
    raise NotFast


# what ``decode`` / ``encode`` call; ``_unavailable`` while switched off or without the C extension
_bson_to_dict = _C_DECODE or _unavailable
_dict_to_bson = _C_ENCODE or _unavailable
_enabled = True


def enabled() -> bool:
    """Whether the fast paths run (they are on unless switched off)."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Switch every fast path on or off, process-wide (for tests and diagnosis: the output is the same)."""
    global _bson_to_dict, _dict_to_bson, _enabled
    _enabled = bool(on)
    _bson_to_dict = (_C_DECODE if _enabled else None) or _unavailable
    _dict_to_bson = (_C_ENCODE if _enabled else None) or _unavailable
    accel._set_fast_enabled(_enabled)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Every document takes the exact walker inside this block."""
    before = _enabled
    set_enabled(False)
    try:
        yield
    finally:
        set_enabled(before)


# documents per step and path (compiled accelerator, pymongo's C extension, exact walker): schema
# pass (shape), row encode, row decode; counted by the callers
COUNTS = dict.fromkeys(("shape_compiled", "shape_fast", "shape_exact", "encode_compiled", "encode_fast", "encode_exact",
                        "decode_compiled", "decode_fast", "decode_exact"), 0)


def stats() -> dict[str, int]:
    """How many documents took each path (compiled, fast, exact), per step, since the last reset.

    For tests and diagnosis: threads encoding at the same time may lose a count now and then.
    """
    return dict(COUNTS)


def reset_stats() -> None:
    for key in COUNTS:
        COUNTS[key] = 0


# --------------------------------------------------------------------------
# Bytes <-> pymongo objects


class _Int64AsDecimal(TypeCodec):
    """Read int64 as ``decimal.Decimal`` (an exact integer) and write it back as int64.

    ``Int64`` subclasses ``int``, so the JSON encoder would write it as a bare
    number (an int32 in the dialect); a ``Decimal`` is unknown to the JSON
    encoder and reaches ``_json_default``. No other BSON type decodes to
    ``Decimal`` (``cells.INT64.py_type``).
    """

    python_type = INT64.py_type
    bson_type = Int64
    transform_python = Int64
    transform_bson = INT64.py_type


class _CodeRefused(TypeDecoder):
    """Read JavaScript code as an object nothing can encode, so its document fails the
    round-trip check of ``decode`` and goes to the exact walker (``Code``
    subclasses ``str``: the JSON encoder would write it as a plain string)."""

    bson_type = Code

    def transform_bson(self, value: Any) -> Any:
        return _REFUSED


_REFUSED = object()
# for bytes -> objects (and the check back); see decode
_DECODE_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                               type_registry=TypeRegistry([_Int64AsDecimal(), _CodeRefused()]))
# for objects -> bytes (row decoding): plain pymongo types
_ENCODE_OPTIONS = CodecOptions()


def decode(raw: bytes) -> dict:
    """``raw`` as Python objects, only if they encode back to exactly ``raw``.

    That check is what makes the objects trustworthy: once it holds, each
    value's Python type names its BSON type (``cells.CellType.py_type``;
    bytes / Binary = binary, ...), every dict had no repeated names and
    every list had element names 0, 1, 2, ... Symbol, Undefined, DBPointer,
    code, non-canonical regex flags etc. decode to objects that encode
    differently (or not at all), so documents holding them fail the check.
    Datetimes outside years 1..9999 decode as DatetimeMS (``DATETIME_AUTO``).
    ``top_level=False`` keeps ``_id`` where it was instead of moving it first.
    """
    try:
        doc = _bson_to_dict(raw, _DECODE_OPTIONS)
        same = _dict_to_bson(doc, False, _DECODE_OPTIONS, False) == raw
    except Exception:  # whatever pymongo refuses, the exact walker explains
        raise NotFast from None
    if not same:
        raise NotFast
    return doc


def encode(doc: dict) -> bytes:
    """A document of the objects ``cells`` / ``obj_from_json`` make, as BSON, in field order."""
    return _dict_to_bson(doc, False, _ENCODE_OPTIONS, False)


# --------------------------------------------------------------------------
# Decoded objects -> cell text (the dialect's object side)

# decoded types the dialect writes as {wrapper: cell text}
_WRAPPED = {ct.py_type: ct for ct in BY_WRAPPER.values()}


def _json_default(v: Any) -> Any:
    """The dialect's object for a decoded value of a type JSON does not have (the JSON encoder's hook)."""
    t = type(v)
    ct = _WRAPPED.get(t)
    if ct is not None:
        return {ct.wrapper: ct.text_from_obj(v)}
    if t is bytes:  # binary subtype 0
        return binary_json(v, 0)
    if t is Binary:  # other subtypes; pymongo already dropped subtype 2's inner length, as the dialect does
        return binary_json(v, v.subtype)
    raise NotFast  # DatetimeMS (no ISO text), regex, timestamp, min/max key, DBRef: the exact walker writes them


def _dialect(v: Any) -> Any:
    """A decoded value as the JSON-able object ``dialect.value_to_obj`` gives for its bytes.

    Strings, int32, booleans, null and finite doubles are their own JSON form;
    containers are rebuilt with converted members (inlined for those leaves,
    the common case). Non-finite doubles and the rare types raise ``NotFast``.
    """
    t = type(v)
    if t is dict:
        out = {}
        dollar = False
        for k, x in v.items():
            if k[:1] == "$":
                dollar = True
            tx = type(x)
            out[k] = x if tx is str or tx is int or tx is bool or (tx is float and x - x == 0.0) else _dialect(x)
        if dollar:  # names starting with '$' would read as type wrappers
            return {"$fields": [[k, x] for k, x in out.items()]}
        return out
    if t is list:
        return [x if (tx := type(x)) is str or tx is int or tx is bool or (tx is float and x - x == 0.0)
                else _dialect(x) for x in v]
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float:
        if v - v == 0.0:  # finite; NaN and infinities take the exact walker's wrappers
            return v
        raise NotFast
    return _json_default(v)


def walked_json(v: Any) -> str:
    """A decoded value as dialect text, for any document (names starting with ``$`` included)."""
    return dumps(_dialect(v))


if json.encoder.c_make_encoder is not None:
    _c_encode_value = json.encoder.c_make_encoder(None, _json_default, json.encoder.encode_basestring, None,
                                                  ":", ",", False, False, False)

    def value_json(v: Any) -> str:
        """``walked_json(v)`` in one pass of the C JSON encoder, for a value of a document without
        ``$`` anywhere in its bytes (so no field name starts with one).

        Containers, str, int32, bool and None are written as themselves,
        finite doubles by ``float.__repr__`` (as ``dumps`` does), NaN and
        infinities raise ValueError (``allow_nan`` is off), everything else
        goes through ``_json_default``: the same text as ``_dialect``. (No
        decoded value subclasses str, int, float, list or dict here: int64 is
        a ``Decimal`` and code is refused.)
        """
        return "".join(_c_encode_value(v, 0))
else:  # pragma: no cover - CPython always has the C encoder
    value_json = walked_json


def cell(v: Any) -> tuple[str, str]:
    """(cell text, cell type) of a decoded value, as the exact walker gives for its bytes."""
    ct = BY_PY_TYPE.get(type(v))
    if ct is not None:
        return ct.text_from_obj(v), ct.name
    return walked_json(v), "json"


# --------------------------------------------------------------------------
# Cell text -> objects pymongo encodes as the exact walker's bytes

_scan_json = json.JSONDecoder(object_pairs_hook=tuple).scan_once  # JSON objects as tuples of (key, value)


def obj_from_json(cell: str) -> Any:
    """A JSON cell as objects (the ``obj_from_text`` of cell type ``json``)."""
    obj, end = _scan_json(cell, 0)  # what json.loads runs; surrounding white space is left to the exact walker
    if end != len(cell):
        raise NotFast
    return _from_dialect(obj)


def _from_dialect(obj: Any) -> Any:
    """Parsed JSON dialect (objects as tuples of pairs) -> Python objects pymongo encodes exactly.

    Mirrors ``dialect.obj_to_value``: bare integers are int32 (others are
    refused by the exact walker), a repeated name is left to the exact walker
    (a dict would drop it), wrappers go to ``_from_wrapper``.
    """
    t = type(obj)
    if t is str or t is float or t is bool or obj is None:
        return obj
    if t is int:
        if INT32_MIN <= obj <= INT32_MAX:
            return obj
        raise NotFast
    # members that are their own Python form (str, float, bool, int32) are checked inline: most are
    if t is list:
        return [x if ((tx := type(x)) is str or tx is float or tx is bool
                      or (tx is int and INT32_MIN <= x <= INT32_MAX)) else _from_dialect(x) for x in obj]
    if t is tuple:
        if obj and obj[0][0][:1] == "$":
            return _from_wrapper(obj)
        doc = {k: x if ((tx := type(x)) is str or tx is float or tx is bool
                        or (tx is int and INT32_MIN <= x <= INT32_MAX)) else _from_dialect(x) for k, x in obj}
        if len(doc) != len(obj):
            raise NotFast
        return doc
    raise NotFast


def _from_wrapper(obj: tuple) -> Any:
    """The common one-key wrappers with text values, as ``dialect`` reads them; others raise ``NotFast``."""
    if len(obj) != 1:
        raise NotFast
    (key, v), = obj
    tv = type(v)
    if tv is str:
        ct = READ_WRAPPERS.get(key)
        if ct is not None:
            return ct.obj_from_text(v)
        if key == "$numberDouble":
            return double_from_ext(v)
    elif key == "$binary" and tv is tuple:
        data, sub = binary_parts(v)
        # pymongo writes subtype 2 with its inner length prefix, as the dialect does
        return data if sub == 0 else Binary(data, sub)
    raise NotFast


# --------------------------------------------------------------------------
# The schema pass: a document's shape without decoding it


def shape_key(raw: bytes) -> tuple[bytes, ...]:
    """Type byte + name bytes of each top-level field, for a well-formed document.

    The same walk and checks as ``iter_elements``, inlined, without decoding
    names (the caller does that once per distinct shape). A datetime outside
    years 1..9999 gets type byte 0 instead of 9, which no BSON type has: its
    cell type is ``json``, not ``date``. Regex and DBPointer fields and
    anything malformed raise ``NotFast``.
    """
    if not _enabled:
        raise NotFast
    fixed, prefixed, unpack, find = FIXED_SIZE.get, LEN_PREFIXED.get, I32.unpack_from, raw.find
    end = unpack(raw, 0)[0] - 1
    pos = 4
    shape = []
    while pos < end:
        t = raw[pos]
        name_end = find(b"\x00", pos + 1)
        if name_end < 0:
            raise NotFast
        vs = name_end + 1
        if t == T_DATE and not MIN_ISO_MS <= I64.unpack_from(raw, vs)[0] <= MAX_ISO_MS:
            shape.append(b"\x00" + raw[pos + 1:name_end])
        else:
            shape.append(raw[pos:name_end])
        size = fixed(t)
        if size is None:
            extra = prefixed(t)
            if extra is None:
                raise NotFast
            size = extra + unpack(raw, vs)[0]
        pos = vs + size
        if pos > end or size < 0:
            raise NotFast
    if pos != end or raw[end] != 0:
        raise NotFast
    return tuple(shape)
