"""Large benchmark data: generated once, cached under ``bench/cache/``, served by the embedded server.

Inserting through the wire costs the embedded server O(n^2) (DESIGN.md
section 5), so 100 000 documents cannot be seeded that way. Instead the
documents are written with mongoeco's own engine API
(``SQLiteEngine.insert_documents``, linear: about 0.5 ms a document for the
Equipment shape, 5 ms for the wide one) into a data directory that is built
once and kept in ``bench/cache/<key>/data`` (gitignored; the key names the
sizes, the generator version and mongoeco's version, so a change builds a new
one). Each run serves a *copy* of it with ``python -m backup_core server
--data DIR`` (the SQLite engine), so the cache never changes, and measures
through pymongo as usual: the product itself only ever talks to the server.

Against a real MongoDB (``bench/run.py --uri``) the same documents are
seeded with ``insert_many`` into ``bench_scale_*`` databases, dropped at the end.

Also here: ``write_backup``, a backup written straight from raw documents
through the store API (the same writer and CSV code as ``create_backup``), to
make backup variants (documents changed, missing, added) without a database.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

import bson
from bson import ObjectId

from .common import data_dir_server, log, wide_nested_docs

CACHE = Path(__file__).resolve().parent / "cache"
GENERATOR_VERSION = 1
EQUIPMENT = "Equipment"
WIDE = "Wide"
INDEXES = {EQUIPMENT: ([("asset_id", 1)], "asset_id_unique")}


def databases(spec: dict) -> dict[str, list[tuple[str, str, int]]]:
    """database -> [(collection, shape, documents)] for a size spec."""
    n_par, per = spec["parallel"]
    return {
        "bench_scale_large": [(EQUIPMENT, "equipment", spec["large"])],
        "bench_scale_small": [(EQUIPMENT, "equipment", spec["small"])],
        "bench_scale_wide": [(WIDE, "wide", spec["wide"])],
        "bench_scale_parallel": [(f"{EQUIPMENT}_{k}", "equipment", per) for k in range(n_par)],
    }


# --------------------------------------------------------------------------
# Documents, generated in chunks (a 100 000-document list would take gigabytes)


def iter_equipment(n: int, seed: int = 7, chunk: int = 2000) -> Iterator[dict]:
    """``n`` documents of the demo Equipment shape (``demo_data.demo_equipment``), unique ``asset_id``s,
    the same for the same arguments."""
    from backup_core.demo_data import demo_equipment

    rng = random.Random(seed)
    done = 0
    while done < n:
        size = max(50, min(chunk, n - done))  # the demo's hand-picked edge cases need 42+ documents
        for doc in demo_equipment(rng, size)[:n - done]:
            doc["asset_id"] = f"EQ-{done:07d}"
            done += 1
            yield doc


def iter_wide(n: int, seed: int = 11, chunk: int = 200) -> Iterator[dict]:
    """``n`` documents of ``common.wide_nested_docs``' shape (60 top-level fields, 6 levels), with
    reproducible ``_id``s."""
    done = 0
    while done < n:
        for doc in wide_nested_docs(min(chunk, n - done), seed=seed + done):
            doc["_id"] = ObjectId(b"\x5f\x00\x00\x00" + done.to_bytes(8, "big"))
            done += 1
            yield doc


def iter_docs(shape: str, n: int, seed: int = 7) -> Iterator[dict]:
    return iter_equipment(n, seed) if shape == "equipment" else iter_wide(n, seed + 4)


def batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


# --------------------------------------------------------------------------
# The cached data directory


def cache_key(spec: dict) -> str:
    import mongoeco

    n_par, per = spec["parallel"]
    version = getattr(mongoeco, "__version__", None) or _dist_version("mongoeco")
    return (f"scale-g{GENERATOR_VERSION}-l{spec['large']}-s{spec['small']}-w{spec['wide']}-p{n_par}x{per}"
            f"-mongoeco{version}")


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def cached_data_dir(spec: dict) -> tuple[Path, float | None]:
    """(the data dir for ``spec``, seconds spent building it now, or None when it was cached)."""
    from backup_core.embedded import SQLITE_FILE

    final = CACHE / cache_key(spec) / "data"
    if (final / SQLITE_FILE).exists() and (final.parent / "meta.json").exists():
        return final, None
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    t = time.perf_counter()
    try:
        counts = asyncio.run(_seed_engine(tmp / SQLITE_FILE, spec))
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)  # whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t
    (final.parent / "meta.json").write_text(json.dumps(
        {"spec": spec, "counts": counts, "seconds": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
        indent=2) + "\n")
    return final, seconds


async def _seed_engine(path: Path, spec: dict) -> dict:
    """Write every database of ``spec`` with mongoeco's engine API (no wire, no O(n^2) insert)."""
    from mongoeco.engines import SQLiteEngine

    engine = SQLiteEngine(str(path))
    await engine.connect()
    counts: dict = {}
    try:
        for db_name, colls in databases(spec).items():
            for coll, shape, n in colls:
                t = time.perf_counter()
                if coll.startswith(EQUIPMENT):
                    keys, name = INDEXES[EQUIPMENT]
                    await engine.create_index(db_name, coll, keys, unique=True, name=name)
                for batch in batched(iter_docs(shape, n), 1000):
                    await engine.insert_documents(db_name, coll, batch)
                counts[f"{db_name}.{coll}"] = n
                log(f"scale: seeded {db_name}.{coll} with {n} {shape} documents in "
                    f"{time.perf_counter() - t:.1f}s (engine API)")
    finally:
        await engine.disconnect()
    return counts


def seed_wire(client, spec: dict) -> None:
    """The same databases on a real MongoDB, through ``insert_many`` (``--uri``)."""
    for db_name, colls in databases(spec).items():
        client.drop_database(db_name)
        for coll, shape, n in colls:
            t = time.perf_counter()
            c = client[db_name][coll]
            if coll.startswith(EQUIPMENT):
                keys, name = INDEXES[EQUIPMENT]
                c.create_index(keys, unique=True, name=name)
            for batch in batched(iter_docs(shape, n), 1000):
                c.insert_many(batch, ordered=False)
            log(f"scale: seeded {db_name}.{coll} with {n} documents in {time.perf_counter() - t:.1f}s")


@contextmanager
def served_copy(data: Path) -> Iterator[str]:
    """The embedded server (SQLite engine) on a private copy of the cached data dir; yields its URI."""
    from backup_core.embedded import SQLITE_FILE

    work = Path(tempfile.mkdtemp(prefix="bench-scale-data-"))
    try:
        shutil.copy2(data / SQLITE_FILE, work / SQLITE_FILE)
        with data_dir_server(work, seed=False) as uri:
            yield uri
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# Backups written from raw documents


def write_backup(store, database: str, collections: dict[str, tuple[Iterable[bytes], list, dict]],
                 trigger: str = "manual") -> str:
    """A committed backup of ``collections`` (name -> (raw BSON documents, index specs, options), both
    in the manifest's JSON dialect), written with the product's writer and CSV code; returns its id."""
    from backup_core.store.writer import write_documents

    return write_documents(store, database, collections, trigger=trigger, user="bench", extra={
        "consistency": {"point_in_time": False, "cluster_time": None, "topology": "bench",
                        "read_preference": "primary", "reason": "written by the benchmark"}})


def variant(docs: Iterable[bytes], *, change_every: int = 10, drop_every: int = 100,
            add_every: int = 100) -> Iterator[bytes]:
    """A backup side that differs from ``docs`` (the live data): every ``change_every``-th document
    changed, every ``drop_every``-th missing (only in live), one new document per ``add_every`` (only in
    the backup)."""
    for i, raw in enumerate(docs):
        if i % drop_every == 7:
            continue
        if i % change_every == 3:
            doc = bson.decode(raw)
            doc["status"] = "changed-in-backup"
            raw = bson.encode(doc)
        yield raw
        if i % add_every == 11:
            doc = bson.decode(raw)
            doc["_id"] = ObjectId(b"\xee" * 4 + i.to_bytes(8, "big"))
            if "asset_id" in doc:
                doc["asset_id"] = f"NEW-{i:07d}"
            yield bson.encode(doc)


def first(docs: Iterable[bytes], n: int) -> Iterator[bytes]:
    return islice(docs, n)


def source(store, backup_id: str, collection: str) -> tuple[Callable[[], Iterator[bytes]], list, dict]:
    """(a fresh iterator of the documents, index specs, options) of a collection of a backup."""
    info = store.get(backup_id)
    entry = info.collection(collection)
    return (lambda: store.iter_documents(info, collection)), entry.indexes, entry.options or {}
