"""Peak RSS of a backup and of a restore at two collection sizes (one 10x the other).

Each run is a fresh subprocess (``python -m bench.memory_worker``), so one run's garbage
never inflates another's high-water mark. Streaming means the large run's peak
stays close to the small run's: ``*_rss_growth`` = large peak / small peak.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from backup_core.config import meta_name

from .common import ROOT, equipment_docs, insert_in_batches, log

WORKER = "bench.memory_worker"


def _worker(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", WORKER, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {args[0]} failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(client, uri: str, small: int = 300, factor: int = 10) -> dict:
    sizes = {"small": small, "large": small * factor}
    out: dict = {"memory_documents": sizes}
    roots = {}
    try:
        runs: dict = {}
        for label, n in sizes.items():
            db_name = f"bench_mem_{label}"
            client.drop_database(db_name)
            log(f"memory: seeding {n} documents")
            client[db_name]["Equipment"].create_index([("asset_id", 1)], unique=True, name="asset_id_unique")
            insert_in_batches(client[db_name]["Equipment"], equipment_docs(n))
            roots[label] = Path(tempfile.mkdtemp(prefix=f"bench-mem-{label}-"))
            runs[label] = {"backup": _worker("backup", uri, db_name, str(roots[label]))}
            log(f"memory: backup of {n}: {runs[label]['backup']['peak_rss_mb']} MB peak")
        out["backup_peak_rss_mb"] = {k: v["backup"]["peak_rss_mb"] for k, v in runs.items()}
        out["backup_baseline_rss_mb"] = {k: v["backup"]["baseline_rss_mb"] for k, v in runs.items()}
        out["backup_rss_growth"] = round(runs["large"]["backup"]["peak_rss_mb"] / runs["small"]["backup"]["peak_rss_mb"], 3)
        for label, n in sizes.items():
            runs[label]["restore"] = _worker("restore", uri, f"bench_mem_{label}", str(roots[label]),
                                             runs[label]["backup"]["backup_id"])
            log(f"memory: restore of {n}: {runs[label]['restore']['peak_rss_mb']} MB peak")
        out["restore_peak_rss_mb"] = {k: v["restore"]["peak_rss_mb"] for k, v in runs.items()}
        out["restore_baseline_rss_mb"] = {k: v["restore"]["baseline_rss_mb"] for k, v in runs.items()}
        out["restore_rss_growth"] = round(runs["large"]["restore"]["peak_rss_mb"] / runs["small"]["restore"]["peak_rss_mb"], 3)
        return out
    finally:
        for label in sizes:
            client.drop_database(f"bench_mem_{label}")
            client.drop_database(meta_name(f"bench_mem_{label}"))  # the restore's staging registry
        for r in roots.values():
            shutil.rmtree(r, ignore_errors=True)
