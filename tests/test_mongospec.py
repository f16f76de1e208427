"""Index specs and collection options: what MongoDB accepts, and what would destroy restored data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import bson
import pytest
from bson.int64 import Int64

from backup_core.errors import FormatError
from backup_core.mongospec import DataCheck, check_collection_options, check_index_spec


@pytest.mark.parametrize("spec", [
    {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    {"v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "unique": True, "sparse": False},
    {"key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 3600},
    {"key": {"loc": "2dsphere"}, "name": "geo", "2dsphereIndexVersion": 3},
    {"key": {"$**": 1}, "name": "wild", "wildcardProjection": {"a": 1}},
    {"key": {"s": "text"}, "name": "s_text", "weights": {"s": 1}, "default_language": "english"},
    {"key": {"a": 1}, "name": "p", "partialFilterExpression": {"a": {"$gt": 5}}, "collation": {"locale": "fr"}},
])
def test_valid_index_specs_pass(spec):
    check_index_spec(spec, "x")


@pytest.mark.parametrize("spec, reason", [
    ({"key": {"a": 1}, "name": "a_1", "evil": True}, "does not know"),
    ({"key": {"a": 1}}, "no valid name"),
    ({"key": {}, "name": "n"}, "no key"),
    ({"key": {"a": 0}, "name": "n"}, "invalid direction"),
    ({"key": {"a": "sideways"}, "name": "n"}, "unknown index type"),
    ({"key": {"$where": 1}, "name": "n"}, "invalid field name"),
    ({"key": {"a": 1}, "name": "n", "unique": "yes"}, "invalid 'unique'"),
    ({"key": {"a": 1}, "name": "n", "expireAfterSeconds": -1}, "invalid 'expireAfterSeconds'"),
    ({"key": {"a": 1, "b": 1}, "name": "n", "expireAfterSeconds": 5}, "one field"),
    ({"key": {"b": 1}, "name": "_id_"}, "not the _id index"),
])
def test_invalid_index_specs_are_refused(spec, reason):
    with pytest.raises(FormatError, match=reason):
        check_index_spec(spec, "x")


@pytest.mark.parametrize("options, ok", [
    ({}, True),
    ({"capped": True, "size": 4096, "max": 10}, True),
    ({"validator": {"$jsonSchema": {}}, "validationLevel": "strict", "validationAction": "warn"}, True),
    ({"collation": {"locale": "en", "strength": 2}}, True),
    ({"capped": True}, False),
    ({"size": 100}, False),
    ({"capped": True, "size": -5}, False),
    ({"viewOn": "a", "pipeline": []}, False),
    ({"validationAction": "explode"}, False),
    ({"somethingNew": 1}, False),
])
def test_collection_options(options, ok):
    if ok:
        check_collection_options(options, "x")
    else:
        with pytest.raises(FormatError):
            check_collection_options(options, "x")


def _doc(**fields) -> bytes:
    return bson.encode(fields)


def test_ttl_finds_documents_that_would_expire_at_once():
    now = datetime.now(timezone.utc)
    check = DataCheck([{"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 3600}], {}, now=now)
    check.add(_doc(at=now - timedelta(hours=2)))       # expired an hour ago
    check.add(_doc(at=now - timedelta(minutes=5)))     # still 55 minutes to live
    check.add(_doc(at=[now + timedelta(days=1), now - timedelta(days=1)]))  # the earliest date counts
    check.add(_doc(other=1))                           # no such field: never expires
    findings = check.findings()
    assert len(findings) == 1 and "would delete 2 of 4" in findings[0] and "at_1" in findings[0]


def test_nested_ttl_field():
    now = datetime.now(timezone.utc)
    check = DataCheck([{"key": {"meta.seen": 1}, "name": "m", "expireAfterSeconds": Int64(0)}], {}, now=now)
    check.add(_doc(meta={"seen": now - timedelta(seconds=1)}))
    assert "would delete 1 of 1" in check.findings()[0]


def test_capped_smaller_than_the_data():
    check = DataCheck([], {"capped": True, "size": 1000, "max": 2})
    for i in range(5):
        check.add(_doc(i=i, pad="x" * 300))
    text = " ".join(check.findings())
    assert "cannot hold the" in text and "at most 2 documents" in text


def test_harmless_options_find_nothing():
    check = DataCheck([{"key": {"a": 1}, "name": "a_1", "unique": True}], {"capped": True, "size": 10**9})
    check.add(_doc(a=1))
    assert check.findings() == []
