"""The lossless JSON dialect: any BSON value as JSON text, and back (docs/FORMAT.md, "The JSON dialect").

JSON cells (nested documents, arrays, rare types, cells whose value has no
plain text) and whole-document rows use it. Readable where it can be:
strings, int32, booleans, null, lists and objects as themselves, finite
doubles as bare numbers that always carry a '.' or an exponent. The plain
types with a typed wrapper write their cell text in it (``{"$date":
"2024-05-06T07:08:09.123Z"}``, see ``cells.CellType.wrapper``); the other
types use Extended JSON's wrappers, plus three of our own for what Extended
JSON cannot say: ``$doubleBits`` / ``$decimalBits`` (NaN payloads and other
exact bit patterns) and ``$fields`` / ``$arrayFields`` (a sub-document whose
field names start with '$' or repeat, an array whose element names are not
0, 1, 2, ..., as a list of [name, value] pairs).

This module works on raw bytes, for any BSON (the exact walker's half; the
compiled accelerator, ``_speedups.c``, writes and reads the same text).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, Iterable

from ..errors import CodecError
from .bsonwalk import (DBL, I32, I64, T_ARRAY, T_BINARY, T_BOOL, T_CODE, T_CODE_W_SCOPE, T_DATE, T_DBPOINTER,
                       T_DECIMAL, T_DOC, T_DOUBLE, T_INT32, T_MAXKEY, T_MINKEY, T_NULL, T_REGEX, T_STRING,
                       T_SYMBOL, T_TIMESTAMP, T_UNDEFINED, bstring, cstring, cstring_end, document, iter_elements,
                       str_at, utf8_text)
from .cells import BY_WRAPPER, DOUBLE, INT32, hex_bytes

# plain types the dialect writes as {wrapper: cell text}, by BSON type / wrapper read back
_WRAPPED = {ct.bson_type: ct for ct in BY_WRAPPER.values()}
_READ_WRAPPERS = {**BY_WRAPPER, "$numberInt": INT32}  # canonical Extended JSON's int32 is read, never written

# ``$numberDouble`` text of the doubles JSON has no number for, by their cell text (``repr``)
_EXT_DOUBLE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_FROM_EXT_DOUBLE = {ext: text for text, ext in _EXT_DOUBLE.items()}


# --------------------------------------------------------------------------
# Raw BSON -> JSON-able objects -> text


def _doc_to_obj(buf: bytes, start: int) -> Any:
    pairs = [(name, value_to_obj(t, buf, vs, ve)) for t, name, vs, ve in iter_elements(buf, start)]
    obj = dict(pairs)
    if len(obj) != len(pairs) or any(k[:1] == "$" for k in obj):
        return {"$fields": [[k, v] for k, v in pairs]}
    return obj


def _array_to_obj(buf: bytes, start: int) -> Any:
    items, names = [], []
    for t, name, vs, ve in iter_elements(buf, start):
        names.append(name)
        items.append(value_to_obj(t, buf, vs, ve))
    if names != [str(i) for i in range(len(names))]:
        return {"$arrayFields": [[k, v] for k, v in zip(names, items)]}
    return items


def _double_obj(buf: bytes, vs: int) -> Any:
    v = DBL.unpack_from(buf, vs)[0]
    if math.isfinite(v):
        return v
    if DOUBLE.text_from_bytes(buf, vs, vs + 8) is None:
        return {"$doubleBits": buf[vs:vs + 8][::-1].hex()}
    return {"$numberDouble": _EXT_DOUBLE[repr(v)]}


def _binary_json(data: bytes, subtype: int) -> dict:
    """Subtype 2's inner length prefix is not part of ``data``."""
    return {"$binary": {"base64": base64.b64encode(data).decode("ascii"), "subType": f"{subtype:02x}"}}


def _binary_obj(buf: bytes, vs: int) -> Any:
    n = I32.unpack_from(buf, vs)[0]
    sub = buf[vs + 4]
    data = buf[vs + 5:vs + 5 + n]
    if sub == 2:
        # old binary: the payload carries its own length prefix
        if n < 4 or I32.unpack_from(data, 0)[0] != n - 4:
            raise CodecError("corrupt BSON: binary subtype 2 with inconsistent length")
        data = data[4:]
    return _binary_json(data, sub)


def value_to_obj(t: int, buf: bytes, vs: int, ve: int) -> Any:
    """The value of type ``t`` at ``buf[vs:ve]`` as a JSON-able object of the dialect."""
    # JSON's own values first: they are most of what nested documents hold
    if t == T_STRING:
        return utf8_text(buf[vs + 4:ve - 1])
    if t == T_INT32:
        return I32.unpack_from(buf, vs)[0]
    if t == T_DOUBLE:
        return _double_obj(buf, vs)
    if t == T_DOC:
        return _doc_to_obj(buf, vs)
    if t == T_ARRAY:
        return _array_to_obj(buf, vs)
    if t == T_BOOL:
        if buf[vs] > 1:
            raise CodecError("corrupt BSON: bad boolean")
        return buf[vs] == 1
    if t == T_NULL:
        return None
    ct = _WRAPPED.get(t)
    if ct is not None:
        text = ct.text_from_bytes(buf, vs, ve)
        if text is not None:
            return {ct.wrapper: text}
        if t == T_DATE:  # outside years 1..9999
            return {"$date": {"$numberLong": str(I64.unpack_from(buf, vs)[0])}}
        if t == T_DECIMAL:  # bits that no decimal text reproduces
            return {"$decimalBits": buf[vs:ve][::-1].hex()}
    if t == T_BINARY:
        return _binary_obj(buf, vs)
    if t == T_TIMESTAMP:
        inc, ts = struct.unpack_from("<II", buf, vs)
        return {"$timestamp": {"t": ts, "i": inc}}
    if t == T_REGEX:
        p_end = cstring_end(buf, vs)
        return {"$regularExpression": {"pattern": utf8_text(buf[vs:p_end]),
                                       "options": utf8_text(buf[p_end + 1:ve - 1])}}
    if t == T_CODE:
        return {"$code": str_at(buf, vs)}
    if t == T_SYMBOL:
        return {"$symbol": str_at(buf, vs)}
    if t == T_CODE_W_SCOPE:
        code_len = I32.unpack_from(buf, vs + 4)[0]
        return {"$code": str_at(buf, vs + 4), "$scope": _doc_to_obj(buf, vs + 8 + code_len)}
    if t == T_DBPOINTER:
        n = I32.unpack_from(buf, vs)[0]
        return {"$dbPointer": {"$ref": str_at(buf, vs), "$id": {"$oid": buf[vs + 4 + n:ve].hex()}}}
    if t == T_UNDEFINED:
        return {"$undefined": True}
    if t == T_MINKEY:
        return {"$minKey": 1}
    if t == T_MAXKEY:
        return {"$maxKey": 1}
    raise CodecError(f"unsupported BSON type 0x{t:02x}")


_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
if json.encoder.c_make_encoder is not None:
    # What ``_json_encoder.encode`` runs, built once instead of on every call (the
    # objects encoded here never contain cycles, so no circular-reference markers).
    _c_encode = json.encoder.c_make_encoder(None, _json_encoder.default, json.encoder.encode_basestring, None,
                                            ":", ",", False, False, False)

    def dumps(obj: Any) -> str:
        """JSON text as the dialect writes it: no spaces, non-ASCII as itself, no NaN."""
        return "".join(_c_encode(obj, 0))
else:  # pragma: no cover - CPython always has the C encoder
    dumps = _json_encoder.encode


def to_json_text(raw_doc: bytes) -> str:
    """A whole raw BSON document in the lossless JSON dialect."""
    return dumps(_doc_to_obj(bytes(raw_doc), 0))


def value_to_json_text(t: int, buf: bytes, vs: int, ve: int) -> str:
    """One value (as ``iter_elements`` yields it) in the JSON dialect."""
    return dumps(value_to_obj(t, buf, vs, ve))


# --------------------------------------------------------------------------
# Text -> JSON objects -> raw BSON


class Pairs(list):
    """A JSON object as an ordered list of (key, value): keeps repeated keys."""


def loads(text: str) -> Any:
    """JSON text with objects as ``Pairs``; ``CodecError`` if it is not JSON."""
    try:
        return json.loads(text, object_pairs_hook=Pairs)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"invalid JSON cell: {exc}") from None


def _doc_bytes(pairs: Iterable[tuple[str, Any]]) -> bytes:
    parts = []
    for key, value in pairs:
        t, data = obj_to_value(value)
        parts.append(bytes((t,)) + cstring(key) + data)
    return document(b"".join(parts))


def _wrapped_fields(obj: Pairs) -> list[tuple[str, Any]]:
    (key, value), = obj
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value):
        raise CodecError(f"{key} must be a list of [name, value] pairs")
    return [(k, v) for k, v in value]


def _double_from_ext(text: Any) -> float:
    """A ``$numberDouble`` value: Extended JSON's names of the non-finite doubles, or a number's text."""
    return float(_FROM_EXT_DOUBLE.get(text, text))


def _binary_parts(value: Any) -> tuple[bytes, int]:
    """A ``$binary`` value's payload and subtype (without subtype 2's inner length)."""
    d = dict(value)
    return base64.b64decode(d["base64"], validate=True), int(d["subType"], 16)


def _wrapper_value(obj: Pairs) -> tuple[int, bytes]:
    keys = tuple(k for k, _ in obj)
    v = obj[0][1]
    try:
        if keys == ("$date",) and not isinstance(v, str):
            (k2, ms), = v
            if k2 != "$numberLong":
                raise ValueError("bad $date")
            return T_DATE, I64.pack(int(ms))
        ct = _READ_WRAPPERS.get(keys[0]) if len(keys) == 1 else None
        if ct is not None:
            return ct.bson_type, ct.bytes_from_text(v)
        if keys == ("$numberDouble",):
            return T_DOUBLE, DBL.pack(_double_from_ext(v))
        if keys == ("$doubleBits",):
            return T_DOUBLE, hex_bytes(v, 8, "$doubleBits")[::-1]
        if keys == ("$decimalBits",):
            return T_DECIMAL, hex_bytes(v, 16, "$decimalBits")[::-1]
        if keys == ("$binary",):
            data, sub = _binary_parts(v)
            if sub == 2:
                data = I32.pack(len(data)) + data
            return T_BINARY, I32.pack(len(data)) + bytes((sub,)) + data
        if keys == ("$regularExpression",):
            d = dict(v)
            return T_REGEX, cstring(d["pattern"]) + cstring(d["options"])
        if keys == ("$timestamp",):
            d = dict(v)
            return T_TIMESTAMP, struct.pack("<II", d["i"], d["t"])
        if keys == ("$code",):
            return T_CODE, bstring(v)
        if keys == ("$code", "$scope"):
            code = bstring(v)
            st, scope = obj_to_value(obj[1][1])
            if st != T_DOC:
                raise CodecError("$scope must be a document")
            return T_CODE_W_SCOPE, I32.pack(4 + len(code) + len(scope)) + code + scope
        if keys == ("$symbol",):
            return T_SYMBOL, bstring(v)
        if keys == ("$dbPointer",):
            d = dict(v)
            oid = dict(d["$id"])["$oid"]
            return T_DBPOINTER, bstring(d["$ref"]) + hex_bytes(oid, 12, "ObjectId")
        if keys == ("$undefined",):
            return T_UNDEFINED, b""
        if keys == ("$minKey",):
            return T_MINKEY, b""
        if keys == ("$maxKey",):
            return T_MAXKEY, b""
        if keys == ("$fields",):
            return T_DOC, _doc_bytes(_wrapped_fields(obj))
        if keys == ("$arrayFields",):
            return T_ARRAY, _doc_bytes(_wrapped_fields(obj))
    except CodecError:
        raise
    except (ValueError, TypeError, KeyError, struct.error, ArithmeticError) as exc:
        raise CodecError(f"invalid {keys[0]} value: {exc}") from None
    raise CodecError(f"unknown JSON wrapper {list(keys)}")


def obj_to_value(obj: Any) -> tuple[int, bytes]:
    """A parsed dialect value (objects as ``Pairs``) as (BSON type, value bytes)."""
    if isinstance(obj, str):
        return T_STRING, bstring(obj)
    if obj is True or obj is False:
        return T_BOOL, b"\x01" if obj else b"\x00"
    if isinstance(obj, int):
        if not -2**31 <= obj < 2**31:
            raise CodecError(f"bare integer {obj} is outside the int32 range")
        return T_INT32, I32.pack(obj)
    if isinstance(obj, float):
        return T_DOUBLE, DBL.pack(obj)
    if obj is None:
        return T_NULL, b""
    if isinstance(obj, Pairs):
        if obj and obj[0][0][:1] == "$":
            return _wrapper_value(obj)
        return T_DOC, _doc_bytes(obj)
    if isinstance(obj, list):
        return T_ARRAY, _doc_bytes((str(i), v) for i, v in enumerate(obj))
    raise CodecError(f"unsupported JSON value {obj!r}")


def from_json_text(text: str) -> bytes:
    """Inverse of ``to_json_text``: a whole document in the JSON dialect to raw BSON."""
    obj = loads(text)
    if not isinstance(obj, Pairs):
        raise CodecError("a document must be a JSON object")
    t, data = obj_to_value(obj)
    if t != T_DOC:
        raise CodecError("a document cell must hold a document")
    return data
