"""Single runs: one scheduled backup, one clean-up, the "back up if due" check.

Each run goes through the operation layer (audited, locked) like any other
backup or clean-up, and adds a line to the scheduler's history. A scheduled
run never raises: a failure is recorded and the next run tries again.
"""

from __future__ import annotations

import logging
import time

from ..backup import BackupOptions, create_backup
from ..config import Settings
from ..context import open_operation, open_store
from ..errors import BackupError
from ..retention import CleanupResult, cleanup
from ..timeutil import format_duration, utc_now
from .config import ScheduleConfig, load_config
from .history import append_history, history_entry

log = logging.getLogger(__name__)

SCHEDULER_USER = "scheduler"
# A scheduled backup waits this long for a manual backup/restore to release the root lock;
# if it is still busy the run is recorded as failed and retried at the next interval.
BACKUP_LOCK_TIMEOUT = 60.0


def _manifest_trigger(trigger: str) -> str:
    # the manifest knows manual/scheduled/safety; the history keeps finer triggers
    return "manual" if trigger == "manual" else "scheduled"


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"


def run_scheduled_backup(settings: Settings, trigger: str = "scheduled", *, user: str = SCHEDULER_USER) -> dict:
    """One scheduled run: backup, history, then a size-triggered clean-up. Returns the history entry."""
    root = settings.backup_root
    config = load_config(root)
    started = utc_now()
    t0 = time.monotonic()
    options = BackupOptions(trigger=_manifest_trigger(trigger), user=user, interval_hours=config.interval_hours,
                            lock_timeout=BACKUP_LOCK_TIMEOUT)
    try:
        with open_operation(settings.with_user(user), "backup", lock_timeout=BACKUP_LOCK_TIMEOUT,
                            details={"database": settings.db_name, "scheduler_trigger": trigger,
                                     **options.audit_details()}) as ctx:
            result = create_backup(ctx.db, ctx.store, options)
    except Exception as exc:  # noqa: BLE001 - a scheduler must survive anything and say what happened
        if not isinstance(exc, BackupError):
            log.exception("scheduled backup failed")
        entry = history_entry("backup", trigger, started, time.monotonic() - t0, "error", error=_error_text(exc))
        append_history(root, entry)
        return entry
    entry = history_entry("backup", trigger, started, time.monotonic() - t0, "ok", backup_id=result.backup_id,
                          counts={n: c.count for n, c in result.collections.items()}, bytes=result.total_bytes)
    append_history(root, entry)
    if config.max_root_bytes:
        _size_cleanup(settings, config)
    return entry


def _size_cleanup(settings: Settings, config: ScheduleConfig) -> None:
    try:
        usage = open_store(settings).usage()
    except (OSError, BackupError):
        return
    if usage > (config.max_root_bytes or 0):
        run_cleanup(settings, config, user=SCHEDULER_USER, trigger="size", extra={"root_bytes": usage})


def run_cleanup(settings: Settings, config: ScheduleConfig, *, user: str, trigger: str,
                extra: dict | None = None, raise_errors: bool = False) -> CleanupResult | None:
    root = settings.backup_root
    started = utc_now()
    t0 = time.monotonic()
    try:
        result = cleanup(open_store(settings), config.retention, user=user, trigger=trigger)
    except Exception as exc:  # noqa: BLE001
        append_history(root, history_entry("cleanup", trigger, started, time.monotonic() - t0, "error",
                                           error=_error_text(exc), **(extra or {})))
        if raise_errors:
            raise
        log.warning("scheduled clean-up failed: %s", _error_text(exc))
        return None
    append_history(root, history_entry(
        "cleanup", trigger, started, time.monotonic() - t0, "ok",
        counts={"deleted": len(result.deleted), "kept": result.kept}, deleted=result.deleted,
        freed_bytes=result.freed_bytes, retention_days=config.retention_days, **(extra or {})))
    return result


def run_cleanup_now(settings: Settings, user: str) -> CleanupResult:
    """Clean up with the configured retention now (the dashboard's button); raises on failure."""
    return run_cleanup(settings, load_config(settings.backup_root), user=user, trigger="manual",
                       raise_errors=True)


def auto_backup_check(settings: Settings, user: str) -> dict:
    """Back up only if the last backup is older than the interval (the seed's auto-backup check)."""
    config = load_config(settings.backup_root)
    backups = open_store(settings).list_backups()
    if backups:
        newest = backups[0]
        age = utc_now() - newest.created
        if age < config.interval:
            return {"ran": False, "backup_id": None, "last_backup_id": newest.backup_id,
                    "message": (f"backup not needed: last backup {newest.backup_id} "
                                f"({format_duration(age.total_seconds())} old) is newer than the interval of "
                                f"{config.interval_hours:g} h")}
    entry = run_scheduled_backup(settings, trigger="check", user=user)
    if entry["outcome"] == "ok":
        return {"ran": True, "backup_id": entry["backup_id"], "outcome": "ok",
                "message": f"backup {entry['backup_id']} created"}
    return {"ran": True, "backup_id": None, "outcome": "error", "error": entry["error"],
            "message": f"backup failed: {entry['error']}"}
