"""Keys MongoDB takes as one (int32 1, int64 1, 1.0): verify reports them, restore refuses before any write
(hole 4)."""

from __future__ import annotations

import json

import bson
import pytest
from bson.int64 import Int64

from backup_core.errors import IntegrityError, RestoreRefused
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import LocalStore
from backup_core.store.writer import write_documents

from tests.faults.helpers import snapshot

EQ = "Equipment"


def craft_backup(store: LocalStore, database: str, docs: dict[str, list[dict]]) -> str:
    """A backup written through the store, holding exactly these documents (as a forger would)."""
    return write_documents(store, database, {n: ([bson.encode(d) for d in items],
                                                 [{"v": 2, "key": {"_id": 1}, "name": "_id_"}], {})
                                             for n, items in docs.items()})


@pytest.mark.parametrize("second", [Int64(1), 1.0, bson.Decimal128("1.000")])
def test_numerically_equal_ids_fail_deep_verify(db, store, second):
    backup_id = craft_backup(store, db.name, {EQ: [{"_id": 1, "v": "a"}, {"_id": second, "v": "b"}]})
    assert store.verify(backup_id, deep=False).ok  # every hash is right: only decoding can tell
    res = store.verify(backup_id)
    assert not res.ok
    assert "occurs more than once" in res.problems[0] and "same key" in res.problems[0]


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_restore_refuses_before_any_write_with_exit_5(db, store, cli, mode):
    db[EQ].insert_many([{"_id": i, "v": "live"} for i in range(5)])
    backup_id = craft_backup(store, db.name, {EQ: [{"_id": 1, "v": "a"}, {"_id": Int64(1), "v": "b"}]})
    before = snapshot(db, EQ)
    with pytest.raises(IntegrityError) as err:
        restore_backup(db, store, backup_id, RestoreOptions(mode=mode, confirmed=True, user="t"))
    assert "_id" in str(err.value) and "same value" in str(err.value)
    assert "damaged or was edited" in err.value.hint and "unique" not in err.value.hint
    assert snapshot(db, EQ) == before
    assert [b.backup_id for b in store.list_backups()] == [backup_id]  # no safety backup was written
    proc = cli("restore", backup_id, "--mode", mode, "--yes")
    assert proc.returncode == 5, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "damaged or was edited" in proc.stderr
    assert snapshot(db, EQ) == before


def test_duplicates_of_another_key_are_a_refusal_with_its_own_hint(db, store):
    db[EQ].insert_many([{"_id": i, "asset": i} for i in range(3)])
    backup_id = craft_backup(store, db.name, {EQ: [{"_id": 1, "asset": 7}, {"_id": 2, "asset": Int64(7)}]})
    with pytest.raises(RestoreRefused) as err:
        restore_backup(db, store, backup_id, RestoreOptions(mode="merge", match_field="asset", confirmed=True, user="t"))
    assert "not unique" in str(err.value) and "choose a key field that is unique" in err.value.hint


def test_compare_pairs_a_live_int32_with_a_backup_int64(db, store):
    db[EQ].insert_one({"_id": 1, "v": "x"})
    backup_id = craft_backup(store, db.name, {EQ: [{"_id": Int64(1), "v": "x"}]})
    from backup_core.compare import compare_backup

    c = compare_backup(db, store, backup_id).collections[EQ]
    assert (c.changed, c.only_in_backup, c.only_in_live) == (1, 0, 0)
    # and a merge then replaces that document instead of failing late on a duplicate key
    res = restore_backup(db, store, backup_id, RestoreOptions(mode="merge", confirmed=True, user="t"))
    assert res.collections[EQ].updated == 1
    assert json.loads(bson.json_util.dumps(db[EQ].find_one())) == {"_id": 1, "v": "x"}


def test_merge_hints_never_suggest_what_was_already_done(db, store):
    db[EQ].insert_one({"_id": 5, "v": 1})
    backup_id = craft_backup(store, db.name, {EQ: [{"v": "no id"}, {"_id": 7, "v": 2}]})
    with pytest.raises(RestoreRefused) as err:
        restore_backup(db, store, backup_id, RestoreOptions(mode="merge", confirmed=True, user="t"))
    assert "lack that field" in str(err.value)
    assert "by _id" not in err.value.hint and "--mode replace" in err.value.hint
    # by another key, the hint offers _id
    other = craft_backup(store, db.name, {EQ: [{"_id": 5, "v": 99}]})
    with pytest.raises(RestoreRefused) as err:
        restore_backup(db, store, other, RestoreOptions(mode="merge", match_field="v", confirmed=True, user="t"))
    assert "reuse the _id" in str(err.value) and "merge by _id" in err.value.hint
    assert db[EQ].find_one({"_id": 5})["v"] == 1
