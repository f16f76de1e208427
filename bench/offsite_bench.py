"""Off-site and encrypted: backup and restore on an S3 root (moto's server) against a local root,
and what encryption costs, all measured in one run on the same data.

* ``offsite_backup_s3_vs_local`` / ``offsite_restore_s3_vs_local``: wall time on
  ``s3://`` (a real HTTP endpoint on 127.0.0.1) over the same on a local folder;
* ``encryption_backup_cost`` / ``encryption_restore_cost``: with a key over without,
  on the local root (AES-256-GCM in 1 MiB chunks).

Restores are replace-restores of one collection whose every document changed,
safety backup included (what the user waits for). Best of 3 each.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pymongo
from pymongo.database import Database

from backup_core.backup import BackupOptions, create_backup
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.config import meta_name
from backup_core.store import Key, Keyring, open_store

from .common import log, s3_bucket
from .db_bench import COLL, _dirty, _seed


def _measure(db, store) -> tuple[float, float]:
    backups, restores = [], []
    for _ in range(3):
        t = time.perf_counter()
        res = create_backup(db, store, BackupOptions(user="bench", collections=[COLL]))
        backups.append(time.perf_counter() - t)
        _dirty(db)
        t = time.perf_counter()
        restore_backup(db, store, res.backup_id, RestoreOptions(mode="replace", collections=[COLL],
                                                                confirmed=True, user="bench"))
        restores.append(time.perf_counter() - t)
    return min(backups), min(restores)


@contextmanager
def seeded_with_s3(client: pymongo.MongoClient, db_name: str, n: int) -> Iterator[tuple[Database, Path, str]]:
    """A bench database of ``n`` Equipment documents, a temporary folder and an S3 bucket (moto); yields
    (database, folder, bucket) and removes them all afterwards."""
    db = client[db_name]
    client.drop_database(db_name)
    tmp = Path(tempfile.mkdtemp(prefix=f"{db_name}-"))
    try:
        with s3_bucket() as bucket:
            log(f"seeding {n} documents")
            _seed(db, n)
            yield db, tmp, bucket
    finally:
        client.drop_database(db_name)
        client.drop_database(meta_name(db_name))
        shutil.rmtree(tmp, ignore_errors=True)


def run(client: pymongo.MongoClient, n: int = 1000, db_name: str = "bench_offsite") -> dict:
    with seeded_with_s3(client, db_name, n) as (db, tmp, bucket):
        key = Keyring(Key(os.urandom(32)))
        roots = {"local": (tmp / "local", Keyring()), "local+key": (tmp / "enc", key),
                 "s3": (f"s3://{bucket}/plain", Keyring()), "s3+key": (f"s3://{bucket}/enc", key)}
        times = {}
        for name, (root, keyring) in roots.items():
            log(f"backup and restore on {name}")
            times[name] = _measure(db, open_store(root, keyring))
    (lb, lr), (eb, er), (sb, sr), (seb, ser) = (times[k] for k in ("local", "local+key", "s3", "s3+key"))
    return {
        "offsite_documents": n,
        "offsite_backup_s": {k: round(v[0], 3) for k, v in times.items()},
        "offsite_restore_s": {k: round(v[1], 3) for k, v in times.items()},
        "offsite_backup_s3_vs_local": round(sb / lb, 3),
        "offsite_restore_s3_vs_local": round(sr / lr, 3),
        "encryption_backup_cost": round(eb / lb, 3),
        "encryption_restore_cost": round(er / lr, 3),
        "offsite_encrypted_backup_s3_vs_local": round(seb / lb, 3),
        "offsite_encrypted_restore_s3_vs_local": round(ser / lr, 3),
    }
