"""Single runs: one scheduled backup (then its archive rules), one clean-up, the "back up if due" check,
one round of restore drills.

Each run goes through the operation layer (audited, locked) like any other
backup or clean-up, and is recorded in the scheduler's history and
statistics (``history.append_history``). A run never raises: a failure is
recorded, an unattended one is notified (``backup_core.notify``: one message
per failure streak, one on recovery), and the next run tries again. A backup
refused by the scheduler's lease fence (``lease.LeaseLost``: another
scheduler took over) is recorded as ``skipped``, not as a failure.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable

from .. import notify
from ..backup import SIDE_TRIGGERS, BackupOptions, create_backup
from ..config import Settings
from ..context import open_operation, open_store
from ..errors import BackupError, DatabaseUnavailable
from ..mirror import copy_backups
from ..retention import CleanupResult, cleanup
from ..timeutil import format_duration, utc_now
from .archive_rules import run_archive_rules
from .config import ScheduleConfig, load_config
from .history import append_history, history_entry
from .lease import LeaseLost

log = logging.getLogger(__name__)

SCHEDULER_USER = "scheduler"
# A scheduled backup waits this long for a manual backup/restore to release the root lock;
# if it is still busy the run is recorded as failed and retried at the next interval.
BACKUP_LOCK_TIMEOUT = 60.0
UNATTENDED = ("scheduled",)  # triggers nobody watches: their failures are notified


def _manifest_trigger(trigger: str) -> str:
    # the manifest knows manual/scheduled/safety; the history keeps finer triggers
    return "manual" if trigger == "manual" else "scheduled"


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"


def failure_kind(exc: BaseException, kind: str) -> str:
    """The notification streak a failure belongs to: an unreachable database is its own kind."""
    return "database" if isinstance(exc, DatabaseUnavailable) else kind


def current_config(settings: Settings) -> ScheduleConfig:
    """The saved schedule, or the defaults when the database cannot say (the run then reports why)."""
    try:
        return load_config(settings)
    except DatabaseUnavailable:
        return ScheduleConfig()


def run_scheduled_backup(settings: Settings, trigger: str = "scheduled", *, user: str = SCHEDULER_USER,
                         fence: Callable[[str], None] | None = None, unattended: bool | None = None,
                         config: ScheduleConfig | None = None) -> dict:
    """One run: backup, history, notification, then a size-triggered clean-up. Returns the history entry.

    ``fence`` is called right before the backup commits (the lease check of
    the scheduler); ``unattended`` (default: a ``scheduled`` trigger) sends
    failure and recovery notifications.
    """
    unattended = trigger in UNATTENDED if unattended is None else unattended
    config = config or current_config(settings)
    started = utc_now()
    t0 = time.monotonic()
    options = BackupOptions(trigger=_manifest_trigger(trigger), user=user, interval_hours=config.interval_hours,
                            lock_timeout=BACKUP_LOCK_TIMEOUT, fence=fence)
    try:
        with open_operation(settings.with_user(user), "backup", lock_timeout=BACKUP_LOCK_TIMEOUT,
                            details={"database": settings.db_name, "scheduler_trigger": trigger,
                                     **options.audit_details()}) as ctx:
            result = create_backup(ctx.db, ctx.store, options)
    except LeaseLost as exc:
        log.warning("scheduled backup not committed: %s", exc)
        entry = history_entry("backup", trigger, started, time.monotonic() - t0, "skipped", error=str(exc),
                              aborted_backup_id=exc.backup_id)
        append_history(settings, entry)
        return entry
    except Exception as exc:  # noqa: BLE001 - a scheduler must survive anything and say what happened
        if not isinstance(exc, BackupError):
            log.exception("scheduled backup failed")
        entry = history_entry("backup", trigger, started, time.monotonic() - t0, "error", error=_error_text(exc))
        recorded = append_history(settings, entry)
        if unattended:
            notify.event(settings, failure_kind(exc, "backup"), ok=False, error=entry["error"],
                         offline=not recorded and isinstance(exc, DatabaseUnavailable))
        return entry
    entry = history_entry("backup", trigger, started, time.monotonic() - t0, "ok", backup_id=result.backup_id,
                          counts={n: c.count for n, c in result.collections.items()}, bytes=result.total_bytes,
                          point_in_time=bool((result.consistency or {}).get("point_in_time")),
                          warnings=result.warnings or None)
    append_history(settings, entry)
    for kind in ("database", "backup"):  # any successful backup ends these streaks
        notify.event(settings, kind, ok=True, details={"new_backup": result.backup_id})
    if unattended or not result.warnings:
        # an emptied or shrunk database: told once per streak (nobody watches an unattended run)
        notify.event(settings, "data", ok=not result.warnings, error="; ".join(result.warnings) or None,
                     details={"new_backup": result.backup_id})
    if settings.mirror_root:
        push_to_mirror(settings, trigger, unattended=unattended)
    if config.archive_rules:
        run_archive_rules(settings, config.rules(), user=user, trigger=trigger, unattended=unattended)
    if config.max_root_bytes:
        _size_cleanup(settings, config)
    return entry


def push_to_mirror(settings: Settings, trigger: str = "scheduled", *, unattended: bool = True) -> dict:
    """Copy every backup the mirror (``BACKUP_MIRROR_ROOT``) lacks; a failure is recorded and notified."""
    started = utc_now()
    t0 = time.monotonic()
    try:
        result = copy_backups(open_store(settings), open_store(settings, settings.mirror_root), None,
                              user=SCHEDULER_USER, all_missing=True)
    except Exception as exc:  # noqa: BLE001 - the mirror must never stop the backups themselves
        entry = history_entry("mirror", trigger, started, time.monotonic() - t0, "error", error=_error_text(exc),
                              mirror=settings.mirror_root)
        append_history(settings, entry)
        if unattended:
            notify.event(settings, "mirror", ok=False, error=f"copying to {settings.mirror_root}: {entry['error']}")
        return entry
    entry = history_entry("mirror", trigger, started, time.monotonic() - t0, "ok",
                          counts={"copied": len(result.copied)}, copied=result.copied, mirror=settings.mirror_root)
    append_history(settings, entry)
    notify.event(settings, "mirror", ok=True, details={"copied": len(result.copied)})
    return entry


def _size_cleanup(settings: Settings, config: ScheduleConfig) -> None:
    try:
        usage = open_store(settings).usage()
    except (OSError, BackupError):
        return
    if usage > (config.max_root_bytes or 0):
        run_cleanup(settings, config, user=SCHEDULER_USER, trigger="size", extra={"root_bytes": usage})


def run_cleanup(settings: Settings, config: ScheduleConfig, *, user: str, trigger: str,
                extra: dict | None = None, raise_errors: bool = False,
                expect: list[str] | None = None) -> CleanupResult | None:
    unattended = trigger in ("weekly", "size")
    started = utc_now()
    t0 = time.monotonic()
    try:
        result = cleanup(open_store(settings), config.retention_policy(), user=user, trigger=trigger, expect=expect)
    except Exception as exc:  # noqa: BLE001
        entry = history_entry("cleanup", trigger, started, time.monotonic() - t0, "error",
                              error=_error_text(exc), **(extra or {}))
        append_history(settings, entry)
        if unattended:
            notify.event(settings, failure_kind(exc, "cleanup"), ok=False, error=entry["error"])
        if raise_errors:
            raise
        log.warning("scheduled clean-up failed: %s", _error_text(exc))
        return None
    from ..drill import sweep_leftovers  # late: the drill imports restore and compare

    dropped, _error = sweep_leftovers(settings)  # what killed restore drills left
    append_history(settings, history_entry(
        "cleanup", trigger, started, time.monotonic() - t0, "ok",
        counts={"deleted": len(result.deleted), "kept": result.kept}, deleted=result.deleted,
        freed_bytes=result.freed_bytes, retention_days=config.retention_days,
        drill_databases_dropped=dropped or None, **(extra or {})))
    notify.event(settings, "cleanup", ok=True, details={"deleted": len(result.deleted)})
    return result


def run_cleanup_now(settings: Settings, user: str, expect: list[str] | None = None) -> CleanupResult:
    """Clean up with the saved policy now (the dashboard's button); raises on failure.

    ``expect``: the backups the preview the person confirmed would delete (see ``retention.cleanup``).
    """
    return run_cleanup(settings, load_config(settings), user=user, trigger="manual", raise_errors=True,
                       expect=expect)


def auto_backup_check(settings: Settings, user: str, *, unattended: bool = False) -> dict:
    """Back up only if the last backup is older than the interval (the seed's auto-backup check).

    ``unattended``: run by cron (``scheduler --check``), so a failure is notified.
    """
    config = load_config(settings)
    # a safety, pre-write or archive backup holds part of the data: it does not make a backup unneeded
    backups = [b for b in open_store(settings).list_backups() if b.trigger not in SIDE_TRIGGERS]
    if backups:
        newest = backups[0]
        age = utc_now() - newest.created
        if age < config.interval:
            return {"ran": False, "backup_id": None, "last_backup_id": newest.backup_id,
                    "message": (f"backup not needed: last backup {newest.backup_id} "
                                f"({format_duration(age.total_seconds())} old) is newer than the interval of "
                                f"{config.interval_hours:g} h")}
    entry = run_scheduled_backup(settings, trigger="check", user=user, unattended=unattended, config=config)
    if entry["outcome"] == "ok":
        return {"ran": True, "backup_id": entry["backup_id"], "outcome": "ok",
                "message": f"backup {entry['backup_id']} created"}
    return {"ran": True, "backup_id": None, "outcome": "error", "error": entry["error"],
            "message": f"backup failed: {entry['error']}"}


def scheduled_drills(settings: Settings, *, rng: random.Random | None = None) -> list[dict]:
    """The scheduler's drill job: the newest backup, then one older backup picked at random.

    Never raises: each drill is recorded in the scheduler's history (kind
    ``drill``) and a failure notified; returns the history entries.
    """
    from ..drill import DRILL_LOCK_TIMEOUT, DrillFailed, drill_backup  # late: the drill imports compare

    sched = settings.with_user(SCHEDULER_USER)
    started = utc_now()
    try:
        backups = open_store(sched).list_backups()
    except BackupError as exc:
        entry = history_entry("drill", "scheduled", started, 0.0, "error", error=str(exc))
        append_history(sched, entry)
        notify.event(sched, failure_kind(exc, "drill"), ok=False, error=str(exc))
        return [entry]
    picks = backups[:1]
    if len(backups) > 1:
        picks.append((rng or random.Random()).choice(backups[1:]))
    entries = []
    for info in picks:
        started, t0 = utc_now(), time.monotonic()
        try:
            result = drill_backup(sched, info.backup_id, trigger="scheduled", lock_timeout=DRILL_LOCK_TIMEOUT)
            entry = history_entry("drill", "scheduled", started, time.monotonic() - t0, "ok",
                                  backup_id=info.backup_id, counts={"documents": result.documents},
                                  restore_s=round(result.restore_s, 3))
        except DrillFailed as exc:  # kept and notified by drill_backup
            entry = history_entry("drill", "scheduled", started, time.monotonic() - t0, "error",
                                  backup_id=info.backup_id, error=str(exc).splitlines()[0],
                                  failures=exc.result.failures())
        except Exception as exc:  # noqa: BLE001 - a scheduler must survive anything and say what happened
            if not isinstance(exc, BackupError):
                log.exception("scheduled drill failed")
            text = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
            entry = history_entry("drill", "scheduled", started, time.monotonic() - t0, "error",
                                  backup_id=info.backup_id, error=text)
            notify.event(sched, failure_kind(exc, "drill"), ok=False, error=f"drill of {info.backup_id}: {text}")
        append_history(sched, entry)
        entries.append(entry)
    return entries
