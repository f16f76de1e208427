"""Document keys: exact bytes, MongoDB's equality of keys, and how people type them."""

from __future__ import annotations

import bson
import pytest
from bson import Decimal128, Int64, ObjectId
from hypothesis import given
from hypothesis import strategies as st

from backup_core.keys import MISSING, id_matcher, key_bytes, key_identity, key_text


def kb(value) -> bytes:
    return key_bytes(bson.encode({"_id": value}), "_id")


@pytest.mark.parametrize("a, b", [
    (1, Int64(1)), (1, 1.0), (1, Decimal128("1.000")), (0, -0.0), (Int64(2**40), float(2**40)),
({"a": 1}, {"a": Int64(1)}), (float("nan"), Decimal128("NaN")),
])
def test_equal_to_mongodb(a, b):
    assert key_identity(kb(a)) == key_identity(kb(b))


@pytest.mark.parametrize("a, b", [
    (1, 2), (1, "1"), (0.1, Decimal128("0.1")), ({"a": 1, "b": 2}, {"b": 2, "a": 1}), (ObjectId(), ObjectId()),
    (True, 1), (None, 0),
])
def test_different_to_mongodb(a, b):
    assert key_identity(kb(a)) != key_identity(kb(b))


@given(st.integers(min_value=-2**31, max_value=2**31 - 1))
def test_int32_int64_and_double_of_one_value_are_one_key(n):
    assert key_identity(kb(n)) == key_identity(kb(Int64(n))) == key_identity(kb(float(n)))


def test_nested_path_and_missing():
    raw = bson.encode({"meta": {"asset": "A-1"}})
    assert key_text(key_bytes(raw, "meta.asset")) == "A-1"
    assert key_bytes(raw, "meta.none") == MISSING and key_identity(MISSING) == MISSING


def test_matcher_by_text_and_by_json():
    match = id_matcher(["7", {"$oid": "5f1d7a000000000000000000"}])
    assert match(kb(7)) and match(kb(Int64(7)))
    assert match(kb(ObjectId("5f1d7a000000000000000000")))
    assert not match(kb(8)) and not match(MISSING)
