"""Unattended backups: an interval backup job and a weekly clean-up, run by exactly one scheduler.

Two jobs run in an APScheduler 3.x ``BackgroundScheduler`` (STYLE.md item 10):

- ``scheduled-backup`` every ``interval_hours`` (default 1 h; the dashboard
  offers 0.1 to 168 h, the CLI's ``--every`` any positive duration), followed
  by a clean-up when the backup root has grown past ``max_root_bytes``;
- ``weekly-cleanup`` once a week: deletes backups older than the retention
  period (default 7 days), never the newest one (``retention.cleanup``).

Exactly one scheduler is active per backup root, whoever starts it (the
headless ``python -m backup_core scheduler``, any number of dashboard
processes, sessions and reruns). Every ``SchedulerService`` competes for a
*lease* (``<root>/.scheduler/lease.json``, written under an ``flock`` on a
separate lock file) that its holder renews every ``lease_seconds / 3``. A
holder that dies stops renewing, so its lease expires (or is seen to belong to
a dead pid on this host) and a standby takes over. The lease sits behind the
small ``Lease`` interface so a MongoDB-document lease can replace the file for
deployments across several hosts (DESIGN.md section 9).

The backup root holds one database's backups, so the lease, configuration and
history are per root; the lease records which database its holder backs up.

Files in ``<root>/.scheduler/``:
  config.json    ScheduleConfig, written by the dashboard or ``scheduler --set-interval``
  lease.json     the active scheduler: owner, pid, host, database, expires_at
  state.json     written by the active scheduler: effective interval, next run
  history.jsonl  one line per run (backup or clean-up), append-only
Every run is also in the audit log (``create_backup`` and ``cleanup`` audit
themselves; the scheduler adds failures they cannot see and its own start/stop).
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
                                EVENT_JOB_MISSED, JobEvent)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import audit
from .backup import BackupOptions, create_backup
from .config import Settings
from .context import open_context, open_store
from .errors import BackupError, LockBusy, StorageError, UsageError
from .locks import pid_alive
from .retention import CleanupResult, cleanup, format_duration
from .store import Store

log = logging.getLogger(__name__)

SCHEDULER_DIR = ".scheduler"
CONFIG_FILE = "config.json"
LEASE_FILE = "lease.json"
LEASE_LOCK_FILE = "lease.lock"
STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"

MIN_INTERVAL_HOURS = 0.1
MAX_INTERVAL_HOURS = 168.0
CLEANUP_EVERY = timedelta(days=7)
BACKUP_JOB_ID = "scheduled-backup"
CLEANUP_JOB_ID = "weekly-cleanup"
SCHEDULER_USER = "scheduler"
# A scheduled backup waits this long for a manual backup/restore to release the root lock;
# if it is still busy the run is recorded as failed and retried at the next interval.
BACKUP_LOCK_TIMEOUT = 60.0
HISTORY_MAX_BYTES = 4 << 20  # about 15,000 runs: most of two years of hourly backups
HISTORY_KEEP = 5000


def _dir(root) -> Path:
    return Path(root) / SCHEDULER_DIR


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _write_json_atomic(path: Path, data: dict) -> None:
    """Readers (other processes, the dashboard) see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------- configuration

@dataclass
class ScheduleConfig:
    interval_hours: float = 1.0
    retention_days: float = 7.0
    max_root_bytes: int | None = None
    enabled: bool = True

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def interval(self) -> timedelta:
        return timedelta(hours=self.interval_hours)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


def _validate(config: ScheduleConfig) -> ScheduleConfig:
    try:
        interval = float(config.interval_hours)
        retention = float(config.retention_days)
    except (TypeError, ValueError):
        raise UsageError("the backup interval and the retention period must be numbers") from None
    if not (MIN_INTERVAL_HOURS <= interval <= MAX_INTERVAL_HOURS):
        raise UsageError(f"backup interval must be between {MIN_INTERVAL_HOURS:g} and "
                         f"{MAX_INTERVAL_HOURS:g} hours, got {config.interval_hours!r}")
    if not retention > 0:
        raise UsageError(f"retention period must be positive, got {config.retention_days!r} days")
    max_bytes = config.max_root_bytes
    if max_bytes is not None:
        try:
            max_bytes = int(max_bytes)
        except (TypeError, ValueError):
            raise UsageError(f"maximum backup root size must be a number of bytes, got {max_bytes!r}") from None
        if max_bytes <= 0:
            raise UsageError(f"maximum backup root size must be positive, got {max_bytes!r}")
    return ScheduleConfig(interval_hours=interval, retention_days=retention,
                          max_root_bytes=max_bytes, enabled=bool(config.enabled))


def load_config(root) -> ScheduleConfig:
    """The persisted schedule, or the defaults when none was saved (or the file is unreadable)."""
    data = _read_json(_dir(root) / CONFIG_FILE) or {}
    known = {f.name for f in fields(ScheduleConfig)}
    try:
        return _validate(ScheduleConfig(**{k: v for k, v in data.items() if k in known}))
    except UsageError as exc:
        # a hand-edited, invalid file must not stop unattended backups: fall back to defaults
        log.warning("ignoring invalid scheduler config in %s: %s", _dir(root) / CONFIG_FILE, exc)
        return ScheduleConfig()


def save_config(root, config: ScheduleConfig, user: str = "unknown") -> ScheduleConfig:
    """Validate and persist; the active scheduler picks the change up at its next lease renewal."""
    config = _validate(config)
    try:
        _write_json_atomic(_dir(root) / CONFIG_FILE, config.to_json())
    except OSError as exc:
        raise StorageError(f"cannot save the scheduler config in {_dir(root)}: {exc.strerror}") from None
    audit.record(Path(root), user=user, action="scheduler-config", **config.to_json())
    return config


# ---------------------------------------------------------------------------- lease

class Lease(Protocol):
    """Who may run the scheduler. A MongoDB-document lease can implement the same three calls."""

    def acquire(self) -> bool:
        """Take the lease if free/expired/dead, or renew it if ours. True when we hold it now."""

    def release(self) -> None:
        """Give the lease up now (if ours), so a standby need not wait for it to expire."""

    def holder(self) -> dict | None:
        """The live holder's record, or None."""


class FileLease:
    """A lease in ``<dir>/lease.json``, changed only under ``flock`` on ``<dir>/lease.lock``.

    Holding the flock only for the read-modify-write (never for the lease's
    lifetime) keeps the file readable by status calls, and the expiry makes
    the lease work even where flock is unreliable between hosts (NFS).
    """

    def __init__(self, directory: Path, owner: str, lease_seconds: float, *, database: str = "") -> None:
        self.dir = Path(directory)
        self.owner = owner
        self.lease_seconds = float(lease_seconds)
        self.database = database
        self.host = socket.gethostname()
        self.pid = os.getpid()

    @property
    def path(self) -> Path:
        return self.dir / LEASE_FILE

    def _live(self, rec: dict | None, now: float) -> bool:
        if not rec:
            return False
        try:
            if float(rec.get("expires_at", 0)) <= now:
                return False
        except (TypeError, ValueError):
            return False
        # a holder killed with SIGKILL on this host is dead now, not only when its lease expires
        if rec.get("host") == self.host and isinstance(rec.get("pid"), int) and not pid_alive(rec["pid"]):
            return False
        return True

    def acquire(self) -> bool:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LEASE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("cannot open the scheduler lease in %s: %s", self.dir, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            now = time.time()
            current = _read_json(self.path)
            if current and current.get("owner") != self.owner and self._live(current, now):
                return False
            since = current.get("since") if current and current.get("owner") == self.owner else None
            record = {"owner": self.owner, "pid": self.pid, "host": self.host, "database": self.database,
                      "since": since or _iso(_now()), "renewed_at": now,
                      "expires_at": now + self.lease_seconds, "lease_seconds": self.lease_seconds}
            _write_json_atomic(self.path, record)
            return True
        except OSError as exc:
            log.warning("cannot renew the scheduler lease in %s: %s", self.dir, exc)
            return False
        finally:
            os.close(fd)  # closing drops the flock

    def release(self) -> None:
        try:
            fd = os.open(self.dir / LEASE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = _read_json(self.path)
            if current and current.get("owner") == self.owner:
                self.path.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(fd)

    def holder(self) -> dict | None:
        rec = _read_json(self.path)
        return rec if self._live(rec, time.time()) else None


def lease_holder(root) -> dict | None:
    """The live scheduler lease of ``root`` (owner, pid, host, database, expires_at) or None."""
    return FileLease(_dir(root), owner="", lease_seconds=0).holder()


# ---------------------------------------------------------------------------- history and state

def _append_history(root, entry: dict) -> None:
    path = _dir(root) / HISTORY_FILE
    line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one write per entry: concurrent writers never interleave
            os.write(fd, line)
            if os.fstat(fd).st_size > HISTORY_MAX_BYTES:
                _trim_history(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot write scheduler history %s: %s", path, exc)


def _trim_history(fd: int) -> None:
    """Keep the newest HISTORY_KEEP runs (the audit log keeps everything; this is a dashboard view).

    Rewritten in place under the flock: a writer waiting for the lock appends
    to this same file afterwards, never to a replaced one.
    """
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    keep = b"".join(chunks).splitlines(keepends=True)[-HISTORY_KEEP:]
    os.ftruncate(fd, 0)
    os.write(fd, b"".join(keep))  # O_APPEND: lands at offset 0 of the emptied file


def run_history(root, limit: int = 50) -> list[dict]:
    """Runs newest first: started_at, duration_s, trigger, outcome, backup_id, counts, error (+ kind)."""
    return audit.read_jsonl_newest_first(_dir(root) / HISTORY_FILE, limit)


def _history_entry(kind: str, trigger: str, started: datetime, duration_s: float, outcome: str, *,
                   backup_id: str | None = None, counts: dict | None = None, error: str | None = None,
                   **extra: Any) -> dict:
    entry = {"started_at": _iso(started), "duration_s": round(duration_s, 3), "kind": kind,
             "trigger": trigger, "outcome": outcome, "backup_id": backup_id, "counts": counts or {},
             "error": error}
    entry.update(extra)
    return entry


def _last_backup_run(root) -> dict | None:
    for entry in run_history(root, limit=200):
        if entry.get("kind", "backup") == "backup" and entry.get("outcome") in ("ok", "error"):
            return entry
    return None


def scheduler_status(root) -> dict:
    """What the dashboard and ``status`` show; reads files only (no database, no lease change)."""
    config = load_config(root)
    holder = lease_holder(root)
    state = _read_json(_dir(root) / STATE_FILE) or {}
    own_state = bool(holder and state.get("owner") == holder.get("owner"))
    last = _last_backup_run(root)
    return {
        "active": holder is not None,
        "owner": ({k: holder.get(k) for k in ("owner", "pid", "host", "database", "since", "expires_at")}
                  if holder else None),
        "enabled": config.enabled,
        # the active scheduler's effective interval (a CLI --every may override the config)
        "interval_hours": state.get("interval_hours", config.interval_hours) if own_state else config.interval_hours,
        "configured_interval_hours": config.interval_hours,
        "retention_days": config.retention_days,
        "max_root_bytes": config.max_root_bytes,
        "next_run": state.get("next_run") if own_state else None,
        "next_cleanup": state.get("next_cleanup") if own_state else None,
        "last_run": last,
        "last_result": ({"outcome": last.get("outcome"), "error": last.get("error"),
                         "backup_id": last.get("backup_id"), "at": last.get("started_at"),
                         "trigger": last.get("trigger")} if last else None),
    }


# ---------------------------------------------------------------------------- single runs

def _manifest_trigger(trigger: str) -> str:
    # the manifest knows manual/scheduled/safety/imported; the history keeps finer triggers
    return "manual" if trigger == "manual" else "scheduled"


def run_scheduled_backup(settings: Settings, trigger: str = "scheduled", *, user: str = SCHEDULER_USER) -> dict:
    """One scheduled run: backup, history, audit, then a size-triggered clean-up.

    Never raises for a failed backup: the failure is recorded (history with
    outcome ``error``, audit) and the next run tries again. Returns the history entry.
    """
    root = Path(settings.backup_root)
    config = load_config(root)
    started = _now()
    t0 = time.monotonic()
    reached_backup = False
    try:
        with open_context(settings) as ctx:
            reached_backup = True
            result = create_backup(ctx.db, ctx.store, BackupOptions(
                trigger=_manifest_trigger(trigger), user=user, interval_hours=config.interval_hours,
                lock_timeout=BACKUP_LOCK_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - a scheduler must survive anything and say what happened
        error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, BackupError):
            log.exception("scheduled backup failed")
        # create_backup audits its own failures once it holds the lock; audit the rest here
        if not reached_backup or isinstance(exc, LockBusy) or not isinstance(exc, BackupError):
            try:
                audit.record(root, user=user, action="backup", outcome="error", trigger=_manifest_trigger(trigger),
                             scheduler_trigger=trigger, database=settings.db_name, error=error)
            except BackupError:
                pass
        entry = _history_entry("backup", trigger, started, time.monotonic() - t0, "error", error=error)
        _append_history(root, entry)
        return entry
    entry = _history_entry("backup", trigger, started, time.monotonic() - t0, "ok",
                           backup_id=result.backup_id,
                           counts={n: c.count for n, c in result.collections.items()},
                           bytes=result.total_bytes)
    _append_history(root, entry)
    if config.max_root_bytes:
        _size_cleanup(settings, config)
    return entry


def _size_cleanup(settings: Settings, config: ScheduleConfig) -> None:
    store = open_store(settings)
    try:
        usage = store.disk_usage()
    except OSError:
        return
    if usage > (config.max_root_bytes or 0):
        _run_cleanup(settings, config, user=SCHEDULER_USER, trigger="size", extra={"root_bytes": usage})


def _run_cleanup(settings: Settings, config: ScheduleConfig, *, user: str, trigger: str,
                 extra: dict | None = None, raise_errors: bool = False) -> CleanupResult | None:
    root = Path(settings.backup_root)
    started = _now()
    t0 = time.monotonic()
    try:
        result = cleanup(open_store(settings), config.retention, user=user, trigger=trigger)
    except Exception as exc:  # noqa: BLE001
        error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        try:
            audit.record(root, user=user, action="cleanup", outcome="error", trigger=trigger, error=error)
        except BackupError:
            pass
        _append_history(root, _history_entry("cleanup", trigger, started, time.monotonic() - t0, "error",
                                             error=error, **(extra or {})))
        if raise_errors:
            raise
        log.warning("scheduled clean-up failed: %s", error)
        return None
    _append_history(root, _history_entry(
        "cleanup", trigger, started, time.monotonic() - t0, "ok",
        counts={"deleted": len(result.deleted), "kept": result.kept}, deleted=result.deleted,
        freed_bytes=result.freed_bytes, retention_days=config.retention_days, **(extra or {})))
    return result


def run_cleanup_now(settings: Settings, user: str) -> CleanupResult:
    """Clean up with the configured retention now (the dashboard's button); raises on failure."""
    return _run_cleanup(settings, load_config(settings.backup_root), user=user, trigger="manual",
                        raise_errors=True)


def auto_backup_check(settings: Settings, user: str) -> dict:
    """The seed's manual "auto-backup check": back up only if the last backup is older than the interval."""
    config = load_config(settings.backup_root)
    backups = Store(settings.backup_root).list_backups()
    if backups:
        newest = backups[0]
        age = _now() - newest.created
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



# ---------------------------------------------------------------------------- the service

# Job functions are module-level (APScheduler guide) and find their service by id, so a job
# never holds a reference to a scheduler that has since been replaced.
_services: dict[str, "SchedulerService"] = {}
_services_guard = threading.Lock()


def _backup_job(service_id: str) -> None:
    svc = _services.get(service_id)
    if svc is not None:
        svc._run_backup_job()


def _cleanup_job(service_id: str) -> None:
    svc = _services.get(service_id)
    if svc is not None:
        svc._run_cleanup_job()


class SchedulerService:
    """One competitor for the scheduler lease of a backup root; runs the jobs while it holds it.

    ``start()`` returns at once: a background thread takes or renews the lease
    every ``lease_seconds / 3`` and starts the APScheduler jobs when it wins
    (``is_active``) or stops them when it loses. ``interval`` overrides the
    configured interval for this process only (CLI ``--every``).
    """

    def __init__(self, settings: Settings, interval: timedelta | None = None, lease_seconds: float = 30.0, *,
                 cleanup_every: timedelta = CLEANUP_EVERY, lease: Lease | None = None,
                 on_state: Callable[[str, dict], None] | None = None) -> None:
        if interval is not None and interval.total_seconds() <= 0:
            raise UsageError("the backup interval must be positive")
        if lease_seconds <= 0:
            raise UsageError("the lease period must be positive")
        self.settings = settings
        self.root = Path(settings.backup_root)
        self.interval_override = interval
        self.lease_seconds = float(lease_seconds)
        self.cleanup_every = cleanup_every
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease: Lease = lease or FileLease(_dir(self.root), self.id, self.lease_seconds,
                                               database=settings.db_name)
        self.on_state = on_state
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._stopping = False
        self._active = False
        self._announced: str | None = None
        self._config_mtime: float | None = None
        self._interval_s: float | None = None
        self._enabled = True

    # -- public
    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "SchedulerService":
        with self._lock:
            if self.running:
                return self
            self._halt.clear()
            self._stopping = False
            with _services_guard:
                _services[self.id] = self
            try:
                self._tick()  # decide active/standby before returning: callers can show it at once
            except Exception:  # noqa: BLE001 - the lease thread retries; a dashboard rerun must not fail
                log.exception("scheduler start-up check failed")
            self._thread = threading.Thread(target=self._loop, name=f"scheduler-lease-{self.id}", daemon=True)
            self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop the jobs (``wait``: let a running backup finish), then give up the lease."""
        with self._lock:
            self._stopping = True
            was_active = self._active
        # the lease thread keeps renewing while a running backup finishes, so no standby
        # starts a second backup in the meantime
        self._shutdown_scheduler(wait=wait)
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, self.lease_seconds))
        self._thread = None
        with self._lock:
            self._active = False
            self.lease.release()
        with _services_guard:
            _services.pop(self.id, None)
        if was_active:
            self._audit("stopped")
        self._announce("stopped")

    def next_run(self) -> datetime | None:
        sched = self._scheduler
        if sched is None:
            return None
        job = sched.get_job(BACKUP_JOB_ID)
        return job.next_run_time if job else None

    def run_forever(self) -> None:
        """Run in the foreground until SIGTERM/SIGINT (the CLI and service managers).

        The first signal stops after the running job finishes; a second one
        abandons it (the half-written backup is a temporary folder, never listed,
        swept by the next backup).
        """
        stop = threading.Event()
        signals = [0]

        def handler(signum, _frame):
            signals[0] += 1
            if signals[0] > 1:
                os._exit(128 + signum)
            stop.set()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop.wait(0.5):
                pass
            self.stop(wait=True)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- lease loop
    def _loop(self) -> None:
        while not self._halt.wait(self.lease_seconds / 3):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - never let the lease thread die silently
                log.exception("scheduler lease check failed")

    def _tick(self) -> None:
        with self._lock:
            if self._stopping:
                if self._active:
                    self.lease.acquire()  # keep it while the last job finishes
                return
            held = self.lease.acquire()
            if held and not self._active:
                self._become_active()
            elif not held and self._active:
                log.warning("scheduler lease of %s lost; standing by", self.root)
                self._become_standby()
            elif held:
                self._check_config()
            elif self._announced != "standby":
                self._announce("standby")

    def _become_active(self) -> None:
        sched = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone=timezone.utc)
        sched.add_listener(self._on_job_event,
                           EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        sched.start()
        self._scheduler = sched
        self._active = True
        self._config_mtime = None
        self._check_config(force=True)
        self._schedule_cleanup()
        self._audit("active")
        self._announce("active")

    def _become_standby(self) -> None:
        self._active = False
        self._shutdown_scheduler(wait=False)  # a running backup completes (atomically) on its own
        self._announce("standby")

    def _shutdown_scheduler(self, wait: bool) -> None:
        sched, self._scheduler = self._scheduler, None
        if sched is not None:
            try:
                sched.shutdown(wait=wait)
            except Exception:  # noqa: BLE001 - already stopped
                pass

    # -- jobs
    def _config_changed(self) -> bool:
        try:
            mtime = (_dir(self.root) / CONFIG_FILE).stat().st_mtime_ns
        except OSError:
            mtime = None
        changed = mtime != self._config_mtime
        self._config_mtime = mtime
        return changed

    def _check_config(self, force: bool = False) -> None:
        """Reschedule when the interval or the enabled flag changed (polled on each renewal)."""
        if not self._config_changed() and not force:
            return
        config = load_config(self.root)
        interval_s = (self.interval_override.total_seconds() if self.interval_override
                      else config.interval_hours * 3600)
        if not force and interval_s == self._interval_s and config.enabled == self._enabled:
            return
        self._interval_s, self._enabled = interval_s, config.enabled
        self._schedule_backup()

    def _schedule_backup(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        if not self._enabled:
            if sched.get_job(BACKUP_JOB_ID):
                sched.remove_job(BACKUP_JOB_ID)
            self._write_state()
            return
        interval = timedelta(seconds=self._interval_s)
        # continue the cadence of the last backup (whoever made it: a previous scheduler
        # that died, a manual backup), so a takeover or restart does not back up twice
        first = _now() + timedelta(seconds=0.2)
        try:
            backups = Store(self.root).list_backups()
        except BackupError:
            backups = []
        if backups and backups[0].created + interval > first:
            first = backups[0].created + interval
        sched.add_job(_backup_job, IntervalTrigger(seconds=self._interval_s, start_date=first, timezone=timezone.utc),
                      args=[self.id], id=BACKUP_JOB_ID, name="interval backup", replace_existing=True,
                      # a run more than half an interval late is dropped: the next one is near
                      misfire_grace_time=max(1, int(min(self._interval_s / 2, 900))))
        self._write_state()

    def _schedule_cleanup(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        every = self.cleanup_every
        first = _now() + min(timedelta(seconds=60), every)
        for entry in run_history(self.root, limit=500):
            if entry.get("kind") == "cleanup" and entry.get("trigger") == "weekly":
                last = _parse_iso(entry.get("started_at"))
                if last and last + every > first:
                    first = last + every
                break
        sched.add_job(_cleanup_job, IntervalTrigger(seconds=every.total_seconds(), start_date=first,
                                                    timezone=timezone.utc),
                      args=[self.id], id=CLEANUP_JOB_ID, name="weekly clean-up", replace_existing=True,
                      misfire_grace_time=3600)
        self._write_state()

    def _still_owner(self) -> bool:
        # fence: a scheduler that was paused past its lease must not run next to the new holder
        with self._lock:
            return self._active and not self._stopping and self.lease.acquire()

    def _run_backup_job(self) -> None:
        if not self._still_owner():
            return
        run_scheduled_backup(self.settings, trigger="scheduled")

    def _run_cleanup_job(self) -> None:
        if not self._still_owner():
            return
        _run_cleanup(self.settings, load_config(self.root), user=SCHEDULER_USER, trigger="weekly")

    def _on_job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES and event.job_id == BACKUP_JOB_ID:
            # the previous backup is still running: this trigger is skipped, not queued
            _append_history(self.root, _history_entry("backup", "scheduled", _now(), 0.0, "skipped",
                                                      error="previous scheduled backup still running"))
        elif event.code == EVENT_JOB_MISSED and event.job_id == BACKUP_JOB_ID:
            _append_history(self.root, _history_entry("backup", "scheduled", _now(), 0.0, "skipped",
                                                      error="missed its start time (process suspended?)"))
        elif event.code == EVENT_JOB_ERROR:
            # run_scheduled_backup never raises, so this is a bug; still keep a record
            log.error("scheduler job %s failed: %r", event.job_id, event.exception)
            kind = "backup" if event.job_id == BACKUP_JOB_ID else "cleanup"
            _append_history(self.root, _history_entry(kind, "scheduled", _now(), 0.0, "error",
                                                      error=f"{type(event.exception).__name__}: {event.exception}"))
        self._write_state()

    # -- state
    def _write_state(self) -> None:
        sched = self._scheduler
        if sched is None or not self._active:
            return
        try:
            backup_job = sched.get_job(BACKUP_JOB_ID)
            cleanup_job = sched.get_job(CLEANUP_JOB_ID)
        except Exception:  # noqa: BLE001 - scheduler shutting down
            return
        state = {
            "owner": self.id,
            "database": self.settings.db_name,
            "interval_hours": (self._interval_s or 0) / 3600,
            "interval_override": self.interval_override is not None,
            "enabled": self._enabled,
            "next_run": _iso(backup_job.next_run_time) if backup_job else None,
            "next_cleanup": _iso(cleanup_job.next_run_time) if cleanup_job else None,
            "updated_at": _iso(_now()),
        }
        try:
            _write_json_atomic(_dir(self.root) / STATE_FILE, state)
        except OSError as exc:
            log.warning("cannot write scheduler state: %s", exc)

    def _audit(self, event: str) -> None:
        try:
            audit.record(self.root, user=SCHEDULER_USER, action="scheduler", event=event, owner=self.id,
                         database=self.settings.db_name,
                         interval_hours=(self._interval_s / 3600) if self._interval_s else None)
        except BackupError as exc:
            log.warning("cannot audit scheduler %s: %s", event, exc)

    def _announce(self, state: str) -> None:
        if state == self._announced:
            return
        self._announced = state
        if self.on_state:
            try:
                info = {"interval_hours": (self._interval_s or 0) / 3600, "root": str(self.root),
                        "database": self.settings.db_name, "holder": self.lease.holder()}
                self.on_state(state, info)
            except Exception:  # noqa: BLE001 - a reporting callback must not break the scheduler
                log.exception("scheduler state callback failed")


# ---------------------------------------------------------------------------- one per process

_registry: dict[tuple[str, str], SchedulerService] = {}
_registry_guard = threading.Lock()
_atexit_registered = False


def ensure_scheduler(settings: Settings) -> SchedulerService:
    """The process's scheduler service for this root and database, started once.

    Safe to call on every Streamlit rerun and from every session: the first
    call starts a service (standby unless it wins the lease), later calls
    return the same one. Other processes compete through the lease.
    ``BACKUP_SCHEDULER=off`` in the environment returns a service that is
    never started (page tests, a dashboard that must not back up).
    """
    global _atexit_registered
    key = (str(Path(settings.backup_root).resolve()), settings.db_name)
    disabled = os.environ.get("BACKUP_SCHEDULER", "").lower() in ("off", "0", "false", "no")
    with _registry_guard:
        svc = _registry.get(key)
        if svc is None or (not svc.running and not disabled):
            svc = SchedulerService(settings)
            _registry[key] = svc
            if not disabled:
                svc.start()
                if not _atexit_registered:
                    atexit.register(_stop_all)
                    _atexit_registered = True
        return svc


def _stop_all() -> None:
    with _registry_guard:
        services = list(_registry.values())
        _registry.clear()
    for svc in services:
        try:
            svc.stop(wait=False)  # release the lease at once so a standby elsewhere takes over
        except Exception:  # noqa: BLE001
            pass
