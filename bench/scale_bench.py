"""Scale: backup, compare and restore at 100 000+ documents, with flat memory; parallel jobs.

Data (``scale_data.py``): ``bench_scale_large`` (100 000 Equipment documents),
``bench_scale_small`` (10 000), ``bench_scale_wide`` (wide, nested documents)
and ``bench_scale_parallel`` (4 collections), on the embedded server's SQLite
engine from a cached data dir, or seeded on a real MongoDB with ``--uri``.

Every operation whose memory matters runs in a fresh process
(``bench.memory_worker``): its peak RSS (VmHWM) and its wall time. Growth
figures are peak(large) / peak(small), 10x the documents:

* backup of the whole database;
* compare of a backup variant against the live collection (10 % of the
  documents changed, 1 % missing, 1 % added: ``scale_data.variant``);
* replace-restore of that variant, ``--dry-run``: the whole read / decode /
  compare pipeline, without the writes (the restore with writes at this size
  on the embedded default is ``embedded_scale_bench.py``);
* restore with writes: on the embedded memory server at the sizes it takes
  (250 to 2 000 documents, into a new collection), each beside the bare
  ``insert_many`` of the same documents (the server's own cost), with
  ``--uri`` at the full size.

``parallel_backup_speedup``: a backup of 4 collections with ``jobs=1`` over
``jobs=2`` (best of 2 each, alternating). ``compare_page_*``: the Restore page
(AppTest) with the comparison of the 100 000-document collection on screen
(``dashboard_bench.compare_page``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.config import meta_name
from backup_core.store import LocalStore

from . import scale_data
from .common import ROOT, log
from .scale_data import EQUIPMENT

WORKER = "bench.memory_worker"
RESTORE_DB = "bench_scale_restore"


def _worker(*args: str, timeout: float = 1800) -> dict:
    proc = subprocess.run([sys.executable, "-m", WORKER, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {' '.join(args[:1])} failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(res: dict) -> float:
    return round(res["documents"] / res["seconds"], 1) if res["seconds"] else 0.0


def run(memory_uri: str | None, real_uri: str | None, spec: dict, restore_sizes: list[int]) -> dict:
    out: dict = {"scale_documents": spec["large"], "scale_spec": spec}
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    peaks: list[float] = []
    real_client = None
    try:
        if real_uri:
            real_client = pymongo.MongoClient(real_uri, serverSelectionTimeoutMS=10000)
            t = time.perf_counter()
            scale_data.seed_wire(real_client, spec)
            out["scale_seed_s"] = round(time.perf_counter() - t, 1)
            server = nullcontext(real_uri)
        else:
            data, built = scale_data.cached_data_dir(spec)
            out["scale_cache"] = str(data.parent.relative_to(ROOT))
            out["scale_seed_s"] = round(built, 1) if built is not None else "cached"
            server = scale_data.served_copy(data)
        with server as uri:
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
            stores = {label: LocalStore(tmp / label) for label in ("small", "large", "wide", "vsmall", "vlarge")}

            # ---- backup: throughput and memory, 10x the documents
            runs: dict = {}
            for label in ("small", "large"):
                runs[label] = _worker("backup", uri, f"bench_scale_{label}", str(stores[label].root))
                log(f"scale: backup of {runs[label]['documents']} documents: {runs[label]['seconds']:.1f}s, "
                    f"{runs[label]['peak_rss_mb']} MB peak")
            large = runs["large"]
            out.update(scale_backup_docs_per_s=_rate(large),
                       scale_backup_s_per_1000=round(1000 * large["seconds"] / large["documents"], 4),
                       scale_backup_peak_rss_mb={k: v["peak_rss_mb"] for k, v in runs.items()},
                       scale_backup_rss_growth=round(large["peak_rss_mb"] / runs["small"]["peak_rss_mb"], 3))
            peaks += [v["peak_rss_mb"] for v in runs.values()]
            wide = _worker("backup", uri, "bench_scale_wide", str(stores["wide"].root))
            out.update(scale_wide_documents=wide["documents"], scale_wide_backup_docs_per_s=_rate(wide),
                       scale_wide_backup_s_per_1000=round(1000 * wide["seconds"] / max(1, wide["documents"]), 4),
                       scale_wide_backup_peak_rss_mb=wide["peak_rss_mb"])
            peaks.append(wide["peak_rss_mb"])
            floor = _read_floor(client["bench_scale_wide"][scale_data.WIDE])
            out["scale_wide_read_floor_s_per_1000"] = round(1000 * floor / max(1, wide["documents"]), 4)
            log(f"scale: backup of {wide['documents']} wide documents: {wide['seconds']:.1f}s, "
                f"{wide['peak_rss_mb']} MB peak (a bare read of them: {floor:.1f}s)")

            # ---- backup variants (changed, missing, added documents) to compare and restore
            variants = {}
            for label in ("small", "large"):
                docs, indexes, options = scale_data.source(stores[label], runs[label]["backup_id"], EQUIPMENT)
                variants[label] = scale_data.write_backup(
                    stores["v" + label], f"bench_scale_{label}",
                    {EQUIPMENT: (scale_data.variant(docs()), indexes, options)})

            # ---- compare and the restore's pipeline (dry run): throughput and memory
            for op, key, extra in (("compare", "compare", []), ("restore", "restore_dry_run", ["--dry-run"])):
                res = {}
                for label in ("small", "large"):
                    res[label] = _worker(op, uri, f"bench_scale_{label}", str(stores["v" + label].root),
                                         variants[label], *extra)
                    log(f"scale: {op}{' --dry-run' if extra else ''} of {res[label]['documents']} documents: "
                        f"{res[label]['seconds']:.1f}s, {res[label]['peak_rss_mb']} MB peak")
                growth = round(res["large"]["peak_rss_mb"] / res["small"]["peak_rss_mb"], 3)
                rate = _rate(res["large"])
                if op == "compare":
                    out.update(scale_compare_docs_per_s=rate, scale_compare_counts=res["large"]["counts"])
                else:
                    out.update(scale_restore_dry_run_docs_per_s=rate, scale_restore_dry_run_counts=res["large"]["counts"])
                out[f"scale_{key}_peak_rss_mb"] = {k: v["peak_rss_mb"] for k, v in res.items()}
                # (the restore's figure is its read / decode / compare pipeline: the dry run)
                out[f"scale_{op}_rss_growth"] = growth
                peaks += [v["peak_rss_mb"] for v in res.values()]

            # ---- parallel jobs: 4 collections, jobs=1 vs jobs=2
            out.update(_parallel(client["bench_scale_parallel"], tmp / "parallel"))

            # ---- the Restore page with the 100 000-document comparison on screen
            from .dashboard_bench import compare_page

            out.update(compare_page(uri, "bench_scale_large", stores["vlarge"].root, tmp / "page",
                                    backup_id=variants["large"]))

            # ---- restore with writes, at the full size against a real MongoDB
            if real_uri:
                out.update(_restores(uri, client, stores["large"], runs["large"]["backup_id"], [spec["large"]],
                                     tmp, peaks))
            client.close()
        if not real_uri and memory_uri:
            # ---- restore with writes on the embedded memory server, at the sizes it takes
            mem = pymongo.MongoClient(memory_uri, serverSelectionTimeoutMS=10000)
            try:
                out.update(_restores(memory_uri, mem, stores["small"], runs["small"]["backup_id"], restore_sizes,
                                     tmp, peaks))
            finally:
                mem.close()
        out["scale_peak_rss_mb"] = max(peaks) if peaks else None
        return out
    finally:
        if real_client is not None:
            for db_name in list(scale_data.databases(spec)) + [RESTORE_DB]:
                real_client.drop_database(db_name)
                real_client.drop_database(meta_name(db_name))
            real_client.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _read_floor(coll) -> float:
    """A bare read of a collection (raw BSON, ``_id`` order): what any backup of it must wait for."""
    from backup_core.mongoutil import RAW

    t = time.perf_counter()
    for _ in coll.with_options(codec_options=RAW).find({}, sort=[("_id", 1)], batch_size=1000):
        pass
    return time.perf_counter() - t


def _insert_floor(client, raw_docs: list, indexes: list) -> float:
    """Create a collection with the same indexes and ``insert_many`` the same documents in the restore's
    batches: the writes any restore of them must wait for."""
    from bson.raw_bson import RawBSONDocument

    from backup_core.mongoutil import RAW, WRITE_BATCH as BATCH, from_json_dialect

    coll = client[RESTORE_DB].get_collection("floor", codec_options=RAW)
    coll.drop()
    t = time.perf_counter()
    specs = [from_json_dialect(i) for i in indexes if i.get("name") != "_id_"]
    for spec in specs:
        spec.pop("v", None)
        spec.pop("ns", None)
    client[RESTORE_DB].create_collection("floor")
    if specs:
        client[RESTORE_DB].command("createIndexes", "floor", indexes=specs)
    docs = [RawBSONDocument(r) for r in raw_docs]
    for k in range(0, len(docs), BATCH):
        coll.insert_many(docs[k:k + BATCH], ordered=True)
    elapsed = time.perf_counter() - t
    coll.drop()
    return elapsed


def _parallel(db, where: Path) -> dict:
    store = LocalStore(where)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(2):
        for jobs in (1, 2):
            t = time.perf_counter()
            res = create_backup(db, store, BackupOptions(user="bench", jobs=jobs))
            times[jobs].append(time.perf_counter() - t)
            assert res.jobs == jobs, res.jobs
    best = {j: min(v) for j, v in times.items()}
    documents = sum(db[n].estimated_document_count() for n in db.list_collection_names())
    log(f"scale: parallel backup of {documents} documents in 4 collections: jobs=1 {best[1]:.2f}s, "
        f"jobs=2 {best[2]:.2f}s")
    shutil.rmtree(where, ignore_errors=True)
    return {"parallel_backup_speedup": round(best[1] / best[2], 3),
            "parallel_backup_s": {str(j): round(v, 3) for j, v in best.items()},
            "parallel_backup_documents": documents}


def _restores(uri: str, client, store: LocalStore, backup_id: str, sizes: list[int], tmp: Path,
              peaks: list[float]) -> dict:
    """Replace-restore of the first n documents of ``backup_id`` into a new collection, per size."""
    per_1000: dict[str, float] = {}
    floors: dict[str, float] = {}
    rates: dict[str, float] = {}
    rss: dict[str, float] = {}
    docs, indexes, options = scale_data.source(store, backup_id, EQUIPMENT)
    for n in sizes:
        client.drop_database(RESTORE_DB)
        client.drop_database(meta_name(RESTORE_DB))
        root = LocalStore(tmp / f"restore-{n}")
        bid = scale_data.write_backup(root, RESTORE_DB,
                                      {EQUIPMENT: (scale_data.first(docs(), n), indexes, options)})
        res = _worker("restore", uri, RESTORE_DB, str(root.root), bid)
        inserted = res["counts"][EQUIPMENT]["inserted"]
        assert inserted == n, res
        per_1000[str(n)] = round(1000 * res["seconds"] / n, 3)
        rates[str(n)] = _rate(res)
        rss[str(n)] = res["peak_rss_mb"]
        peaks.append(res["peak_rss_mb"])
        floor = _insert_floor(client, list(scale_data.first(docs(), n)), indexes)
        floors[str(n)] = round(1000 * floor / n, 3)
        log(f"scale: restore of {n} documents into a new collection: {res['seconds']:.1f}s "
            f"({per_1000[str(n)]} s per 1 000; the bare inserts {floors[str(n)]}), {res['peak_rss_mb']} MB peak")
        shutil.rmtree(root.root, ignore_errors=True)
    client.drop_database(RESTORE_DB)
    client.drop_database(meta_name(RESTORE_DB))
    largest = str(max(sizes))
    within = [int(n) for n, v in per_1000.items() if v < 2.0]
    return {"scale_restore_documents": int(largest), "scale_restore_docs_per_s": rates[largest],
            "scale_restore_s_per_1000": per_1000[largest], "scale_restore_s_per_1000_by_size": per_1000,
            "scale_restore_insert_floor_s_per_1000_by_size": floors,
            "scale_restore_peak_rss_mb": rss,
            "scale_restore_largest_within_target": max(within) if within else None}
