"""Backup storage in three layers, after restic: backend, repository, checker.

- ``backend/``: named blobs on a local folder or an S3-compatible bucket
  (save if absent, load, stat, list, remove; nothing about backups);
- ``repository.py``: backups as manifests over content-addressed data
  objects: naming, encryption, deduplication, garbage collection
  (``gc.py``), the lock (``lock.py``), writing (``writer.py``) and reading;
- ``checker.py``: proving that data is what the manifests say, for verify,
  restore and import alike.

``open_store(root, keyring)`` gives the repository of a backup root. Everything
else in the product (backup, restore, clean-up, transfer, the dashboard)
speaks to the repository only; just the backends know paths and object keys.
"""

from __future__ import annotations

from pathlib import Path

from .backend import Backend, open_backend
from .backend.local import LocalBackend
from .checker import HashingReader, VerifyResult, check_backup, count_and_check_ids
from .crypto import Key, Keyring
from .csvfile import RowReader, write_csv
from .layout import (ID_RE, MANIFEST, MANIFEST_ENC, TRIGGERS, WEEKDAYS, backup_id_for, check_backup_id, day_for,
                     file_name_for, is_backup_id, view_name)
from .manifest import FORMAT_VERSION, CollectionEntry, Manifest, Part, canonical_json, manifest_hash
from .repository import BackupInfo, PruneResult, Repository, Unauthenticated, day_of, open_repository
from .writer import BackupWriter

Store = Repository  # the name the rest of the product has always used
open_store = open_repository


class LocalStore(Repository):
    """The repository of a local folder."""

    def __init__(self, root: Path | str, keyring: Keyring | None = None, *, allow_plaintext: bool = False) -> None:
        super().__init__(LocalBackend(Path(root)), keyring, allow_plaintext=allow_plaintext)


__all__ = ["Backend", "open_backend", "Repository", "Store", "LocalStore", "open_store", "open_repository",
           "BackupInfo", "BackupWriter", "PruneResult", "Unauthenticated", "VerifyResult", "HashingReader",
           "check_backup", "count_and_check_ids", "Manifest", "CollectionEntry", "Part", "RowReader", "write_csv",
           "Key", "Keyring", "FORMAT_VERSION", "MANIFEST", "MANIFEST_ENC", "WEEKDAYS", "TRIGGERS", "ID_RE",
           "backup_id_for", "day_for", "day_of", "check_backup_id", "is_backup_id", "file_name_for", "view_name",
           "manifest_hash", "canonical_json"]
