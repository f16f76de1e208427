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
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from bson.decimal128 import Decimal128

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


def _iso_to_date_ms(text: str) -> int:
    if len(text) != 24 or text[-1] != "Z" or text[10] != "T" or text[19] != ".":
        raise ValueError(f"not an ISO-8601 UTC datetime with milliseconds: {text!r}")
    d = _dt.datetime.fromisoformat(text)
    return (d - _EPOCH) // _MS


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


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


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


class SchemaBuilder:
    """First pass: sees every document once, decides columns and their types."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._counts: list[Counter] = []

    def add(self, raw: bytes) -> None:
        raw = bytes(raw)  # pymongo may hand out memoryviews
        index, counts = self._index, self._counts
        seen = set()
        for t, name, vs, _ve in iter_elements(raw):
            if name in seen:
                return  # duplicate field names: the row keeps the whole document
            seen.add(name)
            i = index.get(name)
            if i is None:
                i = index[name] = len(self._names)
                self._names.append(name)
                counts.append(Counter())
            counts[i][_cell_type(t, raw, vs)] += 1

    def build(self) -> Schema:
        cols = []
        for name, counts in zip(self._names, self._counts):
            non_null = [(n, k) for k, n in counts.items() if k != "null"]
            # most common type wins; ties go to the first seen
            ctype = max(non_null, key=lambda p: p[0])[1] if non_null else "null"
            cols.append(Column(name, ctype))
        return Schema(cols)


class RowEncoder:
    """Second pass: one raw BSON document -> one CSV row (list of cells)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._index = {c.name: i for i, c in enumerate(schema.columns)}
        self._types = [c.type for c in schema.columns]

    def encode(self, raw: bytes) -> list[str]:
        raw = bytes(raw)  # pymongo may hand out memoryviews
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
        meta: dict[str, Any] = {}
        if len(present) != n:
            have = set(present)
            meta["missing"] = [i for i in range(n) if i not in have]
        if types:
            meta["types"] = types
        if any(a > b for a, b in zip(present, present[1:])):
            meta["order"] = present
        if meta:
            cells[n] = _dumps(meta)
        return cells

    def _whole_doc(self, raw: bytes) -> list[str]:
        cells = [""] * (len(self._types) + 1)
        cells[-1] = _dumps({"doc": to_json_text(raw)})
        return cells


class RowDecoder:
    """One CSV row -> raw BSON bytes, strictly validated."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._names = [_cstring(c.name) for c in schema.columns]
        self._types = [c.type for c in schema.columns]
        self._all = list(range(len(schema.columns)))

    def decode(self, row: Sequence[str]) -> bytes:
        n = len(self._types)
        if len(row) != n + 1:
            raise CodecError(f"row has {len(row)} cells, expected {n + 1}")
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
                return self._check_size(from_json_text(meta["doc"]))
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
        return self._check_size(_I32.pack(len(body) + 5) + body + b"\x00")

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
