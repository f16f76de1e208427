"""The database goes away in the middle of a backup or a restore.

Each test runs its own embedded server and kills it (SIGKILL) from the
operation's progress callback. The operation must fail with a one-line
``DatabaseUnavailable`` (a ``BackupError``), list nothing partial, release the
lock, and leave the data as it was: the restore tests use the SQLite engine so
that the server can be restarted on the same files and the data inspected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupError, DatabaseUnavailable
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import LocalStore, open_store
from backup_core.swapin import SwapInRegistry

from tests.conftest import start_memory_server
from tests.faults.helpers import ROOT, seed, snapshot, temporaries

DB = "faults"


def _client(uri: str) -> pymongo.MongoClient:
    # short timeouts: a dead server must surface as an error quickly, not after 30 s
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500, socketTimeoutMS=10000)


def _start_sqlite_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "server", "--data", str(data_dir), "--no-seed",
                             "--port", "0", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"embedded SQLite server did not start: {proc.stderr.read()[-2000:]}")
    return proc, json.loads(line)["uri"]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


def _killer(proc: subprocess.Popen, when):
    """A progress callback that SIGKILLs the server the first time ``when(collection, done, total)`` holds."""
    def progress(collection: str, done: int, total: int) -> None:
        if proc.poll() is None and when(collection, done, total):
            proc.kill()
            proc.wait(30)
    return progress


def _assert_store_clean(store: LocalStore, root: Path, expected_ids: list[str]) -> None:
    assert sorted(b.backup_id for b in store.list_backups()) == sorted(expected_ids)
    assert temporaries(root) == []
    for bid in expected_ids:
        assert store.verify(bid).ok
    with open_store(root).lock("test", 0):  # released
        pass


@pytest.mark.timeout(120)
def test_server_killed_between_collections_of_a_backup(tmp_path):
    proc, uri = start_memory_server()
    try:
        client = _client(uri)
        seed(client[DB], 120)
        seed(client[DB], 40, coll="Zz_last", seed_value=5)
        store = LocalStore(tmp_path / "root")
        with pytest.raises(DatabaseUnavailable) as err:
            create_backup(client[DB], store, BackupOptions(user="t"),
                          progress=_killer(proc, lambda c, d, t: c == "Zz_last"))
        assert "\n" not in str(err.value) and "Zz_last" in str(err.value)
        _assert_store_clean(store, tmp_path / "root", [])
    finally:
        _stop(proc)


@pytest.mark.timeout(150)
def test_server_killed_while_a_cursor_is_open(tmp_path):
    proc, uri = start_memory_server()
    try:
        client = _client(uri)
        seed(client[DB], 1100)  # more than one cursor batch (1000): a getMore must hit the dead server
        store = LocalStore(tmp_path / "root")
        with pytest.raises(DatabaseUnavailable):
            create_backup(client[DB], store, BackupOptions(user="t"),
                          progress=_killer(proc, lambda c, d, t: 0 < d < t // 2))
        _assert_store_clean(store, tmp_path / "root", [])
    finally:
        _stop(proc)


@pytest.mark.timeout(150)
def test_server_killed_while_a_restore_stages_then_nothing_changed(tmp_path):
    data = tmp_path / "data"
    root = tmp_path / "root"
    store = LocalStore(root)
    proc, uri = _start_sqlite_server(data)
    try:
        client = _client(uri)
        seed(client[DB], 80)
        backup = create_backup(client[DB], store, BackupOptions(user="t"))
        client[DB]["Equipment"].delete_many({"quantity": 1})
        client[DB]["Equipment"].update_many({}, {"$set": {"status": "edited"}})
        live_before = snapshot(client[DB], "Equipment")
        with pytest.raises(DatabaseUnavailable) as err:
            restore_backup(client[DB], store, backup.backup_id, RestoreOptions(mode="replace", confirmed=True),
                           progress=_killer(proc, lambda c, d, t: True))
        assert isinstance(err.value, BackupError) and "\n" not in str(err.value)
        client.close()
        # the safety backup was complete before the first write; nothing partial is listed
        safety = [b.backup_id for b in store.list_backups() if b.trigger == "safety"]
        assert len(safety) == 1
        _assert_store_clean(store, root, [backup.backup_id, *safety])

        proc, uri = _start_sqlite_server(data)  # same files: what did the kill leave?
        client = _client(uri)
        assert snapshot(client[DB], "Equipment") == live_before, "live data changed by a failed restore"
        restore_backup(client[DB], store, backup.backup_id, RestoreOptions(mode="replace", confirmed=True))
        assert snapshot(client[DB], "Equipment") != live_before
        assert store.verify(backup.backup_id).ok
        # no swap-in collection is left: the registry knows none, only the user's collection is there
        assert SwapInRegistry.of(client[DB]).leftovers() == []
        assert client[DB].list_collection_names() == ["Equipment"]
        client.close()
    finally:
        _stop(proc)


@pytest.mark.timeout(120)
def test_server_killed_during_a_merge_restore(tmp_path):
    proc, uri = start_memory_server()
    try:
        client = _client(uri)
        seed(client[DB], 100)
        store = LocalStore(tmp_path / "root")
        backup = create_backup(client[DB], store, BackupOptions(user="t"))
        client[DB]["Equipment"].update_many({}, {"$set": {"status": "edited"}})
        with pytest.raises(DatabaseUnavailable):
            restore_backup(client[DB], store, backup.backup_id, RestoreOptions(mode="merge", confirmed=True),
                           progress=_killer(proc, lambda c, d, t: True))
        safety = [b.backup_id for b in store.list_backups() if b.trigger == "safety"]
        _assert_store_clean(store, tmp_path / "root", [backup.backup_id, *safety])
    finally:
        _stop(proc)


@pytest.mark.timeout(60)
def test_no_server_at_all_is_a_clear_error(tmp_path):
    proc, uri = start_memory_server()
    _stop(proc)
    client = _client(uri)
    store = LocalStore(tmp_path / "root")
    with pytest.raises(DatabaseUnavailable) as err:
        create_backup(client[DB], store, BackupOptions(user="t"))
    assert "\n" not in str(err.value)
    _assert_store_clean(store, tmp_path / "root", [])
