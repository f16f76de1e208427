"""compare.py: backup vs live data, by _id or by a chosen key, down to the field."""

from __future__ import annotations

import itertools
import shutil
import tempfile

import bson
import bson.errors
import pytest
from bson import Int64
from bson.son import SON
from hypothesis import given, settings, strategies as st

from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import (
    MISSING, NotUnique, compare_backup, field_diffs, id_matcher, iter_differences, key_bytes, key_text,
)
from backup_core.errors import UsageError
from backup_core.store import LocalStore
from tests.strategies import values

# top-level field names MongoDB accepts everywhere (no '$' prefix, no dots, not _id)
field_names = st.text(st.characters(blacklist_characters="\x00.$", blacklist_categories=("Cs",)),
                      min_size=1, max_size=8).filter(lambda s: s != "_id")


def _server_accepts(body) -> bool:
    # the embedded server decodes documents with pymongo's defaults, which refuse datetimes
    # outside years 1..9999; real MongoDB stores them (the codec's own tests cover them)
    try:
        bson.decode(bson.encode({"v": [v for _, v in body]}))
        return True
    except (bson.errors.InvalidBSON, OverflowError, ValueError):
        return False


bodies = st.lists(st.tuples(field_names, values), max_size=5, unique_by=lambda kv: kv[0]).filter(_server_accepts)
ACTIONS = ("keep", "delete", "modify", "reorder", "retype")


def _doc(i: int, body: list) -> SON:
    # "n" is an int32 in every original document, so "retype" can make it an int64
    return SON([("_id", i), ("n", 7)] + [(k, v) for k, v in body if k != "n"])


def _backup(db, store, **kw) -> str:
    return create_backup(db, store, BackupOptions(trigger="manual", **kw)).backup_id


def _mutate(db, coll: str, docs: list[SON], actions: list[str], new: list[list]) -> dict[str, set]:
    """Apply the changes; return the _ids expected under each status."""
    expect = {s: set() for s in ("only_in_backup", "only_in_live", "changed", "identical")}
    c = db[coll]
    for doc, action in zip(docs, actions):
        i = doc["_id"]
        if action == "delete":
            c.delete_one({"_id": i})
            expect["only_in_backup"].add(i)
        elif action == "modify":
            c.update_one({"_id": i}, {"$set": {"zz_added": "x"}})
            expect["changed"].add(i)
        elif action == "retype":
            c.update_one({"_id": i}, {"$set": {"n": Int64(7)}})
            expect["changed"].add(i)
        elif action == "reorder":
            items = [(k, v) for k, v in doc.items() if k != "_id"]
            c.replace_one({"_id": i}, SON([("_id", i)] + items[::-1]))
            expect["changed" if len(items) > 1 else "identical"].add(i)
        else:
            expect["identical"].add(i)
    for j, body in enumerate(new):
        c.insert_one(_doc(1000 + j, body))
        expect["only_in_live"].add(1000 + j)
    return expect


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_compare_reports_exactly_the_changes(db, data):
    bodies_ = data.draw(st.lists(bodies, min_size=1, max_size=10))
    docs = [_doc(i, b) for i, b in enumerate(bodies_)]
    actions = data.draw(st.lists(st.sampled_from(ACTIONS), min_size=len(docs), max_size=len(docs)))
    new = data.draw(st.lists(bodies, max_size=3))
    tmp = tempfile.mkdtemp()
    try:
        db.drop_collection("c")
        db.c.insert_many(docs)
        store = LocalStore(tmp)
        bid = _backup(db, store)
        expect = _mutate(db, "c", docs, actions, new)
        res = compare_backup(db, store, bid)
        cc = res.collections["c"]
        no_change = {"added": [], "removed": [], "changed": []}
        assert cc.to_json() == {**{s: len(v) for s, v in expect.items()},
                                "indexes": no_change, "options": no_change, "warnings": []}
        got = {s: set() for s in expect}
        for d in iter_differences(db, store, bid, "c", statuses=list(expect)):
            got[d.status].add(d.key)
            if d.status == "changed":
                paths = {f.path for f in d.fields}
                action = actions[d.key]
                if action == "modify":
                    assert "zz_added" in paths
                elif action == "retype":
                    (f,) = [f for f in d.fields if f.path == "n"]
                    assert (f.backup_type, f.live_type, f.backup, f.live) == ("int", "long", 7, {"$numberLong": "7"})
                elif action == "reorder":
                    assert "(field order)" in paths
            assert (d.backup_doc is None) == (d.status == "only_in_live")
            assert (d.live_doc is None) == (d.status == "only_in_backup")
        assert got == expect
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_field_diffs_nested_types_and_missing():
    b = bson.encode(SON([("_id", 1), ("a", {"x": 1, "y": [1, 2]}), ("gone", "v"), ("t", 1)]))
    l = bson.encode(SON([("_id", 1), ("a", {"x": 2, "y": [1, 2, 3]}), ("t", 1.0), ("new", None)]))
    diffs = {f.path: f for f in field_diffs(b, l)}
    assert diffs["a.x"].backup == 1 and diffs["a.x"].live == 2
    assert diffs["a.y.2"].backup_type == "missing" and diffs["a.y.2"].live == 3
    assert diffs["gone"].live_type == "missing" and diffs["gone"].backup == "v"
    assert (diffs["t"].backup_type, diffs["t"].live_type) == ("int", "double")
    assert diffs["new"].backup_type == "missing" and diffs["new"].live_type == "null"
    assert "a" not in diffs and "_id" not in diffs


def test_field_order_inside_subdocument():
    b = bson.encode(SON([("_id", 1), ("a", SON([("x", 1), ("y", 2)]))]))
    l = bson.encode(SON([("_id", 1), ("a", SON([("y", 2), ("x", 1)]))]))
    (f,) = field_diffs(b, l)
    assert f.path == "a.(field order)" and f.backup == ["x", "y"] and f.live == ["y", "x"]


def test_compare_by_custom_key(db, store):
    db.eq.insert_many([{"_id": i, "asset_id": f"A{i}", "v": i} for i in range(6)])
    bid = _backup(db, store)
    # the same assets under new _ids: by _id everything differs, by asset_id nothing does
    db.eq.delete_many({})
    db.eq.insert_many([{"_id": 100 + i, "asset_id": f"A{i}", "v": i} for i in range(6)])
    by_id = compare_backup(db, store, bid).collections["eq"]
    assert (by_id.only_in_backup, by_id.only_in_live) == (6, 6)
    by_key = compare_backup(db, store, bid, key="asset_id").collections["eq"]
    assert (by_key.changed, by_key.identical, by_key.only_in_backup) == (6, 0, 0)
    (d,) = itertools.islice(iter_differences(db, store, bid, "eq", key="asset_id"), 1)
    assert d.key == "A0" and [f.path for f in d.fields] == ["_id"]


def test_key_must_be_unique_both_sides(db, store):
    db.c.insert_many([{"_id": 1, "g": 1}, {"_id": 2, "g": 1}])
    bid = _backup(db, store)
    with pytest.raises(NotUnique, match="not unique in the backup"):
        compare_backup(db, store, bid, key="g")
    db.c.update_one({"_id": 2}, {"$set": {"g": 2}})
    bid2 = _backup(db, store)
    db.c.insert_one({"_id": 3, "g": 2})
    with pytest.raises(NotUnique, match="not unique in live"):
        compare_backup(db, store, bid2, key="g")


def test_keys_compared_by_exact_bson(db, store):
    db.c.insert_many([{"_id": "1", "v": 1}, {"_id": 2, "v": 1}])
    bid = _backup(db, store)
    db.c.delete_one({"_id": "1"})
    db.c.insert_one({"_id": 1, "v": 1})  # int 1 is not the string "1"
    cc = compare_backup(db, store, bid).collections["c"]
    assert (cc.only_in_backup, cc.only_in_live, cc.identical) == (1, 1, 1)


def test_numerically_equal_keys_of_other_types_are_one_key(db, store):
    # MongoDB takes int32 2, int64 2 and double 2.0 as one _id: they pair, as a change of type
    db.c.insert_many([{"_id": 2, "v": 1}, {"_id": 3, "v": 1}])
    bid = _backup(db, store)
    db.c.delete_many({})
    db.c.insert_many([{"_id": Int64(2), "v": 1}, {"_id": 3.0, "v": 1}])
    cc = compare_backup(db, store, bid).collections["c"]
    assert (cc.only_in_backup, cc.only_in_live, cc.changed, cc.identical) == (0, 0, 2, 0)
    diffs = [(d.key, [(f.path, f.backup_type, f.live_type) for f in d.fields])
             for d in iter_differences(db, store, bid, "c")]
    assert diffs == [({"$numberLong": "2"}, [("_id", "int", "long")]), (3.0, [("_id", "int", "double")])]


def test_key_helpers():
    raw = bson.encode(SON([("_id", bson.ObjectId("5f" * 12)), ("a", {"b": Int64(3)})]))
    assert key_text(key_bytes(raw, "_id")) == "5f" * 12
    assert key_text(key_bytes(raw, "a.b")) == "3"
    assert key_bytes(raw, "zz") == MISSING
    m = id_matcher(["5f" * 12])
    assert m(key_bytes(raw, "_id")) and not m(key_bytes(raw, "a.b"))
    assert id_matcher([{"$oid": "5f" * 12}])(key_bytes(raw, "_id"))


def test_unknown_collection_and_bad_key(db, store):
    db.c.insert_one({"_id": 1})
    bid = _backup(db, store)
    with pytest.raises(UsageError, match="no collection 'nope'"):
        compare_backup(db, store, bid, ["nope"])
    with pytest.raises(UsageError, match="invalid key"):
        compare_backup(db, store, bid, key="$bad")


def test_paging_and_statuses(db, store):
    db.c.insert_many([{"_id": i} for i in range(30)])
    bid = _backup(db, store)
    db.c.delete_many({"_id": {"$lt": 10}})
    page = list(itertools.islice(iter_differences(db, store, bid, "c", statuses=["only_in_backup"]), 3, 6))
    assert [d.key for d in page] == [3, 4, 5]
    assert sum(1 for _ in iter_differences(db, store, bid, "c", statuses=["identical"])) == 20
    with pytest.raises(UsageError):
        list(iter_differences(db, store, bid, "c", statuses=["bogus"]))
