"""The disk fills up while a backup is written.

``CountingWriter.write`` of the hashing layer (every byte of a CSV file goes through it) is patched
to raise ``OSError(ENOSPC)`` once N bytes were written, as a full filesystem
does. The backup must fail with a one-line ``StorageError``, leave no partial
backup or temporary folder, and leave older backups intact and verifying.
"""

from __future__ import annotations

import errno
import gc
import os

import pytest

from backup_core.store import csvfile
from backup_core.store.backend import local
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import StorageError
from backup_core.store import open_store
from backup_core.restore import RestoreOptions, restore_backup

from tests.faults.helpers import seed, snapshot, temporaries

# a failed write must close its file wrappers itself: none may be left to the garbage collector
# to flush into a closed file ("Exception ignored ...")
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _fill_disk_after(monkeypatch, limit: int) -> None:
    original = csvfile.CountingWriter.write
    written = {"n": 0}

    def write(self, b):
        if self.sha256 is None:  # an outer counting layer: the bytes are counted by the hashing one
            return original(self, b)
        if written["n"] + len(b) > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written["n"] += len(b)
        return original(self, b)

    monkeypatch.setattr(csvfile.CountingWriter, "write", write)


def _check_older_intact(store, root, older_id: str, older_files: dict) -> None:
    gc.collect()  # let the failed writers' leftovers go now, under this module's warning filter
    assert [b.backup_id for b in store.list_backups()] == [older_id]
    assert temporaries(root) == []
    assert store.verify(older_id).ok
    assert {p.name: p.read_bytes() for p in store.folder(older_id).iterdir()} == older_files
    with open_store(root).lock("test", 0):  # free again
        pass


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit", [0, 1000, 9000])  # below the compressed size too
@pytest.mark.parametrize("compress", [False, True])
def test_disk_full_during_backup(limit, compress, db, store, root, monkeypatch):
    seed(db, 200)
    seed(db, 30, coll="Other", seed_value=8)
    older = create_backup(db, store, BackupOptions(user="t"))
    older_files = {p.name: p.read_bytes() for p in store.folder(older.backup_id).iterdir()}
    for name in db.list_collection_names():  # every document changes: the next backup writes full copies
        db[name].update_many({}, {"$set": {"touched": True}})
    _fill_disk_after(monkeypatch, limit)
    with pytest.raises(StorageError) as err:
        create_backup(db, store, BackupOptions(user="t", compress=compress))
    message = str(err.value)
    assert "\n" not in message and "space" in message.lower(), message
    monkeypatch.undo()
    _check_older_intact(store, root, older.backup_id, older_files)
    # once space is back, the next backup works
    assert store.verify(create_backup(db, store, BackupOptions(user="t")).backup_id).ok


@pytest.mark.timeout(120)
def test_disk_full_while_writing_the_manifest(db, store, root, monkeypatch):
    """The manifest is the last write: failing there must not leave a listed backup either."""
    seed(db, 50)
    older = create_backup(db, store, BackupOptions(user="t"))
    older_files = {p.name: p.read_bytes() for p in store.folder(older.backup_id).iterdir()}
    real_link = os.link

    def link(src, dst, **kw):  # linking the manifest into place is the commit point: the disk is full there
        if str(dst).endswith("manifest.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_link(src, dst, **kw)

    monkeypatch.setattr(local.os, "link", link)
    with pytest.raises(StorageError, match="disk is full"):
        create_backup(db, store, BackupOptions(user="t"))
    monkeypatch.undo()
    _check_older_intact(store, root, older.backup_id, older_files)


@pytest.mark.timeout(120)
def test_disk_full_during_the_safety_backup_refuses_the_restore(db, store, root, monkeypatch):
    """A restore whose safety backup cannot be written must not touch live data."""
    seed(db, 100)
    older = create_backup(db, store, BackupOptions(user="t"))
    older_files = {p.name: p.read_bytes() for p in store.folder(older.backup_id).iterdir()}
    db["Equipment"].update_many({}, {"$set": {"status": "edited"}})
    live = snapshot(db, "Equipment")
    _fill_disk_after(monkeypatch, 5000)
    with pytest.raises(StorageError):
        restore_backup(db, store, older.backup_id, RestoreOptions(mode="replace", confirmed=True))
    monkeypatch.undo()
    assert snapshot(db, "Equipment") == live
    _check_older_intact(store, root, older.backup_id, older_files)
