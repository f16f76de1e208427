"""Hypothesis strategies for raw BSON that pymongo cannot make: the codec's hard cases, byte by byte.

``tests/strategies.py`` builds documents from pymongo objects, so it never
produces repeated names inside sub-documents, Symbol / DBPointer /
Undefined, array element names other than 0, 1, 2, ..., arbitrary NaN and
Decimal128 bit patterns or invalid UTF-8. These strategies write the bytes
themselves; ``mutated`` then damages valid documents (lengths, type bytes,
truncation) for the tests of corrupt input.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from ..strategies import NASTY


def bstr(b: bytes) -> bytes:
    return struct.pack("<i", len(b) + 1) + b + b"\x00"


def document(elements: list[bytes]) -> bytes:
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def element(t: int, name: bytes, value: bytes) -> bytes:
    return bytes((t,)) + name + b"\x00" + value


_BAD_UTF8 = [b"\xff", b"a\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80x"]

text_bytes = st.one_of(
    st.sampled_from(NASTY).map(lambda s: s.encode("utf-8")),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(lambda s: s.encode("utf-8")),
)
# mostly valid UTF-8, sometimes not (both paths must then refuse the document alike)
maybe_bad_text = st.one_of(text_bytes, text_bytes, text_bytes, text_bytes, st.sampled_from(_BAD_UTF8))
names = st.one_of(
    st.sampled_from([b"a", b"b", b"_id", b"$a", b"$", b"", b"0", b"1", b"=f", b"-x", b"__bson_row__",
                     "é".encode(), "🙂".encode(), b"$numberLong", b"$date", b"$fields"]),
    text_bytes.map(lambda b: b.replace(b"\x00", b"")),
)
cstrings = maybe_bad_text.map(lambda b: b.replace(b"\x00", b""))

_SPECIAL_DOUBLES = [struct.pack("<Q", q) for q in (
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001, 0x7FF0000000000001, 0x7FF0000000000000,
    0xFFF0000000000000, 0x8000000000000000, 0, 1, 0x3FF0000000000000)]
_SPECIAL_DECIMALS = [struct.pack("<QQ", 0, h) for h in (
    0x7C00000000000000, 0xFC00000000000000, 0x7E00000000000000, 0xFE00000000000000, 0x7800000000000000,
    0xF800000000000000, 0x3040000000000000, 0xB040000000000000, 0x6000000000000000)] + [
    struct.pack("<QQ", 1, 0x7C00000000000000), struct.pack("<QQ", 0xFFFFFFFFFFFFFFFF, 0x3041ED09BEAD87C0),
    struct.pack("<QQ", 0x378D8E6400000000, 0x3041ED09BEAD87C0)]


def _i64(lo: int, hi: int) -> st.SearchStrategy[bytes]:
    return st.integers(lo, hi).map(lambda v: struct.pack("<q", v))


scalars = st.one_of(
    st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from(_SPECIAL_DOUBLES),
              st.floats().map(lambda f: struct.pack("<d", f))).map(lambda b: (1, b)),
    maybe_bad_text.map(lambda b: (2, bstr(b))),
    st.tuples(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0xFF]), st.binary(max_size=24)).map(
        lambda p: (5, struct.pack("<i", len(p[1]) + 4) + b"\x02" + struct.pack("<i", len(p[1])) + p[1]) if p[0] == 2
        else (5, struct.pack("<i", len(p[1])) + bytes((p[0],)) + p[1])),
    st.just((6, b"")),
    st.binary(min_size=12, max_size=12).map(lambda b: (7, b)),
    st.sampled_from([(8, b"\x00"), (8, b"\x01")]),
    st.one_of(_i64(-2**63, 2**63 - 1), _i64(-62135596800000 - 5, 253402300799999 + 5),
              _i64(-10**12, 10**13)).map(lambda b: (9, b)),
    st.just((10, b"")),
    st.tuples(cstrings, st.sampled_from([b"", b"i", b"imsx", b"u", b"\xc3\xa9"])).map(
        lambda p: (11, p[0] + b"\x00" + p[1] + b"\x00")),
    st.tuples(maybe_bad_text, st.binary(min_size=12, max_size=12)).map(lambda p: (12, bstr(p[0]) + p[1])),
    maybe_bad_text.map(lambda b: (13, bstr(b))),
    maybe_bad_text.map(lambda b: (14, bstr(b))),
    st.binary(min_size=4, max_size=4).map(lambda b: (16, b)),
    st.binary(min_size=8, max_size=8).map(lambda b: (17, b)),
    _i64(-2**63, 2**63 - 1).map(lambda b: (18, b)),
    st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from(_SPECIAL_DECIMALS)).map(lambda b: (19, b)),
    st.sampled_from([(255, b""), (127, b"")]),
)


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    fields = st.lists(st.tuples(names, children), max_size=5)  # repeated names allowed
    docs = fields.map(lambda fs: (3, document([element(t, n, v) for n, (t, v) in fs])))
    arrays = st.tuples(st.lists(children, max_size=5), st.booleans(), st.lists(names, max_size=5)).map(
        lambda p: (4, document([element(t, str(i).encode() if p[1] or i >= len(p[2]) else p[2][i], v)
                                for i, (t, v) in enumerate(p[0])])))
    scoped = st.tuples(maybe_bad_text, fields).map(
        lambda p: (15, _code_w_scope(bstr(p[0]), document([element(t, n, v) for n, (t, v) in p[1]]))))
    return st.one_of(docs, arrays, scoped)


def _code_w_scope(code: bytes, scope: bytes) -> bytes:
    return struct.pack("<i", 4 + len(code) + len(scope)) + code + scope


values = st.recursive(scalars, _containers, max_leaves=10)

# top-level documents: names from a small pool (shared columns, mixed types), sometimes repeated
_top_names = st.one_of(st.sampled_from([b"_id", b"a", b"b", b"c", b"$d", b"=e"]), names)
raw_documents = st.lists(st.tuples(_top_names, values), max_size=6).map(
    lambda fs: document([element(t, n, v) for n, (t, v) in fs]))
raw_collections = st.lists(raw_documents, min_size=1, max_size=6)


@st.composite
def mutated(draw, raw_strategy=raw_documents) -> bytes:
    """A valid raw document, then damaged: bytes overwritten, a length changed, truncated or extended."""
    raw = bytearray(draw(raw_strategy))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["byte", "int32", "truncate", "extend"]))
        if kind == "byte" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif kind == "int32" and len(raw) >= 4:
            at = draw(st.integers(0, len(raw) - 4))
            old = struct.unpack_from("<i", raw, at)[0]
            raw[at:at + 4] = struct.pack("<i", draw(st.one_of(
                st.integers(-2**31, 2**31 - 1), st.integers(max(-2**31, old - 8), min(2**31 - 1, old + 8)))))
        elif kind == "truncate" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)):]
        elif kind == "extend":
            raw += draw(st.binary(min_size=1, max_size=4))
    return bytes(raw)
