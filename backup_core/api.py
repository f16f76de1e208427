"""The Python API: everything the CLI does, for a host application's own code (docs/API.md).

``BackupSystem`` is an entry point like the CLI and the dashboard: settings as
the CLI reads them (arguments, then the environment, then
``.streamlit/secrets.toml``), one audited operation per call through the same
operation layer (``context.open_operation``: lock, sweep, audit with the
given user), the product's error classes, and the typed results the CLI
prints (``to_json()`` is the CLI's ``--json``). The CLI's commands call these
methods, so the two cannot drift apart.

Long-running hosts: one ``BackupSystem`` may serve many threads (a Streamlit
app's sessions). It holds one MongoDB client (thread-safe, made on first use)
and opens the backup store per call; operations of different threads
serialise on the root's lock as those of different processes do. ``close()``
(or leaving a ``with`` block) closes the client; a later call connects again.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator

from .archive import ArchiveOptions, ArchiveResult, ArchiveRule, run_archive
from .backup import BackupOptions, BackupResult, backup_before_change, create_backup
from .jobs import default_jobs
from .compare import CompareResult, compare_backup
from .config import Settings
from .context import open_context, open_operation, open_store
from .errors import CONFIRM_HINT, DatabaseUnavailable, IntegrityError, RestoreRefused, UsageError, WriteFailed
from .retention import CleanupResult, RetentionPolicy, cleanup as run_cleanup
from .restore import RestoreOptions, RestoreResult, restore_backup
from .status import StatusResult, system_status
from .store import BackupInfo, VerifyResult
from .timeutil import parse_duration
from .undo import RestoreRecord, UndoOptions, UndoResult, latest_undoable, recent_restores, undo as run_undo

Progress = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_total)"""

MAX_META_BYTES = 16 * 1024  # caller metadata of a pre-write backup: a few fields, not a payload


@dataclass
class PreWriteBackup:
    """What ``before_write`` yields: the backup that holds the collections as they were before the write."""

    backup_id: str
    collections: list[str]
    reason: str | None = None
    meta: dict = field(default_factory=dict)  # the caller's metadata, as recorded (JSON dialect)
    absent: list[str] = field(default_factory=list)  # named collections that did not exist yet
    backup: BackupResult | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "collections": self.collections, "reason": self.reason,
                "meta": self.meta, "absent": self.absent}


class BackupSystem:
    """Back up, verify, compare, restore, clean up, archive, and guard writes, from Python.

    ``uri``, ``db``, ``root``: as ``--uri``, ``--db``, ``--root``; None takes
    ``MONGODB_URI`` / ``MONGODB_DB`` / ``BACKUP_ROOT`` from the environment or
    ``.streamlit/secrets.toml``, then the defaults (the embedded server,
    ``equipment_db``, ``./restore_data_to_db``). ``user``: who the audit log
    names for every call (default: the operating-system user).
    """

    def __init__(self, uri: str | None = None, db: str | None = None, root: str | None = None,
                 user: str | None = None, *, key_file: str | None = None) -> None:
        settings = Settings.load(uri=uri, db=db, root=root, key_file=key_file)
        self._init(settings.with_user(_check_user(user)) if user is not None else settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> "BackupSystem":
        """A system for already loaded ``Settings`` (the user included): what the CLI's commands use."""
        system = cls.__new__(cls)
        system._init(settings)
        return system

    def _init(self, settings: Settings, client: "_SharedClient | None" = None) -> None:
        self._settings = settings
        self._client = client or _SharedClient()

    def as_user(self, user: str) -> "BackupSystem":
        """The same system acting for ``user`` (audited as them), sharing this one's MongoDB client.

        A host app serving several people keeps one ``BackupSystem`` and calls
        ``as_user(name)`` per request or session.
        """
        other = BackupSystem.__new__(BackupSystem)
        other._init(self._settings.with_user(_check_user(user)), self._client)
        return other

    # ------------------------------------------------------------------ resources

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def user(self) -> str:
        return self._settings.user

    def _connection(self, settings: Settings) -> Any:
        """The shared connection (made on first use): the ``connector`` of every context."""
        return self._client.get(self._settings)

    def close(self) -> None:
        """Close the MongoDB client (shared with ``as_user`` views); a later call connects again."""
        self._client.close()

    def __enter__(self) -> "BackupSystem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _operation(self, action: str, **kw: Any) -> Iterator[Any]:
        try:
            with open_operation(self._settings, action, connector=self._connection, **kw) as ctx:
                yield ctx
        except DatabaseUnavailable:
            self._forget_connection()
            raise

    @contextlib.contextmanager
    def _context(self) -> Iterator[Any]:
        try:
            with open_context(self._settings, connector=self._connection) as ctx:
                yield ctx
        except DatabaseUnavailable:
            self._forget_connection()
            raise

    def _forget_connection(self) -> None:
        # the server went away (an embedded server may come back on another port): connect afresh
        # next time; a thread still using the old client gets its own error, as it would anyway
        if self._settings.embedded:
            self.close()


    # ------------------------------------------------------------------ reading

    def backups(self) -> list[BackupInfo]:
        """Committed backups, newest first (each with ``backup_id``, ``created_at``, ``trigger``, ...)."""
        return open_store(self._settings).list_backups()

    def backup_info(self, backup_id: str) -> BackupInfo:
        """One backup's manifest (``BackupNotFound`` when there is none)."""
        return open_store(self._settings).get(backup_id)

    def verify(self, backup_id: str, *, quick: bool = False) -> VerifyResult:
        """Recompute every hash (and, unless ``quick``, decode every row); ``IntegrityError`` on any problem."""
        result = open_store(self._settings).verify(backup_id, deep=not quick)
        if not result.ok:
            raise IntegrityError(f"backup {backup_id} does not verify: {'; '.join(result.problems)}",
                                 payload=result.to_json())
        return result

    def compare(self, backup_id: str, collections: list[str] | None = None, *, match_field: str = "_id",
                show: int = 0) -> CompareResult:
        """Backup against live data per collection; ``show`` keeps that many differing documents each."""
        if not isinstance(show, int) or isinstance(show, bool) or show < 0:
            raise UsageError("show must be a whole number of 0 or more (--show)")
        with self._context() as ctx:
            return compare_backup(ctx.db, ctx.store, backup_id, _names(collections), match_field=match_field,
                                  show=show)

    def status(self) -> StatusResult:
        """Database, collections, newest backup, scheduler, storage, leftovers (as ``status``)."""
        try:
            return system_status(self._settings, connector=self._connection)
        except DatabaseUnavailable:
            self._forget_connection()
            raise

    # ------------------------------------------------------------------ changing data

    def backup(self, collections: list[str] | None = None, *, compress: bool = False, jobs: int | None = None,
               progress: Progress | None = None) -> BackupResult:
        """A new backup of the database (or of ``collections``); ``jobs``: collections at a time."""
        options = BackupOptions(collections=_names(collections), compress=compress, trigger="manual",
                                user=self.user, jobs=jobs if jobs is not None else default_jobs())
        # the operation starts (and is audited) before the database is reached
        with self._operation("backup", details={"database": self._settings.db_name,
                                                **options.audit_details()}) as ctx:
            return create_backup(ctx.db, ctx.store, options, progress=progress)

    def restore(self, backup_id: str, mode: str = "replace", *, dry_run: bool = True, confirm: bool = False,
                collections: list[str] | None = None, strategy: str = "backup-wins", match_field: str = "_id",
                ids: list | None = None, allow_other_db: bool = False, allow_destructive_options: bool = False,
                jobs: int | None = None, progress: Progress | None = None) -> RestoreResult:
        """Restore a backup (``replace`` or ``merge``); a dry run (the default) changes nothing.

        ``dry_run=False`` needs ``confirm=True``, or ``RestoreRefused`` is raised
        before anything is touched. A real restore first takes a safety backup
        (``result.safety_backup_id``); restoring that in replace mode undoes it.
        """
        settings = self._settings
        options = RestoreOptions(mode=mode, collections=_names(collections), strategy=strategy, dry_run=dry_run,
                                 confirmed=confirm, match_field=match_field, ids=ids, allow_other_db=allow_other_db,
                                 allow_destructive_options=allow_destructive_options, user=self.user,
                                 jobs=jobs if jobs is not None else default_jobs())
        action = "restore_dry_run" if dry_run else "restore"
        details = {"backup_id": backup_id, "database": settings.db_name, **options.audit_details()}
        if not confirm and not dry_run:
            # refused before connecting to anything or taking the lock; still on the record
            with open_operation(settings, action, details=details, lock=False):
                raise RestoreRefused("restore needs confirmation: nothing was changed", hint=CONFIRM_HINT)
        with self._operation(action, details=details) as ctx:
            return restore_backup(ctx.db, ctx.store, backup_id, options, progress)

    def undo(self, *, dry_run: bool = True, confirm: bool = False, expect: str | None = None,
             jobs: int | None = None, progress: Progress | None = None) -> UndoResult:
        """Undo the latest restore of the database (finished, failed or interrupted), as the dashboard's Undo
        and the CLI's ``undo`` do: only the collections it touched are put back, from the safety backup its
        own manifest names. A dry run (the default) gives the counts and changes nothing; ``dry_run=False``
        needs ``confirm=True``. ``expect``: the operation id of the restore the caller showed (``RestoreRefused``
        if another restore is the latest by now). Refused (``RestoreRefused``) when it cannot be undone safely.
        """
        action = "undo_dry_run" if dry_run else "undo"
        details = {"database": self._settings.db_name}
        if not confirm and not dry_run:
            # refused before connecting to anything or taking the lock; still on the record
            with open_operation(self._settings, action, details=details, lock=False):
                raise RestoreRefused("undo needs confirmation: nothing was changed",
                                     hint="add --dry-run to see what it would change, or --yes to undo")
        with self._operation(action, details=details) as ctx:
            return run_undo(ctx.db, ctx.store, UndoOptions(
                dry_run=dry_run, confirmed=confirm, user=self.user, expect=expect,
                jobs=jobs if jobs is not None else default_jobs(), progress=progress))

    def latest_restore(self) -> RestoreRecord | None:
        """The restore ``undo`` would act on, if it can be undone (None otherwise)."""
        return latest_undoable(open_store(self._settings), self._settings.db_name)

    def restores(self, limit: int = 20) -> list[RestoreRecord]:
        """Recent restores and undos of the database, newest first (from the audit log)."""
        return recent_restores(open_store(self._settings), limit, database=self._settings.db_name)

    def cleanup(self, policy: RetentionPolicy | None = None, *, dry_run: bool = False, save: bool = False,
                **rules: Any) -> CleanupResult:
        """Delete the backups the retention policy does not keep (``dry_run``: only say which, and why).

        ``policy`` or rules as keywords (``keep_last=24``, ``keep_daily=7``,
        ``older_than="7d"``, ``pre_write_days=3``, ...); with neither, the
        policy saved for the scheduler (or "older than 7 days"). ``save``
        stores the policy for the scheduler instead and deletes nothing.
        """
        from .scheduler import effective_policy, save_retention_policy

        if rules:
            if policy is not None:
                raise UsageError("give a policy or rules as keywords, not both")
            policy = policy_from_rules(rules)
        if save:
            if policy is None:
                raise UsageError("saving a policy needs its rules (e.g. --keep-daily 7 --keep-weekly 4; "
                                 "keep_daily=7, keep_weekly=4)")
            save_retention_policy(self._settings, policy, user=self.user)
            dry_run = True  # shows what the saved policy would delete
        result = run_cleanup(open_store(self._settings), effective_policy(self._settings, policy),
                             dry_run=dry_run, user=self.user)
        if not dry_run:
            from .drill import sweep_leftovers

            result.drill_databases_dropped, result.drill_error = sweep_leftovers(self._settings)
        return result

    def archive(self, collection: str, filter: "dict | str", *, dry_run: bool = True, confirm: bool = False,
                compress: bool = False, progress: Progress | None = None) -> ArchiveResult:
        """Back up the documents of ``collection`` matching ``filter``, verify that backup, delete exactly those.

        ``filter``: a query as a dict (Python values such as datetimes, or the
        JSON dialect's ``{"$date": ...}``) or JSON text. A dry run (the
        default) only counts; ``dry_run=False`` needs ``confirm=True``.
        Merge-restoring the archive backup brings the documents back.
        """
        options = ArchiveOptions(collection, filter, dry_run=dry_run, confirmed=confirm, user=self.user,
                                 compress=compress)
        try:
            return run_archive(self._settings, options, connector=self._connection, progress=progress)
        except DatabaseUnavailable:
            self._forget_connection()
            raise

    @contextlib.contextmanager
    def before_write(self, collections: "list[str] | str", reason: str | None = None, *,
                     meta: dict | None = None) -> Iterator[PreWriteBackup]:
        """Back up exactly ``collections`` before the block overwrites them (a pre-write backup).

        ``reason`` and ``meta`` (e.g. an upload's id and time) are recorded in
        the backup's manifest (``pre_write``) and in the audit log. The block
        runs only once the backup is committed. If it raises, nothing is
        undone automatically: ``WriteFailed`` is raised, naming the backup that
        restores the collections (replace mode), with the block's exception as
        its cause.
        """
        names = _names([collections] if isinstance(collections, str) else collections)
        if not names:
            raise UsageError("before_write needs the collections the write will change")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise UsageError("the reason of a pre-write backup must be text of at most 500 characters")
        recorded = _meta_json(meta)
        details = {"database": self._settings.db_name, "collections": names, "reason": reason,
                   "meta": recorded or None}
        with self._operation("pre-write", details=details, lock=False) as ctx:
            # the manifest names the write it was taken for (its audited operation) and what it may touch
            pre_write = {"reason": reason, "meta": recorded, "op": ctx.op.id, "collections": names}
            options = BackupOptions(trigger="pre-write", user=self.user, pre_write=pre_write)
            result = backup_before_change(ctx.db, ctx.store, names, options)
            ctx.op.note(backup_id=result.backup_id)
            absent = sorted(set(names) - set(result.collections))
            handle = PreWriteBackup(result.backup_id, names, reason, recorded, absent, result)
            try:
                yield handle
            except Exception as exc:
                what = f" ({reason})" if reason else ""
                raise WriteFailed(
                    f"the write{what} failed after pre-write backup {result.backup_id}: "
                    f"{type(exc).__name__}: {exc}; nothing was undone",
                    backup_id=result.backup_id,
                    hint=f"restore backup {result.backup_id} in replace mode to put {', '.join(names)} back as "
                         "they were before the write") from exc

    # ------------------------------------------------------------------ scheduled archive rules

    def archive_rules(self) -> list[ArchiveRule]:
        """The archive rules the scheduler runs after each backup."""
        from .scheduler import archive_rules

        return archive_rules(self._settings)

    def set_archive_rules(self, rules: list) -> list[ArchiveRule]:
        """Replace the archive rules (``ArchiveRule`` objects or their JSON); audited."""
        from .scheduler import save_archive_rules

        return save_archive_rules(self._settings, rules, user=self.user)

    def pending_archives(self) -> list:
        """Archives prepared by ``confirm`` rules, waiting for an admin (``PendingArchive``)."""
        from .scheduler import pending_archives

        return pending_archives(self._settings)

    def confirm_archive(self, pending_id: str, *, progress: Progress | None = None) -> ArchiveResult:
        """Run a pending archive exactly as it was prepared."""
        from .scheduler import confirm_archive

        return confirm_archive(self._settings, pending_id, user=self.user, connector=self._connection,
                               progress=progress)

    def dismiss_archive(self, pending_id: str):
        """Drop a pending archive without running it (audited)."""
        from .scheduler import dismiss_archive

        return dismiss_archive(self._settings, pending_id, user=self.user)


class _SharedClient:
    """One ``db.Connection`` for a ``BackupSystem`` and its ``as_user`` views, made on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._conn: Any = None

    def get(self, settings: Settings) -> Any:
        with self._guard:
            if self._conn is None:
                from .db import connect  # late: store-only calls need no driver set-up

                self._conn = connect(settings)
            return self._conn

    def close(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def policy_from_rules(rules: dict) -> RetentionPolicy:
    """A ``RetentionPolicy`` from keyword rules; durations may be text (``"7d"``) or ``timedelta``."""
    known = {"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_within",
             "older_than", "safety_days", "pre_write_days", "archive_days"}
    unknown = set(rules) - known
    if unknown:
        raise UsageError(f"unknown retention rule(s): {', '.join(sorted(unknown))}")
    given = dict(rules)
    for name in ("keep_within", "older_than"):
        value = given.get(name)
        if isinstance(value, str):
            given[name] = parse_duration(value, what=name)
        elif value is not None and not isinstance(value, timedelta):
            raise UsageError(f"{name} must be a duration such as '7d' or a timedelta")
    return RetentionPolicy(**given)


def _check_user(user: object) -> str:
    if not isinstance(user, str) or not user.strip() or len(user) > 200:
        raise UsageError(f"invalid user {user!r}: give the name the audit log should record")
    return user


def _names(collections: Any) -> list[str] | None:
    if collections is None:
        return None
    if isinstance(collections, str) or not all(isinstance(c, str) and c for c in collections):
        raise UsageError(f"collections must be a list of collection names, got {collections!r}")
    return list(dict.fromkeys(collections))


def _meta_json(meta: dict | None) -> dict:
    """The caller's metadata as JSON in the dialect (datetimes, ObjectIds, ... kept exactly)."""
    import json

    from .mongoutil import json_dialect

    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise UsageError("meta must be a dict with text keys (e.g. {'upload_id': ..., 'uploaded_at': ...})")
    try:
        recorded = json_dialect(meta)
    except Exception as exc:  # noqa: BLE001 - bson says which value it cannot hold
        raise UsageError(f"meta cannot be recorded: {exc}") from None
    if len(json.dumps(recorded)) > MAX_META_BYTES:
        raise UsageError(f"meta is larger than {MAX_META_BYTES // 1024} KiB: record a reference, not the data")
    return recorded
