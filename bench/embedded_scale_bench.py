"""The embedded default at 100 000 documents: backup, then a replace-restore that writes every document.

A replace-restore of 3 000 documents used to fail on the embedded default
("staging collection big failed: operation cancelled": the driver's monitor
gave up on a server busy with one long insert), and its inserts cost O(n^2),
so 100 000 documents could not be restored at all. This runs the product
exactly as a user does, through the CLI with no ``MONGODB_URI``: the CLI
starts the embedded server (SQLite engine) on a private copy of the cached
scale data dir (``scale_data.py``: ``bench_scale_large``, 100 000 Equipment
documents with a unique index). Steps, each a fresh ``python -m
backup_core`` process, timed: ``backup``, then ``restore ID --mode replace
--yes`` of that backup (the safety backup reads every document, the staging
collection receives every one of them through the wire ``insert``, then the
swap), then a count of the restored collection. Figures:
``embedded_restore_s_per_1000`` and friends; a failure is an error of the
section, not a figure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import scale_data
from .common import ROOT, log

DB = "bench_scale_large"


def _cli(env: dict, *args: str, timeout: float = 7200) -> tuple[dict, float]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "backup_core", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), seconds


def run(spec: dict) -> dict:
    from backup_core.embedded import SEED_MARKER, SQLITE_FILE

    data, built = scale_data.cached_data_dir(spec)
    work = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        shutil.copy2(data / SQLITE_FILE, data_dir / SQLITE_FILE)
        (data_dir / SEED_MARKER).write_text("{}\n")  # the bench data is there: no demo data on top
        env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "BACKUP_KEY_FILE")}
        env.update(EMBEDDED_DATA_DIR=str(data_dir), MONGODB_DB=DB, BACKUP_ROOT=str(work / "backups"))
        backup, backup_s = _cli(env, "backup")
        documents = backup["collections"][scale_data.EQUIPMENT]["count"]
        log(f"embedded scale: backup of {documents} documents: {backup_s:.1f}s")
        restored, restore_s = _cli(env, "restore", backup["backup_id"], "--mode", "replace", "--yes")
        counts = restored["collections"][scale_data.EQUIPMENT]
        considered = counts["inserted"] + counts["updated"] + counts["deleted"] + counts["unchanged"]
        status, _ = _cli(env, "status")
        live = status["collections"][scale_data.EQUIPMENT]["count"]
        if considered != documents or live != documents:
            raise RuntimeError(f"restore of {documents} documents considered {considered}, left {live} live")
        log(f"embedded scale: replace-restore of {documents} documents (safety backup, staging, swap): "
            f"{restore_s:.1f}s")
        return {"embedded_scale_documents": documents,
                "embedded_scale_cache": "cached" if built is None else round(built, 1),
                "embedded_backup_s": round(backup_s, 1),
                "embedded_backup_s_per_1000": round(1000 * backup_s / documents, 3),
                "embedded_restore_s": round(restore_s, 1),
                "embedded_restore_s_per_1000": round(1000 * restore_s / documents, 3),
                "embedded_restore_safety_backup_id": restored["safety_backup_id"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
