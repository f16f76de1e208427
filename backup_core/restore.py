"""Restoring a backup: replace or merge, dry run, safety backup first, audited.

Order of a restore (each step only if the previous one succeeded), inside one
audited, locked operation (``operation.py``):

1. validate everything without writing: options, confirmation, the backup's
   manifest, the presence of its data (each part is then read once, through
   the checker's hashing reader: a damaged part stops the restore while it
   plans), the source database name,
   then a full decode of every chosen collection while pairing it with live
   data (``restore_plan.plan_collection``, through the pairing engine): row
   counts against the manifest, key uniqueness on both sides as MongoDB sees
   it (int32 ``1`` and int64 ``1`` are one key), and what the backup's indexes
   and options would destroy (``mongospec.DataCheck``: a TTL index already
   expired for the restored documents, a capped collection too small). Any
   problem is a refusal before any write;
2. sweep swap-in collections that killed restores left behind;
3. write a safety backup (``trigger: safety``) of the touched collections,
   recording those that do not exist yet as ``absent_collections``; restoring
   it (replace) undoes this restore, removing the collections it created;
4. ``replace``: fill a swap-in collection per collection under a name
   registered in the swap-in registry (``swapin.py``), with the backup's
   options, indexes and documents as raw BSON; check each holds every
   document; only then swap each in with ``renameCollection(dropTarget=True)``.
   A failure before the swap drops the swap-in collections and leaves live
   data untouched; a kill leaves each collection wholly old or wholly new.
   ``merge`` (and replace limited to ``ids``): ordered bulk writes per key,
   rolled back from the safety backup if the server refuses one. A replace of
   a backup that records a collection as absent removes it.

The counts come from the same plan the dry run uses, so a dry run reports
exactly what the real run then does (DESIGN.md section 7).

Memory does not grow with the collections: the pairing is on disk
(``pairing.BackupIndex``) and so are the per-key writes of a merge
(``restore_plan.KeyedWrites``, a temporary SQLite table). Collections are
planned, filled and written ``jobs`` at a time (``jobs.run_jobs``); the swaps
stay one after the other, in order, once every collection is filled.
Progress: a plain callback hears the writes; a phase-aware one
(``progress.Progress``) also the comparison and the safety backup.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable
from dataclasses import dataclass, field, replace

from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from .backup import BackupOptions, backup_before_change
from .compare import schema_lines
from .errors import BackupError, DatabaseUnavailable, RestoreRefused, StorageError, UsageError
from .jobs import default_jobs, run_jobs
from .keys import check_match_field, key_filter
from .mongoutil import WRITE_BATCH, driver_message, error_hint, raw_collection, translate_errors
from .operation import Operation, operation
from .pairing import BackupIndex
from .progress import ProgressCallback as Progress
from .progress import reporter
from .restore_plan import DELETE, INSERT, CollectionPlan, CollectionRestore, plan_collection, plan_removals
from .store import BackupInfo, Store
from .swapin import SwapInRegistry, replace_collections, user_collections
from .tempdisk import temp_errors
from .testseam import checkpoint

MODES = ("replace", "merge")
STRATEGIES = ("backup-wins", "live-wins")


@dataclass
class RestoreOptions:
    mode: str = "replace"
    collections: list[str] | None = None
    strategy: str = "backup-wins"
    dry_run: bool = False
    confirmed: bool = False
    match_field: str = "_id"  # the field that pairs backup and live documents (CLI ``--key``)
    ids: list | None = None  # key values: JSON-dialect objects (from a comparison) or typed text
    allow_other_db: bool = False
    # restore even though the backup's indexes/options would destroy some of the restored data
    allow_destructive_options: bool = False
    user: str = "unknown"
    lock_timeout: float = 10.0
    # collections planned, filled and written at a time (threads; None: ``jobs.default_jobs()``)
    jobs: int | None = 1
    # set by ``undo.py`` only: this restore undoes the restore with that operation id (audited as "undo")
    undo_of: str | None = None

    def audit_details(self) -> dict:
        return {"mode": self.mode, "strategy": self.strategy if self.mode == "merge" else None,
                "key": self.match_field, "collections": self.collections, "dry_run": self.dry_run,
                "ids": len(self.ids) if self.ids is not None else None,
                "allow_destructive_options": self.allow_destructive_options or None, "undo_of": self.undo_of}


@dataclass
class RestoreResult:
    backup_id: str
    mode: str
    strategy: str
    dry_run: bool
    safety_backup_id: str | None
    collections: dict[str, CollectionRestore] = field(default_factory=dict)
    duration_s: float = 0.0
    match_field: str = "_id"
    database: str = ""

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "mode": self.mode, "strategy": self.strategy, "key": self.match_field,
                "database": self.database, "dry_run": self.dry_run, "safety_backup_id": self.safety_backup_id,
                "duration_s": round(self.duration_s, 3),
                "collections": {n: c.to_json() for n, c in self.collections.items()}}

    def to_text(self) -> str:
        what = f"{self.mode}, {self.strategy}" if self.mode == "merge" else self.mode
        head = (f"dry run: restoring backup {self.backup_id} ({what}) would do:" if self.dry_run
                else f"restored backup {self.backup_id} ({what}) in {self.duration_s:.2f}s:")
        lines = [head]
        for n, c in self.collections.items():
            parts = [f"{c.inserted} inserted", f"{c.updated} updated", f"{c.deleted} deleted",
                     f"{c.unchanged} unchanged"]
            if self.mode == "merge":
                parts += [f"{c.skipped} skipped", f"{c.kept} live-only kept"]
            lines.append(f"  {n}: " + ", ".join(parts))
            lines += schema_lines(c, "    ")
        if self.safety_backup_id:
            lines.append(f"safety backup {self.safety_backup_id} holds the previous data; "
                         f"restore it (--mode replace) to undo")
        elif self.dry_run:
            lines.append("nothing was changed; add --yes instead of --dry-run to restore")
        return "\n".join(lines)

    def audit_details(self) -> dict:
        return {"safety_backup_id": self.safety_backup_id,
                "counts": {n: c.counts() for n, c in self.collections.items()}}


# --------------------------------------------------------------------------
# Public API


def plan_restore(db: Database, store: Store, backup_id: str, options: RestoreOptions) -> RestoreResult:
    """The dry run: what ``restore_backup`` would do, with exactly its counts; changes nothing."""
    return restore_backup(db, store, backup_id, replace(options, dry_run=True))


def restore_backup(db: Database, store: Store, backup_id: str, options: RestoreOptions,
                   progress: Progress | None = None) -> RestoreResult:
    """Restore ``backup_id`` into ``db`` (see the module docstring for the order of steps)."""
    # a preview is on the record too, under its own name so it never reads as a restore
    base = "undo" if options.undo_of else "restore"
    action = f"{base}_dry_run" if options.dry_run else base
    with operation(store, action, user=options.user, lock_timeout=options.lock_timeout,
                   details={"backup_id": backup_id, "database": db.name, **options.audit_details()}) as op:
        result = _restore(db, store, backup_id, options, progress, op)
        op.note(**result.audit_details())
        return result


def _restore(db: Database, store: Store, backup_id: str, o: RestoreOptions, progress: Progress | None,
             op: Operation) -> RestoreResult:
    started = time.monotonic()
    _check_options(o)
    if not o.dry_run and not o.confirmed:
        raise RestoreRefused("restore not confirmed: nothing was changed",
                             hint="add --dry-run to preview or --yes to proceed")
    info, names, drops = _validate(db, store, backup_id, o)
    if not o.dry_run:
        op.prepare_db(db)
    safety = None
    jobs = default_jobs() if o.jobs is None else max(1, o.jobs)
    try:
        with contextlib.ExitStack() as stack:
            live = user_collections(db, op.meta_db)
            comparing = reporter(progress, "comparing backup and live data")

            def plan_one(name: str, report: Progress | None) -> CollectionPlan:
                return plan_collection(db, store, info, name, mode=o.mode, strategy=o.strategy,
                                       match_field=o.match_field, ids=o.ids, live_options=live.get(name),
                                       progress=report)

            plans = run_jobs(names, plan_one, jobs, comparing, discard=CollectionPlan.close)
            for p in plans.values():
                stack.callback(p.close)
            removals = plan_removals(db, info, drops, live)
            _refuse_destruction(plans, o)
            counts = {n: p.counts for n, p in plans.items()} | removals
            result = RestoreResult(info.backup_id, o.mode, o.strategy, o.dry_run, None, counts,
                                   match_field=o.match_field, database=db.name)
            if not o.dry_run:
                try:
                    safety = result.safety_backup_id = _safety_backup(
                        db, store, names + drops, o, info.backup_id, jobs, reporter(progress, "safety backup"), op)
                except StorageError as exc:  # the data was not touched: say that, and what failed
                    raise StorageError(f"the safety backup could not be written, so nothing was restored: {exc}",
                                       hint="live data was not changed") from None
                op.note(safety_backup_id=safety)
                _execute(db, store, info, plans, o, reporter(progress, "writing", main=True), safety, op, jobs)
                _remove_collections(db, list(removals))
    except BackupError as exc:
        if safety and not isinstance(exc, RestoreRefused) and "safety backup" not in str(exc):
            exc.hint = (exc.hint + "; " if exc.hint else "") + \
                f"the safety backup {safety} holds the data as it was before"
        raise
    result.duration_s = time.monotonic() - started
    return result


# --------------------------------------------------------------------------
# Validation and planning (no writes)


def _check_options(o: RestoreOptions) -> None:
    if o.mode not in MODES:
        raise UsageError(f"unknown restore mode {o.mode!r}; use {' or '.join(MODES)}")
    if o.strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {o.strategy!r}; use {' or '.join(STRATEGIES)}")
    check_match_field(o.match_field)
    if o.ids is not None and not isinstance(o.ids, (list, tuple)):
        raise UsageError("ids must be a list of key values")


def _validate(db: Database, store: Store, backup_id: str, o: RestoreOptions) -> tuple[BackupInfo, list[str], list[str]]:
    info = store.get(backup_id)  # a manifest of an unknown format version is refused here
    part = info.manifest.get("filter")
    if part and o.mode == "replace" and o.ids is None:
        # an archive holds only the documents a filter matched: replacing would delete all the others
        raise RestoreRefused(f"backup {info.backup_id} holds only the documents of {part.get('collection')} that "
                             "matched a filter: a replace restore would delete every other document; nothing "
                             "was changed", hint="restore it with --mode merge")
    if info.database != db.name and not o.allow_other_db:
        raise RestoreRefused(f"backup {info.backup_id} was taken from database {info.database!r}, "
                             f"not {db.name!r}: nothing was changed",
                             hint="pass --allow-other-db (or confirm in the dashboard) to restore it here anyway")
    absent = info.absent_collections
    names = list(info.collections)
    drops = list(absent)
    if o.collections:
        wanted = list(dict.fromkeys(o.collections))
        for c in wanted:
            if c not in absent:
                info.collection(c)  # UsageError naming the collections it has
        names = [c for c in wanted if c not in absent]
        drops = [c for c in wanted if c in absent]
    # a collection absent from the backup is restored by removing it; merge never removes anything
    if o.mode != "replace" or o.ids is not None:
        drops = []
    if not names and not drops:
        raise RestoreRefused(f"backup {info.backup_id} holds no collections: nothing to restore")
    for n in names + drops:
        if n.startswith("system."):
            raise RestoreRefused(f"backup {info.backup_id} contains collection {n!r}, which cannot be restored")
    if names:
        # present and of the right size now; every byte is then proved while planning reads it, before
        # anything is written
        store.require_present(info, names)
    return info, names, drops


def _refuse_destruction(plans: dict[str, CollectionPlan], o: RestoreOptions) -> None:
    """Refuse when the backup's indexes or options would destroy restored data, unless confirmed."""
    findings = [f"{n}: {w}" for n, p in plans.items() for w in p.counts.warnings]
    if findings and not o.allow_destructive_options:
        raise RestoreRefused("the backup's indexes or collection options would destroy restored data: "
                             + "; ".join(findings) + "; nothing was changed",
                             hint="compare the backup first; if this is really wanted, pass "
                                  "--allow-destructive-options (or confirm it in the dashboard)")


def _remove_collections(db: Database, names: list[str]) -> None:
    for name in names:
        with translate_errors(f"removing collection {name}"):
            db.drop_collection(name)
        checkpoint("swap")


def _safety_backup(db: Database, store: Store, names: list[str], o: RestoreOptions, backup_id: str,
                   jobs: int = 1, progress: Progress | None = None, op: Operation | None = None) -> str:
    """Back up the touched collections as they are now, recording those that do not exist yet.

    Restoring it (replace) undoes the restore, including removing collections the restore created.
    Its manifest names the operation it was taken for (``safety``): Undo trusts nothing else.
    """
    safety = {"op": op.id if op is not None else None, "action": "undo" if o.undo_of else "restore",
              "database": db.name, "collections": sorted(names), "undo_of": o.undo_of}
    res = backup_before_change(db, store, names, BackupOptions(
        trigger="safety", user=o.user, lock_timeout=o.lock_timeout, restore_of=backup_id, jobs=jobs,
        safety={k: v for k, v in safety.items() if v is not None}), progress)
    return res.backup_id


# --------------------------------------------------------------------------
# Writing


def _execute(db: Database, store: Store, info: BackupInfo, plans: dict[str, CollectionPlan], o: RestoreOptions,
             progress: Progress | None, safety_id: str, op: Operation, jobs: int = 1) -> None:
    swapped = {p.name: p.index for p in plans.values() if p.swapped}
    direct = {p.name: p for p in plans.values() if not p.swapped}
    registry = SwapInRegistry.of(db, op.meta_db)
    if swapped:
        replace_collections(db, info, swapped, registry, op.id, progress=progress, jobs=jobs,
                            allow_loss=o.allow_destructive_options, lock_check=store.check_lock)
    started: set[str] = set()
    guard = threading.Lock()

    def write(name: str, report: Progress | None) -> None:
        with guard:
            started.add(name)
        _write_ops(db, direct[name], o, report, lock_check=store.check_lock)

    try:
        run_jobs(list(direct), write, jobs, progress)
    except BackupError as exc:
        # per-key writes are not atomic: put the touched collections back as they were
        written = [n for n in direct if n in started]
        try:
            _roll_back(db, store, safety_id, written, registry, op.id)
        except BackupError as again:
            raise DatabaseUnavailable(f"{exc}; rolling back failed too ({again})",
                                      hint=f"restore the safety backup {safety_id} (--mode replace) "
                                           f"to undo the partial changes") from None
        raise DatabaseUnavailable(f"{exc}; the partial changes were rolled back from the safety backup "
                                  f"{safety_id}, live data is as before", hint=exc.hint) from None


def _roll_back(db: Database, store: Store, safety_id: str, names: list[str], registry: SwapInRegistry,
               op_id: str) -> None:
    """Make ``names`` exactly what the safety backup holds (filled and swapped in, like a replace)."""
    info = store.get(safety_id)
    with contextlib.ExitStack() as stack:
        indexes = {n: stack.enter_context(BackupIndex(store, info, n, "_id")) for n in names if n in info.collections}
        # (one at a time: a roll-back is rare, and its collections were being written a moment ago)
        if indexes:
            replace_collections(db, info, indexes, registry, op_id)
    for n in names:
        if n in info.absent_collections:
            with translate_errors(f"removing collection {n}"):
                db.drop_collection(n)


def _id_filter(id_bytes: bytes) -> RawBSONDocument:
    return key_filter("_id", id_bytes)


def _write_ops(db: Database, p: CollectionPlan, o: RestoreOptions, progress: Progress | None,
              lock_check: Callable[[], None] | None = None) -> None:
    coll = raw_collection(db, p.name)
    assert p.writes is not None
    total, done, applied = len(p.writes), 0, 0
    requests: list = []

    def flush() -> None:
        nonlocal requests, applied
        if requests:
            if lock_check is not None:
                lock_check()  # a restore whose repository lock was lost stops before its next write
            try:
                coll.bulk_write(requests, ordered=True)
            except PyMongoError as exc:
                errors = (getattr(exc, "details", None) or {}).get("writeErrors") or []
                msg = (errors[0].get("errmsg", "") if errors else "") or driver_message(exc)
                raise DatabaseUnavailable(f"writing restored documents to {p.name} failed after {applied} of "
                                          f"{total} changes: {msg}", hint=error_hint(msg)) from None
            applied = done
            requests = []

    if progress:
        progress(p.name, 0, total)
    with temp_errors():  # (the plan's writes are read from a temporary table)
        for kind, off, length, backup_id, live_id in p.writes:
            if kind == DELETE:
                requests.append(DeleteOne(_id_filter(live_id)))
            else:
                doc = RawBSONDocument(p.index.read(off, length))
                if kind == INSERT:
                    requests.append(InsertOne(doc))
                elif backup_id == live_id:
                    requests.append(ReplaceOne(_id_filter(live_id), doc))
                else:
                    # paired with a live document whose _id differs (another match field, or another numeric
                    # type of the same value): _id is immutable, so swap the document
                    requests.append(DeleteOne(_id_filter(live_id)))
                    requests.append(InsertOne(doc))
            done += 1
            if len(requests) >= WRITE_BATCH:
                flush()
            if progress and done % WRITE_BATCH == 0:
                progress(p.name, done, total)
    flush()
    if progress:
        progress(p.name, total, total)


__all__ = ["RestoreOptions", "CollectionRestore", "RestoreResult", "plan_restore", "restore_backup", "MODES",
           "STRATEGIES"]
