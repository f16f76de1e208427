"""The repository's lock, on every backend: modes, one registry per process, staleness, and a lost lock.

The worst case it exists for: a backup frozen (SIGSTOP, a laptop's standby)
past the lock's lifetime while another process takes the stale lock, backs up
and runs ``cleanup --keep-last 1`` (which removes the data the frozen backup
meant to share), then the frozen backup resumes. It must not commit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from unittest import mock

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import LockBusy, LockLost
from backup_core.retention import RetentionPolicy, cleanup
from backup_core.store import open_store

from tests.conftest import ROOT

EQ = "Equipment"


@pytest.fixture(params=["local", "s3"])
def any_root(request, tmp_path):
    return request.getfixturevalue("s3_root") if request.param == "s3" else str(tmp_path / "root")


def _holders(store) -> list[str]:
    return sorted(f"{h['mode']}:{h.get('operation')}" for h in store.lock_holders())


def test_reentrant_in_one_thread_and_released(any_root):
    store = open_store(any_root)
    with store.lock("restore", 2):
        with store.lock("backup", 2):  # the restore's safety backup
            assert _holders(store) == ["write:restore"]
    assert _holders(store) == []


def test_another_thread_waits_then_gives_up_naming_the_holder(any_root):
    store = open_store(any_root)
    errors: list[str] = []

    def other():
        try:
            with store.lock("backup", 0.3):
                pass
        except LockBusy as exc:
            errors.append(str(exc))

    with store.lock("restore", 2):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "locked by restore" in errors[0]
    with store.lock("backup", 2):  # free again
        pass


def test_two_instances_in_one_process_never_both_hold_it(any_root):
    """The dashboard's scheduler thread and a click each open their own repository object."""
    first, second = open_store(any_root), open_store(any_root)
    entered: list[float] = []

    def click():
        with second.lock("backup", 5):
            entered.append(time.monotonic())

    with first.lock("scheduled backup", 2):
        t = threading.Thread(target=click)
        t.start()
        time.sleep(0.5)
        assert entered == []  # still waiting: the lock is the process's, not the object's
        held_until = time.monotonic()
    t.join(10)
    assert entered and entered[0] >= held_until
    errors: list[str] = []

    def impatient():
        try:
            with second.lock("click", 0.2):
                pass
        except LockBusy as exc:
            errors.append(str(exc))

    with first.lock("scheduled backup", 2):
        t = threading.Thread(target=impatient)
        t.start()
        t.join(10)
    assert errors and "scheduled backup" in errors[0]


def test_modes(any_root):
    """Readers (drill, export) run beside a writer (backup); clean-up waits for both."""
    store = open_store(any_root)
    other = _other_process_holding(any_root, "read", "drill")
    try:
        with store.lock("backup", 2, mode="write"):
            pass  # a backup runs beside a drill
        with pytest.raises(LockBusy, match="locked by drill"):
            with store.lock("cleanup", 0.5, mode="exclusive"):
                pass
    finally:
        other.kill()
        other.wait(10)
    # the reader died: its lock is stale at once (its process is gone on this host)
    with store.lock("cleanup", 5, mode="exclusive"):
        pass


HOLD = textwrap.dedent("""
    import sys, time
    from backup_core.store import open_store
    store = open_store(sys.argv[1])
    with store.lock(sys.argv[3], 5, mode=sys.argv[2]):
        print("held", flush=True)
        time.sleep(120)
""")


def _other_process_holding(root: str, mode: str, operation: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, root, mode, operation], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


@pytest.mark.timeout(60)
def test_a_killed_holder_leaves_no_stale_lock(any_root):
    proc = _other_process_holding(any_root, "write", "backup")
    store = open_store(any_root)
    try:
        with pytest.raises(LockBusy, match="locked by backup"):
            with store.lock("restore", 0.3):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    t0 = time.monotonic()
    with store.lock("restore", 5):
        assert time.monotonic() - t0 < 5


@pytest.mark.timeout(60)
def test_a_frozen_holder_loses_the_lock_when_it_expires(any_root):
    with mock.patch.dict(os.environ, {"BACKUP_LOCK_TTL_SECONDS": "2"}):
        proc = _other_process_holding(any_root, "write", "backup")
        store = open_store(any_root)
        try:
            os.kill(proc.pid, signal.SIGSTOP)  # alive, but not renewing
            with pytest.raises(LockBusy):
                with store.lock("restore", 0.5):
                    pass
            with store.lock("restore", 10):  # after 2 s without renewal it is stale
                pass
        finally:
            proc.kill()
            proc.wait(10)


FROZEN_BACKUP = textwrap.dedent("""
    import os, sys, time
    from pymongo import MongoClient
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.errors import BackupError
    from backup_core.store import open_store
    from backup_core.store import writer as writer_mod

    db = MongoClient(sys.argv[2])[sys.argv[3]]
    real = writer_mod.BackupWriter.commit_manifest

    def paused(self, manifest, stored):
        print("about to commit", flush=True)
        sys.stdin.readline()  # frozen here (SIGSTOP) until the test lets it go on
        return real(self, manifest, stored)

    writer_mod.BackupWriter.commit_manifest = paused
    try:
        res = create_backup(db, open_store(sys.argv[1]), BackupOptions(user="frozen"))
        print("COMMITTED", res.backup_id, flush=True)
    except BackupError as exc:
        print("REFUSED", type(exc).__name__, exc, flush=True)
""")


@pytest.mark.timeout(120)
def test_a_backup_frozen_past_its_lock_never_commits(any_root, db, mongo_uri):
    """Issue 19, item 2, end to end."""
    db[EQ].insert_many([{"_id": i, "v": "x" * 20} for i in range(40)])
    db["Other"].insert_many([{"_id": i} for i in range(5)])
    store = open_store(any_root)
    old = create_backup(db, store, BackupOptions(user="t"))
    env = dict(os.environ, BACKUP_LOCK_TTL_SECONDS="2")
    proc = subprocess.Popen([sys.executable, "-c", FROZEN_BACKUP, any_root, mongo_uri, db.name], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "about to commit", proc.stderr.read()
        os.kill(proc.pid, signal.SIGSTOP)
        with mock.patch.dict(os.environ, {"BACKUP_LOCK_TTL_SECONDS": "2"}):
            # another process takes the stale lock, backs up (Other changed) and keeps only its own backup:
            # the data of the old backup, which the frozen one shares, is deleted
            db["Other"].insert_one({"_id": 99})
            time.sleep(2.5)
            create_backup(db, store, BackupOptions(user="t", lock_timeout=20))
            cleanup(store, RetentionPolicy(keep_last=1), user="t")
        assert old.backup_id not in [b.backup_id for b in store.list_backups()]
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "REFUSED" in out and "COMMITTED" not in out, (out, err)
    assert "LockLost" in out or "lost the lock" in out, out
    # what remains is whole: every listed backup verifies and restores
    for info in store.list_backups():
        assert store.verify(info.backup_id).ok


@pytest.mark.timeout(60)
def test_a_lost_lock_cancels_the_operation_not_only_its_commit(any_root):
    store = open_store(any_root)
    with mock.patch.dict(os.environ, {"BACKUP_LOCK_TTL_SECONDS": "2"}):
        with store.lock("backup", 2):
            # someone removed our lock file as stale (we were frozen): the next check says so
            for e in list(store.backend.list("locks/")):
                store.backend.remove(e.name)
            time.sleep(0.8)  # older than a third of the lifetime: the check renews, and finds it gone
            with pytest.raises(LockLost, match="lost the lock"):
                store.check_lock()
            with pytest.raises(LockLost):
                store.check_lock(writing=True)  # and stays lost for the rest of the operation
        with store.lock("backup", 2):  # a new operation takes it afresh
            store.check_lock(writing=True)


def test_lock_files_name_their_holder(any_root):
    store = open_store(any_root)
    with store.lock("cleanup", 2, mode="exclusive"):
        [entry] = list(store.backend.list("locks/"))
        record = json.loads(store.backend.read(entry.name, 4096))
        assert record["pid"] == os.getpid() and record["operation"] == "cleanup" and record["mode"] == "exclusive"
    assert list(store.backend.list("locks/")) == []
