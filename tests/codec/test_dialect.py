"""The JSON dialect of JSON cells: lossless for any BSON, the text docs/FORMAT.md describes."""

from __future__ import annotations

import datetime as dt
import struct

import bson
import pytest
from bson import SON, Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from hypothesis import given

from backup_core import codec
from backup_core.errors import CodecError

from ..strategies import documents, encode


@given(documents.map(encode))
def test_any_document_roundtrips_through_the_json_dialect(raw):
    assert codec.from_json_text(codec.to_json_text(raw)) == raw


def test_the_dialect_text_is_format_version_1():
    """One value of each kind, as version 1 writes it (docs/FORMAT.md, "The JSON dialect")."""
    nan_with_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    doc = SON([("i", 5), ("l", Int64(-7)), ("d", 1.0), ("nz", -0.0), ("big", 1e300), ("s", "=x"), ("b", True),
               ("n", None), ("at", dt.datetime(2024, 5, 6, 7, 8, 9, 123000)), ("early", DatetimeMS(-62135596800001)),
               ("oid", ObjectId(b"a" * 12)), ("dec", Decimal128("10.50")),
               ("decbits", Decimal128.from_bid(b"\xff" * 16)),
               ("nan", float("nan")), ("nanp", nan_with_payload), ("inf", float("-inf")),
               ("bin", Binary(b"\x01\x02", 0x80)), ("old", Binary(b"ab", 2)), ("re", Regex("a.b", "i")),
               ("ts", Timestamp(1, 2)), ("code", Code("f()")), ("scope", Code("g()", {"a": 1})),
               ("min", MinKey()), ("max", MaxKey()), ("sub", SON([("$x", 1), ("y", [1, "two", {"z": None}])]))])
    raw = bson.encode(doc)
    assert codec.to_json_text(raw) == (
        '{"i":5,"l":{"$numberLong":"-7"},"d":1.0,"nz":-0.0,"big":1e+300,"s":"=x","b":true,"n":null,'
        '"at":{"$date":"2024-05-06T07:08:09.123Z"},"early":{"$date":{"$numberLong":"-62135596800001"}},'
        '"oid":{"$oid":"616161616161616161616161"},"dec":{"$numberDecimal":"10.50"},'
        '"decbits":{"$decimalBits":"ffffffffffffffffffffffffffffffff"},"nan":{"$numberDouble":"NaN"},'
        '"nanp":{"$doubleBits":"7ff8000000000001"},"inf":{"$numberDouble":"-Infinity"},'
        '"bin":{"$binary":{"base64":"AQI=","subType":"80"}},"old":{"$binary":{"base64":"YWI=","subType":"02"}},'
        '"re":{"$regularExpression":{"pattern":"a.b","options":"i"}},"ts":{"$timestamp":{"t":1,"i":2}},'
        '"code":{"$code":"f()"},"scope":{"$code":"g()","$scope":{"a":1}},"min":{"$minKey":1},"max":{"$maxKey":1},'
        '"sub":{"$fields":[["$x",1],["y",[1,"two",{"z":null}]]]}}')
    assert codec.from_json_text(codec.to_json_text(raw)) == raw


def test_canonical_extended_json_int32_is_read():
    assert codec.from_json_text('{"a":{"$numberInt":"7"}}') == bson.encode({"a": 7})


@pytest.mark.parametrize("text", ['{"a":"\\ud800"}', '{"\\udfff":1}'])
def test_lone_surrogates_are_refused_as_damaged_input(text):
    with pytest.raises(CodecError, match="lone surrogate"):
        codec.from_json_text(text)
    schema = codec.Schema([codec.Column("a", "json")])
    with pytest.raises(CodecError, match="lone surrogate"):
        codec.RowDecoder(schema).decode([text, ""])
