"""Backup and restore wall time against the raw driver work they cannot avoid.

* backup floor: drain the same collections with a bare ``find()`` (RawBSONDocument)
  and write the same bytes to a file;
* replace-restore floor: drop a scratch collection, ``insert_many`` the same raw
  documents (in the restore's batches of 500), create the same indexes;
* merge-restore floor: bulk ``ReplaceOne(upsert=True)`` of the same documents
  (ordered batches of 500) over a collection in the same state as the live one.

Before each restore (and each floor) the live collection is put in the same state:
the backed-up documents, every one of them changed, so that both restores really
write every document. Our restore times include the safety backup a restore
always takes first (DESIGN.md section 8): that is part of what the user waits for.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pymongo
from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne

from backup_core.backup import BackupOptions, create_backup
from backup_core.mongoutil import RAW, from_json_dialect
from backup_core.config import meta_name
from backup_core.store import LocalStore

from .common import equipment_docs, insert_in_batches, log

COLL = "Equipment"
BATCH = 500  # backup_core.mongoutil.WRITE_BATCH: the floor sends the same batches


def _seed(db, n: int) -> list[dict]:
    db.drop_collection(COLL)
    db[COLL].create_index([("asset_id", 1)], unique=True, name="asset_id_unique")
    docs = equipment_docs(n)
    insert_in_batches(db[COLL], docs)
    return docs


def _dirty(db) -> None:
    """Put the live collection in the 'every document changed' state."""
    db[COLL].update_many({}, {"$set": {"status": "changed-after-backup"}})


def backup_floor(db, out: Path, *, by_id: bool = False) -> float:
    """The bare read; ``by_id``: in ``_id`` order, as a backup reads (FORMAT.md: rows sorted by ``_id``)."""
    sort = {"sort": [("_id", 1)]} if by_id else {}
    t = time.perf_counter()
    with out.open("wb", buffering=1 << 20) as fh:
        for name in db.list_collection_names():
            for doc in db.get_collection(name, codec_options=RAW).find({}, batch_size=1000, **sort):
                fh.write(doc.raw)
    return time.perf_counter() - t


def _raw_docs(store: LocalStore, backup_id: str) -> tuple[list[RawBSONDocument], list[dict]]:
    info = store.get(backup_id)
    docs = [RawBSONDocument(raw) for raw in store.iter_documents(info, COLL)]
    return docs, info.collection(COLL).indexes


def replace_floor(db, docs: list[RawBSONDocument], indexes: list[dict]) -> float:
    scratch = db.get_collection("bench_scratch", codec_options=RAW)
    t = time.perf_counter()
    scratch.drop()
    for k in range(0, len(docs), BATCH):  # the same batches the restore sends
        scratch.insert_many(docs[k:k + BATCH], ordered=True)
    models = []
    for spec in indexes:
        spec = from_json_dialect(spec)
        if spec.get("name") == "_id_":
            continue
        key = list(spec.pop("key").items())
        spec.pop("v", None)
        models.append(pymongo.IndexModel(key, **spec))
    if models:
        scratch.create_indexes(models)
    elapsed = time.perf_counter() - t
    scratch.drop()
    return elapsed


def merge_floor(db, docs: list[RawBSONDocument]) -> float:
    scratch = db.get_collection("bench_scratch", codec_options=RAW)
    scratch.drop()
    insert_in_batches(scratch, docs)
    scratch.update_many({}, {"$set": {"status": "changed-after-backup"}})
    t = time.perf_counter()
    for k in range(0, len(docs), BATCH):
        scratch.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[k:k + BATCH]], ordered=True)
    elapsed = time.perf_counter() - t
    scratch.drop()
    return elapsed


def _restore(db, store: LocalStore, backup_id: str, mode: str) -> tuple[float, dict]:
    from backup_core.restore import RestoreOptions, restore_backup

    opts = RestoreOptions(mode=mode, collections=[COLL], confirmed=True, user="bench")
    t = time.perf_counter()
    result = restore_backup(db, store, backup_id, opts)
    elapsed = time.perf_counter() - t
    return elapsed, {"counts": result.collections[COLL].counts()}


def run(client: pymongo.MongoClient, n: int = 1000, db_name: str = "bench_backup_restore") -> dict:
    db = client[db_name]
    client.drop_database(db_name)
    root = Path(tempfile.mkdtemp(prefix="bench-root-"))
    out: dict = {"backup_restore_documents": n}
    try:
        log(f"seeding {n} documents")
        _seed(db, n)
        store = LocalStore(root)
        floor_file = root / "floor.bson"
        # side by side, alternating, best of 3
        ours, floors, sorted_floors = [], [], []
        backup_id = None
        for _ in range(5):
            t = time.perf_counter()
            res = create_backup(db, store, BackupOptions(user="bench"))
            ours.append(time.perf_counter() - t)
            backup_id = backup_id or res.backup_id
            floors.append(backup_floor(db, floor_file))
            sorted_floors.append(backup_floor(db, floor_file, by_id=True))
        floor_file.unlink()
        out.update(backup_s=round(min(ours), 4), backup_floor_s=round(min(floors), 4),
                   backup_vs_floor=round(min(ours) / min(floors), 3),
                   # the same read in _id order: what the server spends sorting is not the backup's
                   backup_floor_by_id_s=round(min(sorted_floors), 4),
                   backup_vs_floor_by_id=round(min(ours) / min(sorted_floors), 3))
        log(f"backup: {out['backup_s']}s vs floor {out['backup_floor_s']}s "
            f"({out['backup_floor_by_id_s']}s in _id order)")

        docs, indexes = _raw_docs(store, backup_id)
        for mode in ("replace", "merge"):
            ours, floors = [], []
            detail = {}
            for _ in range(3):
                _dirty(db)
                t_ours, detail = _restore(db, store, backup_id, mode)
                ours.append(t_ours)
                floors.append(replace_floor(db, docs, indexes) if mode == "replace" else merge_floor(db, docs))
            out[f"restore_{mode}_s"] = round(min(ours), 4)
            out[f"restore_{mode}_raw_s"] = round(min(floors), 4)
            out[f"restore_{mode}_vs_raw"] = round(min(ours) / min(floors), 3)
            out[f"restore_{mode}_result"] = detail
            log(f"restore {mode}: {out[f'restore_{mode}_s']}s vs raw {out[f'restore_{mode}_raw_s']}s")
        return out
    finally:
        client.drop_database(db_name)
        client.drop_database(meta_name(db_name))  # the restores' staging registry
        shutil.rmtree(root, ignore_errors=True)
