"""Links in a backup root are refused wherever a backup, manifest or data file is expected (hole 3)."""

from __future__ import annotations

import os
import shutil

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import IntegrityError
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import MANIFEST, LocalStore

from tests.faults.helpers import snapshot

EQ = "Equipment"


@pytest.fixture
def backup(db, store):
    db[EQ].insert_many([{"_id": i, "name": f"pump {i}"} for i in range(20)])
    return create_backup(db, store, BackupOptions(user="t"))


def _refused(db, store: LocalStore, backup_id: str, cli) -> None:
    before = snapshot(db, EQ)
    with pytest.raises(IntegrityError):
        store.verify(backup_id)
    with pytest.raises(IntegrityError):
        restore_backup(db, store, backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert snapshot(db, EQ) == before
    assert all(b.trigger != "safety" for b in store.list_backups())
    proc = cli("restore", backup_id, "--mode", "replace", "--yes")
    assert proc.returncode == 5 and "symbolic link" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_symlinked_manifest(db, store, backup, cli, tmp_path):
    folder = store.folder(backup.backup_id)
    outside = tmp_path / "manifest-copy.json"
    shutil.copy(folder / MANIFEST, outside)
    (folder / MANIFEST).unlink()
    os.symlink(outside, folder / MANIFEST)  # identical bytes, but a link
    errors: list[str] = []
    assert store.list_backups(errors=errors) == []
    assert "symbolic link" in errors[0]
    _refused(db, store, backup.backup_id, cli)


def test_symlinked_data_file(db, store, backup, cli, tmp_path):
    """A data object that is a link is refused; a readable file that is a link fails verify (the folder
    was changed) but is never read: a restore gives back the backup's own data."""
    info = store.get(backup.backup_id)
    obj = store.root / info.collection(EQ).own.location
    outside = tmp_path / "data.csv"
    shutil.copy(obj, outside)
    obj.unlink()
    os.symlink(outside, obj)
    res = store.verify(backup.backup_id)
    assert not res.ok and any("symbolic link" in p for p in res.problems)
    before = snapshot(db, EQ)
    with pytest.raises(IntegrityError):
        restore_backup(db, store, backup.backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert snapshot(db, EQ) == before
    assert cli("verify", backup.backup_id).returncode == 5
    obj.unlink()
    shutil.copy(outside, obj)
    view = store.folder(backup.backup_id) / f"{EQ}.csv"
    view.unlink()
    os.symlink(outside, view)
    res = store.verify(backup.backup_id)
    assert not res.ok and f"unexpected link {EQ}.csv" in res.problems
    db[EQ].delete_many({})
    restore_backup(db, store, backup.backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert snapshot(db, EQ) == before


def test_symlinked_backup_folder(db, store, backup, cli, tmp_path):
    folder = store.folder(backup.backup_id)
    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)
    os.symlink(moved, folder)
    errors: list[str] = []
    assert store.list_backups(errors=errors) == []
    assert "symbolic link" in errors[0]
    _refused(db, store, backup.backup_id, cli)


def test_symlinked_weekday_folder(db, store, backup, cli, tmp_path):
    day = store.root / backup.day
    moved = tmp_path / "day"
    shutil.move(day, moved)
    os.symlink(moved, day)
    errors: list[str] = []
    assert store.list_backups(errors=errors) == []
    assert "symbolic link" in errors[0]
    _refused(db, store, backup.backup_id, cli)


@pytest.mark.timeout(60)
def test_a_fifo_in_place_of_a_data_file_does_not_hang(db, store, backup):
    data = store.folder(backup.backup_id) / f"{EQ}.csv"
    data.unlink()
    os.mkfifo(data)
    res = store.verify(backup.backup_id)
    assert not res.ok and "not a plain file" in res.problems[0]
