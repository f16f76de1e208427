"""Lossless, readable BSON <-> CSV encoding (format version 1, see docs/FORMAT.md).

The codec works on raw BSON bytes, never on decoded Python objects, so every
document comes back byte-for-byte: field order, Int32 vs Int64 vs double,
Decimal128 bit patterns, NaN payloads, -0.0, and the deprecated types
(Symbol, DBPointer, Undefined) that pymongo would convert on decode.

Shape of a CSV file:

* one column per top-level field, in first-seen order, then one trailing
  meta column (``__bson_row__``);
* each column has a type (recorded in the manifest). Cells of the column's
  type are plain text: strings as they are, numbers as numbers, dates as
  ISO-8601 with milliseconds and ``Z``, ObjectIds as hex, booleans as
  ``true``/``false``. Column type ``json`` holds a lossless JSON dialect
  (see ``to_json_text``) for nested documents, arrays and rare types;
* the meta cell is empty for typical rows. Otherwise it is a JSON object with
  optional keys ``missing`` (column indexes absent from the document),
  ``types`` (column index -> type of a cell that differs from its column,
  ``null`` included), ``order`` (column indexes in the document's field
  order, when it differs from column order) and ``doc`` (the whole document
  in the JSON dialect, for documents with duplicate field names).

A string cell starting with one of ``= + - @ '`` TAB or CR gets a leading
``'`` (removed on decode), so a spreadsheet never runs it as a formula.

Speed: encoding and decoding first try a fast path that lets pymongo's C
extension do the byte work (``RowEncoder._fast_row``,
``RowDecoder._fast_document``); whenever that path cannot prove it gives
exactly what the exact byte walker gives, the exact walker
(``_exact_row`` / ``_exact_document``) runs. So the text and bytes written
never depend on which path ran.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

try:
    from bson import _cbson
except ImportError:  # pragma: no cover - pymongo wheels ship the C extension
    _cbson = None
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion, TypeCodec, TypeDecoder, TypeRegistry
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId

from .errors import CodecError

FORMAT_VERSION = 1
META_COLUMN = "__bson_row__"
MAX_BSON_SIZE = 16 * 1024 * 1024
# A cell holds at most one 16 MiB document; JSON escaping can grow it, but
# never beyond this. Larger cells are hostile input and are refused.
MAX_CELL_CHARS = 48 * 1024 * 1024
csv.field_size_limit(MAX_CELL_CHARS)

_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_DBL = struct.Struct("<d")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MS = _dt.timedelta(milliseconds=1)
# datetimes that ISO-8601 text (years 1..9999) can hold
_MIN_ISO_MS = -62135596800000
_MAX_ISO_MS = 253402300799999
_CANONICAL_NAN = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"
FORMULA_CHARS = frozenset("=+-@'\t\r")

# BSON element types
T_DOUBLE, T_STRING, T_DOC, T_ARRAY, T_BINARY, T_UNDEFINED, T_OID, T_BOOL = 1, 2, 3, 4, 5, 6, 7, 8
T_DATE, T_NULL, T_REGEX, T_DBPOINTER, T_CODE, T_SYMBOL, T_CODE_W_SCOPE = 9, 10, 11, 12, 13, 14, 15
T_INT32, T_TIMESTAMP, T_INT64, T_DECIMAL, T_MINKEY, T_MAXKEY = 16, 17, 18, 19, 255, 127

# Column/cell types written as plain text, by BSON type.
PLAIN_TYPES = {
    T_STRING: "string", T_INT32: "int32", T_INT64: "int64", T_DOUBLE: "double",
    T_BOOL: "bool", T_DATE: "date", T_OID: "objectId", T_DECIMAL: "decimal", T_NULL: "null",
}
CELL_TYPES = frozenset(PLAIN_TYPES.values()) | {"json"}


# --------------------------------------------------------------------------
# Raw BSON walking


def _cstring_end(buf: bytes, pos: int) -> int:
    end = buf.find(b"\x00", pos)
    if end < 0:
        raise CodecError("corrupt BSON: unterminated field name")
    return end


_FIXED_SIZE = {T_DOUBLE: 8, T_DATE: 8, T_INT64: 8, T_TIMESTAMP: 8, T_INT32: 4, T_OID: 12, T_BOOL: 1,
               T_NULL: 0, T_UNDEFINED: 0, T_MINKEY: 0, T_MAXKEY: 0, T_DECIMAL: 16}
_LEN_PREFIXED = {T_STRING: 4, T_CODE: 4, T_SYMBOL: 4, T_DOC: 0, T_ARRAY: 0, T_CODE_W_SCOPE: 0, T_BINARY: 5}


def _value_end(t: int, buf: bytes, pos: int) -> int:
    size = _FIXED_SIZE.get(t)
    if size is not None:
        return pos + size
    extra = _LEN_PREFIXED.get(t)
    if extra is not None:
        return pos + extra + _I32.unpack_from(buf, pos)[0]
    if t == T_REGEX:
        return _cstring_end(buf, _cstring_end(buf, pos) + 1) + 1
    if t == T_DBPOINTER:
        return pos + 4 + _I32.unpack_from(buf, pos)[0] + 12
    raise CodecError(f"corrupt BSON: unknown element type 0x{t:02x}")


def iter_elements(buf: bytes, start: int = 0) -> Iterator[tuple[int, str, int, int]]:
    """Yield ``(type, name, value_start, value_end)`` for the document at ``start``."""
    fixed, prefixed, unpack, find = _FIXED_SIZE.get, _LEN_PREFIXED.get, _I32.unpack_from, buf.find
    try:
        end = start + unpack(buf, start)[0] - 1
        pos = start + 4
        while pos < end:
            t = buf[pos]
            name_end = find(b"\x00", pos + 1)
            if name_end < 0:
                raise CodecError("corrupt BSON: unterminated field name")
            name = buf[pos + 1:name_end].decode("utf-8")
            vstart = name_end + 1
            size = fixed(t)
            if size is not None:
                vend = vstart + size
            else:
                extra = prefixed(t)
                vend = vstart + extra + unpack(buf, vstart)[0] if extra is not None else _value_end(t, buf, vstart)
            if vend > end:
                raise CodecError("corrupt BSON: element runs past the end of its document")
            yield t, name, vstart, vend
            pos = vend
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise CodecError(f"corrupt BSON document: {exc}") from None
    if pos != end or buf[end] != 0:
        raise CodecError("corrupt BSON document: bad length")


def _str_at(buf: bytes, pos: int) -> str:
    n = _I32.unpack_from(buf, pos)[0]
    return buf[pos + 4:pos + 3 + n].decode("utf-8")


def _date_ms_to_iso(ms: int) -> str:
    d = _EPOCH + _dt.timedelta(milliseconds=ms)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond // 1000:03d}Z"


def _parse_iso(text: str) -> _dt.datetime:
    """A date cell's text as an aware UTC datetime with whole milliseconds."""
    if len(text) != 24 or text[-1] != "Z" or text[10] != "T" or text[19] != ".":
        raise ValueError(f"not an ISO-8601 UTC datetime with milliseconds: {text!r}")
    return _dt.datetime.fromisoformat(text)


def _iso_to_date_ms(text: str) -> int:
    return (_parse_iso(text) - _EPOCH) // _MS


def _guard(s: str) -> str:
    return "'" + s if s and s[0] in FORMULA_CHARS else s


def _unguard(s: str) -> str:
    return s[1:] if s and s[0] == "'" else s


# --------------------------------------------------------------------------
# Raw BSON value -> JSON-able object (the lossless JSON dialect)
#
# Readable where it can be: int32 as a bare integer, finite doubles as bare
# numbers that always carry a '.' or an exponent, strings, booleans, null,
# lists and objects as themselves. Everything else uses Extended JSON
# wrappers ($numberLong, $date, $oid, ...), plus three of our own for what
# Extended JSON cannot say: $doubleBits / $decimalBits (NaN payloads and
# other exact bit patterns) and $fields (a sub-document whose field names
# start with '$' or repeat, as a list of [name, value] pairs).


def _doc_to_obj(buf: bytes, start: int) -> Any:
    pairs = [(name, _value_to_obj(t, buf, vs, ve)) for t, name, vs, ve in iter_elements(buf, start)]
    obj = dict(pairs)
    if len(obj) != len(pairs) or any(k[:1] == "$" for k in obj):
        return {"$fields": [[k, v] for k, v in pairs]}
    return obj


def _array_to_obj(buf: bytes, start: int) -> Any:
    items, names = [], []
    for t, name, vs, ve in iter_elements(buf, start):
        names.append(name)
        items.append(_value_to_obj(t, buf, vs, ve))
    if names != [str(i) for i in range(len(names))]:
        return {"$arrayFields": [[k, v] for k, v in zip(names, items)]}
    return items


def _double_obj(buf: bytes, vs: int) -> Any:
    v = _DBL.unpack_from(buf, vs)[0]
    if math.isfinite(v):
        return v
    if v != v and buf[vs:vs + 8] != _CANONICAL_NAN:
        return {"$doubleBits": buf[vs:vs + 8][::-1].hex()}
    return {"$numberDouble": "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")}


_U64 = struct.Struct("<QQ")
_MAX_COEFFICIENT = 10**34 - 1


def _decimal_text(raw: bytes) -> str | None:
    """Decimal128 as text, or None when text cannot reproduce these exact bits."""
    low, high = _U64.unpack(raw)
    if (high >> 61) & 3 != 3:
        # the common finite form: sign, 14-bit exponent, 113-bit coefficient
        coefficient = ((high & 0x1FFFFFFFFFFFF) << 64) | low
        if coefficient <= _MAX_COEFFICIENT:
            return _decimal_to_string(high >> 63, str(coefficient), ((high >> 49) & 0x3FFF) - 6176)
    text = str(Decimal128.from_bid(raw))
    return text if Decimal128(text).bid == raw else None


def _decimal_to_string(sign: int, digits: str, exp: int) -> str:
    """IEEE 754 to-scientific-string, exactly as Python's ``Decimal.__str__``."""
    leftdigits = exp + len(digits)
    dotplace = leftdigits if exp <= 0 and leftdigits > -6 else 1
    if dotplace <= 0:
        intpart, fracpart = "0", "." + "0" * -dotplace + digits
    elif dotplace >= len(digits):
        intpart, fracpart = digits + "0" * (dotplace - len(digits)), ""
    else:
        intpart, fracpart = digits[:dotplace], "." + digits[dotplace:]
    exp_str = "" if leftdigits == dotplace else "E%+d" % (leftdigits - dotplace)
    return ("-" if sign else "") + intpart + fracpart + exp_str


def _decimal_obj(raw: bytes) -> Any:
    text = _decimal_text(raw)
    return {"$numberDecimal": text} if text is not None else {"$decimalBits": raw[::-1].hex()}


def _binary_obj(buf: bytes, vs: int) -> Any:
    n = _I32.unpack_from(buf, vs)[0]
    sub = buf[vs + 4]
    data = buf[vs + 5:vs + 5 + n]
    if sub == 2:
        # old binary: the payload carries its own length prefix
        if n < 4 or _I32.unpack_from(data, 0)[0] != n - 4:
            raise CodecError("corrupt BSON: binary subtype 2 with inconsistent length")
        data = data[4:]
    return {"$binary": {"base64": base64.b64encode(data).decode("ascii"), "subType": f"{sub:02x}"}}


def _value_to_obj(t: int, buf: bytes, vs: int, ve: int) -> Any:
    if t == T_STRING:
        return buf[vs + 4:ve - 1].decode("utf-8")
    if t == T_INT32:
        return _I32.unpack_from(buf, vs)[0]
    if t == T_DOUBLE:
        return _double_obj(buf, vs)
    if t == T_DOC:
        return _doc_to_obj(buf, vs)
    if t == T_ARRAY:
        return _array_to_obj(buf, vs)
    if t == T_BOOL:
        return buf[vs] == 1 if buf[vs] in (0, 1) else _raise(CodecError("corrupt BSON: bad boolean"))
    if t == T_NULL:
        return None
    if t == T_INT64:
        return {"$numberLong": str(_I64.unpack_from(buf, vs)[0])}
    if t == T_DATE:
        ms = _I64.unpack_from(buf, vs)[0]
        if _MIN_ISO_MS <= ms <= _MAX_ISO_MS:
            return {"$date": _date_ms_to_iso(ms)}
        return {"$date": {"$numberLong": str(ms)}}
    if t == T_OID:
        return {"$oid": buf[vs:ve].hex()}
    if t == T_DECIMAL:
        return _decimal_obj(buf[vs:ve])
    if t == T_BINARY:
        return _binary_obj(buf, vs)
    if t == T_TIMESTAMP:
        inc, ts = struct.unpack_from("<II", buf, vs)
        return {"$timestamp": {"t": ts, "i": inc}}
    if t == T_REGEX:
        p_end = _cstring_end(buf, vs)
        return {"$regularExpression": {"pattern": buf[vs:p_end].decode("utf-8"),
                                       "options": buf[p_end + 1:ve - 1].decode("utf-8")}}
    if t == T_CODE:
        return {"$code": _str_at(buf, vs)}
    if t == T_SYMBOL:
        return {"$symbol": _str_at(buf, vs)}
    if t == T_CODE_W_SCOPE:
        code_len = _I32.unpack_from(buf, vs + 4)[0]
        return {"$code": _str_at(buf, vs + 4), "$scope": _doc_to_obj(buf, vs + 8 + code_len)}
    if t == T_DBPOINTER:
        n = _I32.unpack_from(buf, vs)[0]
        return {"$dbPointer": {"$ref": _str_at(buf, vs), "$id": {"$oid": buf[vs + 4 + n:ve].hex()}}}
    if t == T_UNDEFINED:
        return {"$undefined": True}
    if t == T_MINKEY:
        return {"$minKey": 1}
    if t == T_MAXKEY:
        return {"$maxKey": 1}
    raise CodecError(f"unsupported BSON type 0x{t:02x}")


def _raise(exc: Exception) -> Any:
    raise exc


_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
if json.encoder.c_make_encoder is not None:
    # What ``_json_encoder.encode`` runs, built once instead of on every call (the
    # objects encoded here never contain cycles, so no circular-reference markers).
    _c_encode = json.encoder.c_make_encoder(None, _json_encoder.default, json.encoder.encode_basestring, None,
                                            ":", ",", False, False, False)

    def _dumps(obj: Any) -> str:
        return "".join(_c_encode(obj, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _dumps = _json_encoder.encode


def to_json_text(raw_doc: bytes) -> str:
    """A whole raw BSON document in the lossless JSON dialect."""
    return _dumps(_doc_to_obj(bytes(raw_doc), 0))


def value_to_json_text(t: int, buf: bytes, vs: int, ve: int) -> str:
    return _dumps(_value_to_obj(t, buf, vs, ve))


# --------------------------------------------------------------------------
# JSON dialect -> raw BSON


class _Pairs(list):
    """A JSON object as an ordered list of (key, value): keeps repeated keys."""


def _loads(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"invalid JSON cell: {exc}") from None


def _cstring(s: str) -> bytes:
    b = s.encode("utf-8")
    if b"\x00" in b:
        raise CodecError("field name or regex contains a NUL character")
    return b + b"\x00"


def _bstring(s: str) -> bytes:
    b = s.encode("utf-8")
    return _I32.pack(len(b) + 1) + b + b"\x00"


def _doc_bytes(pairs: Iterable[tuple[str, Any]]) -> bytes:
    parts = []
    for key, value in pairs:
        t, data = _obj_to_value(value)
        parts.append(bytes((t,)) + _cstring(key) + data)
    body = b"".join(parts)
    return _I32.pack(len(body) + 5) + body + b"\x00"


def _wrapped_fields(obj: _Pairs) -> list[tuple[str, Any]]:
    (key, value), = obj
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value):
        raise CodecError(f"{key} must be a list of [name, value] pairs")
    return [(k, v) for k, v in value]


def _hex_bytes(text: Any, n: int, what: str) -> bytes:
    try:
        b = bytes.fromhex(text)
    except (TypeError, ValueError):
        b = b""
    if len(b) != n:
        raise CodecError(f"invalid {what}: {text!r}")
    return b


def _wrapper_value(obj: _Pairs) -> tuple[int, bytes]:
    keys = tuple(k for k, _ in obj)
    v = obj[0][1]
    try:
        if keys == ("$numberLong",):
            return T_INT64, _I64.pack(int(v))
        if keys == ("$date",):
            if isinstance(v, str):
                return T_DATE, _I64.pack(_iso_to_date_ms(v))
            (k2, ms), = v
            if k2 != "$numberLong":
                raise ValueError("bad $date")
            return T_DATE, _I64.pack(int(ms))
        if keys == ("$oid",):
            return T_OID, _hex_bytes(v, 12, "ObjectId")
        if keys == ("$numberDecimal",):
            return T_DECIMAL, Decimal128(v).bid
        if keys == ("$numberDouble",):
            return T_DOUBLE, _DBL.pack(float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v)))
        if keys == ("$numberInt",):
            return T_INT32, _I32.pack(int(v))
        if keys == ("$doubleBits",):
            return T_DOUBLE, _hex_bytes(v, 8, "$doubleBits")[::-1]
        if keys == ("$decimalBits",):
            return T_DECIMAL, _hex_bytes(v, 16, "$decimalBits")[::-1]
        if keys == ("$binary",):
            d = dict(v)
            data = base64.b64decode(d["base64"], validate=True)
            sub = int(d["subType"], 16)
            if sub == 2:
                data = _I32.pack(len(data)) + data
            return T_BINARY, _I32.pack(len(data)) + bytes((sub,)) + data
        if keys == ("$regularExpression",):
            d = dict(v)
            return T_REGEX, _cstring(d["pattern"]) + _cstring(d["options"])
        if keys == ("$timestamp",):
            d = dict(v)
            return T_TIMESTAMP, struct.pack("<II", d["i"], d["t"])
        if keys == ("$code",):
            return T_CODE, _bstring(v)
        if keys == ("$code", "$scope"):
            code = _bstring(v)
            st, scope = _obj_to_value(obj[1][1])
            if st != T_DOC:
                raise CodecError("$scope must be a document")
            return T_CODE_W_SCOPE, _I32.pack(4 + len(code) + len(scope)) + code + scope
        if keys == ("$symbol",):
            return T_SYMBOL, _bstring(v)
        if keys == ("$dbPointer",):
            d = dict(v)
            oid = dict(d["$id"])["$oid"]
            return T_DBPOINTER, _bstring(d["$ref"]) + _hex_bytes(oid, 12, "ObjectId")
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


def _obj_to_value(obj: Any) -> tuple[int, bytes]:
    if isinstance(obj, str):
        return T_STRING, _bstring(obj)
    if obj is True or obj is False:
        return T_BOOL, b"\x01" if obj else b"\x00"
    if isinstance(obj, int):
        if not -2**31 <= obj < 2**31:
            raise CodecError(f"bare integer {obj} is outside the int32 range")
        return T_INT32, _I32.pack(obj)
    if isinstance(obj, float):
        return T_DOUBLE, _DBL.pack(obj)
    if obj is None:
        return T_NULL, b""
    if isinstance(obj, _Pairs):
        if obj and obj[0][0][:1] == "$":
            return _wrapper_value(obj)
        return T_DOC, _doc_bytes(obj)
    if isinstance(obj, list):
        return T_ARRAY, _doc_bytes((str(i), v) for i, v in enumerate(obj))
    raise CodecError(f"unsupported JSON value {obj!r}")


def from_json_text(text: str) -> bytes:
    """Inverse of ``to_json_text``: a whole document in the JSON dialect to raw BSON."""
    obj = _loads(text)
    if not isinstance(obj, _Pairs):
        raise CodecError("a document must be a JSON object")
    t, data = _obj_to_value(obj)
    if t != T_DOC:
        raise CodecError("a document cell must hold a document")
    return data


# --------------------------------------------------------------------------
# Plain-text cells


def _plain_cell(t: int, buf: bytes, vs: int, ve: int) -> tuple[str, str | None]:
    """Return (cell text, cell type) for one value; the type says how to read it back."""
    if t == T_STRING:
        return _guard(buf[vs + 4:ve - 1].decode("utf-8")), "string"
    if t == T_INT32:
        return str(_I32.unpack_from(buf, vs)[0]), "int32"
    if t == T_INT64:
        return str(_I64.unpack_from(buf, vs)[0]), "int64"
    if t == T_DOUBLE:
        v = _DBL.unpack_from(buf, vs)[0]
        if v != v and buf[vs:vs + 8] != _CANONICAL_NAN:
            return value_to_json_text(t, buf, vs, ve), "json"
        return repr(v), "double"
    if t == T_BOOL:
        if buf[vs] > 1:
            raise CodecError("corrupt BSON: bad boolean")
        return ("true" if buf[vs] else "false"), "bool"
    if t == T_DATE:
        ms = _I64.unpack_from(buf, vs)[0]
        if _MIN_ISO_MS <= ms <= _MAX_ISO_MS:
            return _date_ms_to_iso(ms), "date"
    elif t == T_OID:
        return buf[vs:ve].hex(), "objectId"
    elif t == T_DECIMAL:
        text = _decimal_text(buf[vs:ve])
        if text is not None:
            return text, "decimal"
    elif t == T_NULL:
        return "", "null"
    return value_to_json_text(t, buf, vs, ve), "json"


def _cell_type(t: int, buf: bytes, vs: int) -> str:
    """The type a value's cell gets (cheap: used by the first pass)."""
    name = PLAIN_TYPES.get(t)
    if name is None:
        return "json"
    if t == T_DATE:
        ms = _I64.unpack_from(buf, vs)[0]
        return "date" if _MIN_ISO_MS <= ms <= _MAX_ISO_MS else "json"
    return name


_DECIMAL_RE = re.compile(r"(-?)(\d{1,34})(?:\.(\d*))?(?:E([-+]\d{1,4}))?")


def _parse_decimal(cell: str) -> bytes:
    m = _DECIMAL_RE.fullmatch(cell)
    if m:
        sign, whole, frac, exp = m.groups()
        digits = whole + (frac or "")
        exponent = int(exp or 0) - len(frac or "")
        if len(digits) <= 34 and -6176 <= exponent <= 6111:
            coefficient = int(digits)
            high = (1 << 63 if sign else 0) | (exponent + 6176) << 49 | coefficient >> 64
            return _U64.pack(coefficient & 0xFFFFFFFFFFFFFFFF, high)
    return Decimal128(cell).bid


def _parse_bool(cell: str) -> bytes:
    if cell == "true":
        return b"\x01"
    if cell == "false":
        return b"\x00"
    raise ValueError(f"expected true or false, got {cell!r}")


def _parse_null(cell: str) -> bytes:
    if cell:
        raise ValueError("a null cell must be empty")
    return b""


_PLAIN_PARSERS = {
    "int32": (T_INT32, lambda c: _I32.pack(int(c))),
    "int64": (T_INT64, lambda c: _I64.pack(int(c))),
    "double": (T_DOUBLE, lambda c: _DBL.pack(float(c))),
    "bool": (T_BOOL, _parse_bool),
    "date": (T_DATE, lambda c: _I64.pack(_iso_to_date_ms(c))),
    "objectId": (T_OID, lambda c: _hex_bytes(c, 12, "ObjectId")),
    "decimal": (T_DECIMAL, _parse_decimal),
    "null": (T_NULL, _parse_null),
}


def _parse_plain(ctype: str, cell: str) -> tuple[int, bytes]:
    if ctype == "string":
        return T_STRING, _bstring(cell[1:] if cell[:1] == "'" else cell)
    if ctype == "json":
        return _obj_to_value(_loads(cell))
    try:
        t, parse = _PLAIN_PARSERS[ctype]
    except KeyError:
        raise CodecError(f"unknown cell type {ctype!r}") from None
    try:
        return t, parse(cell)
    except (ValueError, struct.error, ArithmeticError, CodecError) as exc:
        raise CodecError(f"invalid {ctype} cell {cell[:60]!r}: {exc}") from None


# --------------------------------------------------------------------------
# Fast paths
#
# The exact walkers above do every byte in Python. The fast paths below let
# pymongo's C extension turn bytes into Python objects (encode) and Python
# objects into bytes (decode), and only map between those objects and cell
# text in Python. pymongo's object model is not lossless (Symbol decodes as
# str, Undefined as None, DBPointer as DBRef, repeated names collapse, array
# element names are dropped, a bare integer above int32 would become int64,
# ...), so each fast path only accepts what it can prove is lossless and
# raises ``_NotFast`` otherwise (any other exception counts the same); the
# caller then runs the exact walker, which also raises the errors the format
# defines. The text or bytes a fast path returns are always the ones the
# exact walker returns for the same input.


class _NotFast(Exception):
    """The fast path cannot vouch for this input; the exact walker must run."""


class _Int64AsDecimal(TypeCodec):
    """Read int64 as ``decimal.Decimal`` (an exact integer) and write it back as int64.

    ``Int64`` subclasses ``int``, so the JSON encoder would write it as a bare
    number (an int32 in the dialect); a ``Decimal`` is unknown to it and
    reaches ``_json_default``. No other BSON type decodes to ``Decimal``.
    """

    python_type = decimal.Decimal
    bson_type = Int64
    transform_python = Int64
    transform_bson = decimal.Decimal


class _CodeRefused(TypeDecoder):
    """Read JavaScript code as an object nothing can encode, so its document fails the
    round-trip check of ``_decoded_document`` and goes to the exact walker (``Code``
    subclasses ``str``: the JSON encoder would write it as a plain string)."""

    bson_type = Code

    def transform_bson(self, value: Any) -> Any:
        return _REFUSED


_REFUSED = object()
# for bytes -> objects (and the check back); see _decoded_document
_C_DECODE_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                                 type_registry=TypeRegistry([_Int64AsDecimal(), _CodeRefused()]))
# for objects -> bytes (RowDecoder): plain pymongo types
_C_OPTIONS = CodecOptions()


def _c_unavailable(*_args: Any) -> Any:
    raise _NotFast


# pymongo's C extension does the byte work of the fast paths; without it (a pure-Python
# build of pymongo) every document takes the exact walker
_bson_to_dict = getattr(_cbson, "_bson_to_dict", _c_unavailable)
_dict_to_bson = getattr(_cbson, "_dict_to_bson", _c_unavailable)
_b64encode = base64.b64encode
_scan_json = json.JSONDecoder(object_pairs_hook=tuple).scan_once  # JSON objects as tuples of (key, value)
_INT32_MIN, _INT32_MAX = -2**31, 2**31 - 1
_BOOL_VALUES = {"true": True, "false": False}
_BOOL_TEXT = {True: "true", False: "false"}
_fromisoformat = _dt.datetime.fromisoformat


def _decoded_document(raw: bytes) -> dict:
    """``raw`` as Python objects, only if they encode back to exactly ``raw``.

    That check is what makes the objects trustworthy: once it holds, each
    value's Python type names its BSON type (str = string, int = int32,
    ``decimal.Decimal`` = int64, float = double, None = null, datetime or
    DatetimeMS = UTC datetime, bytes / Binary = binary, ...), every dict had
    no repeated names and every list had element names 0, 1, 2, ... Symbol,
    Undefined, DBPointer, code, non-canonical regex flags etc. decode to
    objects that encode differently (or not at all), so documents holding
    them fail the check. Datetimes outside years 1..9999 decode as
    DatetimeMS (``DATETIME_AUTO``). ``top_level=False`` keeps ``_id`` where
    it was instead of moving it first.
    """
    try:
        doc = _bson_to_dict(raw, _C_DECODE_OPTIONS)
        same = _dict_to_bson(doc, False, _C_DECODE_OPTIONS, False) == raw
    except Exception:  # whatever pymongo refuses, the exact walker explains
        raise _NotFast from None
    if not same:
        raise _NotFast
    return doc


def _iso(d: _dt.datetime) -> str:
    """A decoded (naive UTC, whole milliseconds) datetime as ``_date_ms_to_iso`` writes it."""
    return d.isoformat(timespec="milliseconds") + "Z"


def _date_obj(ms: int) -> Any:
    if _MIN_ISO_MS <= ms <= _MAX_ISO_MS:
        return {"$date": _date_ms_to_iso(ms)}
    return {"$date": {"$numberLong": str(ms)}}


def _dialect(v: Any) -> Any:
    """A value of a ``_decoded_document`` as the JSON-able object ``_value_to_obj`` gives for its bytes.

    Strings, int32, booleans, null and finite doubles are their own JSON form;
    containers are rebuilt with converted members (inlined for those leaves,
    the common case). Non-finite doubles and the rare types (code, regex,
    timestamp, min/max key, DBRef) raise ``_NotFast``.
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
        raise _NotFast
    return _json_default(v)


def _json_default(v: Any) -> Any:
    """The dialect's object for a decoded value of a type JSON does not have (the JSON encoder's hook)."""
    t = type(v)
    if t is _dt.datetime:
        return {"$date": _iso(v)}
    if t is decimal.Decimal:  # int64, see _Int64AsDecimal
        return {"$numberLong": str(v)}
    if t is ObjectId:
        return {"$oid": str(v)}
    if t is Decimal128:
        return _decimal_obj(v.bid)
    if t is bytes:  # binary subtype 0
        return {"$binary": {"base64": _b64encode(v).decode("ascii"), "subType": "00"}}
    if t is Binary:  # other subtypes; pymongo already dropped subtype 2's inner length, as the dialect does
        return {"$binary": {"base64": _b64encode(v).decode("ascii"), "subType": f"{v.subtype:02x}"}}
    if t is DatetimeMS:
        return _date_obj(int(v))
    raise _NotFast  # regex, timestamp, min/max key, DBRef: the exact walker writes them


if json.encoder.c_make_encoder is not None:
    _c_encode_value = json.encoder.c_make_encoder(None, _json_default, json.encoder.encode_basestring, None,
                                                  ":", ",", False, False, False)

    def _value_json(v: Any) -> str:
        """``_dumps(_dialect(v))`` in one pass of the C JSON encoder, for a value of a document without
        ``$`` anywhere in its bytes (so no field name starts with one).

        Containers, str, int32, bool and None are written as themselves,
        finite doubles by ``float.__repr__`` (as ``_dumps`` does), NaN and
        infinities raise ValueError (``allow_nan`` is off), everything else
        goes through ``_json_default``: the same text as ``_dialect``. (No
        decoded value subclasses str, int, float, list or dict here: int64 is
        a ``Decimal`` and code is refused.)
        """
        return "".join(_c_encode_value(v, 0))
else:  # pragma: no cover - CPython always has the C encoder
    def _value_json(v: Any) -> str:
        return _walked_json(v)


def _walked_json(v: Any) -> str:
    """A decoded value as dialect text, for any document (names starting with ``$`` included)."""
    return _dumps(_dialect(v))


def _fast_plain_cell(v: Any) -> tuple[str, str]:
    """(cell text, cell type) of a decoded value, as ``_plain_cell`` gives for its bytes."""
    t = type(v)
    if t is str:
        return _guard(v), "string"
    if t is int:
        return str(v), "int32"
    if t is float:
        if v != v:  # NaN: canonical or with a payload, the exact walker tells
            raise _NotFast
        return repr(v), "double"
    if t is _dt.datetime:
        return _iso(v), "date"
    if t is decimal.Decimal:  # see _Int64AsDecimal
        return str(v), "int64"
    if v is None:
        return "", "null"
    if t is bool:
        return _BOOL_TEXT[v], "bool"
    if t is ObjectId:
        return str(v), "objectId"
    if t is Decimal128:
        raw = v.bid
        text = _decimal_text(raw)
        if text is not None:
            return text, "decimal"
        return _dumps(_decimal_obj(raw)), "json"
    if t is DatetimeMS:
        ms = int(v)
        if _MIN_ISO_MS <= ms <= _MAX_ISO_MS:
            return _date_ms_to_iso(ms), "date"
    return _walked_json(v), "json"


def _double_text(v: float) -> str:
    if v != v:  # NaN: canonical or with a payload, the exact walker tells
        raise _NotFast
    return repr(v)


def _decimal_cell_text(v: Decimal128) -> str:
    text = _decimal_text(v.bid)
    if text is None:  # a $decimalBits cell: rare, the exact walker writes it
        raise _NotFast
    return text


# column type -> (the Python type of a decoded value of that type, its cell text); see RowEncoder._fast_row
_COLUMN_FORMATS: dict[str, tuple[type, Any]] = {
    "string": (str, _guard),
    "int32": (int, int.__repr__),
    "int64": (decimal.Decimal, str),  # see _Int64AsDecimal: an exact integer, written without exponent
    "double": (float, _double_text),
    "bool": (bool, _BOOL_TEXT.__getitem__),
    "date": (_dt.datetime, _iso),
    "objectId": (ObjectId, str),
    "decimal": (Decimal128, _decimal_cell_text),
    "null": (type(None), lambda v: ""),
}


def _py_int32(cell: str) -> int:
    v = int(cell)
    if _INT32_MIN <= v <= _INT32_MAX:
        return v
    raise _NotFast  # the exact walker refuses it


def _py_date(cell: str) -> _dt.datetime:
    """A date cell as a naive datetime: pymongo writes naive datetimes as UTC, faster than aware ones.

    Same checks as ``_parse_iso``; a text that only parses without its ``Z``
    (or that carries an offset) is left to the exact walker.
    """
    if len(cell) != 24 or cell[-1] != "Z" or cell[10] != "T" or cell[19] != ".":
        raise _NotFast
    d = _fromisoformat(cell[:-1])
    if d.tzinfo is not None:
        raise _NotFast
    return d


def _py_null(cell: str) -> None:
    if cell:
        raise _NotFast
    return None


def _py_json(cell: str) -> Any:
    obj, end = _scan_json(cell, 0)  # what json.loads runs; surrounding white space is left to the exact walker
    if end != len(cell):
        raise _NotFast
    return _from_dialect(obj)


# cell type -> parser of a cell into the Python object pymongo encodes as the same bytes as
# ``_parse_plain`` ("string" is inlined by the caller)
_PY_PARSERS = {
    "int32": _py_int32,
    "int64": lambda c: Int64(int(c)),
    "double": float,
    "bool": _BOOL_VALUES.__getitem__,
    "date": _py_date,
    "objectId": ObjectId,
    "decimal": lambda c: Decimal128.from_bid(_parse_decimal(c)),
    "null": _py_null,
    "json": _py_json,
}


def _from_dialect(obj: Any) -> Any:
    """Parsed JSON dialect (objects as tuples of pairs) -> Python objects pymongo encodes exactly.

    Mirrors ``_obj_to_value``: bare integers are int32 (others are refused by
    the exact walker), a repeated name is left to the exact walker (a dict
    would drop it), wrappers go to ``_from_wrapper``.
    """
    t = type(obj)
    if t is str or t is float or t is bool or obj is None:
        return obj
    if t is int:
        if _INT32_MIN <= obj <= _INT32_MAX:
            return obj
        raise _NotFast
    # members that are their own Python form (str, float, bool, int32) are checked inline: most are
    if t is list:
        return [x if ((tx := type(x)) is str or tx is float or tx is bool
                      or (tx is int and _INT32_MIN <= x <= _INT32_MAX)) else _from_dialect(x) for x in obj]
    if t is tuple:
        if obj and obj[0][0][:1] == "$":
            return _from_wrapper(obj)
        doc = {k: x if ((tx := type(x)) is str or tx is float or tx is bool
                        or (tx is int and _INT32_MIN <= x <= _INT32_MAX)) else _from_dialect(x) for k, x in obj}
        if len(doc) != len(obj):
            raise _NotFast
        return doc
    raise _NotFast


def _from_wrapper(obj: tuple) -> Any:
    """The common one-key wrappers, in exactly the forms ``_wrapper_value`` accepts; others raise ``_NotFast``."""
    if len(obj) != 1:
        raise _NotFast
    (key, v), = obj
    tv = type(v)
    if key == "$date":
        if tv is str:
            return _py_date(v)
        if tv is tuple and len(v) == 1 and v[0][0] == "$numberLong":
            return DatetimeMS(int(v[0][1]))
    elif key == "$numberLong":
        if tv is str:
            return Int64(int(v))
    elif key == "$oid":
        if tv is str:
            return ObjectId(v)
    elif key == "$numberDecimal":
        if tv is str:
            return Decimal128(v)
    elif key == "$numberDouble":
        if tv is str:
            return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v))
    elif key == "$binary":
        if tv is tuple:
            d = dict(v)
            data = base64.b64decode(d["base64"], validate=True)
            sub = int(d["subType"], 16)
            # pymongo writes subtype 2 with its inner length prefix, as _wrapper_value does
            return data if sub == 0 else Binary(data, sub)
    raise _NotFast


def _fast_shape(raw: bytes) -> tuple[bytes, ...]:
    """Type byte + name bytes of each top-level field, for a well-formed document.

    The same walk and checks as ``iter_elements``, inlined, without decoding
    names (the caller does that once per distinct shape). A datetime outside
    years 1..9999 gets type byte 0 instead of 9, which no BSON type has: its
    cell type is ``json``, not ``date``. Regex and DBPointer fields and
    anything malformed raise ``_NotFast``.
    """
    fixed, prefixed, unpack, find = _FIXED_SIZE.get, _LEN_PREFIXED.get, _I32.unpack_from, raw.find
    end = unpack(raw, 0)[0] - 1
    pos = 4
    shape = []
    while pos < end:
        t = raw[pos]
        name_end = find(b"\x00", pos + 1)
        if name_end < 0:
            raise _NotFast
        vs = name_end + 1
        if t == T_DATE and not _MIN_ISO_MS <= _I64.unpack_from(raw, vs)[0] <= _MAX_ISO_MS:
            shape.append(b"\x00" + raw[pos + 1:name_end])
        else:
            shape.append(raw[pos:name_end])
        size = fixed(t)
        if size is None:
            extra = prefixed(t)
            if extra is None:
                raise _NotFast
            size = extra + unpack(raw, vs)[0]
        pos = vs + size
        if pos > end:
            raise _NotFast
    if pos != end or raw[end] != 0:
        raise _NotFast
    return tuple(shape)


# --------------------------------------------------------------------------
# Collections: schema (first pass), rows (second pass)


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
        return [_guard(c.name) for c in self.columns] + [META_COLUMN]

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
            _cstring(c.name)
        if len({c.name for c in cols}) != len(cols):
            raise CodecError("duplicate column names in manifest")
        return cls(cols)


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
        self._known: dict[tuple[bytes, ...], Shape] = {}  # _fast_shape -> shape

    def add(self, raw: bytes) -> None:
        raw = bytes(raw)  # pymongo may hand out memoryviews
        try:
            fast = _fast_shape(raw)
        except (_NotFast, struct.error, IndexError):
            shape = self._exact_shape(raw)
        else:
            shape = self._known.get(fast)
            if shape is None:
                shape = self._known[fast] = self._named_shape(fast, raw)
        shapes = self._shapes
        shapes[shape] = shapes.get(shape, 0) + 1
        if len(shapes) >= self.MAX_SHAPES:
            self._flush()

    @staticmethod
    def _named_shape(fast: tuple[bytes, ...], raw: bytes) -> Shape:
        """Decode a new fast shape; stop before the first repeated name, as ``_exact_shape``."""
        shape: list[tuple[str, str]] = []
        seen: set[str] = set()
        for item in fast:
            ctype = PLAIN_TYPES.get(item[0], "json")
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
            shape.append((name, _cell_type(t, raw, vs)))
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
        # per column: (Python type whose values are plain cells of the column's type, formatter);
        # (None, None) for json columns
        self._formats = [_COLUMN_FORMATS.get(t, (None, None)) for t in self._types]
        # field names in document order -> what _fast_row needs for them (None: a name without column)
        self._plans: dict[tuple[str, ...], _RowPlan | None] = {}

    def encode(self, raw: bytes) -> list[str]:
        raw = bytes(raw)  # pymongo may hand out memoryviews
        try:
            return self._fast_row(raw)
        except Exception:  # _NotFast, or anything the exact walker turns into its own error
            return self._exact_row(raw)

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
        """The row from pymongo's decoded objects (see ``_decoded_document`` for why they are exact)."""
        doc = _decoded_document(raw)
        plan = self._plan(tuple(doc))  # names are unique: a dict that encodes back to raw
        if plan is None:
            return self._whole_doc(raw)
        fields, missing, order, meta_text = plan
        cells = [""] * (len(self._types) + 1)
        types: dict[str, str] = {}
        value_json = _value_json if b"$" not in raw else _walked_json
        for (i, expected, fmt), v in zip(fields, doc.values()):
            if type(v) is expected:  # the common case: a plain cell of the column's type
                cells[i] = fmt(v)
            elif expected is None:  # a json column
                cells[i] = value_json(v)
            else:
                cells[i], ctype = _fast_plain_cell(v)
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
            text, ctype = _plain_cell(t, raw, vs, ve)
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
        return _dumps(meta) if meta else ""

    def _whole_doc(self, raw: bytes) -> list[str]:
        cells = [""] * (len(self._types) + 1)
        cells[-1] = _dumps({"doc": to_json_text(raw)})
        return cells


class RowDecoder:
    """One CSV row -> raw BSON bytes, strictly validated."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._names = [_cstring(c.name) for c in schema.columns]
        self._keys = [c.name for c in schema.columns]
        self._types = [c.type for c in schema.columns]
        self._all = list(range(len(schema.columns)))
        # meta cell text -> (per field in order: (column, name, parser; None for strings), missing columns)
        self._plans: dict[str, tuple[list[tuple[int, str, Any]], list[int]]] = {}

    def decode(self, row: Sequence[str]) -> bytes:
        n = len(self._types)
        if len(row) != n + 1:
            raise CodecError(f"row has {len(row)} cells, expected {n + 1}")
        try:
            raw = self._fast_document(row)
        except Exception:  # _NotFast, or anything the exact walker turns into its own error
            raw = self._exact_document(row)
        return self._check_size(raw)

    MAX_PLANS = 1024

    def _plan(self, meta_cell: str) -> tuple[list[tuple[int, str, Any]], list[int]]:
        """What ``_fast_document`` does for rows with this meta cell (valid, without ``doc``; else ``_NotFast``).

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
                raise _NotFast
            types = meta.get("types") or {}
            missing = meta.get("missing") or []
            order = meta.get("order")
            if order is None and type(missing) is list:
                absent = set(missing)
                order = [i for i in self._all if i not in absent] if missing else self._all
            if (type(types) is not dict or type(order) is not list or type(missing) is not list
                    or not all(type(i) is int for i in order + missing) or sorted(order + missing) != self._all):
                raise _NotFast
        fields = []
        for i in order:
            ctype = types.get(str(i), self._types[i])
            fields.append((i, self._keys[i], None if ctype == "string" else _PY_PARSERS[ctype]))
        if len(self._plans) >= self.MAX_PLANS:
            self._plans.clear()
        plan = self._plans[meta_cell] = fields, missing
        return plan

    def _fast_document(self, row: Sequence[str]) -> bytes:
        """The document as pymongo objects, encoded by pymongo's C code in one call.

        Each cell becomes the object pymongo writes as exactly the bytes
        ``_parse_plain`` writes (``_PY_PARSERS``, ``_from_dialect``).
        """
        fields, missing = self._plan(row[len(self._types)])
        if missing and any(row[i] for i in missing):
            raise _NotFast  # the exact walker refuses it
        doc = {}
        for i, name, parse in fields:
            cell = row[i]
            doc[name] = (cell[1:] if cell[:1] == "'" else cell) if parse is None else parse(cell)
        return _dict_to_bson(doc, False, _C_OPTIONS, False)

    def _exact_document(self, row: Sequence[str]) -> bytes:
        """The document by the exact byte writer: every valid row, and the errors for invalid ones."""
        n = len(self._types)
        meta_cell = row[n]
        order: list[int] = self._all
        types: dict = {}
        if meta_cell:
            meta = _loads(meta_cell)
            if not isinstance(meta, _Pairs) or set(dict(meta)) - {"missing", "types", "order", "doc"}:
                raise CodecError("row meta cell must be a JSON object with keys missing/types/order/doc")
            meta = dict(meta)
            if "doc" in meta:
                if any(row[:n]) or not isinstance(meta["doc"], str):
                    raise CodecError("a whole-document row must hold the document in its meta cell only")
                return from_json_text(meta["doc"])
            types = meta.get("types") or {}
            if isinstance(types, _Pairs):
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
                t, data = _parse_plain(ctype, row[i])
                parts.append(bytes((t,)) + names[i] + data)
        except (TypeError, IndexError):
            raise CodecError("row meta refers to a column that does not exist") from None
        body = b"".join(parts)
        return _I32.pack(len(body) + 5) + body + b"\x00"

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
