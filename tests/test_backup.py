"""Backups through a real MongoClient: lossless, atomic, locked, audited."""

from __future__ import annotations

import json
import threading

import bson
import pandas as pd
import pytest
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings as hsettings

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import LockBusy, UsageError
from backup_core.mongoutil import from_json_dialect, raw_collection
from backup_core.store import FORMAT_VERSION, MANIFEST, LocalStore

from .strategies import documents


def _raw_docs(db, name):
    return [d.raw for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


def test_backup_writes_manifest_and_files(db, store):
    db.Equipment.insert_many([{"_id": i, "name": f"item {i}", "n": i} for i in range(20)])
    db.Equipment.create_index("name", unique=True)
    db.create_collection("Options", validator={"$jsonSchema": {"bsonType": "object"}})
    db.Options.insert_one({"_id": "x", "v": 1})
    progress = []
    result = create_backup(db, store, BackupOptions(user="alice"), progress=lambda *a: progress.append(a))
    info = store.get(result.backup_id)
    folder = store.folder(result.backup_id)
    assert info.day in folder.parts and folder.name == result.backup_id
    assert result.path == info.location == str(folder)
    m = info.manifest.data
    assert m["format_version"] == FORMAT_VERSION and m["database"] == db.name and m["trigger"] == "manual"
    assert m["record_counts"] == {"Equipment": 20, "Options": 1}
    assert m["day_of_week"] == info.day
    eq = m["collections"]["Equipment"]
    assert {i["name"] for i in eq["indexes"]} == {"_id_", "name_1"}
    options = from_json_dialect(m["collections"]["Options"]["options"])
    assert options == {"validator": {"$jsonSchema": {"bsonType": "object"}}}
    assert sorted(p.name for p in folder.iterdir()) == ["Equipment.csv", "Options.csv", MANIFEST]
    assert progress[-1][1] == progress[-1][2]
    frame = pd.read_csv(folder / "Equipment.csv")
    assert len(frame) == 20 and list(frame["n"]) == list(range(20))
    entry, started = audit.read(store.root, limit=2)
    assert entry["action"] == "backup" and entry["user"] == "alice" and entry["backup_id"] == result.backup_id
    assert entry["outcome"] == "ok"
    assert started["action"] == "backup" and started["user"] == "alice" and started["outcome"] == "started"
    assert started["op"] == entry["op"]


@hsettings(max_examples=40, deadline=None)
@given(docs=documents.map(lambda d: [d]) | documents.flatmap(lambda d: documents.map(lambda e: [d, e])))
def test_backup_of_any_documents_restores_byte_identical(client, tmp_path_factory, docs):
    """The documents the server holds come back from the backup files as the same BSON bytes."""
    import uuid

    db = client[f"p_{uuid.uuid4().hex[:10]}"]
    try:
        docs = [dict(d, _id=i) if "_id" not in d or not _id_ok(d["_id"]) else d for i, d in enumerate(docs)]
        if len({bson.encode({"k": d["_id"]}) for d in docs}) != len(docs):
            return
        try:
            raw_collection(db, "c").insert_many([RawBSONDocument(bson.encode(d)) for d in docs])
        except Exception:  # the server refused this document (e.g. '$' field names): nothing to back up
            return
        store = LocalStore(tmp_path_factory.mktemp("b"))
        result = create_backup(db, store, BackupOptions(compress=len(docs) % 2 == 0))
        live = _raw_docs(db, "c")
        info = store.get(result.backup_id)
        assert list(store.iter_documents(info, "c")) == live
        assert store.verify(result.backup_id).ok
    finally:
        client.drop_database(db.name)


def _id_ok(value):
    return not isinstance(value, (list, bson.Regex)) and value is not None and not isinstance(value, type(bson.MinKey()))


def test_unknown_collection_is_refused(db, store):
    db.a.insert_one({"x": 1})
    with pytest.raises(UsageError, match="no collection named 'nope'"):
        create_backup(db, store, BackupOptions(collections=["nope"]))
    assert store.list_backups() == []


def test_selected_collections_and_compression(db, store):
    db.a.insert_one({"x": 1})
    db.b.insert_one({"y": 2})
    result = create_backup(db, store, BackupOptions(collections=["b"], compress=True))
    info = store.get(result.backup_id)
    assert list(info.collections) == ["b"] and info.collections["b"].file == "b.csv.gz"
    assert pd.read_csv(store.folder(result.backup_id) / "b.csv.gz")["y"].tolist() == [2]


def test_two_backups_in_one_second_get_distinct_ids(db, store):
    db.a.insert_one({"x": 1})
    ids = {create_backup(db, store, BackupOptions()).backup_id for _ in range(3)}
    assert len(ids) == 3 and len(store.list_backups()) == 3


def test_lock_busy_is_a_clear_error(db, store):
    db.a.insert_one({"x": 1})
    held = threading.Event()
    release = threading.Event()

    def hold():
        with store.lock("restore"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(LockBusy, match="locked by restore"):
            create_backup(db, store, BackupOptions(lock_timeout=0.3))
    finally:
        release.set()
        t.join()
    assert create_backup(db, store, BackupOptions()).backup_id


def test_incomplete_folders_are_never_listed(db, store):
    db.a.insert_one({"x": 1})
    result = create_backup(db, store, BackupOptions())
    folder = store.folder(result.backup_id)
    half = folder.parent / "20200101T000000Z"
    half.mkdir()
    (half / "a.csv").write_text("x\n1\n")
    errors = []
    assert [b.backup_id for b in store.list_backups(errors=errors)] == [result.backup_id]
    assert errors == []  # not a backup, nor a damaged one: what a killed write left
    assert store.location(folder.parent.name, half.name) in store.leftovers()
    tmp = folder.parent / ".tmp-20200101T000001Z-999999"  # a format 2 writer's, dead
    tmp.mkdir()
    assert len(store.list_backups()) == 1
    create_backup(db, store, BackupOptions())
    assert not tmp.exists(), "temporary folder of a dead writer is swept"
    assert not half.exists() and store.leftovers() == []


def test_manifest_field_order_is_kept_in_indexes(db, store):
    db.a.create_index([("b", 1), ("a", -1)], name="ba")
    db.a.insert_one({"a": 1, "b": 2})
    info = store.get(create_backup(db, store, BackupOptions()).backup_id)
    spec = [i for i in info.collections["a"].indexes if i["name"] == "ba"][0]
    assert list(spec["key"]) == ["b", "a"]
    assert json.dumps(spec["key"]) == '{"b": 1, "a": -1}'


# --------------------------------------------------------------------------
# Parallel jobs


def _four_collections(db) -> None:
    for k, n in enumerate((30, 1, 45, 12)):
        db[f"c{k}"].insert_many([{"_id": i, "name": f"{k}-{i}", "v": i * 1.5, "tags": ["a"] * (i % 3)}
                                 for i in range(n)])
    db.c2.create_index("name", unique=True)


def _files(store, bid) -> dict[str, bytes]:
    folder = store.folder(bid)
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MANIFEST}


def _entries(store, bid) -> dict:
    return store.get(bid).manifest.data["collections"]


@pytest.mark.parametrize("compress", [False, True])
def test_parallel_jobs_write_byte_identical_backups(db, tmp_path, compress):
    _four_collections(db)
    stores = {jobs: LocalStore(tmp_path / f"jobs{jobs}") for jobs in (1, 2, 4)}
    ids = {jobs: create_backup(db, s, BackupOptions(jobs=jobs, compress=compress)).backup_id
           for jobs, s in stores.items()}
    for jobs in (2, 4):
        assert _files(stores[jobs], ids[jobs]) == _files(stores[1], ids[1])
        # the same manifest entries, in the same (collection) order
        assert list(_entries(stores[jobs], ids[jobs]).items()) == list(_entries(stores[1], ids[1]).items())
        assert stores[jobs].verify(ids[jobs]).ok


def test_parallel_progress_is_reported_on_the_calling_thread(db, store):
    _four_collections(db)
    me = threading.get_ident()
    heard: list[tuple] = []

    def progress(collection, done, total):
        heard.append((threading.get_ident(), collection, done, total))

    res = create_backup(db, store, BackupOptions(jobs=3), progress=progress)
    assert res.jobs == 3
    assert {h[0] for h in heard} == {me}
    last = {c: (d, t) for _, c, d, t in heard}
    assert last == {f"c{k}": (n, n) for k, n in enumerate((30, 1, 45, 12))}


def test_a_failing_job_stops_the_others_and_leaves_nothing(db, store, monkeypatch):
    from backup_core import backup
    from backup_core.errors import DatabaseUnavailable

    _four_collections(db)
    real = backup._backup_collection
    started = []

    def failing(db_, name, *a, **kw):
        started.append(name)
        if name in ("c1", "c3"):
            raise DatabaseUnavailable(f"reading collection {name} failed: simulated")
        return real(db_, name, *a, **kw)

    monkeypatch.setattr(backup, "_backup_collection", failing)
    with pytest.raises(DatabaseUnavailable, match="c1 failed"):  # the first failure in collection order
        create_backup(db, store, BackupOptions(jobs=2))
    assert store.list_backups() == []
    assert [p for p in store.root.rglob("*") if p.is_dir() and p.name.startswith(".tmp-")] == []


