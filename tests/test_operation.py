"""The operation wrapper: one started and one outcome entry, the lock, the sweep, joining, nesting."""

from __future__ import annotations

import pytest

from backup_core import audit, operation
from backup_core.errors import LockBusy, RestoreRefused, StorageError
from backup_core.operation import operation as op_ctx


def _entries(store):
    return list(reversed(audit.read(store.root, None)))


def test_outcomes(store):
    with op_ctx(store, "backup", user="ann", details={"trigger": "manual"}) as op:
        op.note(backup_id="X")
    with pytest.raises(RestoreRefused):
        with op_ctx(store, "restore", user="ann"):
            raise RestoreRefused("no")
    with pytest.raises(ZeroDivisionError):
        with op_ctx(store, "cleanup", user="ann"):
            1 / 0
    got = [(e["action"], e["outcome"]) for e in _entries(store)]
    assert got == [("backup", "started"), ("backup", "ok"), ("restore", "started"), ("restore", "refused"),
                   ("cleanup", "started"), ("cleanup", "error")]
    entries = _entries(store)
    assert entries[1]["backup_id"] == "X" and entries[1]["trigger"] == "manual"
    assert entries[5]["error"].startswith("ZeroDivisionError")


def test_a_core_call_joins_the_entry_points_operation_and_a_different_action_nests(store):
    with op_ctx(store, "restore", user="ann") as outer:
        with op_ctx(store, "restore", user="ann") as joined:
            assert joined is outer
        with op_ctx(store, "backup", user="ann") as child:
            assert child.parent is outer and operation.current() is child
    entries = _entries(store)
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("restore", "started"), ("backup", "started"), ("backup", "ok"), ("restore", "ok")]
    assert entries[1]["parent"] == entries[0]["op"]


def test_busy_lock_is_a_refusal_on_the_record(store):
    import threading

    hold, release = threading.Event(), threading.Event()

    def holder():
        with op_ctx(store, "backup", user="a"):
            hold.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    hold.wait(10)
    try:
        with pytest.raises(LockBusy):
            with op_ctx(store, "restore", user="b", lock_timeout=0.2):
                pass
    finally:
        release.set()
        t.join()
    outcomes = [(e["action"], e["outcome"]) for e in _entries(store) if e["action"] == "restore"]
    assert outcomes == [("restore", "started"), ("restore", "refused")]


def test_nothing_happens_when_the_audit_log_cannot_be_written(store):
    (store.root / ".audit").write_text("a file where the folder should be")
    ran = []
    with pytest.raises(StorageError, match="audit log"):
        with op_ctx(store, "backup", user="a"):
            ran.append(1)
    assert ran == []


def test_start_sweeps_what_killed_writers_left(store):
    dead = store.root / "monday" / ".tmp-20260101T000000Z-4194311"
    dead.mkdir(parents=True)
    with op_ctx(store, "backup", user="a") as op:
        pass
    assert not dead.exists() and op.outcome["swept"] == [str(dead)]
