"""Storage over a day of hourly backups: deduplicated (what is stored) against 24 full copies.

The demo data (Equipment 150 documents, Equipment_select_options 45) is
backed up 24 times; before each backup 1% of the Equipment documents change
(the select options never do). Reported, for plain and for gzip backups:
bytes actually stored (``store.usage()``, shared data counted once) against
the bytes of 24 independent full copies of the same backups.

Deduplication works per collection (a collection whose bytes did not change
is stored once); a collection with any change is stored again in full, so
the figure shows what unchanged collections and compression save, not
row-level sharing.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.demo_data import seed_demo
from backup_core.config import meta_name
from backup_core.store import LocalStore

from .common import log

HOURS = 24


def _day(db, store: LocalStore, compress: bool, rng: random.Random) -> tuple[int, int]:
    full = 0
    ids = [d["_id"] for d in db["Equipment"].find({}, {"_id": 1})]
    for hour in range(HOURS):
        for _id in rng.sample(ids, max(1, len(ids) // 100)):
            db["Equipment"].update_one({"_id": _id}, {"$set": {"hourly_check": hour}})
        res = create_backup(db, store, BackupOptions(user="bench", compress=compress))
        info = store.get(res.backup_id)
        full += sum(e.stored_bytes for e in info.collections.values()) + len(info.stored_manifest)
    return store.usage(), full


def run(client: pymongo.MongoClient, db_name: str = "bench_dedup") -> dict:
    out: dict = {"dedup_hours": HOURS}
    for compress in (False, True):
        client.drop_database(db_name)
        db = client[db_name]
        seed_demo(db)
        tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
        try:
            log(f"{HOURS} hourly backups, 1% of Equipment changing per hour, compress={compress}")
            stored, full = _day(db, LocalStore(tmp), compress, random.Random(5))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            client.drop_database(db_name)
            client.drop_database(meta_name(db_name))
        suffix = "_gzip" if compress else ""
        out[f"dedup_stored_bytes{suffix}"] = stored
        out[f"dedup_full_copies_bytes{suffix}"] = full
        out[f"dedup_stored_vs_full{suffix}"] = round(stored / full, 3)
    return out
