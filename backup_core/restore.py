"""Restoring a backup: replace or merge, dry run, safety backup first, audited.

Order of a restore (each step only if the previous one succeeded):

1. validate everything without writing: options, confirmation, the backup's
   manifest and hashes (``Store.require_verified``), the source database name,
   then a full decode of every chosen collection while pairing it with live
   data (``compare.BackupIndex``): row counts against the manifest, key
   uniqueness on both sides. Any problem is a refusal before any write;
2. take the backup root's lock, drop temporaries left by a killed restore;
3. write a safety backup (``trigger: safety``) of the touched collections,
   recording those that do not exist yet as ``absent_collections``; restoring
   it (replace) undoes this restore, removing the collections it created;
4. ``replace``: stage every collection in ``__restore_tmp_<id>_<coll>`` (the
   backup's options, indexes and documents, as raw BSON), and only when all
   are staged swap each in with ``renameCollection(dropTarget=True)``. A
   failure before the swap drops the temporaries and leaves live data
   untouched; a kill leaves each collection wholly old or wholly new.
   ``merge`` (and replace limited to ``ids``): ordered bulk writes per key.
   A replace of a backup that records a collection as absent removes it;
5. record the outcome in the audit log.

The counts come from the same pairing the dry run uses, so a dry run reports
exactly what the real run then does (DESIGN.md section 7).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from . import audit
from .backup import BackupOptions, create_backup
from .compare import MISSING, BackupIndex, NotUnique, _check_key, id_matcher, key_bytes, key_text
from .errors import BackupError, DatabaseUnavailable, IntegrityError, RestoreRefused, UsageError
from .locks import root_lock
from .mongoutil import (RESTORE_TEMP_PREFIX, error_hint, from_json_dialect, mask_uri, raw_collection,
                        rename_collection, translate_errors, user_collections)
from .store import BackupInfo, Store

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_total)"""

MODES = ("replace", "merge")
STRATEGIES = ("backup-wins", "live-wins")
TEMP_PREFIX = RESTORE_TEMP_PREFIX
PAUSE_ENV = "BACKUP_CORE_TEST_PAUSE"
BATCH = 500
_I32 = struct.Struct("<i")


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
    user: str = "unknown"
    lock_timeout: float = 10.0
    # test hook: called with "staging" after each staged collection and "swap" after each rename
    on_phase: Callable[[str], None] | None = field(default=None, repr=False, compare=False)


@dataclass
class CollectionRestore:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    kept: int = 0  # merge: live documents absent from the backup, left alone (not "considered")

    @property
    def considered(self) -> int:
        return self.inserted + self.updated + self.deleted + self.unchanged + self.skipped

    def to_json(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged, "skipped": self.skipped, "kept": self.kept}


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
        if self.safety_backup_id:
            lines.append(f"safety backup {self.safety_backup_id} holds the previous data; "
                         f"restore it (--mode replace) to undo")
        elif self.dry_run:
            lines.append("nothing was changed; add --yes instead of --dry-run to restore")
        return "\n".join(lines)


@dataclass
class _Plan:
    """What one collection's restore will do: counts, and for per-key writes the operations."""

    name: str
    index: BackupIndex
    counts: CollectionRestore
    staged: bool  # True: whole-collection replace via a temporary collection
    # ("insert", backup key) | ("replace", backup key, live _id) | ("delete", live _id)
    ops: list[tuple] = field(default_factory=list)


# --------------------------------------------------------------------------
# Public API


def plan_restore(db: Database, store: Store, backup_id: str, options: RestoreOptions) -> RestoreResult:
    """The dry run: what ``restore_backup`` would do, with exactly its counts; changes nothing."""
    return restore_backup(db, store, backup_id, replace(options, dry_run=True))


def restore_backup(db: Database, store: Store, backup_id: str, options: RestoreOptions,
                   progress: Progress | None = None) -> RestoreResult:
    """Restore ``backup_id`` into ``db`` (see the module docstring for the order of steps)."""
    started = time.monotonic()
    state: dict = {"safety": None}
    # a preview is on the record too, under its own name so it never reads as a restore
    action = "restore_dry_run" if options.dry_run else "restore"
    base = {"backup_id": backup_id, "mode": options.mode, "strategy": options.strategy,
            "dry_run": options.dry_run, "database": db.name, "key": options.key,
            "collections": options.collections, "ids": len(options.ids) if options.ids is not None else None}
    try:
        _check_options(options)
        if not options.dry_run and not options.confirmed:
            raise RestoreRefused("restore not confirmed: nothing was changed",
                                 hint="add --dry-run to preview or --yes to proceed")
        info, names, drops = _validate(db, store, backup_id, options)
        with root_lock(store.root, "restore", options.lock_timeout):
            if not options.dry_run:
                drop_stale_temporaries(db)
            with contextlib.ExitStack() as stack:
                plans = {n: _plan(db, store, info, n, options, stack) for n in names}
                removals = _plan_removals(db, drops)
                counts = {n: p.counts for n, p in plans.items()} | removals
                result = RestoreResult(info.backup_id, options.mode, options.strategy, options.dry_run, None,
                                       counts, key=options.key, database=db.name)
                if not options.dry_run:
                    state["safety"] = _safety_backup(db, store, names + drops, options)
                    result.safety_backup_id = state["safety"]
                    _execute(db, store, info, plans, options, progress, state["safety"])
                    _remove_collections(db, list(removals), options)
    except BackupError as exc:
        refused = isinstance(exc, (RestoreRefused, IntegrityError, UsageError))
        audit.record(store.root, user=options.user, action=action,
                     outcome="refused" if refused else "error", **base,
                     safety_backup_id=state["safety"], error=str(exc))
        if state["safety"] and not isinstance(exc, RestoreRefused) and "safety backup" not in str(exc):
            exc.hint = (exc.hint + "; " if exc.hint else "") + \
                f"the safety backup {state['safety']} holds the data as it was before"
        raise
    except Exception as exc:  # a bug, not a user error: still on the record
        audit.record(store.root, user=options.user, action=action, outcome="error", **base,
                     safety_backup_id=state["safety"], error=f"{type(exc).__name__}: {exc}")
        raise
    result.duration_s = time.monotonic() - started
    audit.record(store.root, user=options.user, action=action, outcome="ok", **base,
                 safety_backup_id=result.safety_backup_id, duration_s=round(result.duration_s, 3),
                 counts={n: c.to_json() for n, c in result.collections.items()})
    return result


def drop_stale_temporaries(db: Database) -> list[str]:
    """Drop ``__restore_tmp_*`` collections left by a restore that was killed (call under the lock)."""
    with translate_errors("listing collections"):
        stale = [n for n in db.list_collection_names() if n.startswith(TEMP_PREFIX)]
        for n in stale:
            db.drop_collection(n)
    return stale


def temp_name(backup_id: str, collection: str) -> str:
    # namespaces are limited (255 bytes on MongoDB): long names get a short, unique stand-in
    if len(collection.encode("utf-8")) > 100:
        collection = "h" + hashlib.sha256(collection.encode("utf-8")).hexdigest()[:24]
    return f"{TEMP_PREFIX}{backup_id}_{collection}"


# --------------------------------------------------------------------------
# Validation and planning (no writes)


def _check_options(o: RestoreOptions) -> None:
    if o.mode not in MODES:
        raise UsageError(f"unknown restore mode {o.mode!r}; use {' or '.join(MODES)}")
    if o.strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {o.strategy!r}; use {' or '.join(STRATEGIES)}")
    _check_key(o.key)
    if o.ids is not None and not isinstance(o.ids, (list, tuple)):
        raise UsageError("ids must be a list of key values")


def _validate(db: Database, store: Store, backup_id: str, o: RestoreOptions) -> tuple[BackupInfo, list[str]]:
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
        if n.startswith(TEMP_PREFIX) or n.startswith("system."):
            raise RestoreRefused(f"backup {info.backup_id} contains collection {n!r}, which cannot be restored")
    if names:
        store.require_verified(info.backup_id, names)
    return info, names, drops


def _plan(db: Database, store: Store, info: BackupInfo, name: str, o: RestoreOptions,
          stack: contextlib.ExitStack) -> _Plan:
    try:
        index = stack.enter_context(BackupIndex(store, info, name, o.key))
        if o.mode == "merge" and MISSING in index.entries:
            raise RestoreRefused(f"cannot merge {name} by {o.key!r}: a document of the backup lacks that field",
                                 hint="merge by _id or by a field every document has")
        matcher = id_matcher(o.ids)
        staged = o.mode == "replace" and o.ids is None
        plan = _Plan(name, index, CollectionRestore(), staged)
        c = plan.counts
        for pair in index.pairs(db, matcher):
            s = pair.status
            if s == "identical":
                c.unchanged += 1
            elif s == "only_in_backup":
                c.inserted += 1
                if not staged:
                    plan.ops.append(("insert", pair.key))
            elif s == "changed":
                if o.mode == "merge" and o.strategy == "live-wins":
                    c.skipped += 1
                else:
                    c.updated += 1
                    if not staged:
                        plan.ops.append(("replace", pair.key, key_bytes(pair.live, "_id")))
            else:  # only_in_live
                if o.mode == "merge":
                    c.kept += 1
                else:
                    c.deleted += 1
                    if not staged:
                        plan.ops.append(("delete", key_bytes(pair.live, "_id")))
        if plan.ops:
            _check_id_collisions(db, plan, o)
        return plan
    except NotUnique as exc:
        raise RestoreRefused(f"{exc}: nothing was changed", hint=exc.hint) from None


def _in_filter(values: list[bytes]) -> RawBSONDocument:
    """``{_id: {$in: [...]}}`` from exact key bytes (types preserved)."""
    items = b"".join(kb[:1] + str(i).encode() + b"\x00" + kb[1:] for i, kb in enumerate(values))
    arr = _I32.pack(len(items) + 5) + items + b"\x00"
    inner_body = b"\x04$in\x00" + arr
    inner = _I32.pack(len(inner_body) + 5) + inner_body + b"\x00"
    body = b"\x03_id\x00" + inner
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def _check_id_collisions(db: Database, plan: _Plan, o: RestoreOptions) -> None:
    """Refuse per-key writes that would insert an ``_id`` another live document already has.

    Happens when documents are paired by another key (the backup's _id now
    belongs to a different live document), or when live holds a numerically
    equal _id of another type (int32 1 vs int64 1: one _id to MongoDB).
    """
    inserted: list[bytes] = []
    freed: set[bytes] = set()
    for op in plan.ops:
        if op[0] == "delete":
            freed.add(op[1])
            continue
        backup_id = key_bytes(plan.index.read_key(op[1]), "_id")
        if op[0] == "insert":
            inserted.append(backup_id)
        elif backup_id != op[2]:
            freed.add(op[2])
            inserted.append(backup_id)
    coll = raw_collection(db, plan.name)
    for start in range(0, len(inserted), BATCH):
        with translate_errors(f"reading collection {plan.name}"):
            hits = [key_bytes(bytes(d.raw), "_id")
                    for d in coll.find(_in_filter(inserted[start:start + BATCH]), projection={"_id": 1})]
        clash = [h for h in hits if h not in freed]
        if clash:
            raise RestoreRefused(
                f"cannot restore {plan.name} by {o.key!r}: backup documents would reuse the _id of other live "
                f"documents (e.g. _id {key_text(clash[0])}); nothing was changed",
                hint="use --mode replace, or merge by _id")


def _plan_removals(db: Database, drops: list[str]) -> dict[str, CollectionRestore]:
    """Collections the backup records as absent that exist live: each is removed, all its documents deleted."""
    live = user_collections(db)
    out = {}
    for name in drops:
        if name in live:
            with translate_errors(f"counting collection {name}"):
                out[name] = CollectionRestore(deleted=db[name].count_documents({}))
    return out


def _remove_collections(db: Database, names: list[str], o: RestoreOptions) -> None:
    for name in names:
        with translate_errors(f"removing collection {name}"):
            db.drop_collection(name)
        _pause("swap", o)


def _safety_backup(db: Database, store: Store, names: list[str], o: RestoreOptions) -> str:
    """Back up the touched collections as they are now, recording those that do not exist yet.

    Restoring it (replace) undoes the restore, including removing collections the restore created.
    """
    live = user_collections(db)
    existing = [n for n in names if n in live]
    absent = [n for n in names if n not in live]
    res = create_backup(db, store, BackupOptions(collections=existing, absent=absent, trigger="safety",
                                                 user=o.user, lock_timeout=o.lock_timeout))
    return res.backup_id


# --------------------------------------------------------------------------
# Writing


def _pause(phase: str, o: RestoreOptions) -> None:
    """Test hook: lets a test kill the process at a known point of a restore."""
    if o.on_phase is not None:
        o.on_phase(phase)
    if os.environ.get(PAUSE_ENV) == phase:
        print(f"{PAUSE_ENV}: paused at {phase}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get(PAUSE_ENV + "_SECONDS", "30")))


def _execute(db: Database, store: Store, info: BackupInfo, plans: dict[str, _Plan], o: RestoreOptions,
             progress: Progress | None, safety_id: str) -> None:
    staged = [p for p in plans.values() if p.staged]
    direct = [p for p in plans.values() if not p.staged]
    if staged:
        _replace_collections(db, info, staged, o, progress)
    written: list[str] = []
    try:
        for p in direct:
            written.append(p.name)
            _write_ops(db, p, o, progress)
    except BackupError as exc:
        # per-key writes are not atomic: put the touched collections back as they were
        try:
            _roll_back(db, store, safety_id, written)
        except BackupError as again:
            raise DatabaseUnavailable(f"{exc}; rolling back failed too ({again})",
                                      hint=f"restore the safety backup {safety_id} (--mode replace) "
                                           f"to undo the partial changes") from None
        raise DatabaseUnavailable(f"{exc}; the partial changes were rolled back from the safety backup "
                                  f"{safety_id}, live data is as before", hint=exc.hint) from None


def _roll_back(db: Database, store: Store, safety_id: str, names: list[str]) -> None:
    """Make ``names`` exactly what the safety backup holds (staged and swapped, like a replace)."""
    info = store.get(safety_id)
    with contextlib.ExitStack() as stack:
        plans = [_Plan(n, stack.enter_context(BackupIndex(store, info, n, "_id")), CollectionRestore(), True)
                 for n in names if n in info.collections]
        if plans:
            _replace_collections(db, info, plans, RestoreOptions(), None)
    for n in names:
        if n in info.absent_collections:
            with translate_errors(f"removing collection {n}"):
                db.drop_collection(n)


def _replace_collections(db: Database, info: BackupInfo, plans: list[_Plan], o: RestoreOptions,
                         progress: Progress | None) -> None:
    temps: dict[str, str] = {}
    try:
        for p in plans:
            temps[p.name] = temp_name(info.backup_id, p.name)
            _stage(db, info, p, temps[p.name], progress)
            _pause("staging", o)
    except BaseException:
        # live data was not touched yet: only the temporaries go
        with contextlib.suppress(Exception):
            for t in temps.values():
                db.drop_collection(t)
        raise
    swapped: list[str] = []
    try:
        for p in plans:
            with translate_errors(f"swapping in restored collection {p.name}"):
                rename_collection(db, temps[p.name], p.name, drop_target=True)
            swapped.append(p.name)
            _pause("swap", o)
    except BackupError as exc:
        with contextlib.suppress(Exception):
            for n, t in temps.items():
                if n not in swapped:
                    db.drop_collection(t)
        raise DatabaseUnavailable(f"{exc}; collections already restored: {', '.join(swapped) or 'none'}, "
                                  f"the others are unchanged") from None


def _stage(db: Database, info: BackupInfo, p: _Plan, temp: str, progress: Progress | None) -> None:
    entry = info.collection(p.name)
    total = p.index.count
    with translate_errors(f"staging collection {p.name}"):
        db.drop_collection(temp)
        opts = from_json_dialect(entry.get("options") or {})
        db.create_collection(temp, **opts)
        specs = []
        for spec in entry.get("indexes") or []:
            spec = from_json_dialect(spec)
            if spec.get("name") == "_id_":
                continue  # created with the collection
            spec.pop("v", None)
            spec.pop("ns", None)
            specs.append(spec)
        if specs:
            db.command("createIndexes", temp, indexes=specs)
        coll = raw_collection(db, temp)
        batch: list[RawBSONDocument] = []
        done = 0
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
        if batch:
            coll.insert_many(batch, ordered=True)
            done += len(batch)
        if progress:
            progress(p.name, done, total)


def _id_filter(id_bytes: bytes) -> RawBSONDocument:
    body = id_bytes[:1] + b"_id\x00" + id_bytes[1:]
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def _write_ops(db: Database, p: _Plan, o: RestoreOptions, progress: Progress | None) -> None:
    coll = raw_collection(db, p.name)
    total, done, applied = len(p.ops), 0, 0
    requests: list = []

    def flush() -> None:
        nonlocal requests, applied
        if requests:
            try:
                coll.bulk_write(requests, ordered=True)
            except PyMongoError as exc:
                errors = (getattr(exc, "details", None) or {}).get("writeErrors") or []
                msg = errors[0].get("errmsg", "") if errors else ""
                msg = msg or (str(exc).split(", full error:")[0].splitlines()[0] if str(exc) else type(exc).__name__)
                raise DatabaseUnavailable(f"writing restored documents to {p.name} failed after {applied} of "
                                          f"{total} changes: {mask_uri(msg)}", hint=error_hint(msg)) from None
            applied = done
            requests = []

    if progress:
        progress(p.name, 0, total)
    for op in p.ops:
        kind = op[0]
        if kind == "delete":
            requests.append(DeleteOne(_id_filter(op[1])))
        else:
            raw = p.index.read_key(op[1])
            doc = RawBSONDocument(raw)
            if kind == "insert":
                requests.append(InsertOne(doc))
            else:
                live_id = op[2]
                if key_bytes(raw, "_id") == live_id:
                    requests.append(ReplaceOne(_id_filter(live_id), doc))
                else:
                    # matched by another key with a different _id: _id is immutable, so swap the document
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
           "drop_stale_temporaries", "temp_name", "key_text"]
