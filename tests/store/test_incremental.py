"""Incremental backups by document: what changed is stored, every backup still restores on its own.

Each backup of a collection whose previous backup has a document index stores
only the new or changed documents and the deleted ``_id``s, when that is small;
a full copy otherwise, and after a bounded chain. Whatever a backup is made of,
restore, compare, verify, export and copy give exactly its own documents.
"""

from __future__ import annotations

import io
import os
import shutil
from datetime import timedelta

import bson
import pandas as pd
import pytest
from bson import Int64
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import compare_backup
from backup_core.mirror import copy_backups
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.retention import RetentionPolicy, cleanup
from backup_core.store import Key, Keyring, open_store
from backup_core.store import incremental
from backup_core.store.docindex import DocIndex, id_digest
from backup_core.keys import key_bytes
from backup_core.timeutil import utc_now
from backup_core.transfer import export_backup, import_backup

from tests.faults.helpers import snapshot

C = "items"


def _seed(db, n: int = 200) -> None:
    db[C].insert_many([{"_id": i, "name": f"item {i}", "qty": i % 7, "tags": ["a", i]} for i in range(n)])


def _backup(db, store, **kw):
    return create_backup(db, store, BackupOptions(user="t", **kw))


def _kinds(store, backup_id: str) -> list[str]:
    return [p.kind for p in store.get(backup_id).collection(C).parts]


def _restore(db, store, backup_id: str) -> None:
    restore_backup(db, store, backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))


def test_the_document_index():
    docs = [bson.encode({"_id": i, "v": i}) for i in range(300)]
    index = DocIndex.of_documents(docs)
    assert len(index) == 300 and DocIndex.from_bytes(index.to_bytes()).to_bytes() == index.to_bytes()
    kb = key_bytes(docs[42], "_id")
    at = index.find(id_digest(kb))
    assert at >= 0 and index.key_at(at) == kb
    # MongoDB takes int32 42 and int64 42 as one _id: so does the index
    assert index.find(id_digest(key_bytes(bson.encode({"_id": Int64(42)}), "_id"))) == at
    assert index.find(id_digest(key_bytes(bson.encode({"_id": "42"}), "_id"))) == -1


@pytest.mark.parametrize("compress", [False, True])
def test_a_backup_stores_what_changed_and_restores_on_its_own(any_store, db, compress, tmp_path):
    store = any_store
    _seed(db)
    states = {}
    first = _backup(db, store, compress=compress).backup_id
    states[first] = snapshot(db, C)
    full = store.get(first).collection(C).own.stored_bytes
    before = store.usage()
    db[C].update_one({"_id": 3}, {"$set": {"name": "changed"}})
    db[C].update_one({"_id": 4}, {"$set": {"qty": Int64(4)}})  # same value, another type: changed
    db[C].delete_one({"_id": 7})
    db[C].insert_one({"_id": "new", "name": "added"})
    second = _backup(db, store, compress=compress).backup_id
    states[second] = snapshot(db, C)
    assert _kinds(store, second) == ["full", "changes", "deleted"]
    entry = store.get(second).collection(C)
    assert entry.count == 200 and [p.count for p in entry.own_parts()] == [3, 1]
    step = sum(p.stored_bytes for p in entry.own_parts())
    assert step < 0.5 * full  # the step, not another copy
    assert store.usage() - before == step + len(store.get(second).stored_manifest)  # and nothing else
    # every backup, whatever it is made of, gives exactly its own documents
    for bid, state in states.items():
        assert store.verify(bid).ok
        _restore(db, store, bid)
        assert snapshot(db, C) == state
        assert compare_backup(db, store, bid).collections[C].identical == len(state)
    # an export is self-contained: imported elsewhere it restores on its own
    buf = io.BytesIO()
    export_backup(store, second, buf, user="t")
    other = open_store(tmp_path / "other", store.keyring)
    buf.seek(0)
    import_backup(other, buf, user="t")
    assert other.verify(second).ok
    db[C].delete_many({})
    _restore(db, other, second)
    assert snapshot(db, C) == states[second]


def test_the_increment_is_a_csv_a_person_can_open(store, db):
    _seed(db)
    _backup(db, store)
    db[C].update_one({"_id": 5}, {"$set": {"name": "renamed"}})
    db[C].delete_one({"_id": 9})
    bid = _backup(db, store).backup_id
    folder = store.folder(bid)
    assert sorted(p.name for p in folder.iterdir()) == ["items.changes.csv", "items.deleted.csv", "manifest.json"]
    changes = pd.read_csv(folder / "items.changes.csv")
    assert changes["_id"].tolist() == [5] and changes["name"].tolist() == ["renamed"]
    assert pd.read_csv(folder / "items.deleted.csv")["_id"].tolist() == [9]
    from backup_core.browse import changes_since_previous, csv_download

    change = changes_since_previous(store, store.get(bid), C)
    assert (change.changed, change.deleted, change.deleted_ids) == (1, 1, [9])
    name, data = csv_download(store, store.get(bid), C)  # a download holds every document, one CSV
    assert name == "items.csv" and len(pd.read_csv(io.BytesIO(data))) == 199


def test_what_is_unchanged_and_what_changes_much(store, db):
    _seed(db)
    first = _backup(db, store).backup_id
    again = _backup(db, store).backup_id
    assert store.get(again).collection(C).parts == store.get(first).collection(C).parts  # the same full copy
    db[C].update_one({"_id": 1}, {"$set": {"qty": 99}})
    step = _backup(db, store).backup_id
    quiet = _backup(db, store).backup_id  # nothing changed after an increment: an empty step says so
    assert _kinds(store, quiet) == ["full", "changes", "deleted", "changes", "deleted"]
    assert [p.count for p in store.get(quiet).collection(C).own_parts()] == [0, 0]
    db[C].update_many({"_id": {"$lt": 120}}, {"$set": {"qty": -1}})  # most documents: a full copy
    big = _backup(db, store).backup_id
    assert _kinds(store, big) == ["full"] and _kinds(store, step) == ["full", "changes", "deleted"]


def test_the_chain_is_bounded(store, db, monkeypatch):
    monkeypatch.setattr(incremental, "MAX_STEPS", 3)
    _seed(db)
    kinds = []
    for i in range(6):
        db[C].update_one({"_id": i}, {"$set": {"round": i}})
        kinds.append(len(_kinds(store, _backup(db, store).backup_id)))
    assert kinds == [1, 3, 5, 7, 1, 3]  # a full copy, then at most three steps, then a full copy again


def test_a_new_key_or_compression_starts_a_full_copy(tmp_path, db):
    _seed(db)
    plain = open_store(tmp_path / "r")
    _backup(db, plain)
    db[C].update_one({"_id": 1}, {"$set": {"qty": 99}})
    assert _kinds(plain, _backup(db, plain, compress=True).backup_id) == ["full"]
    keyed = open_store(tmp_path / "r", Keyring(Key(os.urandom(32))), allow_plaintext=True)
    db[C].update_one({"_id": 2}, {"$set": {"qty": 99}})
    assert _kinds(keyed, _backup(db, keyed, compress=True).backup_id) == ["full"]


def test_the_base_index_comes_from_the_repository_when_the_cache_is_gone_or_damaged(store, db):
    _seed(db)
    _backup(db, store)
    cache = store.root / "tmp" / "index-cache"
    shutil.rmtree(cache)
    db[C].update_one({"_id": 1}, {"$set": {"qty": 99}})
    second = _backup(db, store).backup_id
    assert _kinds(store, second) == ["full", "changes", "deleted"]
    for f in cache.iterdir():
        f.write_bytes(b"garbage")  # a damaged cache entry is not used
    db[C].update_one({"_id": 2}, {"$set": {"qty": 99}})
    third = _backup(db, store).backup_id
    assert _kinds(store, third) == ["full", "changes", "deleted", "changes", "deleted"]
    db[C].delete_many({})
    _restore(db, store, third)
    assert db[C].find_one({"_id": 1})["qty"] == 99 and db[C].find_one({"_id": 2})["qty"] == 99


def test_retention_keeps_what_a_kept_increment_builds_on(store, db):
    _seed(db)
    ids, states = [], {}
    for i in range(4):
        db[C].update_one({"_id": i}, {"$set": {"round": i}})
        ids.append(_backup(db, store).backup_id)
        states[ids[-1]] = snapshot(db, C)
    infos = {b: store.get(b) for b in ids}
    preview = cleanup(store, RetentionPolicy(keep_last=1), user="t", dry_run=True)
    res = cleanup(store, RetentionPolicy(keep_last=1), user="t")
    assert sorted(res.deleted) == sorted(ids[:3])
    # the kept backup builds on every older one: only their manifests go, and the preview said so
    assert res.freed_bytes == preview.freed_bytes == sum(len(infos[b].stored_manifest) for b in ids[:3])
    assert store.verify(ids[3]).ok
    # this machine's cache keeps the index of the kept state only (of each collection), not of the deleted
    cached = sorted(p.stem for p in (store.root / "tmp" / "index-cache").glob("*.idx"))
    assert cached == sorted(incremental.cache_key(e.stored_parts()) for e in store.get(ids[3]).collections.values())
    db[C].delete_many({})
    _restore(db, store, ids[3])
    assert snapshot(db, C) == states[ids[3]]


def test_an_incremental_backup_copies_whole_to_another_root(s3_root, db, tmp_path):
    src = open_store(tmp_path / "src")
    _seed(db)
    _backup(db, src)
    db[C].update_one({"_id": 1}, {"$set": {"qty": 99}})
    bid = _backup(db, src).backup_id
    state = snapshot(db, C)
    dst = open_store(s3_root)
    assert copy_backups(src, dst, [bid], user="t").copied == [bid]  # only the newest: it brings its base
    shutil.rmtree(tmp_path / "src")
    assert dst.verify(bid).ok
    db[C].delete_many({})
    _restore(db, dst, bid)
    assert snapshot(db, C) == state
    db[C].update_one({"_id": 2}, {"$set": {"qty": 98}})
    after = _backup(db, dst).backup_id  # and the target builds on it
    assert _kinds(dst, after) == ["full", "changes", "deleted", "changes", "deleted"] and dst.verify(after).ok


@pytest.mark.timeout(180)
def test_a_backup_killed_mid_increment_and_a_killed_clean_up_leave_every_kept_backup_whole(db, root, store,
                                                                                          cli_env, cli):
    from tests.faults.helpers import sigkill, start_driver, wait_for_line

    _seed(db)
    first = _backup(db, store).backup_id
    db[C].update_one({"_id": 1}, {"$set": {"qty": 99}})
    second = _backup(db, store).backup_id
    states = {first: None, second: snapshot(db, C)}
    db[C].update_one({"_id": 2}, {"$set": {"qty": 98}})
    proc = start_driver(cli_env, "backup", "--json", pause="after-first-collection")
    wait_for_line(proc, "FAULT: paused")  # its changes are stored, its deletions and manifest are not
    sigkill(proc)
    assert sorted(b.backup_id for b in store.list_backups()) == sorted(states)
    for bid in states:
        assert store.verify(bid).ok
    third = _backup(db, store, lock_timeout=10).backup_id  # builds on the second, as if nothing happened
    assert _kinds(store, third) == ["full", "changes", "deleted", "changes", "deleted"]
    states[third] = snapshot(db, C)
    # a clean-up killed half-way (one manifest gone), then a whole one: what is kept is whole
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.store.test_dedup import KILL_SCRIPT

    killed = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.replace("keep_last=2", "keep_last=1"), str(root),
                               "", "forget"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "paused", killed.stderr.read()
    sigkill(killed)
    listed = [b.backup_id for b in store.list_backups()]
    assert listed[0] == third and len(listed) == 2 and all(store.verify(b).ok for b in listed)
    cleanup(store, RetentionPolicy(keep_last=1), user="t")
    needed = {p.location for b in store.list_backups() for e in b.collections.values() for p in e.stored_parts()}
    assert {e.name for e in store.backend.list("data/")} == needed  # nothing left that no backup needs
    db[C].delete_many({})
    _restore(db, store, third)
    assert snapshot(db, C) == states[third]


DOC_IDS = st.integers(min_value=0, max_value=30)


@pytest.mark.timeout(600)
def test_every_kept_backup_restores_what_was_live_when_it_was_taken(db, tmp_path, monkeypatch):
    """Random changes, backups, clean-ups and restores: every backup still listed restores exactly the
    collection as it was when that backup was taken."""
    monkeypatch.setattr(incremental, "MAX_STEPS", 3)  # short chains: full copies come round often
    coll = db[C]

    class Backups(RuleBasedStateMachine):
        @initialize()
        def start(self):
            coll.delete_many({})
            root = tmp_path / f"root-{id(self)}"
            shutil.rmtree(root, ignore_errors=True)
            self.store = open_store(root)
            self.taken: dict[str, list[bytes]] = {}

        @rule(i=DOC_IDS, v=st.one_of(st.integers(-3, 3), st.text(max_size=4), st.none()))
        def put(self, i, v):
            coll.replace_one({"_id": i}, {"_id": i, "v": v}, upsert=True)

        @rule(i=DOC_IDS)
        def delete(self, i):
            coll.delete_one({"_id": i})

        @rule(compress=st.booleans())
        def backup(self, compress):
            bid = create_backup(db, self.store, BackupOptions(collections=[C] if C in db.list_collection_names()
                                                                else [], absent=[C], user="t",
                                                                compress=compress)).backup_id
            self.taken[bid] = snapshot(db, C)

        @rule(keep=st.integers(1, 3))
        def clean_up(self, keep):
            res = cleanup(self.store, RetentionPolicy(keep_last=keep, safety_days=0), user="t",
                          now=utc_now() + timedelta(days=30))
            for bid in res.deleted:
                self.taken.pop(bid, None)

        @rule(data=st.data())
        def restore(self, data):
            listed = [b.backup_id for b in self.store.list_backups() if b.backup_id in self.taken]
            if not listed:
                return
            bid = data.draw(st.sampled_from(sorted(listed)))
            before = snapshot(db, C)
            _restore(db, self.store, bid)
            assert snapshot(db, C) == self.taken[bid]
            for b in self.store.list_backups():  # the restore's safety backup holds what was live before it
                self.taken.setdefault(b.backup_id, before)

        @invariant()
        def every_listed_backup_holds_its_documents(self):
            for b in self.store.list_backups():
                if b.backup_id in self.taken and C in b.collections:
                    assert sorted(self.store.iter_documents(b, C)) == sorted(self.taken[b.backup_id]), b.backup_id

    run_state_machine_as_test(Backups, settings=settings(max_examples=15, stateful_step_count=30, deadline=None,
                                                         suppress_health_check=list(HealthCheck)))
