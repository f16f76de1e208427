"""Storage that grows with change: 24 hourly rounds of a changing collection, against full copies, restic and borg.

One collection of ``documents`` Equipment-shaped documents (about 0.5 KB
each, inserted in large batches) on the embedded server changes 24
times: each round updates 1 % of the documents, inserts 0.2 % and deletes
0.1 %, then is backed up into a plain root and into a ``--compress`` root.
Reported, after the 24 rounds:

- the bytes each root holds (``Repository.usage``: data objects and
  manifests), against one full copy of the collection's CSV (plain, and gzip)
  and against 24 full copies;
- beside them, when Debian's ``restic`` and ``borg`` are installed, what their
  repositories hold after backing up the same CSV file each round (restic with
  its defaults; borg with its defaults and with 4 KB chunks), or that they are
  not installed;
- a restore of the newest backup (a full copy and up to 23 steps) against a
  restore of a full backup of the same documents: the time to read and resolve
  the documents, and a replace-restore's dry run (read, decode, pair with live
  data); the database writes that follow are the same documents in both cases.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymongo
from pymongo import DeleteOne, UpdateOne

from backup_core.backup import BackupOptions, create_backup
from backup_core.mongoutil import raw_collection
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import open_store
from backup_core.store import incremental
from backup_core.store.csvfile import write_csv

from .common import data_dir_server, log
from .scale_data import iter_equipment

ROUNDS = 24
DB, COLL = "bench_increment", "Equipment"


def _seed(coll, n: int) -> None:
    """Through the wire, in batches (the embedded server runs each batch as one insert)."""
    batch = []
    for doc in iter_equipment(n, seed=19):
        batch.append(doc)
        if len(batch) >= 2000:
            coll.insert_many(batch, ordered=False)
            batch = []
    if batch:
        coll.insert_many(batch, ordered=False)


def _round(coll, rng: random.Random, r: int, n: int, fresh) -> None:
    ids = [d["_id"] for d in coll.find({}, {"_id": 1})]
    changed = rng.sample(ids, max(1, n // 100))
    coll.bulk_write([UpdateOne({"_id": i}, {"$set": {"status": f"checked in round {r}", "round": r}})
                     for i in changed], ordered=False)
    gone = rng.sample([i for i in ids if i not in set(changed)], max(1, n // 1000))
    coll.bulk_write([DeleteOne({"_id": i}) for i in gone], ordered=False)
    coll.insert_many([next(fresh) for _ in range(max(1, n // 500))], ordered=False)


def _full_csv(coll, folder: Path, compress: bool) -> Path:
    name = "Equipment.csv.gz" if compress else "Equipment.csv"
    out = folder / name
    docs = (bytes(d.raw) for d in raw_collection(coll.database, coll.name).find({}, sort=[("_id", 1)]))
    with out.open("wb") as fh:
        write_csv(docs, fh, folder / ".spill", compress=compress)
    return out


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Peer:
    """restic or borg on the same files, when installed."""

    def __init__(self, kind: str, repo: Path, args: list[str] | None = None) -> None:
        self.kind, self.repo, self.args = kind, repo, args or []
        self.env = dict(os.environ, RESTIC_PASSWORD="bench", BORG_PASSPHRASE="",
                        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        exe = "restic" if kind == "restic" else "borg"
        self.exe = shutil.which(exe)
        if self.exe is None:
            return
        init = [self.exe, "-r", str(repo), "init"] if kind == "restic" else \
            [self.exe, "init", "--encryption=none", str(repo)]
        subprocess.run(init, env=self.env, check=True, capture_output=True)

    def backup(self, folder: Path, r: int) -> None:
        if self.exe is None:
            return
        cmd = [self.exe, "-r", str(self.repo), "backup", "--quiet", "."] if self.kind == "restic" else \
            [self.exe, "create", *self.args, f"{self.repo}::round-{r}", "."]
        subprocess.run(cmd, cwd=folder, env=self.env, check=True, capture_output=True)

    def stored(self) -> int | str:
        return _du(self.repo) if self.exe is not None else "not installed"


def run(n: int = 50_000, rounds: int = ROUNDS) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-increment-"))
    try:
        (work / "data").mkdir()
        with data_dir_server(work / "data", seed=False) as uri:
            client = pymongo.MongoClient(uri)
            t = time.perf_counter()
            _seed(client[DB][COLL], n)
            log(f"increment: seeded {n} documents in {time.perf_counter() - t:.1f}s")
            return _measure(client, work, n, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(client, work: Path, n: int, rounds: int) -> dict:
    db = client[DB]
    coll = db[COLL]
    plain, gz = open_store(work / "plain"), open_store(work / "gzip")
    files = work / "files"
    files.mkdir()
    peers = {"restic": _Peer("restic", work / "restic"), "borg": _Peer("borg", work / "borg"),
             "borg_4k": _Peer("borg", work / "borg4k", ["--chunker-params", "buzhash,10,23,12,4095"])}
    rng = random.Random(3)
    fresh = iter_equipment(10 * n, seed=23)
    for _ in range(n):  # fresh documents: new asset ids past the seeded ones
        next(fresh)
    one_full = {"plain": 0, "gzip": 0}
    all_full = {"plain": 0, "gzip": 0}
    backup_s = []
    for r in range(1, rounds + 1):
        if r > 1:
            _round(coll, rng, r, n, fresh)
        t = time.perf_counter()
        create_backup(db, plain, BackupOptions(user="bench"))
        backup_s.append(time.perf_counter() - t)
        create_backup(db, gz, BackupOptions(user="bench", compress=True))
        for kind, compress in (("plain", False), ("gzip", True)):
            size = _full_csv(coll, files, compress).stat().st_size
            all_full[kind] += size
            if r == 1:
                one_full[kind] = size
        (files / "Equipment.csv.gz").unlink()
        for peer in peers.values():
            peer.backup(files, r)
        log(f"increment: round {r}/{rounds}: plain root {plain.usage()} bytes, gzip root {gz.usage()} bytes")
    stored = {"plain": plain.usage(), "gzip": gz.usage()}
    newest = plain.list_backups()[0]
    steps = (len(newest.collection(COLL).parts) - 1) // 2
    read_chain, read_full, plan_chain, plan_full = _restore_times(db, plain, newest.backup_id, work)
    out = {
        "increment_documents": n, "increment_rounds": rounds,
        "increment_change_per_round": "1% updated, 0.2% inserted, 0.1% deleted",
        "increment_stored_bytes": stored, "increment_one_full_copy_bytes": one_full,
        "increment_full_copies_bytes": all_full,
        "increment_stored_vs_one_full_plain": round(stored["plain"] / one_full["plain"], 3),
        "increment_stored_vs_one_full_gzip": round(stored["gzip"] / one_full["gzip"], 3),
        "increment_stored_vs_full_copies_plain": round(stored["plain"] / all_full["plain"], 4),
        "increment_newest_steps": steps,
        "increment_backup_s": {"first_full": round(backup_s[0], 2),
                               "median_increment": round(sorted(backup_s[1:])[len(backup_s[1:]) // 2], 2)
                               if len(backup_s) > 1 else None},
        "increment_restore_read_s": {"newest_chain": round(read_chain, 2), "full": round(read_full, 2)},
        "increment_restore_read_vs_full": round(read_chain / read_full, 3),
        "increment_restore_dry_run_s": {"newest_chain": round(plan_chain, 2), "full": round(plan_full, 2)},
        "increment_restore_dry_run_vs_full": round(plan_chain / plan_full, 3),
    }
    for name, peer in peers.items():
        size = peer.stored()
        out[f"increment_{name}_bytes"] = size
        if isinstance(size, int):
            out[f"increment_{name}_vs_one_full_gzip"] = round(size / one_full["gzip"], 3)
    return out


def _restore_times(db, store, newest: str, work: Path) -> tuple[float, float, float, float]:
    """(read newest, read full, dry run newest, dry run full): the same documents, a chain or one copy."""
    full_root = open_store(work / "full")
    saved = incremental.MAX_STEPS
    incremental.MAX_STEPS = 0  # the same documents as one full copy
    try:
        full = create_backup(db, full_root, BackupOptions(user="bench")).backup_id
    finally:
        incremental.MAX_STEPS = saved

    def read(root, bid) -> float:
        info = root.get(bid)
        t = time.perf_counter()
        for _ in root.iter_documents(info, COLL):
            pass
        return time.perf_counter() - t

    def dry(root, bid) -> float:
        t = time.perf_counter()
        restore_backup(db, root, bid, RestoreOptions(mode="replace", dry_run=True, user="bench"))
        return time.perf_counter() - t

    return (min(read(store, newest), read(store, newest)), min(read(full_root, full), read(full_root, full)),
            dry(store, newest), dry(full_root, full))
