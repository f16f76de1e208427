"""Undo: put back what the latest restore of a database changed, from the safety backup it took.

Every restore writes a safety backup first (``trigger: safety``) of exactly
the collections it is about to touch, recording those that do not exist yet
as absent. Its manifest names the restore it was taken for: ``safety`` =
``{op, action, database, collections, undo_of}`` (the restore's operation id,
``restore`` or ``undo``, ...) next to ``restore_of`` (the backup restored).
Restoring that safety backup in replace mode undoes the restore, on those
collections only, including removing collections the restore created.

Which restore is "the latest", and which backup undoes it, comes from the
backups themselves, never from the audit log alone (an appended log line is
easy to forge): a restore changes nothing before its safety backup is
committed, so the newest safety backup of the database belongs to the latest
restore that may have changed data, finished or interrupted. The audit log
must agree: it must hold that operation (its state: finished, failed,
interrupted, still running) and no later restore of the database that
claims a different safety backup. An encrypted safety backup's manifest is
authenticated by the store (AES-GCM), so nobody without the key can forge
one. ``find_latest`` decides (or refuses with the reason); ``undo`` runs it
as an audited operation ``undo`` (``undo_dry_run`` for the plan): a dry run
gives the counts per collection, the real run needs confirmation and takes a
safety backup of its own, like any restore. After a finished undo, Undo
refuses (the latest restore is undone); an interrupted or failed undo can be
run again and restores the same safety backup.

The dashboard, the CLI (``python -m backup_core undo``) and the Python API
call ``undo``. ``recent_restores`` lists restores and undos for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from pymongo.database import Database

from .errors import RestoreRefused
from .operation import operation
from .restore import RestoreOptions, RestoreResult, restore_backup
from .store import BackupInfo, Store

ACTIONS = ("restore", "undo")
STATES = ("finished", "failed", "interrupted", "running")


@dataclass
class RestoreRecord:
    """One restore (or undo) of a database, as the audit log and its safety backup tell it."""

    at: str
    user: str
    backup_id: str           # the backup it restored (for an undo: the safety backup it restored)
    mode: str
    database: str
    safety_backup_id: str | None  # the safety backup it took first (None: it took none, nothing changed)
    collections: list[str] = field(default_factory=list)  # the collections it touched (or was about to)
    undone_by: str | None = None  # the operation id of the undo that undid it
    undone_at: str | None = None
    op: str = ""             # its operation id
    action: str = "restore"  # "restore" or "undo"
    state: str = "finished"  # finished, failed, interrupted, running
    undo_of: str | None = None  # an undo: the operation id of the restore it undid
    error: str | None = None

    @property
    def undoable(self) -> bool:
        return bool(self.safety_backup_id) and self.undone_by is None and self.state != "running"

    def describe(self) -> str:
        what = "undo" if self.action == "undo" else f"restore of backup {self.backup_id} ({self.mode})"
        state = {"finished": "", "failed": ", failed", "interrupted": ", interrupted (its process is gone)",
                 "running": ", still running"}.get(self.state, "")
        return f"the {what} into {self.database} at {self.at} by {self.user}{state}"

    def to_json(self) -> dict:
        return {"at": self.at, "user": self.user, "backup_id": self.backup_id, "mode": self.mode,
                "database": self.database, "safety_backup_id": self.safety_backup_id,
                "collections": self.collections, "undone_by": self.undone_by, "undone_at": self.undone_at,
                "op": self.op, "action": self.action, "state": self.state, "undo_of": self.undo_of,
                "error": self.error}


@dataclass
class UndoOptions:
    dry_run: bool = False
    confirmed: bool = False
    user: str = "unknown"
    # the operation id of the restore the person was shown: refused if the latest restore is another one now
    expect: str | None = None
    lock_timeout: float = 10.0
    jobs: int | None = 1
    progress: Callable[[str, int, int], None] | None = field(default=None, repr=False, compare=False)


@dataclass
class UndoResult:
    """What an undo did (or, dry run, would do): the restore undone and the counts per collection."""

    restore: RestoreRecord   # the restore undone
    restored_backup_id: str  # its safety backup, restored in replace mode
    dry_run: bool
    result: RestoreResult    # counts per collection; ``result.safety_backup_id``: the undo's own safety backup

    @property
    def safety_backup_id(self) -> str | None:
        return self.result.safety_backup_id

    def to_json(self) -> dict:
        body = self.result.to_json()
        return {"dry_run": self.dry_run, "database": self.restore.database, "undo_of": self.restore.to_json(),
                "restored_backup_id": self.restored_backup_id, "safety_backup_id": self.safety_backup_id,
                "duration_s": body["duration_s"], "collections": body["collections"]}

    def to_text(self) -> str:
        r = self.restore
        head = "dry run: undoing" if self.dry_run else "undid"
        lines = [f"{head} {r.describe()}",
                 f"{'would restore' if self.dry_run else 'restored'} its safety backup {self.restored_backup_id} "
                 f"(replace) on {', '.join(r.collections) or 'no collection'}:"]
        for n, c in self.result.collections.items():
            lines.append(f"  {n}: {c.inserted} inserted, {c.updated} updated, {c.deleted} deleted, "
                         f"{c.unchanged} unchanged")
            lines += [f"    WARNING: {w}" for w in c.warnings]
        if self.dry_run:
            lines.append("nothing was changed; add --yes instead of --dry-run to undo")
        elif self.safety_backup_id:
            lines.append(f"safety backup {self.safety_backup_id} holds the data as it was before the undo")
        return "\n".join(lines)


# ---------------------------------------------------------------- reading the record

def _safety_meta(info: BackupInfo) -> dict | None:
    meta = info.manifest.get("safety")
    if not isinstance(meta, dict) or not isinstance(meta.get("op"), str) or not meta["op"]:
        return None
    return meta


def _safety_backups(store: Store, database: str) -> tuple[list[BackupInfo], list[dict]]:
    """(this database's safety backups newest first, backups that cannot be read for want of their key)."""
    locked: list[dict] = []
    backups = store.list_backups(locked=locked)
    return [b for b in backups if b.trigger == "safety" and b.database == database], locked


@dataclass
class _Op:
    entries: list[dict] = field(default_factory=list)  # newest first

    @property
    def started(self) -> dict | None:
        return next((e for e in self.entries if e.get("outcome") == "started"), None)

    @property
    def outcome(self) -> dict | None:
        return next((e for e in self.entries if e.get("outcome") != "started"), None)

    def state(self) -> str:
        out = self.outcome
        if out is not None:
            return "finished" if out.get("outcome") == "ok" else "failed"
        started = self.started or {}
        return "interrupted" if started.get("interrupted") else "running"

    def get(self, key: str):
        for e in (self.outcome, self.started):
            if e is not None and e.get(key) is not None:
                return e.get(key)
        return None


def _ops(store: Store, database: str, scan: int | None = None) -> Iterator[tuple[str, _Op]]:
    """(op id, its entries) of every restore and undo of ``database`` (dry runs excluded), newest first,
    each once its started entry was read (or at the end for those whose start is beyond ``scan``)."""
    pending: dict[str, _Op] = {}
    for n, e in enumerate(store.audit_log().entries_newest_first()):
        if scan is not None and n >= scan:
            break
        if e.get("action") not in ACTIONS or not isinstance(e.get("op"), str) or e.get("database") != database:
            continue
        op = pending.setdefault(e["op"], _Op())
        op.entries.append(e)
        if e.get("outcome") == "started":
            yield e["op"], pending.pop(e["op"])
    for op_id, op in pending.items():
        yield op_id, op


def _record(op_id: str, op: _Op, database: str, safety: BackupInfo | None) -> RestoreRecord:
    started = op.started or op.outcome or {}
    meta = _safety_meta(safety) if safety is not None else None
    touched = list(meta.get("collections") or []) if meta else sorted((op.get("counts") or {}))
    out = op.outcome or {}
    return RestoreRecord(
        at=started.get("at", ""), user=started.get("user", ""), backup_id=op.get("backup_id") or "",
        mode=op.get("mode") or "replace", database=database,
        safety_backup_id=safety.backup_id if safety is not None else op.get("safety_backup_id"),
        collections=touched, op=op_id, action=started.get("action", "restore"), state=op.state(),
        undo_of=op.get("undo_of"), error=out.get("error"))


def find_latest(store: Store, database: str) -> RestoreRecord:
    """The restore an undo of ``database`` acts on, with the safety backup that undoes it.

    Raises ``RestoreRefused`` with the reason when it cannot be undone safely
    (see the module docstring): no restore, a safety backup that does not say
    which restore it belongs to, an audit log that disagrees, a restore still
    running, one already undone.
    """
    safety, locked = _safety_backups(store, database)
    if not safety:
        raise RestoreRefused(f"there is no restore of database {database} to undo: no safety backup of it exists",
                             hint="a restore takes a safety backup before it changes anything")
    newest = safety[0]
    hidden = [b["backup_id"] for b in locked if b["backup_id"] > newest.backup_id]
    if hidden:
        raise RestoreRefused(f"cannot tell which restore is the latest: backup(s) {', '.join(hidden)} are encrypted "
                             "with a key that is not configured", hint="configure that key (BACKUP_KEY_FILES)")
    meta = _check_safety(newest, database)
    by_op = {m["op"]: b for b in safety if (m := _safety_meta(b)) is not None}
    latest_op, latest = _audited(store, database, meta["op"], newest)
    if latest.state() == "running":
        raise RestoreRefused(f"{_record(latest_op, latest, database, newest).describe()}: wait for it to end, "
                             "then undo")
    if meta.get("action") == "undo":
        if latest.state() == "finished":
            restored = _describe_op(store, database, meta.get("undo_of"))
            raise RestoreRefused(f"the latest restore{restored} was already undone at {latest.get('at') or '?'} by "
                                 f"{(latest.started or {}).get('user', '?')}: nothing to undo",
                                 hint=f"to redo it, restore the undo's safety backup {newest.backup_id} "
                                      "(--mode replace)")
        # an undo that failed or was killed: undo the same restore again, from the same safety backup
        target = meta.get("undo_of")
        original = by_op.get(target) if isinstance(target, str) else None
        if original is None:
            raise RestoreRefused(f"an undo was interrupted, and the safety backup of the restore it was undoing "
                                 f"(operation {target}) is gone: nothing was changed",
                                 hint=f"its own safety backup {newest.backup_id} holds the data as it was before it")
        _check_safety(original, database)
        op_id, op = _audited(store, database, target, original, newer_ok=meta["op"])  # type: ignore[arg-type]
        record = _record(op_id, op, database, original)
        record.error = f"an undo of it ({latest.state()}) did not finish; undoing it again"
        return record
    return _record(latest_op, latest, database, newest)


def _check_safety(info: BackupInfo, database: str) -> dict:
    meta = _safety_meta(info)
    if meta is None:
        raise RestoreRefused(f"the newest safety backup of {database}, {info.backup_id}, does not say which restore "
                             "it was taken for (written by an older version, or not a genuine safety backup): "
                             "Undo cannot tell what it would undo; nothing was changed",
                             hint=f"if that is what you want, restore it yourself: restore {info.backup_id} "
                                  "--mode replace (compare it first)")
    touched = sorted(set(info.collections) | set(info.absent_collections))
    if meta.get("database") != database or info.database != database or \
            sorted(meta.get("collections") or []) != touched:
        raise RestoreRefused(f"safety backup {info.backup_id} does not match what it says it was taken for "
                             f"(database {meta.get('database')!r}, collections {meta.get('collections')!r}); "
                             "nothing was changed")
    return meta


def _audited(store: Store, database: str, op_id: str, safety: BackupInfo,
             newer_ok: str | None = None) -> tuple[str, _Op]:
    """The audit log's record of operation ``op_id``, checking that no entry after its start, of another
    restore of ``database``, claims another safety backup (``newer_ok``: an operation allowed to, the
    interrupted undo)."""
    target = _Op()
    for e in store.audit_log().entries_newest_first():
        if e.get("action") not in ACTIONS or e.get("database") != database or not isinstance(e.get("op"), str):
            continue
        if e["op"] == op_id:
            target.entries.append(e)
            if e.get("outcome") != "started":
                continue
            if (target.get("backup_id") or safety.restore_of) != safety.restore_of:
                raise RestoreRefused(f"the audit log says operation {op_id} restored backup "
                                     f"{target.get('backup_id')}, but its safety backup {safety.backup_id} says "
                                     f"{safety.restore_of}: nothing was changed",
                                     hint="check the log: python -m backup_core audit --verify")
            return op_id, target
        claimed = e.get("safety_backup_id")
        if e["op"] != newer_ok and claimed and claimed != safety.backup_id:
            raise RestoreRefused(
                f"the audit log records a later restore of {database} (operation {e['op']}, {e.get('at', '?')}) "
                f"with safety backup {claimed}, which is not a genuine safety backup of it (deleted, or the entry "
                f"is forged): Undo cannot tell what the latest restore changed; nothing was changed",
                hint="check the log: python -m backup_core audit --verify")
    raise RestoreRefused(f"the audit log has no record of the restore that took safety backup {safety.backup_id} "
                         f"(operation {op_id}): the log was cut, emptied or replaced; nothing was changed",
                         hint="check it with `python -m backup_core audit --verify`; to undo anyway, restore "
                              f"{safety.backup_id} yourself (--mode replace)")


def _describe_op(store: Store, database: str, op_id) -> str:
    if not isinstance(op_id, str):
        return ""
    for seen_id, op in _ops(store, database):
        if seen_id == op_id:
            return f" (of backup {op.get('backup_id')} at {(op.started or {}).get('at', '?')})"
    return ""


def latest_undoable(store: Store, database: str) -> RestoreRecord | None:
    """The restore Undo would act on now, or None when there is none or it cannot be undone."""
    try:
        return find_latest(store, database)
    except RestoreRefused:
        return None


def recent_restores(store: Store, limit: int = 20, scan: int = 5000, database: str | None = None
                    ) -> list[RestoreRecord]:
    """Restores and undos (finished, failed, interrupted), newest first, each with its safety backup and
    whether a finished undo undid it. ``database`` None: those of every database."""
    safety_of: dict[str, BackupInfo] = {}
    for b in store.list_backups():
        meta = _safety_meta(b) if b.trigger == "safety" else None
        if meta is not None:
            safety_of[meta["op"]] = b
    records: list[RestoreRecord] = []
    undone: dict[str, tuple[str, str]] = {}  # restore op -> (undo op, when)
    for op_id, op in _all_ops(store, database, scan):
        rec = _record(op_id, op, (op.started or op.outcome or {}).get("database", ""), safety_of.get(op_id))
        if rec.state == "failed" and not rec.safety_backup_id:
            continue  # refused or failed before its safety backup: it changed nothing
        if rec.action == "undo" and rec.state == "finished" and rec.undo_of:
            undone.setdefault(rec.undo_of, (op_id, (op.outcome or {}).get("at", rec.at)))
        if op_id in undone:
            rec.undone_by, rec.undone_at = undone[op_id]
        records.append(rec)
        if len(records) >= limit:
            break
    return records


def _all_ops(store: Store, database: str | None, scan: int) -> Iterator[tuple[str, _Op]]:
    if database is not None:
        yield from _ops(store, database, scan)
        return
    pending: dict[str, _Op] = {}
    for n, e in enumerate(store.audit_log().entries_newest_first()):
        if n >= scan:
            break
        if e.get("action") not in ACTIONS or not isinstance(e.get("op"), str):
            continue
        op = pending.setdefault(e["op"], _Op())
        op.entries.append(e)
        if e.get("outcome") == "started":
            yield e["op"], pending.pop(e["op"])
    yield from pending.items()


# ---------------------------------------------------------------- undoing

def plan_undo(db: Database, store: Store, options: UndoOptions | None = None) -> UndoResult:
    """The dry run: what ``undo`` would change, per collection, with exactly its counts; changes nothing."""
    return undo(db, store, replace(options or UndoOptions(), dry_run=True))


def undo(db: Database, store: Store, options: UndoOptions) -> UndoResult:
    """Undo the latest restore of ``db`` (see the module docstring): a dry run, or confirmed, the real one."""
    if not options.dry_run and not options.confirmed:
        raise RestoreRefused("undo not confirmed: nothing was changed",
                             hint="add --dry-run to see what it would change, or --yes to undo")
    action = "undo_dry_run" if options.dry_run else "undo"
    with operation(store, action, user=options.user, lock_timeout=options.lock_timeout,
                   details={"database": db.name}) as op:
        target = find_latest(store, db.name)
        if options.expect is not None and target.op != options.expect:
            raise RestoreRefused("the restore shown is no longer the latest one (another restore or undo happened "
                                 "since): nothing was changed", hint="look at what Undo offers now")
        op.note(undo_of=target.op, backup_id=target.safety_backup_id, undone_backup_id=target.backup_id,
                collections=target.collections)
        ro = RestoreOptions(mode="replace", confirmed=options.confirmed, dry_run=options.dry_run, user=options.user,
                            lock_timeout=options.lock_timeout, jobs=options.jobs, undo_of=target.op)
        result = restore_backup(db, store, target.safety_backup_id, ro, options.progress)  # type: ignore[arg-type]
        return UndoResult(target, target.safety_backup_id, options.dry_run, result)  # type: ignore[arg-type]


__all__ = ["RestoreRecord", "UndoOptions", "UndoResult", "find_latest", "plan_undo", "undo", "latest_undoable",
           "recent_restores"]
