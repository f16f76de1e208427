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
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.config import meta_name
from backup_core.store import Key, Keyring, open_store

from .common import log
from .db_bench import COLL, _dirty, _seed


def _moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto's server did not start")


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


def run(client: pymongo.MongoClient, n: int = 1000, db_name: str = "bench_offsite") -> dict:
    db = client[db_name]
    client.drop_database(db_name)
    tmp = Path(tempfile.mkdtemp(prefix="bench-offsite-"))
    proc, endpoint = _moto()
    aws = mock.patch.dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    aws.start()
    try:
        from backup_core.store.backend.s3 import client as s3_client

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3_client().create_bucket(Bucket=bucket)
        log(f"seeding {n} documents")
        _seed(db, n)
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
    finally:
        aws.stop()
        proc.terminate()
        proc.wait(10)
        client.drop_database(db_name)
        client.drop_database(meta_name(db_name))
        shutil.rmtree(tmp, ignore_errors=True)
