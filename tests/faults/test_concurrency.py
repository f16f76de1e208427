"""Two operations on one backup root at the same time are serialised by the root lock.

Processes (two CLI backups), threads (a backup and a restore in one process,
as the dashboard and the scheduler run), and a holder that keeps the lock past
the other's patience: every run either completes correctly or fails with a
one-line ``LockBusy`` naming the holder; nothing is half-written.
"""

from __future__ import annotations

import json
import threading

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import LockBusy
from backup_core.restore import RestoreOptions, restore_backup

from tests.faults.helpers import seed, snapshot, start_driver, temporaries, wait_for_line


def _run_threads(*targets):
    results: dict = {}

    def wrap(name, fn):
        try:
            results[name] = fn()
        except BaseException as exc:  # surfaced below
            results[name] = exc

    threads = [threading.Thread(target=wrap, args=(name, fn)) for name, fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    for name, value in results.items():
        if isinstance(value, BaseException):
            raise AssertionError(f"{name} failed: {value!r}") from value
    return results


@pytest.mark.timeout(150)
def test_two_backup_processes_at_once(db, store, root, cli_env):
    seed(db, 250)
    # the first pauses while holding the lock mid-backup; the second must wait, not interleave
    first = start_driver(cli_env, "backup", "--json", pause="after-first-collection")
    wait_for_line(first, "FAULT: paused")
    second = start_driver(cli_env, "backup", "--json")
    out, err = second.communicate(timeout=60)
    assert second.returncode != 0, "the second backup ran while the first held the lock"
    assert "locked by backup" in err and len(err.strip().splitlines()) == 1, err
    first.kill()
    first.wait(30)
    # now two at once without a pause: both succeed, one after the other
    procs = [start_driver(cli_env, "backup", "--json") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    ids = {json.loads(o[0])["backup_id"] for o in outs}
    assert len(ids) == 2
    assert sorted(b.backup_id for b in store.list_backups()) == sorted(ids)
    for bid in ids:
        assert store.verify(bid).ok and store.get(bid).collections["Equipment"].count == 250
    assert temporaries(root) == []


@pytest.mark.timeout(150)
def test_two_backup_threads_at_once(db, store):
    seed(db, 200)
    started = threading.Event()

    def slow_progress(collection, done, total):
        started.set()

    def first():
        return create_backup(db, store, BackupOptions(user="a"), progress=slow_progress)

    def second():
        started.wait(30)
        return create_backup(db, store, BackupOptions(user="b", lock_timeout=60))

    res = _run_threads(("first", first), ("second", second))
    assert res["first"].backup_id != res["second"].backup_id
    for r in res.values():
        assert store.verify(r.backup_id).ok


@pytest.mark.timeout(180)
def test_backup_and_restore_at_once(db, store):
    original = seed(db, 150)
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].update_many({}, {"$set": {"status": "edited"}})
    db["Equipment"].insert_one({"asset_id": "new"})
    edited = snapshot(db, "Equipment")
    in_restore = threading.Event()

    def restore():
        def progress(collection, done, total):
            in_restore.set()
        return restore_backup(db, store, backup.backup_id,
                              RestoreOptions(mode="replace", confirmed=True, lock_timeout=60), progress)

    def concurrent_backup():
        in_restore.wait(60)  # the restore holds the lock now
        return create_backup(db, store, BackupOptions(user="b", lock_timeout=60))

    res = _run_threads(("restore", restore), ("backup", concurrent_backup))
    assert snapshot(db, "Equipment") == original
    # serialised: the concurrent backup saw the restored data whole, never a mix
    info = store.get(res["backup"].backup_id)
    assert list(store.iter_documents(info, "Equipment")) == original
    safety = store.get(res["restore"].safety_backup_id)
    assert list(store.iter_documents(safety, "Equipment")) == edited
    assert len(store.list_backups()) == 3


@pytest.mark.timeout(60)
def test_lock_busy_is_a_clear_refusal(db, store, root):
    seed(db, 20)
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].delete_many({})
    holder_ready, release = threading.Event(), threading.Event()

    def hold():
        with store.lock("clean-up", mode="exclusive"):
            holder_ready.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holder_ready.wait(30)
        with pytest.raises(LockBusy) as err:
            create_backup(db, store, BackupOptions(user="t", lock_timeout=0.2))
        assert "clean-up" in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(LockBusy):
            restore_backup(db, store, backup.backup_id, RestoreOptions(confirmed=True, lock_timeout=0.2))
        assert snapshot(db, "Equipment") == []
    finally:
        release.set()
        t.join(30)
    assert [b.backup_id for b in store.list_backups()] == [backup.backup_id] and temporaries(root) == []
