"""Backup storage: the store interface, its local-folder implementation, manifests and data files.

``open_store(root)`` gives the store of a backup root. Everything else in the
product (backup, restore, clean-up, transfer, the dashboard) speaks to the
``Store`` interface only; just the implementations know paths and renames.
"""

from __future__ import annotations

from pathlib import Path

from .base import BackupInfo, BackupWriter, Staging, Store, VerifyResult, check_collection
from .csvfile import RowReader, write_csv
from .layout import (ID_RE, MANIFEST, TRIGGERS, WEEKDAYS, backup_id_for, check_backup_id, day_for,
                     file_name_for, is_backup_id)
from .crypto import Key, Keyring
from .local import LocalStore
from .manifest import FORMAT_VERSION, CollectionEntry, Manifest, canonical_json, manifest_hash


def open_store(root: "str | Path | Store", keyring: Keyring | None = None) -> Store:
    """The store of a backup root: ``s3://bucket/prefix`` or a local folder."""
    if isinstance(root, Store):
        return root
    if str(root).startswith("s3://"):
        from .s3 import S3Store

        return S3Store(str(root), keyring)
    return LocalStore(Path(root), keyring)


__all__ = ["Store", "LocalStore", "BackupInfo", "BackupWriter", "Staging", "VerifyResult", "Manifest",
           "CollectionEntry", "RowReader", "write_csv", "check_collection", "open_store", "FORMAT_VERSION",
           "MANIFEST", "WEEKDAYS", "TRIGGERS", "ID_RE", "backup_id_for", "day_for", "check_backup_id",
           "is_backup_id", "file_name_for", "manifest_hash", "canonical_json"]
