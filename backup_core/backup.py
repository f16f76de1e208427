"""Creating a backup: stream each collection to a CSV file, manifest last, atomic commit.

Each collection is read once with a cursor (``sort _id``, raw BSON). The
first pass spills the raw documents to a temporary ``.bson`` file while it
learns the columns and their types; the second pass reads the spill file and
writes the CSV. Memory stays bounded by one batch, never one collection, and
the CSV reflects exactly the documents that were read.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from pymongo.database import Database

from . import audit, codec
from .errors import BackupError, StorageError, UsageError
from .locks import root_lock
from .mongoutil import index_specs, json_dialect, raw_collection, snapshot_session, translate_errors, user_collections
from .store import FORMAT_VERSION, HashingWriter, Store, day_for, file_name_for

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_expected)"""

_LEN = struct.Struct("<i")


@dataclass
class BackupOptions:
    collections: list[str] | None = None
    compress: bool = False
    trigger: str = "manual"
    user: str = "unknown"
    interval_hours: float | None = None
    lock_timeout: float = 10.0
    # names recorded as not existing (safety backups: what the restore is about to create)
    absent: list[str] = field(default_factory=list)


@dataclass
class CollectionSummary:
    count: int
    bytes: int
    sha256: str
    file: str

    def to_json(self) -> dict:
        return {"count": self.count, "bytes": self.bytes, "sha256": self.sha256, "file": self.file}


@dataclass
class BackupResult:
    backup_id: str
    path: str
    day: str
    created_at: str
    trigger: str
    database: str
    duration_s: float
    collections: dict[str, CollectionSummary] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.collections.values())

    def to_json(self) -> dict:
        return {
            "backup_id": self.backup_id, "path": self.path, "day": self.day,
            "created_at": self.created_at, "trigger": self.trigger, "database": self.database,
            "duration_s": round(self.duration_s, 3), "bytes": self.total_bytes,
            "collections": {n: c.to_json() for n, c in self.collections.items()},
        }

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id} written to {self.path} in {self.duration_s:.2f}s"]
        for n, c in self.collections.items():
            lines.append(f"  {n}: {c.count} documents, {c.bytes} bytes, sha256 {c.sha256}")
        return "\n".join(lines)


def _iter_spill(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=1 << 20) as fh:
        while head := fh.read(4):
            n = _LEN.unpack(head)[0]
            yield head + fh.read(n - 4)


def write_collection(docs: Iterator[bytes], out_path: Path, spill_path: Path, *, compress: bool,
                     progress: Callable[[int], None] | None = None) -> tuple[int, codec.Schema, HashingWriter]:
    """Encode raw BSON documents into one CSV file; returns (count, schema, hasher).

    ``progress(steps)`` counts one step per document read and one per row written.
    """
    builder = codec.SchemaBuilder()
    count = 0
    with spill_path.open("wb", buffering=1 << 20) as spill:
        for raw in docs:
            builder.add(raw)
            spill.write(raw)
            count += 1
            if progress and count % 500 == 0:
                progress(count)
    schema = builder.build()
    encoder = codec.RowEncoder(schema)
    with out_path.open("wb") as fh:
        hasher = HashingWriter(fh)
        buffered = io.BufferedWriter(hasher, 1 << 20)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=buffered, mtime=0) if compress else None
        text = io.TextIOWrapper(gz or buffered, encoding="utf-8", newline="")
        try:
            writer = csv.writer(text)
            writer.writerow(schema.header())
            for done, raw in enumerate(_iter_spill(spill_path), 1):
                writer.writerow(encoder.encode(raw))
                if progress and done % 500 == 0:
                    progress(count + done)
            text.flush()
        except BaseException:
            # close the wrappers now (their final flush fails too, e.g. disk full) so that the
            # garbage collector does not try to flush them into the closed file later
            for layer in (text, gz, buffered):
                if layer is not None:
                    with contextlib.suppress(Exception):
                        layer.close()
            raise
        text.detach()
        if gz is not None:
            gz.close()  # writes the gzip trailer; leaves ``buffered`` open
        buffered.flush()
        buffered.detach()
    spill_path.unlink()
    return count, schema, hasher


def create_backup(db: Database, store: Store, options: BackupOptions,
                  progress: Progress | None = None) -> BackupResult:
    """Back up the database (or ``options.collections``) into a new snapshot folder."""
    started = time.monotonic()
    with root_lock(store.root, "backup", options.lock_timeout):
        store.sweep_temporaries()
        try:
            result = _create(db, store, options, progress, started)
        except BackupError as exc:
            audit.record(store.root, user=options.user, action="backup", outcome="error",
                         trigger=options.trigger, database=db.name, error=str(exc))
            raise
        audit.record(store.root, user=options.user, action="backup", trigger=options.trigger,
                     database=db.name, backup_id=result.backup_id, duration_s=round(result.duration_s, 3),
                     counts={n: c.count for n, c in result.collections.items()}, bytes=result.total_bytes)
        return result


def _create(db: Database, store: Store, options: BackupOptions, progress: Progress | None,
            started: float) -> BackupResult:
    available = user_collections(db)
    names = list(available)
    if options.collections is not None:
        if not options.collections and not options.absent:
            raise UsageError("no collections chosen: choose at least one collection to back up")
        unknown = [c for c in options.collections if c not in available]
        if unknown:
            raise UsageError(f"no collection named {', '.join(map(repr, unknown))} in database {db.name}; "
                             f"it has {', '.join(available) or 'no collections'}")
        names = list(dict.fromkeys(options.collections))
    now = datetime.now(timezone.utc)
    backup_id = store.new_backup_id(now)
    day = day_for(now)
    writer = store.writer(backup_id, day)
    try:
        entries: dict[str, dict] = {}
        summaries: dict[str, CollectionSummary] = {}
        with snapshot_session(db) as session:
            for name in names:
                entries[name], summaries[name] = _backup_collection(
                    db, name, available[name], writer, options.compress, progress, session)
        manifest = {
            "format_version": FORMAT_VERSION,
            "backup_id": backup_id,
            "created_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "database": db.name,
            "trigger": options.trigger,
            "user": options.user,
            "day_of_week": day,
            "backup_interval_hours": options.interval_hours,
            "record_counts": {n: e["count"] for n, e in entries.items()},
            "collections": entries,
            "duration_s": round(time.monotonic() - started, 3),
            "tool": "backup_core",
        }
        absent = sorted(set(options.absent) - set(available))
        if absent:
            manifest["absent_collections"] = absent
        path = writer.commit(manifest)
    except OSError as exc:
        writer.abort()
        raise StorageError(f"cannot write backup to {store.root}: {exc.strerror or exc}") from None
    except BaseException:
        writer.abort()
        raise
    return BackupResult(backup_id, str(path), day, manifest["created_at"], options.trigger, db.name,
                        time.monotonic() - started, summaries)


def _backup_collection(db: Database, name: str, coll_options: dict, writer, compress: bool,
                       progress: Progress | None, session) -> tuple[dict, CollectionSummary]:
    coll = raw_collection(db, name)
    with translate_errors(f"reading collection {name}"):
        expected = coll.estimated_document_count()
    file_name = file_name_for(name, compress)

    def docs() -> Iterator[bytes]:
        with translate_errors(f"reading collection {name}"):
            for doc in coll.find({}, sort=[("_id", 1)], batch_size=1000, session=session):
                yield bytes(doc.raw)

    def report(steps: int) -> None:
        if progress:  # two steps per document: read it, write its row
            progress(name, min(steps, 2 * expected), 2 * expected)

    if progress:
        progress(name, 0, 2 * expected)
    count, schema, hasher = write_collection(
        docs(), writer.path_for(file_name), writer.path_for(f".{file_name}.spill"),
        compress=compress, progress=report)
    if progress:
        progress(name, 2 * count, 2 * count)
    sha = hasher.sha256.hexdigest()
    entry = {
        "file": file_name,
        "count": count,
        "bytes": hasher.bytes,
        "sha256": sha,
        "compressed": compress,
        "schema": schema.to_json(),
        "indexes": index_specs(coll),
        "options": json_dialect(coll_options),
    }
    return entry, CollectionSummary(count, hasher.bytes, sha, file_name)
