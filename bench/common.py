"""Shared helpers for the benchmarks: the server, data sets, timing, logging.

Every figure is a ratio of our operation to a floor measured in the same run on
the same data, so machine speed cancels out; raw seconds are reported as well.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import bson
from bson import Decimal128, Int64, ObjectId

ROOT = Path(__file__).resolve().parents[1]


def log(*parts: Any) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Minimum wall time of ``repeat`` calls (the least disturbed run on a shared machine)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@contextmanager
def memory_server() -> Iterator[str]:
    """A private embedded server on its memory engine; yields its URI."""
    from backup_core.embedded import start_memory_server

    proc, uri = start_memory_server(ROOT)
    try:
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# Data sets


def equipment_docs(n: int, seed: int = 7) -> list[dict]:
    """``n`` documents of the demo ``Equipment`` shape, unique ``asset_id``s."""
    from backup_core.demo_data import demo_equipment

    docs = demo_equipment(random.Random(seed), n)
    for i, d in enumerate(docs):
        d["asset_id"] = f"EQ-{i:07d}"
    return docs


def wide_nested_docs(n: int, seed: int = 11) -> list[dict]:
    """A wide (60 top-level fields), deeply nested (6 levels) shape with every common type."""
    import datetime as dt

    rng = random.Random(seed)
    base = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)

    def nested(depth: int) -> dict:
        d: dict = {"level": depth, "label": f"node-{rng.randint(0, 10**6)}",
                   "value": rng.random() * 1000, "flag": rng.random() < 0.5,
                   "when": base + dt.timedelta(milliseconds=rng.randint(0, 10**11))}
        if depth < 6:
            d["child"] = nested(depth + 1)
            d["items"] = [rng.randint(0, 10**6) for _ in range(3)]
        return d

    docs = []
    for i in range(n):
        doc: dict = {"_id": ObjectId()}
        for f in range(15):
            doc[f"s{f}"] = f"text {rng.randint(0, 10**9)} ünïcode"
        for f in range(10):
            doc[f"i{f}"] = rng.randint(-2**31, 2**31 - 1)
        for f in range(5):
            doc[f"l{f}"] = Int64(rng.randint(2**40, 2**50))
        for f in range(10):
            doc[f"d{f}"] = rng.uniform(-1e6, 1e6)
        for f in range(5):
            doc[f"t{f}"] = base + dt.timedelta(milliseconds=rng.randint(0, 10**11))
        for f in range(3):
            doc[f"m{f}"] = Decimal128(f"{rng.randint(0, 10**8)}.{rng.randint(0, 99):02d}")
        for f in range(2):
            doc[f"b{f}"] = bson.Binary(rng.randbytes(32))
        for f in range(5):
            doc[f"n{f}"] = nested(1)
        for f in range(5):
            doc[f"a{f}"] = [{"k": rng.randint(0, 100), "v": f"x{rng.random()}"} for _ in range(4)]
        docs.append(doc)
    return docs


def insert_in_batches(coll, docs: list[dict], batch: int = 200) -> None:
    for k in range(0, len(docs), batch):
        coll.insert_many(docs[k:k + batch], ordered=True)
