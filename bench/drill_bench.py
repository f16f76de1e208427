"""Restore drills: how long proving a backup takes, on a local root and on an S3 root (moto's server).

* ``drill_local_s`` / ``drill_s3_s``: a whole drill (hashes checked, restored into
  a scratch database, every document and index proven, the database dropped);
* ``drill_local_restore_s`` / ``drill_s3_restore_s``: its time to restore (read,
  decode, write), what ``status`` reports as "restore took N s", and the
  documents per second of it;
* ``drill_restore_vs_raw``: that time to restore over the bare ``insert_many`` of
  the same raw documents with the same indexes (``db_bench.replace_floor``);
* ``drill_s3_vs_local``: a whole drill on ``s3://`` over the same on a local folder;
* ``drill_embedded_demo_*``: the embedded default as a user first meets it: the
  server on its SQLite engine with its demo data (``equipment_db``, two
  collections), backed up and drilled on a local root.

The first figures use one collection of the demo ``Equipment`` shape with a
unique index on the server ``bench/run.py`` gives (its memory engine unless
``--uri``). Best of 3 each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.drill import DrillOptions, run_drill
from backup_core.staging import meta_name
from backup_core.store import Keyring, open_store

from .common import ROOT, log
from .db_bench import COLL, _raw_docs, _seed, replace_floor
from .offsite_bench import _moto


def _best(db, store, backup_id: str) -> tuple[float, float]:
    """(whole drill, time to restore) of the fastest of 3 drills."""
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        result = run_drill(db, store, backup_id, DrillOptions(user="bench"))
        runs.append((time.perf_counter() - t, result.restore_s))
        assert result.ok and result.dropped, result.failures()
    return min(runs)


def _embedded_demo(tmp: Path) -> dict:
    """A drill of the demo data on the embedded server's SQLite engine (the product's default)."""
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "server", "--data", str(tmp / "data"),
                             "--port", "0", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the embedded server did not start")
        client = pymongo.MongoClient(json.loads(line)["uri"], serverSelectionTimeoutMS=10000)
        try:
            db = client["equipment_db"]  # seeded on first start
            store = open_store(tmp / "demo", Keyring())
            backup_id = create_backup(db, store, BackupOptions(user="bench")).backup_id
            log("drills of the demo data on the embedded SQLite engine")
            whole, restore = _best(db, store, backup_id)
            documents = sum(c.count for c in store.get(backup_id).collections.values())
        finally:
            client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"drill_embedded_demo_documents": documents, "drill_embedded_demo_s": round(whole, 3),
            "drill_embedded_demo_restore_s": round(restore, 3),
            "drill_embedded_demo_docs_per_s": round(documents / restore, 1)}


def run(client: pymongo.MongoClient, n: int = 1000, db_name: str = "bench_drill") -> dict:
    db = client[db_name]
    client.drop_database(db_name)
    tmp = Path(tempfile.mkdtemp(prefix="bench-drill-"))
    proc, endpoint = _moto()
    aws = mock.patch.dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    aws.start()
    try:
        from backup_core.store.s3 import client as s3_client

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3_client().create_bucket(Bucket=bucket)
        log(f"seeding {n} documents")
        _seed(db, n)
        local = open_store(tmp / "local", Keyring())
        s3 = open_store(f"s3://{bucket}/drill", Keyring())
        figures = {}
        for name, store in (("local", local), ("s3", s3)):
            backup_id = create_backup(db, store, BackupOptions(user="bench", collections=[COLL])).backup_id
            log(f"drills on {name}")
            figures[name] = _best(db, store, backup_id)
        docs, indexes = _raw_docs(local, local.list_backups()[0].backup_id)
        floor = min(replace_floor(db, docs, indexes) for _ in range(3))
        (local_s, local_restore), (s3_s, s3_restore) = figures["local"], figures["s3"]
        return {
            "drill_documents": n,
            "drill_local_s": round(local_s, 3),
            "drill_local_restore_s": round(local_restore, 3),
            "drill_local_docs_per_s": round(n / local_restore, 1),
            "drill_s3_s": round(s3_s, 3),
            "drill_s3_restore_s": round(s3_restore, 3),
            "drill_s3_docs_per_s": round(n / s3_restore, 1),
            "drill_raw_insert_s": round(floor, 3),
            "drill_restore_vs_raw": round(local_restore / floor, 3),
            "drill_s3_vs_local": round(s3_s / local_s, 3),
            **_embedded_demo(tmp),
        }
    finally:
        aws.stop()
        proc.terminate()
        proc.wait(10)
        client.drop_database(db_name)
        client.drop_database(meta_name(db_name))
        shutil.rmtree(tmp, ignore_errors=True)
