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

import time
from pathlib import Path

import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.drill import DrillOptions, run_drill
from backup_core.store import Keyring, open_store

from .common import data_dir_server, log
from .db_bench import COLL, _raw_docs, replace_floor
from .offsite_bench import seeded_with_s3


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
    with data_dir_server(tmp / "data", seed=True) as uri:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        try:
            db = client["equipment_db"]  # seeded on first start
            store = open_store(tmp / "demo", Keyring())
            backup_id = create_backup(db, store, BackupOptions(user="bench")).backup_id
            log("drills of the demo data on the embedded SQLite engine")
            whole, restore = _best(db, store, backup_id)
            documents = sum(c.count for c in store.get(backup_id).collections.values())
        finally:
            client.close()
    return {"drill_embedded_demo_documents": documents, "drill_embedded_demo_s": round(whole, 3),
            "drill_embedded_demo_restore_s": round(restore, 3),
            "drill_embedded_demo_docs_per_s": round(documents / restore, 1)}


def run(client: pymongo.MongoClient, n: int = 1000, db_name: str = "bench_drill") -> dict:
    with seeded_with_s3(client, db_name, n) as (db, tmp, bucket):
        local = open_store(tmp / "local", Keyring())
        figures = {}
        for name, store in (("local", local), ("s3", open_store(f"s3://{bucket}/drill", Keyring()))):
            backup_id = create_backup(db, store, BackupOptions(user="bench", collections=[COLL])).backup_id
            log(f"drills on {name}")
            figures[name] = _best(db, store, backup_id)
        docs, indexes = _raw_docs(local, local.list_backups()[0].backup_id)
        floor = min(replace_floor(db, docs, indexes) for _ in range(3))
        demo = _embedded_demo(tmp)
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
        **demo,
    }
