"""Unchanged data is stored once; clean-up never removes data a kept backup still needs.

Run once per store (local folder, S3), with and without a key: data objects
are named by their content, so every backup of unchanged data refers to the
one object the first of them stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from unittest import mock

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.demo_data import seed_demo
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.retention import RetentionPolicy, cleanup

from tests.conftest import ROOT
from tests.faults.helpers import snapshot

EQ, OPT = "Equipment", "Equipment_select_options"


def _backup(db, store, **kw):
    return create_backup(db, store, BackupOptions(user="t", **kw))


def _shared_from(store, backup_id: str) -> dict:
    """Per collection, the older backup whose stored data this one shares (None: stored by itself)."""
    info = next(b for b in store.list_backups() if b.backup_id == backup_id)
    return {n: info.reused_from(n) for n in info.collections}


def test_eleven_backups_of_unchanged_data_take_little_more_than_one(any_store, db):
    seed_demo(db)
    first = _backup(db, any_store)
    one = any_store.usage()
    ids = [first.backup_id] + [_backup(db, any_store).backup_id for _ in range(10)]
    assert any_store.usage() <= 1.6 * one, (any_store.usage(), one)
    for backup_id in ids[1:]:
        assert _shared_from(any_store, backup_id) == {EQ: first.backup_id, OPT: first.backup_id}
    assert all(any_store.verify(b).ok for b in (ids[0], ids[-1]))


@pytest.mark.parametrize("compress", [False, True])
def test_a_changed_collection_is_stored_again_an_unchanged_one_is_not(any_store, db, compress):
    seed_demo(db)
    first = _backup(db, any_store, compress=compress)
    before = any_store.usage()
    db[EQ].update_one({}, {"$set": {"status": "changed"}})
    second = any_store.get(_backup(db, any_store, compress=compress).backup_id)
    assert _shared_from(any_store, second.backup_id) == {EQ: None, OPT: first.backup_id}
    grown = any_store.usage() - before
    assert second.collections[EQ].stored_bytes <= grown < second.collections[EQ].stored_bytes + 20_000


def test_keep_last_three_keeps_data_first_written_by_a_deleted_backup(any_store, db):
    seed_demo(db)
    states, ids = [], []
    for i in range(6):
        if i in (1, 4):  # Equipment changes twice; the select options never
            db[EQ].update_many({}, {"$set": {"round": i}})
        ids.append(_backup(db, any_store).backup_id)
        states.append({n: snapshot(db, n) for n in (EQ, OPT)})
    infos = {b: any_store.get(b) for b in ids[:3]}
    preview = cleanup(any_store, RetentionPolicy(keep_last=3), user="t", dry_run=True)
    before = any_store.usage()
    res = cleanup(any_store, RetentionPolicy(keep_last=3), user="t")
    assert sorted(res.deleted) == sorted(ids[:3])
    # freed: the three manifests and only ids[0]'s Equipment data (ids[1] and ids[2] hold the version
    # ids[3] still shares, and the select options are shared by the kept ones); the dry run says the same
    first_eq = preview.decisions[-1]
    eq = infos[ids[0]].collections[EQ]
    eq_data = sum(p.stored_bytes for p in eq.stored_parts())  # its full copy and its document index
    assert first_eq.backup_id == ids[0] and first_eq.freed == eq_data + len(infos[ids[0]].stored_manifest)
    assert res.freed_bytes == preview.freed_bytes == eq_data + sum(len(i.stored_manifest) for i in infos.values())
    assert [d.freed for d in preview.decisions if d.backup_id in ids[1:3]] == \
        [len(infos[b].stored_manifest) for b in (ids[2], ids[1])]
    assert res.freed_bytes <= before - any_store.usage() < res.freed_bytes + 20_000  # + the manifests
    kept = [b.backup_id for b in any_store.list_backups()]
    assert sorted(kept) == sorted(ids[3:])
    # the select options of every kept backup were first written by ids[0], which is gone: the oldest
    # kept backup now owns them
    assert all(_shared_from(any_store, b)[OPT] in (None, ids[3]) for b in kept)
    for backup_id, state in zip(ids[3:], states[3:]):
        assert any_store.verify(backup_id).ok
        restore_backup(db, any_store, backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
        assert {n: snapshot(db, n) for n in (EQ, OPT)} == state


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from backup_core.retention import RetentionPolicy, cleanup
    from backup_core.store import Key, Keyring, open_store
    keyring = Keyring(Key(bytes.fromhex(sys.argv[2]))) if sys.argv[2] else Keyring()
    store = open_store(sys.argv[1], keyring)
    backend = type(store.backend)
    real, at = backend.remove, sys.argv[3]

    def remove(self, name):
        real(self, name)
        if (at == "forget" and name.endswith(("manifest.json", "manifest.enc"))) or \\
                (at == "prune" and name.startswith("data/")):
            print("paused", flush=True)  # a manifest, or a data object, is gone: be killed here
            time.sleep(120)

    backend.remove = remove
    cleanup(store, RetentionPolicy(keep_last=2), user="killed")
""")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("at", ["forget", "prune"])
def test_a_clean_up_killed_halfway_leaves_every_kept_backup_whole(any_store, db, at):
    seed_demo(db)
    ids, states = [], {}
    for i in range(5):
        if i == 2:
            db[EQ].update_many({}, {"$set": {"round": i}})
        ids.append(_backup(db, any_store).backup_id)
        states[ids[-1]] = {n: snapshot(db, n) for n in (EQ, OPT)}
    root = any_store.url if any_store.url.startswith("s3://") else str(any_store.root)
    key = any_store.keyring.current.material.hex() if any_store.keyring.current else ""
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, root, key, at], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "paused", proc.stderr.read() if proc.poll() is not None else line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    for backup_id in ids[-2:]:  # what the killed clean-up was keeping
        assert any_store.verify(backup_id).ok
    # a later clean-up finishes the job (once the killed one's lock expired); the kept backups still
    # restore exactly, and no data object is left that no backup needs
    with mock.patch.dict(os.environ, {"BACKUP_LOCK_TTL_SECONDS": "1"}):
        time.sleep(1.5)
        cleanup(any_store, RetentionPolicy(keep_last=2), user="t")
    assert sorted(b.backup_id for b in any_store.list_backups()) == sorted(ids[-2:])
    needed = {p.location for b in any_store.list_backups() for e in b.collections.values() for p in e.stored_parts()}
    assert {e.name for e in any_store.backend.list("data/")} == needed
    for backup_id in ids[-2:]:
        restore_backup(db, any_store, backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
        assert {n: snapshot(db, n) for n in (EQ, OPT)} == states[backup_id]
