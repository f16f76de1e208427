"""Creating a backup: stream each collection to a CSV file, manifest last, atomic commit.

Each collection is read once with a cursor (``sort _id``, raw BSON) and
written by ``store.csvfile.write_csv`` (spill file, then rows); memory stays
bounded by one batch. The store's staging area holds the files until the
manifest is written, last, which makes the backup visible at once
(docs/FORMAT.md). ``create_backup`` runs inside an audited, locked
operation (``operation.py``).

Collections are backed up ``jobs`` at a time (``run_jobs``: threads, each
streaming its own collection, so memory is bounded per job); the files and
the manifest are the same bytes whatever ``jobs`` is. Where the deployment
has snapshot reads (replica sets), one snapshot session serves the whole
backup and a session must not be used by two threads at once, so such a
backup runs one collection at a time (``BackupReads.max_jobs``).
"""

from __future__ import annotations

import os
import queue
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

from pymongo.database import Database

from .errors import StorageError, UsageError
from .fsutil import os_error_text
from .mongoutil import (backup_reads, index_specs, json_dialect, raw_collection, translate_errors,
                        user_collections)
from .operation import operation
from .store import FORMAT_VERSION, BackupWriter, Store, day_for, write_csv
from .timeutil import iso, utc_now

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_expected); see ``progress.py``"""

T = TypeVar("T")
MAX_DEFAULT_JOBS = 4


def default_jobs() -> int:
    """Collections at a time when the caller does not say: the CPUs, at most ``MAX_DEFAULT_JOBS``."""
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


class JobCancelled(Exception):
    """Raised inside a job when another job failed or the caller was interrupted."""


def run_jobs(names: list[str], work: Callable[[str, Progress | None], T], jobs: int,
             progress: Progress | None = None, *, discard: Callable[[T], None] | None = None) -> dict[str, T]:
    """``work(name, report)`` for every name, ``jobs`` at a time; the results by name, in ``names`` order.

    ``jobs`` <= 1 (or one name) runs in the calling thread, reporting straight
    to ``progress``. Otherwise each runs in a thread of its own and its reports
    are relayed to ``progress`` on the calling thread (so a page may draw from
    it). A failure cancels the jobs after it in ``names`` order that have not
    started yet and stops the running ones at their next report; the jobs
    before it run to their end, so that the error raised is always that of the
    first name in ``names`` order that fails, whatever the timing. Once all
    have stopped, the results of those that succeeded go to ``discard``.
    """
    if jobs <= 1 or len(names) <= 1:
        done: dict[str, T] = {}
        try:
            for n in names:
                done[n] = work(n, progress)
        except BaseException:
            _discard(done, discard)
            raise
        return done
    events: "queue.SimpleQueue[tuple[str, int, int]]" = queue.SimpleQueue()
    # jobs after this position in ``names`` stop (len(names): none; -1: all, the caller was interrupted)
    stop_after = [len(names)]

    def relay_for(position: int) -> Callable[[str, int, int], None]:
        def relay(collection: str, done: int, total: int) -> None:
            if position > stop_after[0]:
                raise JobCancelled("stopped: another collection failed")
            if progress is not None:
                events.put((collection, done, total))
        return relay

    def drain() -> None:
        while progress is not None:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            progress(*event)

    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    interrupted: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(jobs, len(names)), thread_name_prefix="backup-job") as pool:
        futures: dict[Future, str] = {pool.submit(work, n, relay_for(i)): n for i, n in enumerate(names)}
        position = {n: i for i, n in enumerate(names)}
        pending = set(futures)
        while pending:
            try:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                if interrupted is None:
                    drain()
            except BaseException as exc:  # the caller's progress raised, or Ctrl-C
                interrupted = interrupted or exc
                finished = set()
            for f in finished:
                if f.cancelled():
                    continue
                exc = f.exception()
                if exc is None:
                    results[futures[f]] = f.result()
                elif not isinstance(exc, JobCancelled):
                    errors[futures[f]] = exc
            first = -1 if interrupted is not None else min((position[n] for n in errors), default=len(names))
            if first < stop_after[0]:
                stop_after[0] = first
                for f in pending:
                    if position[futures[f]] > first:
                        f.cancel()
    if interrupted is None and not errors:
        drain()
        return {n: results[n] for n in names}
    _discard(results, discard)
    if interrupted is not None:
        raise interrupted
    raise errors[next(n for n in names if n in errors)]


def _discard(results: dict, discard: Callable | None) -> None:
    for r in results.values():
        if discard is not None:
            try:
                discard(r)
            except Exception:  # noqa: BLE001 - clean-up of a run that fails anyway
                pass


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
    restore_of: str | None = None  # safety backups: the backup whose restore took it
    # safety backups: the restore (or undo) that took it: operation id, action, database, the collections it
    # is about to touch; Undo restores only a safety backup whose manifest names the latest restore
    safety: dict | None = None
    # collections backed up at a time (threads; None: ``default_jobs()``); on replica sets one at a time
    jobs: int | None = 1
    # called with the backup id right before the commit; raising aborts the backup (the scheduler's
    # lease fence: a scheduler that lost its lease never commits)
    fence: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def audit_details(self) -> dict:
        return {"trigger": self.trigger, "collections": self.collections, "compress": self.compress or None}


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
    consistency: dict | None = None  # the manifest's "consistency": point in time or not, and why
    jobs: int = 1  # collections backed up at a time
    # the database was empty or much smaller than at the previous backup (``shrink_warnings``)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.collections.values())

    def to_json(self) -> dict:
        return {
            "backup_id": self.backup_id, "path": self.path, "day": self.day,
            "created_at": self.created_at, "trigger": self.trigger, "database": self.database,
            "duration_s": round(self.duration_s, 3), "bytes": self.total_bytes,
            "collections": {n: c.to_json() for n, c in self.collections.items()},
            "consistency": self.consistency,
            "point_in_time": bool(self.consistency and self.consistency.get("point_in_time")),
            "jobs": self.jobs,
            "warnings": self.warnings,
        }

    @property
    def consistency_text(self) -> str:
        """One line for people: whether all collections are of one moment."""
        c = self.consistency or {}
        if c.get("point_in_time"):
            t = c.get("cluster_time") or {}
            return f"point-in-time consistent: every collection as of cluster time {t.get('t')}.{t.get('i')}"
        return f"NOT point-in-time consistent: {c.get('reason') or 'no snapshot read'}"

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id} written to {self.path} in {self.duration_s:.2f}s"]
        for n, c in self.collections.items():
            lines.append(f"  {n}: {c.count} documents, {c.bytes} bytes, sha256 {c.sha256}")
        lines.append(self.consistency_text)
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def audit_details(self) -> dict:
        return {"backup_id": self.backup_id, "counts": {n: c.count for n, c in self.collections.items()},
                "bytes": self.total_bytes, "warnings": self.warnings or None}


def create_backup(db: Database, store: Store, options: BackupOptions,
                  progress: Progress | None = None) -> BackupResult:
    """Back up the database (or ``options.collections``) into a new backup of ``store``."""
    with operation(store, "backup", user=options.user, lock_timeout=options.lock_timeout,
                   details={"database": db.name, **options.audit_details()}) as op:
        op.prepare_db(db)
        result = _create(db, store, options, progress, time.monotonic())
        op.note(**result.audit_details())
        return result


def _create(db: Database, store: Store, options: BackupOptions, progress: Progress | None,
            started: float) -> BackupResult:
    from .operation import meta_db_name

    available = user_collections(db, meta_db_name())
    names = list(available)
    if options.collections is not None:
        if not options.collections and not options.absent:
            raise UsageError("no collections chosen: choose at least one collection to back up")
        unknown = [c for c in options.collections if c not in available]
        if unknown:
            raise UsageError(f"no collection named {', '.join(map(repr, unknown))} in database {db.name}; "
                             f"it has {', '.join(available) or 'no collections'}")
        names = list(dict.fromkeys(options.collections))
    now = utc_now()
    backup_id = store.new_backup_id(now)
    day = day_for(now)
    writer = store.begin(backup_id, day)
    jobs = default_jobs() if options.jobs is None else max(1, options.jobs)
    try:
        # a safety backup reads the primary: it must hold exactly what the restore will overwrite
        with backup_reads(db, primary=options.trigger == "safety") as reads:
            jobs = min(jobs, reads.max_jobs or jobs)

            def one(name: str, report: Progress | None) -> dict:
                try:
                    return _backup_collection(reads.db, name, available[name], writer, options.compress, report,
                                              reads.session)
                except OSError as exc:  # say what failed: this collection's data, not the audit log
                    raise StorageError(f"cannot write backup {backup_id} to {store.url}: writing collection "
                                       f"{name} failed: {os_error_text(exc)}",
                                       hint="nothing was kept of this backup") from None

            entries = run_jobs(names, one, jobs, progress)
            consistency = reads.consistency()
        body = {
            "format_version": FORMAT_VERSION,
            "backup_id": backup_id,
            "created_at": iso(now),
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
        if options.restore_of:
            body["restore_of"] = options.restore_of
        if options.safety:
            body["safety"] = options.safety
        absent = sorted(set(options.absent) - set(available))
        if absent:
            body["absent_collections"] = absent
        body["consistency"] = consistency
        warnings = [] if options.trigger == "safety" else shrink_warnings(
            store, db.name, {n: e["count"] for n, e in entries.items()}, full=options.collections is None)
        if warnings:
            body["warnings"] = warnings
        # the audit log's head now: a log later cut, emptied or rewritten up to here no longer verifies
        head = store.audit_log().head()
        if head is not None:
            body["audit_head"] = head
        if options.fence is not None:
            options.fence(backup_id)
        manifest = writer.commit(body)
    except OSError as exc:
        writer.abort()
        raise StorageError(f"cannot write backup {backup_id} to {store.url}: {os_error_text(exc)}",
                           hint="nothing was kept of this backup") from None
    except BaseException:
        writer.abort()
        raise
    summaries = {n: CollectionSummary(e.count, e.bytes, e.sha256, e.file) for n, e in manifest.collections.items()}
    return BackupResult(backup_id, store.location(day, backup_id), day, manifest.created_at, options.trigger,
                        db.name, time.monotonic() - started, summaries, consistency, jobs, warnings)


SHRINK_RATIO = 0.5  # "much smaller": fewer than half the documents of the previous backup
SHRINK_MIN = 10     # ... of a collection that held at least this many


def shrink_warnings(store: Store, database: str, counts: dict[str, int], *, full: bool = True) -> list[str]:
    """What looks wrong about a new backup of ``database`` holding ``counts`` (collection -> documents):
    an empty database, or collections gone, emptied or shrunk to less than half since the previous
    backup of them (safety backups excluded). ``full``: the backup took every collection."""
    previous: dict[str, tuple[int, str]] = {}  # collection -> (documents, backup id) at its previous backup
    newest = with_data = None
    for info in store.list_backups():  # newest first
        if info.trigger == "safety" or info.database != database:
            continue
        newest = newest or info
        if with_data is None and info.total_documents:
            with_data = info
        for name, entry in info.collections.items():
            previous.setdefault(name, (entry.count, info.backup_id))
    out = []
    total = sum(counts.values())
    if full and total == 0:
        what = "no collections" if not counts else "no documents"
        return [f"the database {database} is empty ({what})"
                + (f"; the last backup with data, {with_data.backup_id}, held {with_data.total_documents} documents"
                   if with_data is not None else "")]
    gone = [n for n in (newest.collections if full and newest is not None else ()) if n not in counts]
    for name in gone:
        n, bid = previous[name]
        if n:
            out.append(f"collection {name} is gone; the previous backup {bid} held {n} documents of it")
    for name, count in counts.items():
        n, bid = previous.get(name, (0, ""))
        if n and count == 0 and (total or not full):
            out.append(f"collection {name} is empty; the previous backup {bid} held {n} documents of it")
        elif n >= SHRINK_MIN and 0 < count < n * SHRINK_RATIO:
            out.append(f"collection {name} holds {count} documents, down from {n} in the previous backup {bid}")
    return out


def _backup_collection(db: Database, name: str, coll_options: dict, writer: BackupWriter, compress: bool,
                       progress: Progress | None, session) -> dict:
    coll = raw_collection(db, name)
    with translate_errors(f"reading collection {name}"):
        expected = coll.estimated_document_count()
    file_name = writer.file_name(name, compress)

    def docs() -> Iterator[bytes]:
        with translate_errors(f"reading collection {name}"):
            for doc in coll.find({}, sort=[("_id", 1)], batch_size=1000, session=session):
                yield bytes(doc.raw)

    def report(steps: int) -> None:
        # two steps per document (read it, write its row), reported as documents: half the steps
        if progress:
            progress(name, min(steps // 2, expected), expected)

    if progress:
        progress(name, 0, expected)
    with writer.open(file_name) as out:
        written = write_csv(docs(), out, writer.scratch(f"{file_name}.spill"), compress=compress, progress=report)
    # unchanged since an earlier backup: store it once (the file is shared, never written again)
    writer.reuse(file_name, name, written.sha256, compress)
    if progress:
        progress(name, written.count, written.count)
    return {
        "file": file_name,
        "count": written.count,
        "bytes": written.bytes,
        "sha256": written.sha256,
        "plain_bytes": written.plain_bytes,
        "compressed": compress,
        "schema": written.schema.to_json(),
        "indexes": index_specs(coll),
        "options": json_dialect(coll_options),
    }
