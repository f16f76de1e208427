"""Document keys: exact bytes, MongoDB's notion of "the same key", and how people type them.

A key is the value of the match field (``_id``, or another unique field
such as ``asset_id``, chosen with ``--key``) in a raw BSON document; not an
encryption key (``store/crypto.py``) nor an object name in a bucket. Three
views of it:

- ``key_bytes``: the exact BSON encoding (type byte + value bytes). Filters
  built from it (``key_filter``) keep the exact type.
- ``key_identity``: what MongoDB compares when it enforces uniqueness. Numbers
  of different types are one key when equal in value (int32 ``1``, int64
  ``1``, double ``1.0``, Decimal128 ``1.00``; ``-0.0`` equals ``0``); String and
  Symbol with equal text are one key; sub-documents compare field by field
  with those rules. Two documents of one collection can never share an
  identity, so duplicate detection (verify) and pairing (``pairing.py``)
  use it.
- ``key_text`` / ``key_json``: how a key is shown and typed.
"""

from __future__ import annotations

import decimal
import json
import struct
from typing import Any, Iterable

from bson.raw_bson import RawBSONDocument

from . import codec
from .errors import UsageError

MISSING = b""  # key bytes of a document that lacks the key field
_I32 = struct.Struct("<i")
_DBL = struct.Struct("<d")
_EXACT = decimal.Context(prec=800, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_NUMERIC = {codec.T_DOUBLE, codec.T_INT32, codec.T_INT64, codec.T_DECIMAL}

# MongoDB's own $type aliases, so the names mean something to an admin
TYPE_NAMES = {
    1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 6: "undefined", 7: "objectId",
    8: "bool", 9: "date", 10: "null", 11: "regex", 12: "dbPointer", 13: "javascript", 14: "symbol",
    15: "javascriptWithScope", 16: "int", 17: "timestamp", 18: "long", 19: "decimal", 255: "minKey",
    127: "maxKey",
}


def check_match_field(field: str) -> str:
    """A field name that can pair documents (a dotted path, no ``$`` prefix), else ``UsageError``."""
    if not isinstance(field, str) or not field or field.startswith("$") or "\x00" in field or ".." in field \
            or field.startswith(".") or field.endswith("."):
        raise UsageError(f"invalid key field {field!r}")
    return field


def key_bytes(raw: bytes, field: str) -> bytes:
    """The exact BSON encoding (type byte + value) of the key in ``field`` (dotted path) of ``raw``."""
    start = 0
    parts = field.split(".")
    for depth, part in enumerate(parts):
        for t, name, vs, ve in codec.iter_elements(raw, start):
            if name == part:
                if depth == len(parts) - 1:
                    return bytes((t,)) + raw[vs:ve]
                if t != codec.T_DOC:
                    return MISSING
                start = vs
                break
        else:
            return MISSING
    return MISSING


def _number(t: int, buf: bytes, vs: int, ve: int) -> decimal.Decimal:
    if t == codec.T_INT32:
        return decimal.Decimal(_I32.unpack_from(buf, vs)[0])
    if t == codec.T_INT64:
        return decimal.Decimal(int.from_bytes(buf[vs:ve], "little", signed=True))
    if t == codec.T_DOUBLE:
        return decimal.Decimal(_DBL.unpack_from(buf, vs)[0])  # exact: 0.1 is not 0.1 as a decimal
    text = json.loads(codec.value_to_json_text(t, buf, vs, ve))
    inner = text.get("$numberDecimal") if isinstance(text, dict) else None
    if inner is None:  # an exact bit pattern ($decimalBits): only equal to itself
        raise ValueError
    return decimal.Decimal(inner)


def _identity(t: int, buf: bytes, vs: int, ve: int) -> bytes:
    if t in _NUMERIC:
        try:
            d = _number(t, buf, vs, ve)
        except ValueError:
            return bytes((t,)) + buf[vs:ve]
        if d.is_nan():
            return b"N:nan"
        if d.is_infinite():
            return b"N:+inf" if d > 0 else b"N:-inf"
        if d == 0:
            return b"N:0"
        return b"N:" + str(d.normalize(_EXACT)).encode()
    if t in (codec.T_STRING, codec.T_SYMBOL):
        return b"S:" + buf[vs + 4:ve - 1]
    if t in (codec.T_DOC, codec.T_ARRAY):
        parts = [b"D{" if t == codec.T_DOC else b"A["]
        for t2, name, vs2, ve2 in codec.iter_elements(buf, vs):
            inner = _identity(t2, buf, vs2, ve2)
            if t == codec.T_DOC:
                parts.append(_I32.pack(len(name.encode())) + name.encode())
            parts.append(_I32.pack(len(inner)) + inner)
        return b"".join(parts)
    return bytes((t,)) + buf[vs:ve]


def key_identity(kb: bytes) -> bytes:
    """MongoDB's equality class of the key with exact bytes ``kb`` (``MISSING`` stays ``MISSING``)."""
    if kb == MISSING:
        return MISSING
    t = kb[0]
    if t == codec.T_OID or (t == codec.T_STRING and len(kb) < 64):
        # the common keys: nothing else is equal to them, spare the walk
        return kb if t == codec.T_OID else b"S:" + kb[5:-1]
    return _identity(t, kb, 1, len(kb))


def key_json(kb: bytes) -> Any:
    """Key bytes as a JSON-dialect object (None for a missing key)."""
    if kb == MISSING:
        return None
    return json.loads(codec.value_to_json_text(kb[0], kb, 1, len(kb)))


def key_text(kb: bytes) -> str:
    """How a user types a key: strings as-is, ObjectIds as hex, numbers as digits."""
    obj = key_json(kb)
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bool) or obj is None:
        return json.dumps(obj)
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, v), = obj.items()
        if tag in ("$oid", "$numberLong", "$numberDecimal") and isinstance(v, str):
            return v
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def type_name(t: int | None) -> str:
    """A BSON type byte by MongoDB's name for it (None: a missing field)."""
    return "missing" if t is None else TYPE_NAMES.get(t, f"0x{t:02x}")


def key_filter(field: str, kb: bytes) -> RawBSONDocument:
    """A query ``{field: value}`` built from raw bytes, so the value keeps its exact type."""
    body = kb[:1] + field.encode("utf-8") + b"\x00" + kb[1:]
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def in_filter(field: str, values: list[bytes]) -> RawBSONDocument:
    """``{field: {$in: [...]}}`` from exact key bytes (types preserved)."""
    items = b"".join(kb[:1] + str(i).encode() + b"\x00" + kb[1:] for i, kb in enumerate(values))
    arr = _I32.pack(len(items) + 5) + items + b"\x00"
    inner_body = b"\x04$in\x00" + arr
    inner = _I32.pack(len(inner_body) + 5) + inner_body + b"\x00"
    body = b"\x03" + field.encode("utf-8") + b"\x00" + inner
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def id_matcher(ids: Iterable[Any] | None):
    """A predicate on key bytes for a list of key values (JSON-dialect objects or typed text)."""
    if ids is None:
        return None
    objs, texts = [], set()
    for v in ids:
        if isinstance(v, str):
            texts.add(v)
        else:
            objs.append(json.dumps(v, sort_keys=True))
    objs_set = set(objs)

    def match(kb: bytes) -> bool:
        if kb == MISSING:
            return False
        if texts and key_text(kb) in texts:
            return True
        return bool(objs_set) and json.dumps(key_json(kb), sort_keys=True) in objs_set

    return match
