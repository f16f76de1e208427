"""Plain cells: the one table of how each plain type is written as cell text and read back.

A value takes two forms in the codec: BSON value bytes and cell text. For
each plain type (``string``, ``int32``, ... the ``type`` of a column in the
manifest) one ``CellType`` below holds both conversions, and the JSON dialect
writes the typed wrappers (``{"$date": ...}``, ``{"$numberLong": ...}``, ...)
with the same text (``wrapper``). So a new type or a changed rule is one
entry here (and its twin in the compiled accelerator, ``_speedups.c``, which
``tests/codec/test_accel.py`` holds to the same output), and
``tests/codec/test_cells.py`` checks that each entry's two halves agree.

Values with no plain text (nested documents, arrays, binary, ...; and the few
values of a plain type that text cannot hold exactly, where ``text_from_bytes``
returns None) are written in the JSON dialect (``dialect.py``) instead.
"""

from __future__ import annotations

import datetime as _dt
import re
import struct
from dataclasses import dataclass
from typing import Any, Callable

from bson.decimal128 import Decimal128

from ..errors import CodecError
from .bsonwalk import (DBL, I32, I64, T_BOOL, T_DATE, T_DECIMAL, T_DOUBLE, T_INT32, T_INT64, T_NULL, T_OID,
                       T_STRING, bstring, utf8_text)

# --------------------------------------------------------------------------
# Strings: the formula guard

FORMULA_CHARS = frozenset("=+-@'\t\r")


def guard(s: str) -> str:
    """Put a ``'`` before text a spreadsheet would run as a formula (and before a ``'``, so it reverses)."""
    return "'" + s if s and s[0] in FORMULA_CHARS else s


def unguard(s: str) -> str:
    return s[1:] if s and s[0] == "'" else s


# --------------------------------------------------------------------------
# Numbers and dates

_CANONICAL_NAN = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"


def _double_text(buf: bytes, vs: int, _ve: int) -> str | None:
    v = DBL.unpack_from(buf, vs)[0]
    if v != v and buf[vs:vs + 8] != _CANONICAL_NAN:
        return None  # a NaN with payload or sign: only $doubleBits holds it
    return repr(v)  # the shortest text that reads back to the same bits


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MS = _dt.timedelta(milliseconds=1)
# datetimes that ISO-8601 text (years 1..9999) can hold
MIN_ISO_MS = -62135596800000
MAX_ISO_MS = 253402300799999


def iso_from_ms(ms: int) -> str:
    d = _EPOCH + _dt.timedelta(milliseconds=ms)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond // 1000:03d}Z"


def _date_text(buf: bytes, vs: int, _ve: int) -> str | None:
    ms = I64.unpack_from(buf, vs)[0]
    return iso_from_ms(ms) if MIN_ISO_MS <= ms <= MAX_ISO_MS else None


def _date_cell_ok(text: str) -> bool:
    return len(text) == 24 and text[-1] == "Z" and text[10] == "T" and text[19] == "."


def _date_bytes(text: str) -> bytes:
    if not _date_cell_ok(text):
        raise ValueError(f"not an ISO-8601 UTC datetime with milliseconds: {text!r}")
    return I64.pack((_dt.datetime.fromisoformat(text) - _EPOCH) // _MS)


_U64 = struct.Struct("<QQ")
_MAX_COEFFICIENT = 10**34 - 1


def decimal_text(raw: bytes) -> str | None:
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


_DECIMAL_RE = re.compile(r"(-?)(\d{1,34})(?:\.(\d*))?(?:E([-+]\d{1,4}))?")


def parse_decimal(text: str) -> bytes:
    """Decimal128 bits of a text, as ``Decimal128(text).bid`` (tested), but fast for the texts we write."""
    m = _DECIMAL_RE.fullmatch(text) if type(text) is str else None
    if m:
        sign, whole, frac, exp = m.groups()
        digits = whole + (frac or "")
        exponent = int(exp or 0) - len(frac or "")
        if len(digits) <= 34 and -6176 <= exponent <= 6111:
            coefficient = int(digits)
            high = (1 << 63 if sign else 0) | (exponent + 6176) << 49 | coefficient >> 64
            return _U64.pack(coefficient & 0xFFFFFFFFFFFFFFFF, high)
    return Decimal128(text).bid


# --------------------------------------------------------------------------
# The rest


def hex_bytes(text: Any, n: int, what: str) -> bytes:
    try:
        b = bytes.fromhex(text)
    except (TypeError, ValueError):
        b = b""
    if len(b) != n:
        raise CodecError(f"invalid {what}: {text!r}")
    return b


def _bool_text(buf: bytes, vs: int, _ve: int) -> str:
    if buf[vs] > 1:
        raise CodecError("corrupt BSON: bad boolean")
    return "true" if buf[vs] else "false"


def _bool_bytes(text: str) -> bytes:
    if text == "true":
        return b"\x01"
    if text == "false":
        return b"\x00"
    raise ValueError(f"expected true or false, got {text!r}")


def _null_bytes(text: str) -> bytes:
    if text:
        raise ValueError("a null cell must be empty")
    return b""


# --------------------------------------------------------------------------
# The table


@dataclass(frozen=True, slots=True)
class CellType:
    """One plain cell type and its two conversions: BSON value bytes -> cell text and back.

    ``bytes_from_text(text_from_bytes(...))`` gives the same bytes back
    whenever ``text_from_bytes`` gives text (None: no plain text holds these
    bytes exactly; the JSON dialect then does).
    """

    name: str  # the column / cell type, as the manifest records it
    bson_type: int  # its BSON element type
    # the dialect writes a value as {wrapper: its cell text}; None: as JSON's own string/number/true/false/null
    wrapper: str | None
    text_from_bytes: Callable[[bytes, int, int], str | None]  # (buf, value start, value end); None: no plain text
    bytes_from_text: Callable[[str], bytes]  # the value bytes; ValueError etc. for a bad cell


# Each entry: name, BSON type, dialect wrapper; text_from_bytes (encoding), bytes_from_text (decoding).
STRING = CellType("string", T_STRING, None,
                  lambda buf, vs, ve: guard(utf8_text(buf[vs + 4:ve - 1])),
                  lambda text: bstring(unguard(text)))
INT32 = CellType("int32", T_INT32, None,
                 lambda buf, vs, ve: str(I32.unpack_from(buf, vs)[0]),
                 lambda text: I32.pack(int(text)))
INT64 = CellType("int64", T_INT64, "$numberLong",
                 lambda buf, vs, ve: str(I64.unpack_from(buf, vs)[0]),
                 lambda text: I64.pack(int(text)))
DOUBLE = CellType("double", T_DOUBLE, None,
                  _double_text,
                  lambda text: DBL.pack(float(text)))
BOOL = CellType("bool", T_BOOL, None,
                _bool_text,
                _bool_bytes)
DATE = CellType("date", T_DATE, "$date",
                _date_text,
                _date_bytes)
OBJECT_ID = CellType("objectId", T_OID, "$oid",
                     lambda buf, vs, ve: buf[vs:ve].hex(),
                     lambda text: hex_bytes(text, 12, "ObjectId"))
DECIMAL = CellType("decimal", T_DECIMAL, "$numberDecimal",
                   lambda buf, vs, ve: decimal_text(buf[vs:ve]),
                   parse_decimal)
NULL = CellType("null", T_NULL, None,
                lambda buf, vs, ve: "",
                _null_bytes)

PLAIN = (STRING, INT32, INT64, DOUBLE, BOOL, DATE, OBJECT_ID, DECIMAL, NULL)
BY_NAME = {ct.name: ct for ct in PLAIN}
BY_BSON_TYPE = {ct.bson_type: ct for ct in PLAIN}
BY_WRAPPER = {ct.wrapper: ct for ct in PLAIN if ct.wrapper}

# Column/cell types written as plain text, by BSON type; and every cell type.
PLAIN_TYPES = {ct.bson_type: ct.name for ct in PLAIN}
CELL_TYPES = frozenset(PLAIN_TYPES.values()) | {"json"}
