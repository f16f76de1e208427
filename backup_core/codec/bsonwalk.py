"""Raw BSON bytes: element types, the walk over a document's elements, and element writing.

Everything else in the codec reads BSON through ``iter_elements`` and writes
it through ``cstring`` / ``bstring`` / ``document``, so the byte layout of the
BSON specification (https://bsonspec.org/spec.html) is spelled out here only.
The walk checks every length against its enclosing document and raises
``CodecError`` for corrupt input instead of reading past it.
"""

from __future__ import annotations

import struct
from typing import Iterator

from ..errors import CodecError

MAX_BSON_SIZE = 16 * 1024 * 1024

I32 = struct.Struct("<i")
I64 = struct.Struct("<q")
DBL = struct.Struct("<d")

# BSON element types
T_DOUBLE, T_STRING, T_DOC, T_ARRAY, T_BINARY, T_UNDEFINED, T_OID, T_BOOL = 1, 2, 3, 4, 5, 6, 7, 8
T_DATE, T_NULL, T_REGEX, T_DBPOINTER, T_CODE, T_SYMBOL, T_CODE_W_SCOPE = 9, 10, 11, 12, 13, 14, 15
T_INT32, T_TIMESTAMP, T_INT64, T_DECIMAL, T_MINKEY, T_MAXKEY = 16, 17, 18, 19, 255, 127

# Value sizes, so the walk skips a value without reading it: fixed sizes, and
# for length-prefixed values the bytes that precede or follow the int32 length
# (a string's length counts its NUL but not the prefix; a document's counts itself).
FIXED_SIZE = {T_DOUBLE: 8, T_DATE: 8, T_INT64: 8, T_TIMESTAMP: 8, T_INT32: 4, T_OID: 12, T_BOOL: 1,
              T_NULL: 0, T_UNDEFINED: 0, T_MINKEY: 0, T_MAXKEY: 0, T_DECIMAL: 16}
LEN_PREFIXED = {T_STRING: 4, T_CODE: 4, T_SYMBOL: 4, T_DOC: 0, T_ARRAY: 0, T_CODE_W_SCOPE: 0, T_BINARY: 5}


def cstring_end(buf: bytes, pos: int) -> int:
    end = buf.find(b"\x00", pos)
    if end < 0:
        raise CodecError("corrupt BSON: unterminated field name")
    return end


def value_end(t: int, buf: bytes, pos: int) -> int:
    """Where the value of type ``t`` starting at ``pos`` ends."""
    size = FIXED_SIZE.get(t)
    if size is not None:
        return pos + size
    extra = LEN_PREFIXED.get(t)
    if extra is not None:
        return pos + extra + I32.unpack_from(buf, pos)[0]
    if t == T_REGEX:
        return cstring_end(buf, cstring_end(buf, pos) + 1) + 1
    if t == T_DBPOINTER:
        return pos + 4 + I32.unpack_from(buf, pos)[0] + 12
    raise CodecError(f"corrupt BSON: unknown element type 0x{t:02x}")


def iter_elements(buf: bytes, start: int = 0) -> Iterator[tuple[int, str, int, int]]:
    """Yield ``(type, name, value_start, value_end)`` for the document at ``start``."""
    # value_end inlined for the common types: this loop runs for every field of every document
    fixed, prefixed, unpack, find = FIXED_SIZE.get, LEN_PREFIXED.get, I32.unpack_from, buf.find
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
                vend = vstart + extra + unpack(buf, vstart)[0] if extra is not None else value_end(t, buf, vstart)
            if vend > end:
                raise CodecError("corrupt BSON: element runs past the end of its document")
            if vend < vstart:  # a negative length: the walk would go back and loop forever
                raise CodecError("corrupt BSON: negative length")
            yield t, name, vstart, vend
            pos = vend
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise CodecError(f"corrupt BSON document: {exc}") from None
    if pos != end or buf[end] != 0:
        raise CodecError("corrupt BSON document: bad length")


def utf8_text(b: bytes) -> str:
    """Text bytes of a value (string, code, regex, ...); corrupt UTF-8 is a ``CodecError`` like any corrupt BSON."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"corrupt BSON: invalid UTF-8 in a text value: {exc}") from None


def str_at(buf: bytes, pos: int) -> str:
    """The length-prefixed string at ``pos``."""
    n = I32.unpack_from(buf, pos)[0]
    return utf8_text(buf[pos + 4:pos + 3 + n])


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800" escape: not valid BSON text
        raise CodecError(f"text {s[:40]!r} is not valid Unicode (lone surrogate)") from None


def cstring(s: str) -> bytes:
    """A field name or regex part: NUL-terminated, so it must not hold a NUL itself."""
    b = _utf8(s)
    if b"\x00" in b:
        raise CodecError("field name or regex contains a NUL character")
    return b + b"\x00"


def bstring(s: str) -> bytes:
    """A string value: int32 length (with the NUL), UTF-8, NUL."""
    b = _utf8(s)
    return I32.pack(len(b) + 1) + b + b"\x00"


def document(body: bytes) -> bytes:
    """A document from its encoded elements: int32 total length, elements, NUL."""
    return I32.pack(len(body) + 5) + body + b"\x00"
