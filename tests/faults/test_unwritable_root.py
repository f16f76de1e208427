"""A read-only or full backup root: every refusal says what could not be written (audit log or data), why,
and that nothing was changed."""

from __future__ import annotations

import errno
import os

import pytest

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import StorageError
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import csvfile

from tests.faults.helpers import seed, snapshot

pytestmark = pytest.mark.timeout(120)


def _audit_fails_with(monkeypatch, code: int) -> None:
    real_open = os.open

    def refusing_open(path, flags, *args, **kw):
        if str(path).endswith(audit.AUDIT_FILE) and flags & os.O_APPEND:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refusing_open)


def test_a_restore_on_a_read_only_root_says_so_and_changes_nothing(db, store, monkeypatch):
    seed(db, 50)
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].delete_many({})
    live = snapshot(db, "Equipment")
    _audit_fails_with(monkeypatch, errno.EROFS)
    with pytest.raises(StorageError) as err:
        restore_backup(db, store, backup.backup_id, RestoreOptions(confirmed=True, user="t"))
    message, hint = str(err.value), err.value.hint
    assert message.startswith("restore not started: cannot write the audit log ") and \
        message.endswith("the backup root is on a read-only file system"), message
    assert "nothing was changed" in hint and "safety backup" in hint and "copy" in hint, hint
    monkeypatch.undo()
    assert snapshot(db, "Equipment") == live
    assert [b.backup_id for b in store.list_backups()] == [backup.backup_id]  # no safety backup either


def test_a_full_root_names_the_audit_log_when_that_is_what_failed(db, store, monkeypatch):
    seed(db, 20)
    _audit_fails_with(monkeypatch, errno.ENOSPC)
    with pytest.raises(StorageError) as err:
        create_backup(db, store, BackupOptions(user="t"))
    assert str(err.value).startswith("backup not started: cannot write the audit log ")
    assert "the backup root is full" in str(err.value) and "free some space" in err.value.hint
    monkeypatch.undo()
    assert store.list_backups() == []


def test_a_full_root_names_the_data_when_that_is_what_failed(db, store, monkeypatch):
    seed(db, 100)
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].update_many({}, {"$set": {"status": "edited"}})
    live = snapshot(db, "Equipment")
    original = csvfile.CountingWriter.write

    def full(self, b):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(csvfile.CountingWriter, "write", full)
    with pytest.raises(StorageError) as err:
        restore_backup(db, store, backup.backup_id, RestoreOptions(confirmed=True, user="t"))
    message = str(err.value)
    assert message.startswith("the safety backup could not be written, so nothing was restored: cannot write "
                              "backup "), message
    assert "writing collection Equipment failed: the backup root is full" in message, message
    assert err.value.hint == "live data was not changed"
    monkeypatch.setattr(csvfile.CountingWriter, "write", original)
    assert snapshot(db, "Equipment") == live
    entry = audit.read(store, 1)[0]  # the audit log itself was writable: the refusal is on the record
    assert entry["action"] == "restore" and entry["outcome"] == "error" and "full" in entry["error"]
