"""Restore drills: prove that a backup restores, completely and exactly, and measure how long it takes.

"A backup you have never restored is not a backup." A drill restores one
backup into a scratch database that no one uses, proves the result, times it
and drops the scratch database. Per collection:

1. the stored data: every data object present with its size (a stat
   each). A missing one fails the collection without restoring it;
2. the restore, by the restore's own machinery: the documents read through
   the repository's hashing reader (each object proved against its SHA-256
   as it is read: a mismatch fails the collection) and decoded
   (``pairing.BackupIndex``, which also checks the count against the manifest
   and that no two documents share an ``_id``), then written by
   ``swapin.write_collection`` (the backup's options and indexes, the
   documents as raw BSON, in order) into the scratch database;
3. the proof: the restored collection holds the manifest's count; every
   document is byte-equal to the backup's, as decoded from the CSV (paired
   by ``_id``: none missing, none extra, none different); its indexes and
   collection options equal the manifest's (``compare.schema_differences``).

Step 2 is the time to restore, per collection and in total, with documents
per second; the proof is timed apart. A drill passes only when every
collection passed; each failing collection gets one line saying what
differed. What a drill proves and what it does not: docs/RELIABILITY.md.

Where. By default a new database on the live database's server, named
``drill_<database>_<backup id>_<random>`` (cut to MongoDB's 63 bytes);
``BACKUP_DRILL_URI`` (or ``--target-uri``) names another server and
``--target-db`` a name (which must start with ``drill_`` too). The live
database is never written: a target that is the live database, the metadata
database or a system database is refused, and so is a database that exists
and is not a registered drill database. The
scratch database is registered before anything is written
(``drill_registry``) and dropped at the end whatever happened; what a killed
drill leaves is dropped by the next drill or clean-up.

Locking. A drill only reads the backup root. It holds the root's lock in the
shared mode (``operation(..., lock="shared")``): backups may run meanwhile,
a clean-up waits until it ends. (Until the store has a shared lock, the lock
is taken exclusively.)

``run_drill`` is the core (a database, a store, options, progress);
``drill_backup`` is what the CLI, the scheduler and the dashboard call: it
opens everything from the settings, keeps the result (``drill_results``),
notifies a failure (``notify``, kind ``drill``) and raises ``DrillFailed``
when the backup did not restore exactly. The scheduler's drill job
(``scheduler.runs.scheduled_drills``) drills the newest backup and one older
one picked at random.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from pymongo import MongoClient
from pymongo.database import Database

from .compare import schema_differences
from .config import Settings, check_db_name, mask_uri
from .drill_registry import DRILL_PREFIX, SYSTEM_DATABASES, DrillRegistry, database_exists
from .errors import BackupError, BackupNotFound, ConfigError, RestoreRefused, UsageError
from .keys import key_text
from .mongoutil import translate_errors
from .operation import Operation, operation
from .progress import reporter
from .config import meta_name
from .pairing import BackupIndex
from .swapin import HEARTBEAT_S, write_collection
from .testseam import checkpoint
from .store import BackupInfo, Store
from .timeutil import now_iso

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_total): documents restored"""

MAX_DB_NAME_BYTES = 63  # MongoDB: database names have fewer than 64 characters
SAME_SERVER = "the database's own server"
PAUSE_PHASE = "drill-restored"  # test seam checkpoint: after a collection is restored, before its proof
DRILL_LOCK_TIMEOUT = 60.0  # a scheduled drill waits this long for a clean-up to release the root


class DrillFailed(BackupError):
    """A drill ran and the backup did not restore exactly; ``result`` says where (one line per collection)."""

    exit_code = 12

    def __init__(self, result: "DrillResult") -> None:
        failing = [c for c in result.collections.values() if not c.ok]
        what = (f"{len(failing)} of {len(result.collections)} collections did not restore as backed up"
                if failing else "the drill could not complete")
        self.headline = f"restore drill of backup {result.backup_id} FAILED: {what}"
        super().__init__("\n".join([self.headline, *result.failures()]), payload=result.to_json())
        self.result = result

    def lines(self) -> list[str]:
        return [self.headline, *self.result.failures()]  # one line per failing collection


@dataclass
class DrillOptions:
    target_db: str | None = None  # the scratch database's name (None: a new drill_... name)
    server: str = SAME_SERVER  # how the server restored into is shown (a masked URI)
    user: str = "unknown"
    trigger: str = "manual"  # manual / scheduled
    lock_timeout: float = 10.0


@dataclass
class CollectionDrill:
    name: str
    count: int  # documents in the backup (manifest)
    restored: int | None = None  # documents the restored collection held (None: not restored)
    restore_s: float = 0.0  # reading, decoding and writing
    prove_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def docs_per_s(self) -> float | None:
        if self.restored is None or self.restore_s <= 0:
            return None
        return round(self.count / self.restore_s, 1)

    def failure_line(self) -> str:
        return f"{self.name}: {'; '.join(self.problems)}"

    def to_json(self) -> dict:
        return {"ok": self.ok, "count": self.count, "restored": self.restored,
                "restore_s": round(self.restore_s, 3), "docs_per_s": self.docs_per_s,
                "prove_s": round(self.prove_s, 3), "problems": self.problems}


@dataclass
class DrillResult:
    backup_id: str
    root: str
    database: str  # the live database (the scratch database is named after it)
    target: str  # the scratch database
    server: str
    trigger: str = "manual"
    user: str = "unknown"
    started_at: str = ""
    finished_at: str = ""
    collections: dict[str, CollectionDrill] = field(default_factory=dict)
    restore_s: float = 0.0
    duration_s: float = 0.0
    dropped: bool = False  # the scratch database was dropped at the end
    error: str | None = None  # what stopped the drill outside any one collection
    swept: list[str] = field(default_factory=list)  # drill databases of killed drills, dropped first

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.collections.values())

    @property
    def documents(self) -> int:
        return sum(c.count for c in self.collections.values())

    @property
    def docs_per_s(self) -> float | None:
        return round(self.documents / self.restore_s, 1) if self.restore_s > 0 else None

    def failures(self) -> list[str]:
        """One line per failing collection (and one for a failure outside them)."""
        lines = [c.failure_line() for c in self.collections.values() if not c.ok]
        return lines + ([f"drill: {self.error}"] if self.error else [])

    def summary(self) -> dict:
        """What is kept as the backup's last drill (``drill_results``) and audited."""
        return {"backup_id": self.backup_id, "ok": self.ok, "at": self.finished_at, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 3), "restore_s": round(self.restore_s, 3),
                "documents": self.documents, "docs_per_s": self.docs_per_s, "failures": self.failures(),
                "trigger": self.trigger, "user": self.user, "target": self.target, "server": self.server}

    def to_json(self) -> dict:
        return {**self.summary(), "root": self.root, "database": self.database, "dropped": self.dropped,
                "swept": self.swept, "error": self.error,
                "collections": {n: c.to_json() for n, c in self.collections.items()}}

    def to_text(self) -> str:
        rate = f" ({self.docs_per_s:,.0f} documents/s)" if self.docs_per_s else ""
        head = (f"restore drill of backup {self.backup_id}: {'PASSED' if self.ok else 'FAILED'}: "
                f"{self.documents} documents restored in {self.restore_s:.2f} s{rate}, "
                f"{self.duration_s:.2f} s in all")
        lines = [head]
        for c in self.collections.values():
            speed = f", {c.docs_per_s:,.0f} documents/s" if c.docs_per_s else ""
            state = "ok" if c.ok else "FAILED: " + "; ".join(c.problems)
            lines.append(f"  {c.name}: {c.count} documents, restored in {c.restore_s:.2f} s{speed}, "
                         f"proven in {c.prove_s:.2f} s: {state}")
        if self.error:
            lines.append(f"  FAILED: {self.error}")
        lines.append(f"scratch database {self.target} on {self.server} "
                     + ("dropped" if self.dropped else "NOT dropped (the next drill or clean-up drops it)"))
        if self.swept:
            lines.append(f"dropped first, left by killed drills: {', '.join(self.swept)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# The scratch database's name and the refusals


def scratch_name(database: str, backup_id: str) -> str:
    """``drill_<database>_<backup id>_<random>``, the database part cut so the whole fits MongoDB's limit."""
    suffix = f"_{backup_id}_{secrets.token_hex(3)}"
    room = MAX_DB_NAME_BYTES - len(DRILL_PREFIX) - len(suffix.encode())
    base = database.encode()[:max(room, 0)].decode(errors="ignore")
    return DRILL_PREFIX + base + suffix


def _check_target(db: Database, client: MongoClient, registry: DrillRegistry, name: str, meta_db: str) -> None:
    """Refuse any target but a new database or a registered drill database (before anything is written)."""
    try:
        check_db_name(name)
    except ConfigError:
        raise UsageError(f"invalid drill database name {name!r}") from None
    if name.casefold() == db.name.casefold():
        raise RestoreRefused(f"refusing to drill into {name}: it is the live database; nothing was written",
                             hint="leave out --target-db: a drill makes a scratch database of its own")
    if name.casefold() in {n.casefold() for n in (*SYSTEM_DATABASES, meta_db, meta_name(db.name))}:
        raise RestoreRefused(f"refusing to drill into {name}: it is a system or metadata database; "
                             "nothing was written")
    if not name.startswith(DRILL_PREFIX):
        raise UsageError(f"a drill database's name starts with {DRILL_PREFIX!r}: {name!r} does not",
                         hint=f"give --target-db {DRILL_PREFIX}{name}")
    if database_exists(client, name) and not registry.is_registered(name):
        raise RestoreRefused(f"refusing to drill into {name}: the database exists and is not a drill database; "
                             "nothing was written", hint="give a database name that does not exist")


# --------------------------------------------------------------------------
# The core


def run_drill(db: Database, store: Store, backup_id: str, options: DrillOptions | None = None,
              progress: Progress | None = None, *, target: MongoClient | None = None,
              meta_db: str | None = None) -> DrillResult:
    """Drill ``backup_id`` of ``store`` into a scratch database on ``target`` (default: ``db``'s server).

    ``db`` is the live database: it names the scratch database and is never
    written. Raises ``DrillFailed`` (with the result) when the backup did not
    restore exactly; refusals (unknown backup, missing key, refused target)
    raise before anything is written.
    """
    o = options or DrillOptions()
    with operation(store, "drill", user=o.user, lock="shared", lock_timeout=o.lock_timeout, meta_db=meta_db,
                   details={"backup_id": backup_id, "database": db.name, "trigger": o.trigger,
                            "server": o.server}) as op:
        result = _drill(db, store, backup_id, o, progress, target or db.client,
                        meta_db or op.meta_db or meta_name(db.name), op)
        op.note(**{k: v for k, v in result.summary().items() if k not in ("trigger", "user", "server")},
                dropped=result.dropped, swept_drills=result.swept or None)
        if not result.ok:
            raise DrillFailed(result)
        return result


def _drill(db: Database, store: Store, backup_id: str, o: DrillOptions, progress: Progress | None,
           client: MongoClient, meta_db: str, op: Operation) -> DrillResult:
    started = time.monotonic()
    info = store.get(backup_id)  # an unknown id, an unreadable manifest or a missing key: refused here
    registry = DrillRegistry(client, meta_db)
    swept = registry.sweep()
    name = o.target_db or scratch_name(db.name, info.backup_id)
    _check_target(db, client, registry, name, meta_db)
    result = DrillResult(info.backup_id, store.url, db.name, name, o.server, o.trigger, o.user, now_iso(),
                         swept=swept)
    result.collections = {n: CollectionDrill(n, info.collection(n).count) for n in info.collections}
    registry.register(name, op_id=op.id, backup_id=info.backup_id, source_db=db.name, root=store.url)
    try:
        _restore_all(store, info, result, client[name], registry, o, progress)
    except BackupError as exc:  # the store or the target failed outside one collection's restore
        result.error = str(exc)
    finally:
        try:
            registry.drop(name)
            result.dropped = True
        except BackupError as exc:  # the registry keeps it: the next drill or clean-up drops it
            log.warning("cannot drop drill database %s: %s", name, exc)
    result.restore_s = sum(c.restore_s for c in result.collections.values())
    result.duration_s = time.monotonic() - started
    result.finished_at = now_iso()
    return result


def _restore_all(store: Store, info: BackupInfo, result: DrillResult, scratch: Database, registry: DrillRegistry,
                 o: DrillOptions, progress: Progress | None) -> None:
    reporter(progress, "checking the stored data")
    # present, of the right size (a stat per object); every byte is then proved as it is read to restore
    stored = {n: store.presence_problem(info, n) or "ok" for n in info.collections}
    writing = reporter(progress, "restoring", main=True)
    beat = _Heartbeat(registry, scratch.name)
    for n, c in result.collections.items():
        status = stored[n]
        if status != "ok":
            c.problems.append(_stored_problem(status, info, n))
            continue
        if n.startswith("system."):
            c.problems.append("cannot be restored: system collection")
            continue
        _restore_and_prove(store, info, c, scratch, writing, beat)
        checkpoint(PAUSE_PHASE)
        beat()


class _Heartbeat:
    """Tells the registry the drill is alive, at most every ``HEARTBEAT_S``."""

    def __init__(self, registry: DrillRegistry, name: str) -> None:
        self.registry, self.name, self.last = registry, name, time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last > HEARTBEAT_S:
            self.registry.heartbeat(self.name)
            self.last = time.monotonic()


def _stored_problem(status: str, info: BackupInfo, name: str) -> str:
    entry = info.collection(name)
    if status.startswith("missing"):
        return f"missing object: the stored data of this collection ({entry.file}) is not in the backup root"
    if "sha256" in status:
        return "hash mismatch: the stored data does not match its SHA-256 in the manifest"
    if "size" in status:
        return f"size mismatch: {status}"
    return f"stored data unusable: {status}"


def _restore_and_prove(store: Store, info: BackupInfo, c: CollectionDrill, scratch: Database,
                       progress: Progress | None, beat: Callable[[], None]) -> None:
    entry = info.collection(c.name)
    started = time.monotonic()
    try:
        with BackupIndex(store, info, c.name, "_id") as index:
            c.restored = write_collection(scratch, entry, c.name, index.iter_documents(), index.count, progress,
                                          heartbeat=beat)
            c.restore_s = time.monotonic() - started
            proving = time.monotonic()
            c.problems += _prove(scratch, info, c, index)
            c.prove_s = time.monotonic() - proving
    except BackupError as exc:
        if c.restored is None:
            c.restore_s = time.monotonic() - started
        text = str(exc)
        # the hashing reader proves each object as the restore reads it
        c.problems.append(_stored_problem("sha256" if "sha256 mismatch" in text else text, info, c.name)
                          if "mismatch" in text or "in the manifest" in text else f"restore failed: {text}")


def _prove(scratch: Database, info: BackupInfo, c: CollectionDrill, index: BackupIndex) -> list[str]:
    problems = []
    if c.restored != c.count:
        problems.append(f"count: {c.restored} documents after the restore, the backup holds {c.count}")
    differing: dict[str, list] = {"only_in_backup": [0, None], "only_in_live": [0, None], "changed": [0, None]}
    for pair in index.pairs(scratch):
        if pair.status != "identical":
            tally = differing[pair.status]
            tally[0] += 1
            if tally[1] is None:
                tally[1] = key_text(pair.doc_key("_id"))
    for status, words in (("only_in_backup", "missing after the restore"),
                          ("changed", "not byte-equal to the backup"),
                          ("only_in_live", "restored but not in the backup")):
        n, first = differing[status]
        if n:
            problems.append(f"documents: {n} {words} (first: _id {first})")
    with translate_errors(f"reading the options of restored collection {c.name}"):
        found = next(iter(scratch.list_collections(filter={"name": c.name})), None)
    indexes, options = schema_differences(scratch, info, c.name, dict((found or {}).get("options") or {}))
    for what, diff in (("index", indexes), ("option", options)):
        parts = [f"{label} {', '.join(diff[key])}" for key, label in
                 (("added", "missing"), ("removed", "not in the backup:"), ("changed", "different"))
                 if diff[key]]
        if parts:
            problems.append(f"{what}: " + "; ".join(parts))
    return problems


# --------------------------------------------------------------------------
# The runner every entry point calls


@contextlib.contextmanager
def _target_client(settings: Settings, uri: str | None) -> Iterator[MongoClient | None]:
    """A client of the server to restore into (None: the database's own)."""
    if not uri:
        yield None
        return
    from dataclasses import replace

    from .db import connect  # late: connecting may start the embedded server

    try:
        conn = connect(replace(settings, uri=uri))
    except BackupError as exc:
        exc.hint = "check --target-uri / BACKUP_DRILL_URI"
        raise
    try:
        yield conn.client
    finally:
        conn.close()


def newest_backup(store: Store) -> str:
    backups = store.list_backups()
    if not backups:
        raise BackupNotFound(f"no backups in {store.url} to drill", hint="run `python -m backup_core backup` first")
    return backups[0].backup_id


def drill_backup(settings: Settings, backup_id: str | None = None, *, target_uri: str | None = None,
                 target_db: str | None = None, trigger: str = "manual", progress: Progress | None = None,
                 lock_timeout: float = 10.0) -> DrillResult:
    """Drill ``backup_id`` (None: the newest backup) of the configured root; keep and report the result.

    The target server is ``target_uri``, else ``BACKUP_DRILL_URI``, else the
    database's own. Raises ``DrillFailed`` (after keeping the result and
    notifying) when the backup did not restore exactly.
    """
    from .context import open_operation  # late: context imports the store and the settings machinery

    uri = target_uri or settings.drill_uri
    server = mask_uri(uri) if uri else SAME_SERVER
    options = DrillOptions(target_db=target_db, server=server, user=settings.user, trigger=trigger,
                           lock_timeout=lock_timeout)
    details = {"backup_id": backup_id or "newest", "database": settings.db_name, "trigger": trigger,
               "server": server}
    try:
        with open_operation(settings, "drill", details=details, lock="shared", lock_timeout=lock_timeout) as ctx:
            chosen = backup_id or newest_backup(ctx.store)
            with _target_client(settings, uri) as client:
                result = run_drill(ctx.db, ctx.store, chosen, options, progress, target=client,
                                   meta_db=settings.meta_db)
    except DrillFailed as exc:
        keep_result(settings, exc.result)  # (after the lock: a slow notification target delays nobody)
        raise
    keep_result(settings, result)
    return result


def keep_result(settings: Settings, result: DrillResult) -> None:
    """The backup's last drill result in the metadata database, and a notification of a failure (or the
    recovery after one)."""
    from . import drill_results, notify

    drill_results.record(settings, result.summary())
    notify.event(settings, "drill", ok=result.ok, error="; ".join(result.failures()) or None,
                 details={"backup": result.backup_id,
                          "restore_took": f"{result.restore_s:.2f} s" if result.ok else None})


# --------------------------------------------------------------------------
# Leftovers of killed drills (status shows them, clean-up and the next drill drop them)


@contextlib.contextmanager
def _drill_servers(settings: Settings, client: MongoClient) -> Iterator[list[tuple[str, MongoClient]]]:
    """(how it is shown, client) of every server drills write to: the database's own, and BACKUP_DRILL_URI's."""
    servers = [(SAME_SERVER, client)]
    with contextlib.ExitStack() as stack:
        if settings.drill_uri:
            servers.append((mask_uri(settings.drill_uri),
                            stack.enter_context(_target_client(settings, settings.drill_uri))))
        yield servers  # type: ignore[misc]


def leftover_databases(settings: Settings, client: MongoClient) -> list[dict]:
    """Drill databases that exist now on any drill server (``server`` says which); errors as entries."""
    out: list[dict] = []
    try:
        with _drill_servers(settings, client) as servers:
            for shown, c in servers:
                try:
                    out += [{**e, "server": shown} for e in DrillRegistry(c, settings.meta_db).leftovers()]
                except BackupError as exc:
                    out.append({"server": shown, "error": str(exc)})
    except BackupError as exc:  # BACKUP_DRILL_URI cannot be reached
        out.append({"server": mask_uri(settings.drill_uri), "error": str(exc)})
    return out


def sweep_databases(settings: Settings, client: MongoClient) -> list[str]:
    """Drop the drill databases of killed drills on every drill server; returns their names."""
    dropped: list[str] = []
    with _drill_servers(settings, client) as servers:
        for _shown, c in servers:
            dropped += DrillRegistry(c, settings.meta_db).sweep()
    return dropped


def sweep_leftovers(settings: Settings, timeout_ms: int = 2000) -> tuple[list[str], str | None]:
    """What clean-ups call: drop the drill databases of killed drills. Never raises: (dropped, error)."""
    from .db import connect

    try:
        with connect(settings, timeout_ms=timeout_ms) as conn:
            return sweep_databases(settings, conn.client), None
    except BackupError as exc:
        return [], str(exc)


__all__ = ["DrillOptions", "DrillResult", "CollectionDrill", "DrillFailed", "run_drill", "drill_backup",
           "keep_result", "scratch_name", "newest_backup", "leftover_databases",
           "sweep_databases", "sweep_leftovers", "DRILL_PREFIX", "PAUSE_PHASE"]
