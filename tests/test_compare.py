"""compare.py and the pairing engine (pairing.py): backup vs live data, by _id or by a chosen match field,
down to the field."""

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
from backup_core.compare import compare_backup, field_diffs, iter_differences
from backup_core.errors import UsageError
from backup_core.keys import MISSING, id_matcher, key_bytes, key_text
from backup_core.pairing import NotUnique
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
    _compare_reports_exactly_the_changes(db, data)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_compare_reports_exactly_the_changes_in_tiny_batches(db, data, tiny_batches):
    # the disk-backed index looks documents up a batch at a time: batches of 2 cross every boundary
    _compare_reports_exactly_the_changes(db, data)


def _compare_reports_exactly_the_changes(db, data):
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


@pytest.fixture
def tiny_batches(monkeypatch):
    from backup_core import pairing

    monkeypatch.setattr(pairing, "_BATCH", 2)
    monkeypatch.setattr(pairing, "_SQL_VARS", 3)


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
    by_key = compare_backup(db, store, bid, match_field="asset_id").collections["eq"]
    assert (by_key.changed, by_key.identical, by_key.only_in_backup) == (6, 0, 0)
    (d,) = itertools.islice(iter_differences(db, store, bid, "eq", match_field="asset_id"), 1)
    assert d.key == "A0" and [f.path for f in d.fields] == ["_id"]


def test_key_must_be_unique_both_sides(db, store):
    db.c.insert_many([{"_id": 1, "g": 1}, {"_id": 2, "g": 1}])
    bid = _backup(db, store)
    with pytest.raises(NotUnique, match="not unique in the backup"):
        compare_backup(db, store, bid, match_field="g")
    db.c.update_one({"_id": 2}, {"$set": {"g": 2}})
    bid2 = _backup(db, store)
    db.c.insert_one({"_id": 3, "g": 2})
    with pytest.raises(NotUnique, match="not unique in live"):
        compare_backup(db, store, bid2, match_field="g")


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
        compare_backup(db, store, bid, match_field="$bad")


def test_paging_and_statuses(db, store):
    db.c.insert_many([{"_id": i} for i in range(30)])
    bid = _backup(db, store)
    db.c.delete_many({"_id": {"$lt": 10}})
    page = list(itertools.islice(iter_differences(db, store, bid, "c", statuses=["only_in_backup"]), 3, 6))
    assert [d.key for d in page] == [3, 4, 5]
    assert sum(1 for _ in iter_differences(db, store, bid, "c", statuses=["identical"])) == 20
    with pytest.raises(UsageError):
        list(iter_differences(db, store, bid, "c", statuses=["bogus"]))


# --------------------------------------------------------------------------
# The disk-backed pairing: batches, repeats across batches, order


def _forged_backup(store, database: str, name: str, docs: list) -> str:
    """A backup holding exactly ``docs`` (raw BSON), even ones MongoDB would refuse (repeated _ids)."""
    from tests.store.conftest import write_backup

    return write_backup(store, database, {name: docs})


@pytest.mark.parametrize("batch", [1000, 2])
def test_repeated_keys_of_other_numeric_types_are_found_across_batches(db, store, monkeypatch, batch):
    from backup_core import pairing

    monkeypatch.setattr(pairing, "_BATCH", batch)
    docs = [bson.encode({"_id": i, "g": i}) for i in range(2, 9)]
    docs.insert(6, bson.encode(SON([("_id", Int64(4)), ("g", 100)])))  # _id 4 again, as an int64
    bid = _forged_backup(store, db.name, "c", docs)
    with pytest.raises(NotUnique, match="not unique in the backup of c: several documents share the key value 4 "
                                        r"\(as int and long, which MongoDB treats as the same value\)"):
        compare_backup(db, store, bid)
    # the first repeat in backup order is the one reported
    docs = [bson.encode({"_id": i}) for i in (1, 2, 3, 3.0, 2)]
    bid = _forged_backup(store, db.name, "d", docs)
    with pytest.raises(NotUnique, match=r"share the key value 3\.0 \(as int and double"):
        compare_backup(db, store, bid, ["d"])


@pytest.mark.parametrize("batch", [1000, 2])
def test_live_repeats_are_found_across_batches(db, store, monkeypatch, batch):
    from backup_core import pairing

    monkeypatch.setattr(pairing, "_BATCH", batch)
    db.c.insert_many([{"_id": i, "g": i} for i in range(6)])
    bid = _backup(db, store)
    db.c.insert_one({"_id": 10, "g": Int64(3)})  # pairs with a backup document another live one has
    with pytest.raises(NotUnique, match="not unique in live collection c: several documents share the key value 3"):
        compare_backup(db, store, bid, match_field="g")
    db.c.delete_one({"_id": 10})
    db.c.insert_many([{"_id": 11, "g": 50}, {"_id": 12, "g": 51}, {"_id": 13, "g": 50.0}])  # live-only repeats
    with pytest.raises(NotUnique, match=r"share the key value 50.* \(as int and double"):
        compare_backup(db, store, bid, match_field="g")


def test_order_is_live_order_then_backup_order_in_any_batch_size(db, store, monkeypatch):
    from backup_core import pairing

    db.c.insert_many([{"_id": i, "v": 0} for i in range(12)])
    bid = _backup(db, store)
    db.c.delete_many({"_id": {"$in": [1, 5, 9]}})
    db.c.update_many({"_id": {"$in": [2, 7]}}, {"$set": {"v": 1}})
    db.c.insert_many([{"_id": 20}, {"_id": -1}])
    orders = []
    for batch in (1000, 2, 1):
        monkeypatch.setattr(pairing, "_BATCH", batch)
        orders.append([(d.status, d.key) for d in iter_differences(db, store, bid, "c")])
    assert orders[0] == [("only_in_live", -1), ("changed", 2), ("changed", 7), ("only_in_live", 20),
                         ("only_in_backup", 1), ("only_in_backup", 5), ("only_in_backup", 9)]
    assert orders[1] == orders[0] and orders[2] == orders[0]


@pytest.mark.parametrize("block", [1 << 22, 7])
def test_stored_comparison_pages_and_filters(db, store, monkeypatch, block):
    from backup_core import paged_compare
    from backup_core.paged_compare import StoredComparison

    monkeypatch.setattr(paged_compare, "_SCAN_BLOCK", block)  # 7 bytes: every line crosses a block boundary
    db.c.insert_many([{"_id": i, "name": f"item {i}", "v": 0} for i in range(40)])
    bid = _backup(db, store)
    db.c.delete_many({"_id": {"$lt": 5}})
    db.c.update_many({"_id": {"$gte": 30}}, {"$set": {"v": 1}})
    db.c.insert_many([{"_id": 100 + i, "name": f"new {i}"} for i in range(3)])
    cmp = StoredComparison.compute(db, store, bid)
    try:
        expected = [(d.status, d.key) for d in iter_differences(db, store, bid, "c")]
        pages = []
        for p in range(10):
            docs, more = cmp.page("c", page=p, page_size=4)
            pages += [(d.status, d.key) for d in docs]
            if not more:
                break
        assert pages == expected and cmp.count("c") == 18
        assert cmp.count("c", ["changed"]) == 10 and cmp.count("c", ["only_in_backup", "only_in_live"]) == 8
        assert [d.key for d in cmp.page("c", ["changed"], "ITEM 3")[0]] == [30, 31, 32, 33, 34, 35, 36, 37, 38, 39]
        assert [d.key for d in cmp.page("c", None, "item 3")[0]] == list(range(30, 40)) + [3]  # live order first
        assert [d.key for d in cmp.page("c", None, "new 2")[0]] == [102]
        assert cmp.count("c", None, "no such text") == 0 and cmp.page("c", None, "x\ny")[0] == []
        # a selection is computed once and kept: paging through it reads no search text again
        calls = []
        real = paged_compare._Records.matching
        monkeypatch.setattr(paged_compare._Records, "matching", lambda self, n: calls.append(n) or real(self, n))
        for p in range(3):
            cmp.page("c", None, "item 3", page=p, page_size=2)
        assert calls == []
    finally:
        cmp.close()


def test_a_full_temporary_disk_is_a_one_line_storage_error(db, store, monkeypatch):
    import sqlite3

    from backup_core import pairing
    from backup_core.errors import StorageError

    db.c.insert_many([{"_id": i} for i in range(3)])
    bid = _backup(db, store)

    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(pairing, "write_rows", full)
    with pytest.raises(StorageError, match="temporary index on disk failed: database or disk is full") as err:
        compare_backup(db, store, bid)
    assert "TMPDIR" in err.value.hint
