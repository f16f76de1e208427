"""A restore killed with SIGKILL leaves each collection wholly old or wholly new, and the
safety backup listed; the next restore removes the killed one's swap-in collections."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.mongoutil import raw_collection
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.swapin import SwapInRegistry
from tests.conftest import ROOT


def live(db, name) -> list[bytes]:
    return [bytes(d.raw) for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


def _setup(db, store):
    for name in ("a", "b"):
        db[name].insert_many([{"_id": i, "v": 1, "name": f"{name}{i}"} for i in range(20)])
    bid = create_backup(db, store, BackupOptions(trigger="manual")).backup_id
    for name in ("a", "b"):
        db[name].update_many({}, {"$set": {"v": 2}})
        db[name].insert_one({"_id": 100, "v": 2})
    new = {n: list(store.iter_documents(store.get(bid), n)) for n in ("a", "b")}
    old = {n: live(db, n) for n in ("a", "b")}
    return bid, old, new


def _restore_and_kill(cli_env, bid, phase):
    env = dict(cli_env, BACKUP_CORE_TEST_PAUSE=phase, BACKUP_CORE_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "restore", bid, "--mode", "replace", "--yes"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                pytest.fail(f"restore ended before pausing at {phase}: {''.join(seen)} {proc.stdout.read()}")
            seen.append(line)
            if f"paused at {phase}" in line:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def _safety(store, old):
    safety = [b for b in store.list_backups() if b.trigger == "safety"]
    assert len(safety) == 1
    assert {n: list(store.iter_documents(safety[0], n)) for n in ("a", "b")} == old
    return safety[0].backup_id


@pytest.mark.parametrize("phase", ["fill", "swap"])
def test_kill_during_restore(db, store, cli_env, phase):
    bid, old, new = _setup(db, store)
    _restore_and_kill(cli_env, bid, phase)
    if phase == "fill":
        # killed after filling the swap-in collection of "a": nothing was swapped in
        assert live(db, "a") == old["a"] and live(db, "b") == old["b"]
    else:
        # killed after swapping "a" in: "a" is wholly new, "b" wholly old
        assert live(db, "a") == new["a"] and live(db, "b") == old["b"]
    safety_id = _safety(store, old)
    leftovers = SwapInRegistry.of(db).leftovers()
    assert leftovers  # the killed restore could not clean up...
    # (the registry knows every collection that is not user data)
    assert {e["name"] for e in leftovers} == set(db.list_collection_names()) - {"a", "b"}
    # ...the next restore does, and the lock of the killed process is not in the way
    restore_backup(db, store, bid, RestoreOptions(confirmed=True, lock_timeout=5))
    assert SwapInRegistry.of(db).leftovers() == []
    assert sorted(db.list_collection_names()) == ["a", "b"]
    assert live(db, "a") == new["a"] and live(db, "b") == new["b"]
    # and the safety backup of the killed restore still undoes everything
    restore_backup(db, store, safety_id, RestoreOptions(confirmed=True))
    assert live(db, "a") == old["a"] and live(db, "b") == old["b"]
