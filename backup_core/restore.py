"""Restoring a backup: replace or merge, dry run, safety backup first, audited.

Order of a restore (each step only if the previous one succeeded), inside one
audited, locked operation (``operation.py``):

1. validate everything without writing: options, confirmation, the backup's
   manifest and hashes (``Store.require_verified``), the source database name,
   then a full decode of every chosen collection while pairing it with live
   data (``compare.BackupIndex``): row counts against the manifest, key
   uniqueness on both sides as MongoDB sees it (int32 ``1`` and int64 ``1`` are
   one key), and what the backup's indexes and options would destroy
   (``mongospec.DataCheck``: a TTL index already expired for the restored
   documents, a capped collection too small). Any problem is a refusal before
   any write;
2. sweep staging collections that killed restores left behind;
3. write a safety backup (``trigger: safety``) of the touched collections,
   recording those that do not exist yet as ``absent_collections``; restoring
   it (replace) undoes this restore, removing the collections it created;
4. ``replace``: stage every collection under a name registered in the staging
   registry (``staging.py``), with the backup's options, indexes and documents
   as raw BSON; check each staged collection holds every document; only then
   swap each in with ``renameCollection(dropTarget=True)``. A failure before
   the swap drops the staging collections and leaves live data untouched; a
   kill leaves each collection wholly old or wholly new. ``merge`` (and
   replace limited to ``ids``): ordered bulk writes per key, rolled back from
   the safety backup if the server refuses one. A replace of a backup that
   records a collection as absent removes it.

The counts come from the same pairing the dry run uses, so a dry run reports
exactly what the real run then does (DESIGN.md section 7).

Memory does not grow with the collections: the pairing is on disk
(``compare.BackupIndex``) and so are the per-key writes of a merge (``_Ops``,
a temporary SQLite table). Collections are planned, staged and written
``jobs`` at a time (``backup.run_jobs``); the swaps stay one after the other,
in order, once every collection is staged. Progress: a plain callback hears
the writes; a phase-aware one (``progress.Progress``) also the comparison and
the safety backup.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from .backup import BackupOptions, create_backup, default_jobs, run_jobs
from .compare import BackupIndex, NotUnique, data_check, schema_differences, temp_db, temp_errors, write_rows
from .errors import BackupError, DatabaseUnavailable, IntegrityError, RestoreRefused, StorageError, UsageError
from .keys import MISSING, check_key, id_matcher, in_filter, key_bytes, key_filter, key_text
from .mongoutil import (driver_message, error_hint, from_json_dialect, raw_collection, rename_collection,
                        translate_errors, user_collections)
from .operation import Operation, operation
from .progress import reporter
from .staging import HEARTBEAT_S, StagingRegistry
from .store import BackupInfo, Store

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_total)"""

MODES = ("replace", "merge")
STRATEGIES = ("backup-wins", "live-wins")
BATCH = 500


@dataclass
class RestoreOptions:
    mode: str = "replace"
    collections: list[str] | None = None
    strategy: str = "backup-wins"
    dry_run: bool = False
    confirmed: bool = False
    key: str = "_id"
    ids: list | None = None  # key values: JSON-dialect objects (from a comparison) or typed text
    allow_other_db: bool = False
    # restore even though the backup's indexes/options would destroy some of the restored data
    allow_destructive_options: bool = False
    user: str = "unknown"
    lock_timeout: float = 10.0
    # collections planned, staged and written at a time (threads; None: ``backup.default_jobs()``)
    jobs: int | None = 1
    # test hook: called with "staging" after each staged collection and "swap" after each rename
    on_phase: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    # set by ``undo.py`` only: this restore undoes the restore with that operation id (audited as "undo")
    undo_of: str | None = None

    def audit_details(self) -> dict:
        return {"mode": self.mode, "strategy": self.strategy if self.mode == "merge" else None,
                "key": self.key, "collections": self.collections, "dry_run": self.dry_run,
                "ids": len(self.ids) if self.ids is not None else None,
                "allow_destructive_options": self.allow_destructive_options or None, "undo_of": self.undo_of}


def _no_diff() -> dict:
    return {"added": [], "removed": [], "changed": []}


@dataclass
class CollectionRestore:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    kept: int = 0  # merge: live documents absent from the backup, left alone (not "considered")
    # what a replace does to indexes and collection options (merge leaves them as they are)
    indexes: dict = field(default_factory=_no_diff)
    options: dict = field(default_factory=_no_diff)
    warnings: list[str] = field(default_factory=list)

    @property
    def considered(self) -> int:
        return self.inserted + self.updated + self.deleted + self.unchanged + self.skipped

    def counts(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged, "skipped": self.skipped, "kept": self.kept}

    def to_json(self) -> dict:
        return {**self.counts(), "indexes": self.indexes, "options": self.options, "warnings": self.warnings}


@dataclass
class RestoreResult:
    backup_id: str
    mode: str
    strategy: str
    dry_run: bool
    safety_backup_id: str | None
    collections: dict[str, CollectionRestore] = field(default_factory=dict)
    duration_s: float = 0.0
    key: str = "_id"
    database: str = ""

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "mode": self.mode, "strategy": self.strategy, "key": self.key,
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
            for what_, diff in (("indexes", c.indexes), ("options", c.options)):
                verbs = [f"{v} {', '.join(diff[v])}" for v in ("added", "removed", "changed") if diff[v]]
                if verbs:
                    lines.append(f"    {what_}: {'; '.join(verbs)}")
            lines += [f"    WARNING: {w}" for w in c.warnings]
        if self.safety_backup_id:
            lines.append(f"safety backup {self.safety_backup_id} holds the previous data; "
                         f"restore it (--mode replace) to undo")
        elif self.dry_run:
            lines.append("nothing was changed; add --yes instead of --dry-run to restore")
        return "\n".join(lines)

    def audit_details(self) -> dict:
        return {"safety_backup_id": self.safety_backup_id,
                "counts": {n: c.counts() for n, c in self.collections.items()}}


INSERT, REPLACE, DELETE = 1, 2, 3


class _Ops:
    """The per-key writes of one collection, in order, in a temporary SQLite table (memory stays flat).

    A row: kind, where the backup document sits in the index's spill file
    (offset, length), its ``_id`` bytes (``bid``) and the live ``_id`` (``lid``):
    insert (offset, length, bid), replace (offset, length, bid, lid), delete (lid).
    """

    def __init__(self) -> None:
        self._db = temp_db()
        self._db.execute("CREATE TABLE ops (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, off INTEGER, "
                         "len INTEGER, bid BLOB, lid BLOB)")
        self._pending: list[tuple] = []
        self.count = 0

    def add(self, kind: int, off: int | None, length: int | None, bid: bytes | None, lid: bytes | None) -> None:
        self.count += 1
        self._pending.append((self.count, kind, off, length, bid, lid))
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self._pending = self._pending, []
        if rows:
            write_rows(self._db, "INSERT INTO ops (seq, kind, off, len, bid, lid) VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self.count

    def select(self, where: str, columns: str = "kind, off, len, bid, lid") -> Iterator[tuple]:
        """Rows matching ``where`` in order, a batch at a time (no statement stays open between batches)."""
        self.flush()
        last = 0
        while True:
            rows = self._db.execute(f"SELECT seq, {columns} FROM ops WHERE seq > ? AND ({where}) "
                                    f"ORDER BY seq LIMIT {BATCH}", (last,)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for row in rows:
                yield row[1:]

    def __iter__(self) -> Iterator[tuple]:
        return self.select("1")

    def freed_ids(self) -> None:
        """Fill table ``freed``: the live ``_id``s these writes delete or replace by another ``_id``."""
        self.flush()
        self._db.execute("CREATE TABLE IF NOT EXISTS freed (id BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute(f"INSERT OR IGNORE INTO freed SELECT lid FROM ops WHERE kind = {DELETE} OR "
                         f"(kind = {REPLACE} AND bid != x'' AND bid != lid)")

    def is_freed(self, ident: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM freed WHERE id = ?", (ident,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()


@dataclass
class _Plan:
    """What one collection's restore will do: counts, and for per-key writes the operations."""

    name: str
    index: BackupIndex
    counts: CollectionRestore
    staged: bool  # True: whole-collection replace via a staging collection
    ops: _Ops | None = None  # per-key writes (not staged)

    def close(self) -> None:
        if self.ops is not None:
            self.ops.close()
        self.index.close()


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

            def plan_one(name: str, report: Progress | None) -> _Plan:
                return _plan(db, store, info, name, o, live, report)

            plans = run_jobs(names, plan_one, jobs, comparing, discard=_Plan.close)
            for p in plans.values():
                stack.callback(p.close)
            removals = _plan_removals(db, drops, live)
            for n, c in removals.items():
                c.indexes, c.options = schema_differences(db, info, n, live.get(n))
            _refuse_destruction(plans, o)
            counts = {n: p.counts for n, p in plans.items()} | removals
            result = RestoreResult(info.backup_id, o.mode, o.strategy, o.dry_run, None, counts, key=o.key,
                                   database=db.name)
            if not o.dry_run:
                try:
                    safety = result.safety_backup_id = _safety_backup(
                        db, store, names + drops, o, info.backup_id, jobs, reporter(progress, "safety backup"), op)
                except StorageError as exc:  # the data was not touched: say that, and what failed
                    raise StorageError(f"the safety backup could not be written, so nothing was restored: {exc}",
                                       hint="live data was not changed") from None
                op.note(safety_backup_id=safety)
                _execute(db, store, info, plans, o, reporter(progress, "writing", main=True), safety, op, jobs)
                _remove_collections(db, list(removals), o)
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
    check_key(o.key)
    if o.ids is not None and not isinstance(o.ids, (list, tuple)):
        raise UsageError("ids must be a list of key values")


def _validate(db: Database, store: Store, backup_id: str, o: RestoreOptions) -> tuple[BackupInfo, list[str], list[str]]:
    info = store.get(backup_id)  # a manifest of an unknown format version is refused here
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
        store.require_verified(info.backup_id, names)
    return info, names, drops


def _plan(db: Database, store: Store, info: BackupInfo, name: str, o: RestoreOptions,
          live: dict[str, dict], progress: Progress | None = None) -> _Plan:
    """Pair one collection and count what its restore does (the caller closes the plan)."""
    exists = name in live
    # a merge into a collection that does not exist creates it like a replace: with its options and indexes
    staged = o.ids is None and (o.mode == "replace" or not exists)
    report, total = None, 0
    if progress is not None:
        # documents read: the backup's, then the live ones
        total = 0 if name in info.absent_collections else info.collection(name).count
        if exists:
            with translate_errors(f"counting collection {name}"):
                total += db[name].estimated_document_count()
        progress(name, 0, total)

        def report(done: int) -> None:
            progress(name, min(done, total), total)
    index = BackupIndex(store, info, name, o.key, data_check(info, name), progress=report)
    plan = None
    try:
        index.__enter__()
        if o.mode == "merge" and index.missing_key:
            raise RestoreRefused(f"cannot merge {name} by {o.key!r}: {index.missing_key} document(s) of the "
                                 "backup lack that field",
                                 hint="merge by _id" if o.key != "_id"
                                 else "use --mode replace (the server gives those documents a new _id)")
        matcher = id_matcher(o.ids)
        plan = _Plan(name, index, CollectionRestore(), staged, None if staged else _Ops())
        c, ops = plan.counts, plan.ops
        for pair in index.pairs(db, matcher):
            s = pair.status
            if s == "identical":
                c.unchanged += 1
            elif s == "only_in_backup":
                c.inserted += 1
                if ops is not None:
                    off, length = index.locate(pair.key)  # type: ignore[misc]
                    ops.add(INSERT, off, length, key_bytes(pair.backup, "_id"), None)  # type: ignore[arg-type]
            elif s == "changed":
                if o.mode == "merge" and o.strategy == "live-wins":
                    c.skipped += 1
                else:
                    c.updated += 1
                    if ops is not None:
                        off, length = index.locate(pair.key)  # type: ignore[misc]
                        ops.add(REPLACE, off, length, key_bytes(pair.backup, "_id"),  # type: ignore[arg-type]
                                key_bytes(pair.live, "_id"))  # type: ignore[arg-type]
            else:  # only_in_live
                if o.mode == "merge":
                    c.kept += 1
                else:
                    c.deleted += 1
                    if ops is not None:
                        ops.add(DELETE, None, None, None, key_bytes(pair.live, "_id"))  # type: ignore[arg-type]
        if progress is not None:
            progress(name, total, total)  # (documents outside ``ids`` were read, not reported)
        if ops:
            _check_id_collisions(db, plan, o)
        if staged:
            c.indexes, c.options = schema_differences(db, info, name, live.get(name))
            c.warnings = index.check.findings() if index.check is not None else []
        return plan
    except sqlite3.Error as exc:  # the merge's table of writes (the index maps its own)
        _close(plan, index)
        with temp_errors():
            raise exc
    except NotUnique as exc:
        _close(plan, index)
        if exc.side == "backup" and exc.key == "_id":
            raise IntegrityError(f"backup {info.backup_id} cannot be restored: {exc}; nothing was changed",
                                 hint=exc.hint) from None
        raise RestoreRefused(f"{exc}: nothing was changed", hint=exc.hint) from None
    except BaseException:
        _close(plan, index)
        raise


def _close(plan: _Plan | None, index: BackupIndex) -> None:
    if plan is not None:
        plan.close()
    else:
        index.close()


def _refuse_destruction(plans: dict[str, _Plan], o: RestoreOptions) -> None:
    """Refuse when the backup's indexes or options would destroy restored data, unless confirmed."""
    findings = [f"{n}: {w}" for n, p in plans.items() for w in p.counts.warnings]
    if findings and not o.allow_destructive_options:
        raise RestoreRefused("the backup's indexes or collection options would destroy restored data: "
                             + "; ".join(findings) + "; nothing was changed",
                             hint="compare the backup first; if this is really wanted, pass "
                                  "--allow-destructive-options (or confirm it in the dashboard)")


def _check_id_collisions(db: Database, plan: _Plan, o: RestoreOptions) -> None:
    """Refuse per-key writes that would insert an ``_id`` another live document already has.

    Happens when documents are paired by another key (the backup's _id now
    belongs to a different live document).
    """
    ops = plan.ops
    assert ops is not None
    ops.freed_ids()
    # backup _ids these writes put in: inserts, and replaces that change the _id (a document without
    # _id gets a new one from the server: it cannot collide)
    inserted = (bid for (bid,) in ops.select(f"bid != x'' AND (kind = {INSERT} OR (kind = {REPLACE} AND bid != lid))",
                                             "bid"))
    coll = raw_collection(db, plan.name)
    while batch := [b for _, b in zip(range(BATCH), inserted)]:
        with translate_errors(f"reading collection {plan.name}"):
            hits = [key_bytes(bytes(d.raw), "_id")
                    for d in coll.find(in_filter("_id", batch), projection={"_id": 1})]
        clash = [h for h in hits if not ops.is_freed(h)]
        if clash:
            raise RestoreRefused(
                f"cannot restore {plan.name} by {o.key!r}: backup documents would reuse the _id of other live "
                f"documents (e.g. _id {key_text(clash[0])}); nothing was changed",
                hint="use --mode replace, or merge by _id" if o.key != "_id" else "use --mode replace")


def _plan_removals(db: Database, drops: list[str], live: dict[str, dict]) -> dict[str, CollectionRestore]:
    """Collections the backup records as absent that exist live: each is removed, all its documents deleted."""
    out = {}
    for name in drops:
        if name in live:
            with translate_errors(f"counting collection {name}"):
                # (the count command: an aggregation, count_documents, is refused by the embedded server
                # beyond 50 000 documents and reads every document on MongoDB)
                out[name] = CollectionRestore(deleted=db[name].estimated_document_count())
    return out


def _remove_collections(db: Database, names: list[str], o: RestoreOptions) -> None:
    for name in names:
        with translate_errors(f"removing collection {name}"):
            db.drop_collection(name)
        _pause("swap", o)


def _safety_backup(db: Database, store: Store, names: list[str], o: RestoreOptions, backup_id: str,
                   jobs: int = 1, progress: Progress | None = None, op: Operation | None = None) -> str:
    """Back up the touched collections as they are now, recording those that do not exist yet.

    Restoring it (replace) undoes the restore, including removing collections the restore created.
    Its manifest names the operation it was taken for (``safety``): Undo trusts nothing else.
    """
    from .operation import meta_db_name

    live = user_collections(db, meta_db_name())
    existing = [n for n in names if n in live]
    absent = [n for n in names if n not in live]
    safety = {"op": op.id if op is not None else None, "action": "undo" if o.undo_of else "restore",
              "database": db.name, "collections": sorted(names), "undo_of": o.undo_of}
    res = create_backup(db, store, BackupOptions(collections=existing, absent=absent, trigger="safety",
                                                 user=o.user, lock_timeout=o.lock_timeout,
                                                 restore_of=backup_id, jobs=jobs,
                                                 safety={k: v for k, v in safety.items() if v is not None}),
                        progress)
    return res.backup_id


# --------------------------------------------------------------------------
# Writing


def _pause(phase: str, o: RestoreOptions) -> None:
    """Test hook: lets a test stop (or kill) the process at a known point of a restore."""
    if o.on_phase is not None:
        o.on_phase(phase)


def pause_hook(phase: str, seconds: float) -> Callable[[str], None]:
    """An ``on_phase`` that sleeps at ``phase`` after saying so on stderr (fault tests kill it there)."""
    def hook(current: str) -> None:
        if current == phase:
            print(f"BACKUP_CORE_TEST_PAUSE: paused at {phase}", file=sys.stderr, flush=True)
            time.sleep(seconds)
    return hook


def _execute(db: Database, store: Store, info: BackupInfo, plans: dict[str, _Plan], o: RestoreOptions,
             progress: Progress | None, safety_id: str, op: Operation, jobs: int = 1) -> None:
    staged = [p for p in plans.values() if p.staged]
    direct = {p.name: p for p in plans.values() if not p.staged}
    registry = StagingRegistry.of(db, op.meta_db)
    if staged:
        _replace_collections(db, info, staged, o, progress, registry, op.id, jobs)
    started: set[str] = set()
    guard = threading.Lock()

    def write(name: str, report: Progress | None) -> None:
        with guard:
            started.add(name)
        _write_ops(db, direct[name], o, report)

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


def _roll_back(db: Database, store: Store, safety_id: str, names: list[str], registry: StagingRegistry,
               op_id: str) -> None:
    """Make ``names`` exactly what the safety backup holds (staged and swapped, like a replace)."""
    info = store.get(safety_id)
    with contextlib.ExitStack() as stack:
        plans = [_Plan(n, stack.enter_context(BackupIndex(store, info, n, "_id")), CollectionRestore(), True)
                 for n in names if n in info.collections]
        # (one at a time: a roll-back is rare, and its collections were being written a moment ago)
        if plans:
            _replace_collections(db, info, plans, RestoreOptions(), None, registry, op_id)
    for n in names:
        if n in info.absent_collections:
            with translate_errors(f"removing collection {n}"):
                db.drop_collection(n)


def _replace_collections(db: Database, info: BackupInfo, plans: list[_Plan], o: RestoreOptions,
                         progress: Progress | None, registry: StagingRegistry, op_id: str, jobs: int = 1) -> None:
    """Stage every collection (``jobs`` at a time), then swap them in one after the other, in order."""
    temps: dict[str, str] = {}
    guard = threading.Lock()
    by_name = {p.name: p for p in plans}

    def stage(name: str, report: Progress | None) -> None:
        temp = registry.create(name, op_id)
        with guard:
            temps[name] = temp
        _stage(db, info, by_name[name], temp, report, registry, o)
        _pause("staging", o)

    try:
        run_jobs(list(by_name), stage, jobs, progress)
    except BaseException:
        # live data was not touched yet: only the staging collections go
        for t in temps.values():
            with contextlib.suppress(Exception):
                registry.discard(t)
        raise
    swapped: list[str] = []
    try:
        for p in plans:
            with translate_errors(f"swapping in restored collection {p.name}"):
                rename_collection(db, temps[p.name], p.name, drop_target=True)
            swapped.append(p.name)
            with contextlib.suppress(BackupError):
                registry.finished(temps[p.name])
            _pause("swap", o)
    except BackupError as exc:
        for n, t in temps.items():
            if n not in swapped:
                with contextlib.suppress(Exception):
                    registry.discard(t)
        raise DatabaseUnavailable(f"{exc}; collections already restored: {', '.join(swapped) or 'none'}, "
                                  f"the others are unchanged") from None


def _stage(db: Database, info: BackupInfo, p: _Plan, temp: str, progress: Progress | None,
           registry: StagingRegistry, o: RestoreOptions) -> None:
    entry = info.collection(p.name)
    total = p.index.count
    with translate_errors(f"staging collection {p.name}"):
        db.create_collection(temp, **from_json_dialect(entry.options or {}))
        specs = []
        for spec in entry.decoded_indexes():
            if spec.get("name") == "_id_":
                continue  # created with the collection
            spec.pop("v", None)
            spec.pop("ns", None)
            specs.append(spec)
        if specs:
            db.command("createIndexes", temp, indexes=specs)
        coll = raw_collection(db, temp)
        batch: list[RawBSONDocument] = []
        done, beat = 0, time.monotonic()
        if progress:
            progress(p.name, 0, total)
        for raw in p.index.iter_documents():
            batch.append(RawBSONDocument(raw))
            if len(batch) >= BATCH:
                coll.insert_many(batch, ordered=True)
                done += len(batch)
                batch = []
                if progress:
                    progress(p.name, done, total)
                if time.monotonic() - beat > HEARTBEAT_S:
                    registry.heartbeat(temp)
                    beat = time.monotonic()
        if batch:
            coll.insert_many(batch, ordered=True)
            done += len(batch)
        if progress:
            progress(p.name, done, total)
        staged = coll.estimated_document_count()  # exact for a collection just filled (see _plan_removals)
    # a loss the admin accepted (destructive options confirmed) is expected; any other is refused
    if staged != total and not o.allow_destructive_options:
        raise RestoreRefused(f"the staged copy of {p.name} holds {staged} of the backup's {total} documents: "
                             "its collection options or indexes discarded some (capped size, TTL, validator); "
                             "live data was not changed", hint="compare the backup to see its options")


def _id_filter(id_bytes: bytes) -> RawBSONDocument:
    return key_filter("_id", id_bytes)


def _write_ops(db: Database, p: _Plan, o: RestoreOptions, progress: Progress | None) -> None:
    coll = raw_collection(db, p.name)
    assert p.ops is not None
    total, done, applied = len(p.ops), 0, 0
    requests: list = []

    def flush() -> None:
        nonlocal requests, applied
        if requests:
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
        for kind, off, length, backup_id, live_id in p.ops:
            if kind == DELETE:
                requests.append(DeleteOne(_id_filter(live_id)))
            else:
                doc = RawBSONDocument(p.index.read(off, length))
                if kind == INSERT:
                    requests.append(InsertOne(doc))
                elif backup_id == live_id:
                    requests.append(ReplaceOne(_id_filter(live_id), doc))
                else:
                    # paired with a live document whose _id differs (another key, or another numeric
                    # type of the same value): _id is immutable, so swap the document
                    requests.append(DeleteOne(_id_filter(live_id)))
                    requests.append(InsertOne(doc))
            done += 1
            if len(requests) >= BATCH:
                flush()
            if progress and done % BATCH == 0:
                progress(p.name, done, total)
    flush()
    if progress:
        progress(p.name, total, total)


__all__ = ["RestoreOptions", "CollectionRestore", "RestoreResult", "plan_restore", "restore_backup",
           "pause_hook", "key_text", "MODES", "STRATEGIES", "MISSING"]
