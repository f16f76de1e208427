"""restore.py: replace and merge, dry run, safety backup and undo, refusals, audit."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile

import pytest
from bson import Int64
from bson.son import SON
from hypothesis import given, settings, strategies as st

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import compare_backup
from backup_core.errors import BackupNotFound, FormatError, IntegrityError, RestoreRefused
from backup_core.mongoutil import index_specs, raw_collection
from backup_core.restore import RestoreOptions, plan_restore, restore_backup
from backup_core.swapin import SwapInRegistry
from backup_core.store import MANIFEST, LocalStore, manifest_hash
from backup_core.testseam import on_checkpoint

from tests.store.conftest import forge_part
from tests.test_compare import ACTIONS, _doc, _mutate, bodies


def live(db, name) -> list[bytes]:
    return [bytes(d.raw) for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


def backed_up(store, bid, name) -> list[bytes]:
    return list(store.iter_documents(store.get(bid), name))


def indexes(db, name) -> list:
    return sorted(index_specs(raw_collection(db, name)), key=lambda s: s["name"])


def backup(db, store, **kw) -> str:
    return create_backup(db, store, BackupOptions(trigger="manual", **kw)).backup_id


def yes(**kw) -> RestoreOptions:
    return RestoreOptions(confirmed=True, user="tester", **kw)


def assert_no_swap_in_left(db, *expected) -> None:
    """No swap-in collection of a restore is left: the registry knows none, only user data is there."""
    assert SwapInRegistry.of(db).leftovers() == []
    assert sorted(db.list_collection_names()) == sorted(expected)


# --------------------------------------------------------------------------
# The main property: dry run == real run, and replace makes live equal the backup


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_replace_restore_round_trip(db, data):
    bodies_ = data.draw(st.lists(bodies, min_size=0, max_size=10))
    docs = [_doc(i, b) for i, b in enumerate(bodies_)]
    actions = data.draw(st.lists(st.sampled_from(ACTIONS), min_size=len(docs), max_size=len(docs)))
    new = data.draw(st.lists(bodies, max_size=3))
    tmp = tempfile.mkdtemp()
    try:
        for c in db.list_collection_names():
            db.drop_collection(c)
        db.create_collection("c")
        if docs:
            db.c.insert_many(docs)
        db.c.create_index([("n", 1), ("_id", -1)], name="n_id")
        db.other.insert_one({"_id": 1})
        store = LocalStore(tmp)
        bid = backup(db, store)
        expect = _mutate(db, "c", docs, actions, new)
        db.c.drop_index("n_id")
        db.c.create_index("zz_added", name="live_only")
        before = live(db, "c")
        plan = plan_restore(db, store, bid, RestoreOptions(collections=["c"]))
        cr = plan.collections["c"]
        assert (cr.inserted, cr.updated, cr.deleted, cr.unchanged) == (
            len(expect["only_in_backup"]), len(expect["changed"]), len(expect["only_in_live"]),
            len(expect["identical"]))
        assert live(db, "c") == before and plan.safety_backup_id is None  # the dry run changed nothing
        res = restore_backup(db, store, bid, yes(collections=["c"]))
        assert res.collections["c"] == cr
        assert cr.considered == len(set().union(*expect.values()))
        assert live(db, "c") == backed_up(store, bid, "c")  # byte for byte, in backup order
        assert indexes(db, "c") == sorted(store.get(bid).collections["c"].indexes, key=lambda s: s["name"])
        assert res.safety_backup_id and backed_up(store, res.safety_backup_id, "c") == before
        assert_no_swap_in_left(db, "c", "other")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_safety_backup_undoes_restore(db, store):
    db.c.insert_many([{"_id": i, "v": i} for i in range(5)])
    db.d.insert_many([{"_id": i} for i in range(3)])
    bid = backup(db, store)
    db.c.update_many({}, {"$set": {"v": "changed"}})
    db.c.insert_one({"_id": 99})
    db.d.delete_many({})
    before_c, before_d = live(db, "c"), live(db, "d")
    res = restore_backup(db, store, bid, yes())
    safety = store.get(res.safety_backup_id)
    assert safety.trigger == "safety" and set(safety.collections) == {"c", "d"}
    assert any(b.backup_id == res.safety_backup_id for b in store.list_backups())
    undo = restore_backup(db, store, res.safety_backup_id, yes())
    assert live(db, "c") == before_c and live(db, "d") == before_d
    assert undo.collections["c"].updated == 5 and undo.collections["c"].inserted == 1


def test_restore_of_a_collection_missing_live_can_be_undone(db, store):
    db.c.insert_many([{"_id": i} for i in range(3)])
    db.d.insert_one({"_id": 1})
    bid = backup(db, store)
    db.drop_collection("c")
    db.d.insert_one({"_id": 2})
    res = restore_backup(db, store, bid, yes())
    assert res.collections["c"].inserted == 3
    assert live(db, "c") == backed_up(store, bid, "c")
    safety = store.get(res.safety_backup_id)
    assert set(safety.collections) == {"d"} and safety.absent_collections == ["c"]

    # compare and dry run see the created collection as live-only data that undo removes
    cmp = compare_backup(db, store, safety.backup_id)
    assert cmp.collections["c"].only_in_live == 3
    assert plan_restore(db, store, safety.backup_id, yes()).collections["c"].deleted == 3
    # merge never removes a collection
    assert "c" not in plan_restore(db, store, safety.backup_id, yes(mode="merge")).collections

    undo = restore_backup(db, store, safety.backup_id, yes())
    assert undo.collections["c"].deleted == 3
    assert "c" not in db.list_collection_names()
    assert live(db, "d") == [b"\x0e\x00\x00\x00\x10_id\x00\x01\x00\x00\x00\x00",
                             b"\x0e\x00\x00\x00\x10_id\x00\x02\x00\x00\x00\x00"]
    # and the undo can itself be undone: its safety backup holds c again
    redo = restore_backup(db, store, undo.safety_backup_id, yes())
    assert redo.collections["c"].inserted == 3 and live(db, "c") == backed_up(store, bid, "c")


def test_undo_of_a_restore_into_an_empty_database(db, store):
    db.c.insert_many([{"_id": i} for i in range(3)])
    bid = backup(db, store)
    db.drop_collection("c")
    res = restore_backup(db, store, bid, yes())
    safety = store.get(res.safety_backup_id)
    assert safety.collections == {} and safety.absent_collections == ["c"]
    assert store.verify(safety.backup_id).ok
    restore_backup(db, store, safety.backup_id, yes())
    assert "c" not in db.list_collection_names()


def test_unconfirmed_restore_is_refused_and_audited(db, store):
    db.c.insert_one({"_id": 1})
    bid = backup(db, store)
    db.c.insert_one({"_id": 2})
    with pytest.raises(RestoreRefused, match="not confirmed"):
        restore_backup(db, store, bid, RestoreOptions(user="alice"))
    assert len(live(db, "c")) == 2 and len(store.list_backups()) == 1
    entry, started = audit.read(store.root, 2, audit.AuditFilter(action="restore"))
    assert (entry["user"], entry["outcome"]) == ("alice", "refused")
    assert (started["user"], started["outcome"], started["op"]) == ("alice", "started", entry["op"])


def test_audit_records_counts_and_safety_id(db, store):
    db.c.insert_many([{"_id": i} for i in range(3)])
    bid = backup(db, store)
    db.c.delete_one({"_id": 0})
    res = restore_backup(db, store, bid, RestoreOptions(confirmed=True, user="bob"))
    entry = audit.read(store.root, 1, audit.AuditFilter(action="restore"))[0]
    assert entry["user"] == "bob" and entry["outcome"] == "ok" and entry["safety_backup_id"] == res.safety_backup_id
    assert entry["counts"]["c"]["inserted"] == 1 and entry["backup_id"] == bid and "at" in entry


def test_failure_while_filling_leaves_live_untouched(db, store):
    db.a.insert_many([{"_id": i, "v": 1} for i in range(4)])
    db.b.insert_many([{"_id": i, "v": 1} for i in range(4)])
    bid = backup(db, store)
    db.a.update_many({}, {"$set": {"v": 2}})
    db.b.update_many({}, {"$set": {"v": 2}})
    before = live(db, "a"), live(db, "b")

    def boom(phase):
        if phase == "fill":
            from backup_core.errors import DatabaseUnavailable
            raise DatabaseUnavailable("simulated failure while filling")

    with pytest.raises(Exception, match="simulated"), on_checkpoint(boom):
        restore_backup(db, store, bid, yes())
    assert (live(db, "a"), live(db, "b")) == before
    assert_no_swap_in_left(db, "a", "b")
    entry = audit.read(store.root, 1, audit.AuditFilter(action="restore"))[0]
    assert entry["outcome"] == "error" and entry["safety_backup_id"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_dropped(db, store):
    db.c.insert_one({"_id": 1})
    bid = backup(db, store)
    # the swap-in collection of a restore that was killed: registered, owner gone
    registry = SwapInRegistry.of(db)
    stale = registry.create("c", "killed-op")
    registry.meta["staging"].update_one({"name": stale}, {"$set": {"pid": _dead_pid()}})
    db[stale].insert_one({"_id": 1})
    # a user collection that merely looks like an old-style temporary is user data, and stays
    db["__restore_tmp_20200101T000000Z_c"].insert_one({"_id": 1})
    restore_backup(db, store, bid, yes())
    assert stale not in db.list_collection_names()
    assert_no_swap_in_left(db, "c", "__restore_tmp_20200101T000000Z_c")


def test_restore_only_chosen_ids(db, store):
    db.c.insert_many([{"_id": i, "v": i} for i in range(6)])
    bid = backup(db, store)
    db.c.update_many({}, {"$set": {"v": -1}})
    db.c.insert_one({"_id": 50})
    opts = yes(ids=["1", 2, "50"])  # text as typed on a command line, or values from a comparison
    plan = plan_restore(db, store, bid, opts)
    c = plan.collections["c"]
    assert (c.updated, c.deleted, c.inserted, c.unchanged) == (2, 1, 0, 0)
    res = restore_backup(db, store, bid, opts)
    assert res.collections["c"] == c
    docs = {d["_id"]: d for d in db.c.find()}
    assert docs[1]["v"] == 1 and docs[2]["v"] == 2 and docs[3]["v"] == -1 and 50 not in docs


# --------------------------------------------------------------------------
# Merge


def _merge_setup(db, store):
    db.c.insert_many([{"_id": 1, "v": "b1"}, {"_id": 2, "v": "b2"}, {"_id": 3, "v": "same"}])
    bid = backup(db, store)
    db.c.delete_one({"_id": 1})                      # backup-only
    db.c.update_one({"_id": 2}, {"$set": {"v": "l2"}})  # conflicting
    db.c.insert_one({"_id": 4, "v": "live-only"})     # live-only
    return bid


@pytest.mark.parametrize("strategy", ["backup-wins", "live-wins"])
def test_merge_strategies(db, store, strategy):
    bid = _merge_setup(db, store)
    opts = yes(mode="merge", strategy=strategy)
    plan = plan_restore(db, store, bid, opts)
    res = restore_backup(db, store, bid, opts)
    c = res.collections["c"]
    assert c == plan.collections["c"]
    docs = {d["_id"]: d["v"] for d in db.c.find()}
    assert docs[1] == "b1" and docs[3] == "same" and docs[4] == "live-only"
    if strategy == "backup-wins":
        assert docs[2] == "b2"
        assert (c.inserted, c.updated, c.unchanged, c.skipped, c.deleted, c.kept) == (1, 1, 1, 0, 0, 1)
    else:
        assert docs[2] == "l2"
        assert (c.inserted, c.updated, c.unchanged, c.skipped, c.deleted, c.kept) == (1, 0, 1, 1, 0, 1)
    assert c.considered == 3  # the backup's documents
    # a second identical merge has nothing left to do
    again = plan_restore(db, store, bid, opts).collections["c"]
    assert again.inserted == 0 and (again.updated == 0)


def test_merge_by_custom_key_with_other_ids(db, store):
    db.eq.insert_many([{"_id": i, "asset_id": f"A{i}", "v": "backup"} for i in range(4)])
    bid = backup(db, store)
    db.eq.delete_many({})
    db.eq.insert_many([{"_id": 100 + i, "asset_id": f"A{i}", "v": "live"} for i in range(2)])
    res = restore_backup(db, store, bid, yes(mode="merge", match_field="asset_id"))
    c = res.collections["eq"]
    assert (c.inserted, c.updated) == (2, 2)
    assert live(db, "eq") == backed_up(store, bid, "eq")


def test_merge_refuses_non_unique_keys(db, store):
    db.c.insert_many([{"_id": 1, "g": 1}, {"_id": 2, "g": 1}])
    bid = backup(db, store)
    with pytest.raises(RestoreRefused, match="not unique in the backup"):
        restore_backup(db, store, bid, yes(mode="merge", match_field="g"))
    db.c.update_one({"_id": 2}, {"$set": {"g": 2}})
    bid2 = backup(db, store)
    db.c.insert_one({"_id": 3, "g": 2})
    n = len(store.list_backups())
    with pytest.raises(RestoreRefused, match="not unique in live"):
        restore_backup(db, store, bid2, yes(mode="merge", match_field="g"))
    assert len(store.list_backups()) == n  # refused before the safety backup


def test_merge_refuses_documents_lacking_the_key(db, store):
    db.c.insert_many([{"_id": 1, "k": 1}, {"_id": 2}])
    bid = backup(db, store)
    with pytest.raises(RestoreRefused, match="1 document\\(s\\) of the backup lack that field"):
        restore_backup(db, store, bid, yes(mode="merge", match_field="k"))


# --------------------------------------------------------------------------
# Bad input: refused before any write


def _rewrite_manifest(folder, change) -> None:
    path = folder / MANIFEST
    m = json.loads(path.read_text())
    change(m)
    m["manifest_sha256"] = manifest_hash(m)
    path.write_text(json.dumps(m, indent=2))


def _rewrite_csv(store, bid, name, change) -> None:
    """Rewrite a collection's CSV and fix its hash and size in the manifest (a consistent forgery)."""
    entry = store.get(bid).collections[name]
    path = store.folder(bid) / entry.file
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(change(rows))
    forge_part(store, bid, name, buf.getvalue().encode("utf-8"))


@pytest.fixture
def tampered(db, store):
    db.c.insert_many([{"_id": i, "v": i} for i in range(4)])
    bid = backup(db, store)
    db.c.insert_one({"_id": 99})

    def folders() -> int:
        # not store.list_backups(): it does not skip a folder whose manifest hash is wrong (reported)
        return sum(1 for p in store.root.glob("*/2*") if p.is_dir())

    def check(exc_type, match, **opts):
        before, n = live(db, "c"), folders()
        for options, action in ((yes(**opts), "restore"), (RestoreOptions(dry_run=True, **opts), "restore_dry_run")):
            with pytest.raises(exc_type, match=match):
                restore_backup(db, store, bid, options)
            # both the restore and its preview are on the record, as failed
            outcome, started = audit.read(store.root, 2)
            assert outcome["action"] == action and outcome["outcome"] in ("refused", "error")
            assert (started["action"], started["outcome"], started["op"]) == (action, "started", outcome["op"])
        assert live(db, "c") == before and folders() == n  # no safety backup either
    return bid, check


def test_refuses_backup_of_another_database(db, store, tampered):
    bid, check = tampered
    _rewrite_manifest(store.folder(bid), lambda m: m.update(database="elsewhere"))
    check(RestoreRefused, "taken from database 'elsewhere'")
    res = restore_backup(db, store, bid, yes(allow_other_db=True))
    assert res.collections["c"].deleted == 1


def test_refuses_other_format_version(store, tampered):
    bid, check = tampered
    _rewrite_manifest(store.folder(bid), lambda m: m.update(format_version=99))
    check(FormatError, "format version 99")


def test_refuses_edited_manifest(store, tampered):
    bid, check = tampered
    path = store.folder(bid) / MANIFEST
    assert '"count":4' in path.read_text()
    path.write_text(path.read_text().replace('"count":4', '"count":5'))
    check(IntegrityError, "manifest does not match its recorded hash")


def test_refuses_missing_file(store, tampered):
    bid, check = tampered
    info = store.get(bid)
    (store.root / info.collections["c"].own.location).unlink()  # the data object itself
    check(IntegrityError, "c: missing data object")


def test_refuses_changed_file(store, tampered):
    bid, check = tampered
    info = store.get(bid)
    with (store.folder(bid) / info.collections["c"].file).open("a") as fh:
        fh.write("9,9,\r\n")
    check(IntegrityError, "does not verify")


def test_refuses_columns_not_matching_manifest(store, tampered):
    bid, check = tampered
    _rewrite_csv(store, bid, "c", lambda rows: [["_id", "renamed", rows[0][-1]]] + rows[1:])
    check(FormatError, "header does not match")


def test_refuses_row_count_not_matching_manifest(store, tampered):
    bid, check = tampered
    _rewrite_csv(store, bid, "c", lambda rows: rows[:-1])
    check(IntegrityError, "manifest says 4")


def test_refuses_undecodable_row(store, tampered):
    bid, check = tampered
    _rewrite_csv(store, bid, "c", lambda rows: rows[:1] + [["x", "notanint", ""]] + rows[2:])
    check(FormatError, "row")


def test_unknown_backup_and_collection(db, store):
    db.c.insert_one({"_id": 1})
    bid = backup(db, store)
    with pytest.raises(BackupNotFound):
        restore_backup(db, store, "20000101T000000Z", yes())
    with pytest.raises(Exception, match="no collection 'zz'"):
        restore_backup(db, store, bid, yes(collections=["zz"]))


def test_int64_change_is_restored_exactly(db, store):
    db.c.insert_one(SON([("_id", 1), ("n", 5)]))
    bid = backup(db, store)
    db.c.update_one({"_id": 1}, {"$set": {"n": Int64(5)}})
    assert compare_backup(db, store, bid).collections["c"].changed == 1
    restore_backup(db, store, bid, yes(mode="merge"))
    assert live(db, "c") == backed_up(store, bid, "c")


def test_merge_by_key_refuses_id_collisions(db, store):
    db.c.insert_many([{"_id": i, "k": f"K{i}"} for i in range(3)])
    bid = backup(db, store)
    db.c.update_one({"_id": 1}, {"$set": {"k": "other"}})  # _id 1 now belongs to another key
    before = live(db, "c")
    with pytest.raises(RestoreRefused, match="reuse the _id"):
        restore_backup(db, store, bid, yes(mode="merge", match_field="k"))
    assert live(db, "c") == before


def test_merge_by_id_pairs_numerically_equal_ids_of_another_type(db, store):
    # int32 1 and int64 1 are one _id to MongoDB: merge pairs them (one changed document, never a
    # second document with the "same" _id) and swaps in the backup's exact bytes
    db.c.insert_one({"_id": 1, "v": "backup"})
    bid = backup(db, store)
    db.c.delete_one({"_id": 1})
    db.c.insert_one({"_id": Int64(1), "v": "live"})
    plan = plan_restore(db, store, bid, yes(mode="merge")).collections["c"]
    res = restore_backup(db, store, bid, yes(mode="merge"))
    c = res.collections["c"]
    assert c == plan
    assert (c.inserted, c.updated, c.unchanged, c.skipped, c.deleted, c.kept) == (0, 1, 0, 0, 0, 0)
    assert live(db, "c") == backed_up(store, bid, "c")
    # and replace: the collection is swapped
    db.c.delete_one({"_id": 1})
    db.c.insert_one({"_id": Int64(1), "v": "live"})
    res = restore_backup(db, store, bid, yes(mode="replace"))
    assert live(db, "c") == backed_up(store, bid, "c")
    assert (res.collections["c"].updated, res.collections["c"].deleted) == (1, 0)


# --------------------------------------------------------------------------
# Parallel jobs, progress phases


def _three_collections(db):
    for k, n in enumerate((25, 3, 40)):
        db[f"p{k}"].insert_many([{"_id": i, "k": f"K{k}-{i}", "v": i} for i in range(n)])
    db.p2.create_index("k", unique=True)


def _change_all(db):
    for k in range(3):
        db[f"p{k}"].update_many({"v": {"$lt": 10}}, {"$set": {"v": -1}})
        db[f"p{k}"].delete_one({"_id": 1})
        db[f"p{k}"].replace_one({"_id": 1000 + k}, {"k": f"new{k}", "v": 0}, upsert=True)


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_parallel_restore_does_what_one_job_does(db, store, mode):
    _three_collections(db)
    bid = backup(db, store)
    results = {}
    for jobs in (1, 3):
        _change_all(db)
        plan = plan_restore(db, store, bid, yes(mode=mode, jobs=jobs))
        res = restore_backup(db, store, bid, yes(mode=mode, jobs=jobs))
        assert {n: c.counts() for n, c in res.collections.items()} == \
            {n: c.counts() for n, c in plan.collections.items()}
        results[jobs] = ({n: c.counts() for n, c in res.collections.items()},
                         {n: live(db, n) for n in ("p0", "p1", "p2")},
                         {n: indexes(db, n) for n in ("p0", "p1", "p2")})
        if mode == "replace":
            assert results[jobs][1] == {n: backed_up(store, bid, n) for n in ("p0", "p1", "p2")}
        # undo, so that the next round starts from the same live data
        restore_backup(db, store, res.safety_backup_id, yes(mode="replace"))
    assert results[1] == results[3]
    assert_no_swap_in_left(db, "p0", "p1", "p2")


def test_parallel_fill_failure_leaves_live_untouched(db, store):
    _three_collections(db)
    bid = backup(db, store)
    _change_all(db)
    before = {n: live(db, n) for n in ("p0", "p1", "p2")}

    def boom(phase):
        if phase == "fill":
            from backup_core.errors import DatabaseUnavailable
            raise DatabaseUnavailable("simulated failure while filling")

    with pytest.raises(Exception, match="simulated"), on_checkpoint(boom):
        restore_backup(db, store, bid, yes(jobs=3))
    assert {n: live(db, n) for n in ("p0", "p1", "p2")} == before
    assert_no_swap_in_left(db, "p0", "p1", "p2")


def test_parallel_merge_failure_rolls_every_touched_collection_back(db, store, monkeypatch):
    from backup_core import restore as restore_mod
    from backup_core.errors import DatabaseUnavailable

    _three_collections(db)
    bid = backup(db, store)
    _change_all(db)
    before = {n: live(db, n) for n in ("p0", "p1", "p2")}
    real = restore_mod._write_ops

    def failing(db_, plan, o, progress, **kw):
        real(db_, plan, o, progress, **kw)  # the writes happen...
        if plan.name == "p2":
            raise DatabaseUnavailable("writing restored documents to p2 failed: simulated")

    monkeypatch.setattr(restore_mod, "_write_ops", failing)
    with pytest.raises(DatabaseUnavailable, match="rolled back"):
        restore_backup(db, store, bid, yes(mode="merge", jobs=3))
    assert {n: live(db, n) for n in ("p0", "p1", "p2")} == before


def test_progress_phases_and_plain_callbacks(db, store):
    from backup_core.progress import Progress

    _three_collections(db)
    bid = backup(db, store)
    _change_all(db)
    plain: list[tuple] = []
    plan_restore(db, store, bid, yes())
    restore_backup(db, store, bid, RestoreOptions(dry_run=True, jobs=2), lambda *a: plain.append(a))
    assert plain == []  # a plain callback hears the writes only, as before: a dry run writes nothing

    phases: list[str] = []

    class Recorder(Progress):
        def phase(self, name):
            phases.append(name)
            super().phase(name)

    p = Recorder("restore")
    _change_all(db)
    restore_backup(db, store, bid, yes(jobs=2), p)
    assert phases == ["comparing backup and live data", "safety backup", "writing"]
    s = p.snapshot()
    assert s.phase == "writing" and {c.name for c in s.collections} == {"p0", "p1", "p2"}
    assert all(c.finished for c in s.collections) and s.done == sum(len(backed_up(store, bid, n))
                                                                   for n in ("p0", "p1", "p2"))
    _change_all(db)
    restore_backup(db, store, bid, yes(jobs=2), lambda *a: plain.append(a))
    last = {c: (d, t) for c, d, t in plain}
    assert set(last) == {"p0", "p1", "p2"} and all(d == t for d, t in last.values())
