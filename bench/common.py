"""Shared helpers for the benchmarks: the server, data sets, timing, logging.

Every figure is a ratio of our operation to a floor measured in the same run on
the same data, so machine speed cancels out; raw seconds are reported as well.
"""

from __future__ import annotations

import json
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


def _stop(proc: subprocess.Popen, wait: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def memory_server() -> Iterator[str]:
    """A private embedded server on its memory engine; yields its URI."""
    from backup_core.embedded import start_memory_server

    proc, uri = start_memory_server(ROOT)
    try:
        yield uri
    finally:
        _stop(proc)


@contextmanager
def data_dir_server(data: Path, *, seed: bool) -> Iterator[str]:
    """The embedded server on its SQLite engine in folder ``data`` (``seed``: the demo data on a first
    start, as the product's default does); yields its URI."""
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "server", "--data", str(data), "--port", "0",
                             "--json", *([] if seed else ["--no-seed"])], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the embedded server did not start on {data}")
        yield json.loads(line)["uri"]
    finally:
        _stop(proc, 20)


@contextmanager
def s3_bucket() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with the AWS_* variables pointing at it, and a new bucket; yields its name."""
    import os
    import socket
    import uuid
    from unittest import mock

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.05)
        with mock.patch.dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                             AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"):
            from backup_core.store.backend.s3 import client as s3_client

            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            s3_client().create_bucket(Bucket=bucket)
            yield bucket
    finally:
        _stop(proc)


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
