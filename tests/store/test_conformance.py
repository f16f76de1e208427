"""The store interface, run once per implementation: local folder and S3 (moto), with and without a key.

The whole user story (backup, verify, compare, dry run, replace, undo, merge,
clean-up, delete) must behave the same on every store; so must the
visibility rule (manifest last), the refusal of damaged data and the lock.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import bson
import pytest
from hypothesis import HealthCheck, given, settings

from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import compare_backup
from backup_core.demo_data import seed_demo
from backup_core.errors import BackupError, LockBusy
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.retention import RetentionPolicy, cleanup
from backup_core.store import day_for
from backup_core.timeutil import iso, utc_now
from backup_core.transfer import export_backup, import_backup

from tests.faults.helpers import snapshot
from tests.store.conftest import stored_objects, tamper
from tests.strategies import collections as doc_collections, encode

EQ = "Equipment"


def _restore(db, store, backup_id, **kw):
    return restore_backup(db, store, backup_id, RestoreOptions(confirmed=True, user="t", **kw))


def test_the_user_story(any_store, db):
    store = any_store
    seed_demo(db)
    original = {n: snapshot(db, n) for n in db.list_collection_names()}
    first = create_backup(db, store, BackupOptions(user="t"))
    [listed] = store.list_backups()
    assert listed.backup_id == first.backup_id and listed.encrypted == bool(store.keyring.current)
    assert store.verify(first.backup_id).ok
    cmp = compare_backup(db, store, first.backup_id)
    assert cmp.collections[EQ].identical == 150 and not cmp.differs
    # change live data, look, then restore
    coll = db[EQ]
    doc = coll.find_one({}, sort=[("_id", 1)])
    coll.update_one({"_id": doc["_id"]}, {"$set": {"name": "changed"}})
    coll.delete_many({"_id": {"$in": [d["_id"] for d in coll.find({}, sort=[("_id", -1)], limit=3)]}})
    coll.insert_one({"_id": "new", "name": "added"})
    changed = snapshot(db, EQ)
    c = compare_backup(db, store, first.backup_id).collections[EQ]
    assert (c.only_in_backup, c.only_in_live, c.changed) == (3, 1, 1)
    dry = _restore(db, store, first.backup_id, mode="replace", dry_run=True)
    assert dry.collections[EQ].counts() == {"inserted": 3, "updated": 1, "deleted": 1, "unchanged": 146,
                                            "skipped": 0, "kept": 0}
    res = _restore(db, store, first.backup_id, mode="replace")
    assert res.collections[EQ].counts() == dry.collections[EQ].counts()
    assert {n: snapshot(db, n) for n in db.list_collection_names()} == original
    # undo, then merge the backup back in
    _restore(db, store, res.safety_backup_id, mode="replace")
    assert snapshot(db, EQ) == changed
    merged = _restore(db, store, first.backup_id, mode="merge")
    assert merged.collections[EQ].inserted == 3 and merged.collections[EQ].kept == 1
    # clean-up keeps the newest (here the merge's safety backup, the undo of the latest restore) and the
    # newest regular backup holding data of each collection (here the only one)
    policy = RetentionPolicy(older_than=timedelta(seconds=1), safety_days=0)
    assert cleanup(store, policy, user="t", now=utc_now() + timedelta(hours=1)).deleted
    newest = store.list_backups()[0].backup_id
    assert {b.backup_id for b in store.list_backups()} == {newest, first.backup_id}
    for b in store.list_backups():
        store.delete(b.backup_id)
    assert store.list_backups() == [] and not store.exists(newest)
    assert store.audit_log().verify().ok


def test_nothing_is_visible_before_the_manifest(any_store, db):
    store = any_store
    now = utc_now()
    writer = store.begin(store.new_backup_id(now), day_for(now))
    with store.lock("test", 5):
        part = writer.write_part(EQ, "full", (bson.encode({"_id": i}) for i in range(3)), compress=False)
    # as if its writer had been killed after the data was stored, before the manifest
    spool = writer.spool()
    spool.rename(spool.with_name("spool-4194313-1-deadbeef"))
    assert store.list_backups() == []  # the data object is stored, the manifest is not
    assert store.backend.stat(part.location) is not None
    assert store.leftovers()  # the dead writer's spool, on this machine
    with store.lock("test", 5):
        assert store.sweep()
    assert store.leftovers() == [] and store.list_backups() == []
    cleanup(store, RetentionPolicy(keep_last=1), user="t")  # garbage collection takes the object
    assert list(store.backend.list("data/")) == []


@pytest.mark.parametrize("target", ["data", "manifest"])
def test_a_changed_byte_is_refused_before_any_write(any_store, db, target):
    store = any_store
    db[EQ].insert_many([{"_id": i, "v": f"value {i}"} for i in range(50)])
    res = create_backup(db, store, BackupOptions(user="t"))
    info = store.get(res.backup_id)
    name = info.collections[EQ].own.location if target == "data" else \
        f"{info.day}/{info.backup_id}/{'manifest.enc' if info.encrypted else 'manifest.json'}"

    def flip(data: bytes) -> bytes:
        pos = len(data) // 2
        return data[:pos] + bytes([data[pos] ^ 0x20]) + data[pos + 1:]

    tamper(store, res.backup_id, name, flip)
    db[EQ].delete_many({"_id": {"$lt": 10}})
    before = snapshot(db, EQ)
    problems = []
    try:
        verdict = store.verify(res.backup_id)
        problems = verdict.problems
        assert not verdict.ok
    except BackupError as exc:
        problems = [str(exc)]
    assert problems
    with pytest.raises(BackupError):
        _restore(db, store, res.backup_id, mode="replace")
    assert snapshot(db, EQ) == before


def test_the_lock_is_exclusive_across_threads(any_store):
    store = any_store
    inside, release, errors = threading.Event(), threading.Event(), []

    def holder():
        with store.lock("backup", 5):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    try:
        with pytest.raises(LockBusy, match="locked by backup"):
            with store.lock("restore", 0.5):
                errors.append("entered")
    finally:
        release.set()
        t.join()
    with store.lock("restore", 5):
        pass
    assert errors == []


def test_export_and_import_between_stores(any_store, db, tmp_path):
    from backup_core.store import LocalStore

    store = any_store
    db[EQ].insert_many([{"_id": i} for i in range(20)])
    res = create_backup(db, store, BackupOptions(user="t", compress=True))
    buf = io.BytesIO()
    export_backup(store, res.backup_id, buf, user="t")
    other = LocalStore(tmp_path / "other", store.keyring)
    buf.seek(0)
    imported = import_backup(other, buf, user="t")
    assert imported.backup_id == res.backup_id and other.verify(res.backup_id).ok
    assert other.get(res.backup_id).stored_manifest == store.get(res.backup_id).stored_manifest
    buf.seek(0)
    assert import_backup(other, buf, user="t").already_present


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=doc_collections)
def test_any_document_comes_back_byte_for_byte(any_store, docs):
    """The codec's fidelity holds through every store and the encryption: written, stored, read back."""
    store = any_store
    raws = [encode(d) for d in docs]
    now = utc_now()
    backup_id = store.new_backup_id(now)
    writer = store.begin(backup_id, day_for(now))
    with store.lock("test", 5):
        part = writer.write_part("c", "full", iter(raws), compress=False)
        writer.commit({"backup_id": backup_id, "created_at": iso(now), "database": "x", "trigger": "manual",
                       "day_of_week": day_for(now), "collections": {"c": {"count": part.count, "parts": [part]}}})
    info = store.get(backup_id)
    assert list(store.iter_documents(info, "c")) == raws
    store.delete(backup_id)


def test_encrypted_stores_keep_nothing_readable(encrypted_store, db):
    store = encrypted_store
    db["Secret_Projects"].insert_many([{"_id": i, "codename": f"BLUEBIRD-{i}"} for i in range(20)])
    db["Secret_Projects"].create_index("codename", name="by_codename_index")
    res = create_backup(db, store, BackupOptions(user="t"))
    blobs = stored_objects(store)
    backup_blobs = {k: v for k, v in blobs.items() if res.backup_id in k or k.startswith("data/")}
    assert len(backup_blobs) == 3  # the manifest, one data object and its document index
    for name, data in backup_blobs.items():
        for secret in (b"BLUEBIRD", b"by_codename_index", b"codename", b"Secret_Projects", b"$oid"):
            assert secret not in data and secret.decode() not in name, (name, secret)
    assert store.verify(res.backup_id).ok


def test_a_missing_key_is_refused_naming_its_fingerprint(encrypted_store, db, tmp_path):
    from backup_core.store import Key, Keyring, open_store

    store = encrypted_store
    db[EQ].insert_many([{"_id": i} for i in range(5)])
    res = create_backup(db, store, BackupOptions(user="t"))
    fp = store.keyring.current.fingerprint
    for keyring in (Keyring(), Keyring(Key(b"\x01" * 32))):
        blind = open_store(store.url if store.url.startswith("s3://") else store.root, keyring)
        locked: list[dict] = []
        assert blind.list_backups(locked=locked) == []
        assert [(x["backup_id"], x["key_fingerprint"]) for x in locked] == [(res.backup_id, fp)]
        before = snapshot(db, EQ)
        for call in (lambda: blind.verify(res.backup_id), lambda: compare_backup(db, blind, res.backup_id),
                     lambda: _restore(db, blind, res.backup_id, mode="replace")):
            with pytest.raises(BackupError) as err:
                call()
            assert fp in str(err.value) and err.value.exit_code == 10
        assert snapshot(db, EQ) == before
        assert [b.trigger for b in store.list_backups()] == ["manual"]  # no safety backup was written
    # an older key listed for reading still reads it
    rotated = open_store(store.url if store.url.startswith("s3://") else store.root,
                         Keyring(Key(b"\x02" * 32), (store.keyring.current,)))
    assert rotated.verify(res.backup_id).ok
    second = create_backup(db, rotated, BackupOptions(user="t"))
    assert rotated.get(second.backup_id).key_fingerprint == Key(b"\x02" * 32).fingerprint
    with pytest.raises(BackupError, match=Key(b"\x02" * 32).fingerprint):
        store.get(second.backup_id)


def test_copies_between_roots_verify_on_arrival(any_store, db, tmp_path):
    from backup_core.mirror import copy_backups, mirror_status
    from backup_core.store import LocalStore

    store = any_store
    db[EQ].insert_many([{"_id": i} for i in range(8)])
    ids = [create_backup(db, store, BackupOptions(user="t")).backup_id for _ in range(2)]
    mirror = LocalStore(tmp_path / "mirror", store.keyring)
    assert mirror_status(store, mirror, grace=timedelta(0)).missing == ids
    one = copy_backups(store, mirror, [ids[0]], user="t")
    assert one.copied == [ids[0]] and mirror.verify(ids[0]).ok
    rest = copy_backups(store, mirror, None, user="t", all_missing=True)
    assert rest.copied == [ids[1]]
    assert mirror_status(store, mirror, grace=timedelta(0)).missing == []
    again = copy_backups(store, mirror, ids, user="t")
    assert again.already_present == ids and again.copied == []
    # a copy back into a fresh store of the other kind works the same way
    back = copy_backups(mirror, LocalStore(tmp_path / "third", store.keyring), ids, user="t")
    assert back.copied == ids


def test_a_tampered_copy_is_refused_and_removed(any_store, db, tmp_path, monkeypatch):
    from backup_core import mirror as mirror_mod
    from backup_core.store import LocalStore

    store = any_store
    db[EQ].insert_many([{"_id": i, "v": "x" * 50} for i in range(8)])
    res = create_backup(db, store, BackupOptions(user="t"))
    dest = LocalStore(tmp_path / "mirror", store.keyring)
    real = store.open_stored

    def damaged(info, part):
        data = real(info, part).read()
        return io.BytesIO(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])

    monkeypatch.setattr(store, "open_stored", damaged)
    with pytest.raises(mirror_mod.CopyIncomplete, match="does not verify") as err:
        mirror_mod.copy_backups(store, dest, [res.backup_id], user="t")
    assert err.value.payload["skipped"][0]["backup_id"] == res.backup_id
    assert dest.list_backups() == [] and list(dest.backend.list("data/")) == []
