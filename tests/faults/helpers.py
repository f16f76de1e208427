"""Shared helpers of the fault tests: data, a pausable CLI driver, waiting without timing asserts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import bson
from bson.raw_bson import RawBSONDocument

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver.py")


def seed(db, n: int = 300, *, coll: str = "Equipment", seed_value: int = 3) -> list[bytes]:
    """``n`` demo-shaped documents in ``coll`` (batches of 200), returned as raw BSON in _id order."""
    from backup_core.demo_data import demo_equipment

    docs = demo_equipment(random.Random(seed_value), max(n, 60))[:n]  # it needs >= 42 for its edge cases
    for i, d in enumerate(docs):
        d["asset_id"] = f"EQ-{i:06d}"
    db[coll].create_index([("asset_id", 1)], unique=True, name="asset_id_unique")
    for k in range(0, n, 200):
        db[coll].insert_many(docs[k:k + 200], ordered=True)
    return snapshot(db, coll)


def snapshot(db, coll: str) -> list[bytes]:
    """The exact raw BSON of a collection, in _id order: equality means 'nothing changed'."""
    c = db.get_collection(coll, codec_options=bson.CodecOptions(document_class=RawBSONDocument))
    return [d.raw for d in c.find({}, sort=[("_id", 1)])]


def start_driver(env: dict, *args: str, pause: str | None = None) -> subprocess.Popen:
    """Run ``python -m backup_core ARGS`` through tests/faults/driver.py (optionally pausing)."""
    env = dict(env)
    if pause:
        env["FAULT_PAUSE"] = pause
    return subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate: Callable[[], object], *, what: str, limit: float = 60.0, step: float = 0.01):
    """Poll until ``predicate()`` is truthy; fails the test (not a timing assert) after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(step)


def wait_for_line(proc: subprocess.Popen, marker: str) -> list[str]:
    """Read the process's stderr until a line contains ``marker`` (the pipe blocks, no polling)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return seen
    proc.wait()
    raise AssertionError(f"process ended (rc={proc.returncode}) before printing {marker!r}: {''.join(seen)[-2000:]}")


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def temporaries(root: Path) -> list[Path]:
    """What writers left in a local root: spools of backups being written, folders without a manifest."""
    from backup_core.store import WEEKDAYS

    folders = [p for day in WEEKDAYS for p in root.glob(f"{day}/2*") if p.is_dir()
               and not (p / "manifest.json").exists() and not (p / "manifest.enc").exists()]
    return sorted(list(root.glob("tmp/spool-*")) + list(root.glob("tmp/.save-*")) + folders)
