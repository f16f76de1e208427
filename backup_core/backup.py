"""Creating a backup: stream each collection to a CSV file, manifest last, atomic commit.

Each collection is read once with a cursor (``sort _id``, raw BSON) and
written by ``store.incremental.write_collection``: the documents that
changed since the previous backup of the collection, or a full copy (spill
file, then rows; see that module for when); memory stays bounded by one
batch and a few bytes per document. The manifest is written last, once every data object
is stored, which makes the backup visible at once (docs/FORMAT.md). ``create_backup`` runs inside an audited, locked
operation (``operation.py``).

Collections are backed up ``jobs`` at a time (``jobs.run_jobs``: threads, each
streaming its own collection, so memory is bounded per job); the files and
the manifest are the same bytes whatever ``jobs`` is. Where the deployment
has snapshot reads (replica sets), one snapshot session serves the whole
backup and a session must not be used by two threads at once, so such a
backup runs one collection at a time (``BackupReads.max_jobs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from pymongo.database import Database

from .errors import StorageError, UsageError
from .fsutil import os_error_text
from .jobs import default_jobs, run_jobs
from .mongoutil import backup_reads, index_specs, json_dialect, raw_collection, translate_errors
from .operation import operation
from .store import BackupWriter, Store, day_for
from .store.incremental import find_base, write_collection
from .swapin import user_collections
from .timeutil import iso, utc_now

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_expected); see ``progress.py``"""

# backups taken on the way to something else (a restore, an application's write, an archive): they
# hold part of the data, have retention rules of their own, and never stand in for a regular backup
SIDE_TRIGGERS = ("safety", "pre-write", "archive")



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
    # only the documents matching this query (``query.parse_filter``), of exactly one collection in
    # ``collections`` (archive-and-purge); recorded in the manifest as ``filter``
    filter: dict | None = None
    # pre-write backups (``api.BackupSystem.before_write``): {"reason": ..., "meta": {...}}, recorded in
    # the manifest as ``pre_write``
    pre_write: dict | None = None

    def audit_details(self) -> dict:
        from .query import filter_to_json

        return {"trigger": self.trigger, "collections": self.collections, "compress": self.compress or None,
                "filter": filter_to_json(self.filter) if self.filter is not None else None,
                "reason": (self.pre_write or {}).get("reason")}


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
    key_fingerprint: str | None = None  # the key the backup is encrypted with; None: not encrypted
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
            "jobs": self.jobs, "encrypted": self.key_fingerprint is not None, "key_fingerprint": self.key_fingerprint,
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
        # whether it is point-in-time consistent is in the JSON and said once by ``status``: on a standalone
        # server it is the same for every backup
        enc = (f"encrypted with key {self.key_fingerprint}" if self.key_fingerprint
               else "not encrypted (set BACKUP_KEY_FILE to encrypt)")
        lines = [f"backup {self.backup_id} written to {self.path} in {self.duration_s:.2f}s, {enc}"]
        for n, c in self.collections.items():
            lines.append(f"  {n}: {c.count} documents, {c.bytes} bytes, sha256 {c.sha256}")
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


def backup_before_change(db: Database, store: Store, names: list[str], options: BackupOptions,
                         progress: Progress | None = None) -> BackupResult:
    """Back up ``names`` as they are now, before something overwrites them (safety and pre-write backups).

    Named collections that do not exist are recorded as absent, so restoring
    the backup (replace) also removes what the change created.
    """
    from dataclasses import replace

    from .operation import meta_db_name

    live = user_collections(db, meta_db_name())
    return create_backup(db, store, replace(options, collections=[n for n in names if n in live],
                                            absent=[n for n in names if n not in live]), progress)


def _create(db: Database, store: Store, options: BackupOptions, progress: Progress | None,
            started: float) -> BackupResult:
    from .operation import meta_db_name

    available = user_collections(db, meta_db_name())
    names = _chosen_collections(db, options, available)
    now = utc_now()
    backup_id = store.new_backup_id(now)
    day = day_for(now)
    writer = store.begin(backup_id, day)
    jobs = default_jobs() if options.jobs is None else max(1, options.jobs)
    try:
        # safety, pre-write and archive backups read the primary: each must hold exactly what is
        # about to be overwritten or deleted
        with backup_reads(db, primary=options.trigger in ("safety", "pre-write", "archive")) as reads:
            jobs = min(jobs, reads.max_jobs or jobs)

            def one(name: str, report: Progress | None) -> dict:
                try:
                    return _backup_collection(reads.db, name, available[name], writer, options.compress, report,
                                              reads.session, options.filter)
                except OSError as exc:  # say what failed: this collection's data, not the audit log
                    raise StorageError(f"cannot write backup {backup_id} to {store.url}: writing collection "
                                       f"{name} failed: {os_error_text(exc)}",
                                       hint="nothing was kept of this backup") from None

            entries = run_jobs(names, one, jobs, progress)
            consistency = reads.consistency()
        body = _manifest_body(db, options, backup_id, now, entries, names, available, started)
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
                        db.name, time.monotonic() - started, summaries, consistency, jobs, manifest.key_fingerprint,
                        warnings)


def _chosen_collections(db: Database, options: BackupOptions, available: dict) -> list[str]:
    """The collections to back up (every one unless ``options`` names some); refuses an unknown name,
    an empty choice and a filter over more than one collection."""
    names = list(available)
    if options.collections is not None:
        if not options.collections and not options.absent:
            raise UsageError("no collections chosen: choose at least one collection to back up")
        unknown = [c for c in options.collections if c not in available]
        if unknown:
            raise UsageError(f"no collection named {', '.join(map(repr, unknown))} in database {db.name}; "
                             f"it has {', '.join(available) or 'no collections'}")
        names = list(dict.fromkeys(options.collections))
    if options.filter is not None:
        from .query import parse_filter

        parse_filter(options.filter)  # (a refused filter never reaches the server)
        if len(names) != 1:
            raise UsageError("a filtered backup is of exactly one collection: name it")
    return names


def _manifest_body(db: Database, options: BackupOptions, backup_id: str, now, entries: dict, names: list[str],
                   available: dict, started: float) -> dict:
    """The manifest's fields that say what this backup is: when, of what, by whom, why."""
    body = {
        "backup_id": backup_id,
        "created_at": iso(now),
        "database": db.name,
        "trigger": options.trigger,
        "user": options.user,
        "day_of_week": day_for(now),
        "backup_interval_hours": options.interval_hours,
        "record_counts": {n: e["count"] for n, e in entries.items()},
        "collections": entries,
        "duration_s": round(time.monotonic() - started, 3),
        "tool": "backup_core",
    }
    if options.restore_of:
        body["restore_of"] = options.restore_of
    if options.filter is not None:
        from .query import filter_to_json

        body["filter"] = {"collection": names[0], "query": filter_to_json(options.filter)}
    if options.pre_write is not None:
        body["pre_write"] = options.pre_write
    if options.safety:
        body["safety"] = options.safety
    absent = sorted(set(options.absent) - set(available))
    if absent:
        body["absent_collections"] = absent
    return body


SHRINK_RATIO = 0.5  # "much smaller": fewer than half the documents of the previous backup
SHRINK_MIN = 10     # ... of a collection that held at least this many


def shrink_warnings(store: Store, database: str, counts: dict[str, int], *, full: bool = True) -> list[str]:
    """What looks wrong about a new backup of ``database`` holding ``counts`` (collection -> documents):
    an empty database, or collections gone, emptied or shrunk to less than half since the previous
    backup of them (safety backups excluded). ``full``: the backup took every collection."""
    previous: dict[str, tuple[int, str]] = {}  # collection -> (documents, backup id) at its previous backup
    newest = with_data = None
    total = sum(counts.values())
    for info in store.newest_first():  # read only as far back as needed
        if info.trigger == "safety" or info.database != database:
            continue
        newest = newest or info
        if with_data is None and info.total_documents:
            with_data = info
        for name, entry in info.collections.items():
            previous.setdefault(name, (entry.count, info.backup_id))
        if all(n in previous for n in counts) and (with_data is not None or total):
            break
    out = []
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
                       progress: Progress | None, session, query: dict | None = None) -> dict:
    coll = raw_collection(db, name)
    with translate_errors(f"reading collection {name}"):
        expected = coll.estimated_document_count() if query is None else \
            coll.count_documents(query, session=session)

    def docs() -> Iterator[bytes]:
        with translate_errors(f"reading collection {name}"):
            for doc in coll.find(query or {}, sort=[("_id", 1)], batch_size=1000, session=session):
                yield bytes(doc.raw)

    def report(steps: int) -> None:
        # two steps per document (read it, write its row), reported as documents: half the steps
        if progress:
            progress(name, min(steps // 2, expected), expected)

    if progress:
        progress(name, 0, expected)
    if query is not None:  # a subset (an archive): a full copy of what matches, never a base for others
        part = writer.write_part(name, "full", docs(), compress=compress, progress=report)
        entry = {"count": part.count, "parts": [part]}
    else:
        # only what changed since the previous backup of the collection, when that is small (see
        # store/incremental.py); data the repository holds already is shared, never stored again
        base = find_base(writer.repo, db.name, name, compress=compress)
        entry = write_collection(writer, name, docs(), compress=compress, base=base, progress=report)
    if progress:
        progress(name, entry["count"], entry["count"])
    return {**entry, "indexes": index_specs(coll), "options": json_dialect(coll_options)}
