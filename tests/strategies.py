"""Hypothesis strategies: BSON documents chosen to break CSV files and spreadsheets."""

from __future__ import annotations

import datetime as dt
import struct

import bson
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.son import SON
from hypothesis import strategies as st

NASTY = [
    "", " ", "=1+2", "=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "'quoted",
    "''", "\tTab", "\rCR", "a,b", 'say "hi"', "line1\nline2", "line1\r\nline2", "123", "-5", "1.5", "1e10",
    "0x1F", "true", "false", "TRUE", "null", "NULL", "None", "NaN", "nan", "inf", "-inf", "N/A", "#N/A",
    "2024-01-01", "2024-01-01T00:00:00.000Z", "00123", "\ufeffbom", "é", "日本語", "🙂", "\x00nul", "\\", "{}",
    "[]", '{"$oid": "5f0000000000000000000000"}', "__bson_row__", "\u2028", "a\x0bb",
]

names = st.one_of(
    st.sampled_from(["_id", "a", "b", "name", "=f", "-x", "@x", "a,b", 'q"t', "new\nline", "", " ", "$dollar",
                     "a.b", "é", "🙂", "__bson_row__", "1", "0"]),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
)
texts = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=2000, max_size=6000).filter(lambda s: len(s) > 0),
)


def _ms_datetime(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e300, 5e-324, float("nan"), float("inf"), float("-inf")]),
    # NaNs with payloads and the sign bit set
    st.integers(1, 2**51 - 1).map(lambda p: struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | p))[0]),
)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d.adjusted() < 6000 and d.adjusted() > -6000).map(lambda d: Decimal128(str(d)) if len(d.as_tuple().digits) <= 34 else Decimal128("1.0")),
    st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "-0", "0E-6176", "1.10", "-1E+3"]).map(Decimal128),
    st.binary(min_size=16, max_size=16).map(Decimal128.from_bid),
)
scalars = st.one_of(
    texts,
    st.integers(-2**31, 2**31 - 1),
    st.integers(-2**63, 2**63 - 1).map(Int64),
    doubles,
    decimals,
    st.booleans(),
    st.none(),
    st.integers(-62135596800000, 253402300799999).map(_ms_datetime),
    st.integers(-2**63, 2**63 - 1).map(DatetimeMS),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.builds(Binary, st.binary(max_size=40), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0xFF])),
    st.binary(max_size=40),
    st.builds(Regex, st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=10),
              st.sampled_from(["", "i", "imsx", "u"])),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.just(MinKey()),
    st.just(MaxKey()),
    st.builds(Code, texts),
)


def _docs(children):
    return st.lists(st.tuples(names, children), max_size=6).map(lambda kv: SON(kv))


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        _docs(children),
        st.builds(Code, texts, _docs(children)),
        st.builds(DBRef, st.text(max_size=8), children),
    ),
    max_leaves=12,
)

# top-level documents: unique field names (BSON from pymongo has no duplicates), any order
documents = st.lists(st.tuples(names, values), max_size=8, unique_by=lambda kv: kv[0]).map(SON)


def encode(doc) -> bytes:
    return bson.encode(doc)


# collections of documents that share fields (so columns get real types) in varying order
def _shaped(fields):
    return st.lists(
        st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)).flatmap(
            lambda names_: st.tuples(*[st.tuples(st.just(n), values) for n in names_]).map(SON)),
        min_size=1, max_size=8)


collections = st.one_of(
    st.lists(documents, min_size=0, max_size=6),
    st.lists(names, min_size=1, max_size=5, unique=True).flatmap(_shaped),
)
