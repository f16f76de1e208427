"""The scheduler service: interval backups and a weekly clean-up, run by exactly one scheduler per root.

Two jobs run in an APScheduler 3.x ``BackgroundScheduler`` (STYLE.md item 10):

- ``scheduled-backup`` every ``interval_hours`` (default 1 h; the dashboard
  offers 0.1 to 168 h, the CLI's ``--every`` any positive duration), followed
  by a clean-up when the backup root has grown past ``max_root_bytes``;
- ``weekly-cleanup`` once a week: deletes backups older than the retention
  period (default 7 days), never the newest one (``retention.cleanup``);
- ``restore-drill`` every ``drill_every_days`` (default 7; 0: none): drills
  the newest backup and one older one picked at random
  (``runs.scheduled_drills``), so old backups are sampled over time.

Exactly one scheduler is active per backup root and database, whoever starts
it (the headless ``python -m backup_core scheduler`` on any number of hosts,
any number of dashboard processes, sessions and reruns). Every
``SchedulerService`` competes for the lease (``lease.py``, a document in the
metadata database) that its holder renews every ``lease_seconds / 3``; the
others stand by and take over when it expires (retrying right at the expiry
the server reports). A scheduled backup first claims the interval's slot
with the holder's fencing token, and right before it commits proves it still
holds both (``BackupOptions.fence``): a scheduler paused past its lease
aborts instead of committing a second backup for the slot.

When the database cannot be reached, the active scheduler keeps its role
until its lease has surely expired (by its own monotonic clock), then stands
by; the one that was active reports the outage once (``notify``) and its
recovery once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
                                EVENT_JOB_MISSED, JobEvent)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .. import audit, notify
from ..backup import SIDE_TRIGGERS
from ..config import Settings
from ..context import open_store
from ..errors import BackupError, DatabaseUnavailable, UsageError
from ..testseam import checkpoint
from ..timeutil import iso, parse_iso, utc_now
from .config import ScheduleConfig, load_config
from .history import append_history, cleanup_anchor, history_entry, last_run
from .lease import Lease, LeaseLost, MongoLease
from .runs import (SCHEDULER_USER, current_config, failure_kind, run_cleanup, run_scheduled_backup,
                   scheduled_drills)

log = logging.getLogger(__name__)

CLEANUP_EVERY = timedelta(days=7)
BACKUP_JOB_ID = "scheduled-backup"
CLEANUP_JOB_ID = "weekly-cleanup"
DRILL_JOB_ID = "restore-drill"
DRILL_DELAY = timedelta(minutes=10)  # the first drill after a scheduler becomes active: not in its first backup


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


def _drill_job(service_id: str) -> None:
    svc = _services.get(service_id)
    if svc is not None:
        svc._run_drill_job()


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
        if not (isinstance(lease_seconds, (int, float)) and 0 < lease_seconds < float("inf")):  # also nan
            raise UsageError(f"the lease period must be a positive number of seconds, got {lease_seconds!r}")
        self.settings = settings
        self.root = settings.backup_root
        self.interval_override = interval
        self.lease_seconds = float(lease_seconds)
        self.cleanup_every = cleanup_every
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease: Lease = lease or MongoLease(settings, self.id, self.lease_seconds)
        self.on_state = on_state
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._stopping = False
        self._active = False
        self._announced: str | None = None
        self._config: ScheduleConfig | None = None
        self._interval_s: float | None = None
        self._enabled = True
        self._drill_days: float | None = None
        self._outage_since: str | None = None  # the database outage this process reports, if any

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
            if was_active or self.lease.token is not None:
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
        while not self._halt.wait(self._next_wait()):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - never let the lease thread die silently
                log.exception("scheduler lease check failed")

    def _next_wait(self) -> float:
        tick = self.lease_seconds / 3
        retry = getattr(self.lease, "retry_in", None)
        if not self._active and retry is not None:
            return max(0.05, min(tick, retry + 0.05))  # a standby tries again right when the lease expires
        return tick

    def _tick(self) -> None:
        notes: list[dict] = []
        try:
            with self._lock:
                self._tick_locked(notes)
        finally:
            for note in notes:  # sent outside the lock: a slow notification target never delays a job
                notify.event(self.settings, **note)

    def _tick_locked(self, notes: list[dict]) -> None:
        try:
            if self._stopping:
                if self._active:
                    self.lease.acquire()  # keep it while the last job finishes
                return
            held = self.lease.acquire()
        except DatabaseUnavailable as exc:
            self._database_down(exc, notes)
            return
        self._database_up(notes)
        if held and not self._active:
            self._become_active()
        elif not held and self._active:
            log.warning("scheduler lease of %s lost; standing by", self.root)
            self._become_standby()
        elif held:
            self._check_config()
        elif self._announced != "standby":
            self._announce("standby")

    def _database_down(self, exc: DatabaseUnavailable, notes: list[dict]) -> None:
        """The lease cannot be renewed: keep the role while it surely holds, report the outage once."""
        if self._stopping:
            return
        reporter = self._active or self._outage_since is not None
        if self._active and time.monotonic() >= self.lease.valid_until:
            log.warning("scheduler lease of %s cannot be renewed (%s); standing by", self.root, exc)
            self._become_standby()
        if reporter:  # only the scheduler that was active tells (the streak keeps it to one message)
            self._outage_since = self._outage_since or iso(utc_now())
            notes.append({"kind": "database", "ok": False, "offline": True,
                          "error": f"{exc} (scheduled backups are stopped until the database answers)"})
        elif self._announced != "standby":
            self._announce("standby")

    def _database_up(self, notes: list[dict]) -> None:
        if self._outage_since is None:
            return
        since, self._outage_since = self._outage_since, None
        log.warning("the database answers again (unreachable since %s)", since)
        notes.append({"kind": "database", "ok": True, "details": {"unreachable_since": since}})

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

    def reload(self) -> None:
        """Apply a just-saved config now instead of at the next lease renewal (no-op when standby)."""
        with self._lock:
            if self._active and not self._stopping:
                self._check_config()

    # -- jobs
    def _check_config(self, force: bool = False) -> None:
        """Reschedule when the interval or the enabled flag changed (read at each renewal)."""
        try:
            config = load_config(self.settings)
        except DatabaseUnavailable as exc:
            if not force:
                return  # the next renewal reads it again
            log.warning("cannot read the scheduler config (%s); using the defaults for now", exc)
            config = self._config or ScheduleConfig()
        self._config = config
        interval_s = (self.interval_override.total_seconds() if self.interval_override
                      else config.interval_hours * 3600)
        if force or config.drill_every_days != self._drill_days:
            self._drill_days = config.drill_every_days
            self._schedule_drill()
        if not force and interval_s == self._interval_s and config.enabled == self._enabled:
            return
        self._interval_s, self._enabled = interval_s, config.enabled
        self._schedule_backup()

    def _schedule_backup(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        if not self._enabled:
            self._unschedule(BACKUP_JOB_ID)
            return
        interval = timedelta(seconds=self._interval_s)
        # continue the cadence of the last backup (whoever made it: a previous scheduler
        # that died, a manual backup), so a takeover or restart does not back up twice
        first = utc_now() + timedelta(seconds=0.2)
        try:
            backups = [b for b in open_store(self.settings).list_backups() if b.trigger not in SIDE_TRIGGERS]
        except BackupError:
            backups = []
        slot = parse_iso(((getattr(self.lease, "last", None) or {}).get("slot") or {}).get("started"))
        for last in ([backups[0].created] if backups else []) + ([slot] if slot else []):
            if last + interval > first:
                first = last + interval
        sched.add_job(_backup_job, IntervalTrigger(seconds=self._interval_s, start_date=first, timezone=timezone.utc),
                      args=[self.id], id=BACKUP_JOB_ID, name="interval backup", replace_existing=True,
                      # a run more than half an interval late is dropped: the next one is near
                      misfire_grace_time=max(1, int(min(self._interval_s / 2, 900))))
        self._write_state()

    def _schedule_cleanup(self) -> None:
        # a full period after the last clean-up, or after the first scheduler start ever: never "soon after
        # every start"
        self._schedule_periodic(_cleanup_job, CLEANUP_JOB_ID, "weekly clean-up", self.cleanup_every,
                                timedelta(seconds=60), kind="cleanup", trigger="weekly", anchor=cleanup_anchor)

    def _unschedule(self, job_id: str) -> None:
        sched = self._scheduler
        if sched is not None and sched.get_job(job_id):
            sched.remove_job(job_id)
        self._write_state()

    def _schedule_drill(self) -> None:
        """Drill every ``drill_every_days`` (none when 0)."""
        if not self._drill_days:
            self._unschedule(DRILL_JOB_ID)
            return
        self._schedule_periodic(_drill_job, DRILL_JOB_ID, "restore drill", timedelta(days=self._drill_days),
                                DRILL_DELAY, kind="drill", trigger="scheduled")

    def _schedule_periodic(self, job: Callable[[str], None], job_id: str, name: str, every: timedelta,
                           delay: timedelta, *, kind: str, trigger: str,
                           anchor: Callable[[Settings], object] | None = None) -> None:
        """Run ``job`` every ``every``, continuing the cadence of its last run in the history (whoever ran it),
        or of ``anchor(settings)`` (when the cadence counts from), at the earliest ``delay`` from now: one
        that is overdue runs ``delay`` from now."""
        sched = self._scheduler
        if sched is None:
            return
        first = utc_now() + min(delay, every)
        try:
            if anchor is not None:
                last = anchor(self.settings)
            else:
                last = parse_iso((last_run(self.settings, kind=kind, trigger=trigger) or {}).get("started_at"))
        except DatabaseUnavailable:
            last = None
        if last and last + every > first:
            first = last + every
        sched.add_job(job, IntervalTrigger(seconds=every.total_seconds(), start_date=first, timezone=timezone.utc),
                      args=[self.id], id=job_id, name=name, replace_existing=True, misfire_grace_time=3600)
        self._write_state()

    def _token(self) -> int | None:
        with self._lock:
            if not self._active or self._stopping:
                return None
            return self.lease.token

    def _run_backup_job(self) -> None:
        token = self._token()
        if token is None:
            return
        started = utc_now()
        try:
            # the slot: this interval's backup, claimed with our token (none if a holder before us took it)
            self.lease.begin_slot(token, min_gap_s=(self._interval_s or 3600) / 2)
        except (LeaseLost, DatabaseUnavailable) as exc:
            self._not_run(started, exc)
            return
        run_scheduled_backup(self.settings, trigger="scheduled", fence=self._fence(token), config=self._config)

    def _fence(self, token: int) -> Callable[[str], None]:
        def fence(backup_id: str) -> None:
            checkpoint("scheduler-commit", backup_id)
            self.lease.fence(token, backup_id)
        return fence

    def _not_run(self, started: datetime, exc: BackupError) -> None:
        if isinstance(exc, LeaseLost):  # SlotTaken included: another holder has this interval
            entry = history_entry("backup", "scheduled", started, 0.0, "skipped", error=str(exc))
            append_history(self.settings, entry)
        else:  # the database is gone: a failed run, and an outage to report
            entry = history_entry("backup", "scheduled", started, 0.0, "error", error=str(exc))
            recorded = append_history(self.settings, entry)
            self._outage_since = self._outage_since or iso(started)
            notify.event(self.settings, failure_kind(exc, "backup"), ok=False, error=str(exc),
                         offline=not recorded)

    def _still_active(self, what: str) -> bool:
        """Whether this scheduler still holds the lease, proven right now (a job of a former holder stops)."""
        token = self._token()
        if token is None:
            return False
        try:
            self.lease.fence(token)
        except (LeaseLost, DatabaseUnavailable) as exc:
            log.warning("%s not run: %s", what, exc)
            return False
        return True

    def _run_cleanup_job(self) -> None:
        if self._still_active("weekly clean-up"):
            run_cleanup(self.settings, current_config(self.settings), user=SCHEDULER_USER, trigger="weekly")

    def _run_drill_job(self) -> None:
        if self._still_active("restore drill"):
            scheduled_drills(self.settings)

    def _on_job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES and event.job_id == BACKUP_JOB_ID:
            # the previous backup is still running: this trigger is skipped, not queued
            append_history(self.settings, history_entry("backup", "scheduled", utc_now(), 0.0, "skipped",
                                                          error="previous scheduled backup still running"))
        elif event.code == EVENT_JOB_MISSED and event.job_id == BACKUP_JOB_ID:
            append_history(self.settings, history_entry("backup", "scheduled", utc_now(), 0.0, "skipped",
                                                          error="missed its start time (process suspended?)"))
        elif event.code == EVENT_JOB_ERROR:
            # run_scheduled_backup never raises, so this is a bug; still keep a record
            log.error("scheduler job %s failed: %r", event.job_id, event.exception)
            kind = {BACKUP_JOB_ID: "backup", DRILL_JOB_ID: "drill"}.get(event.job_id, "cleanup")
            append_history(self.settings, history_entry(kind, "scheduled", utc_now(), 0.0, "error",
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
            drill_job = sched.get_job(DRILL_JOB_ID)
        except Exception:  # noqa: BLE001 - scheduler shutting down
            return
        token = self.lease.token
        if token is None:
            return
        state = {
            "owner": self.id,
            "token": token,
            "database": self.settings.db_name,
            "interval_hours": (self._interval_s or 0) / 3600,
            "interval_override": self.interval_override is not None,
            "enabled": self._enabled,
            "next_run": iso(backup_job.next_run_time) if backup_job else None,
            "next_cleanup": iso(cleanup_job.next_run_time) if cleanup_job else None,
            "next_drill": iso(drill_job.next_run_time) if drill_job else None,
            "updated_at": iso(utc_now()),
        }
        try:
            self.lease.write_state(token, state)
        except DatabaseUnavailable as exc:
            log.warning("cannot publish the scheduler state: %s", exc)

    def _audit(self, event: str) -> None:
        try:
            audit.record(open_store(self.settings).audit_log(), user=SCHEDULER_USER, action="scheduler",
                         event=event, owner=self.id, database=self.settings.db_name,
                         token=self.lease.token,
                         interval_hours=(self._interval_s / 3600) if self._interval_s else None)
        except BackupError as exc:
            log.warning("cannot audit scheduler %s: %s", event, exc)

    def _announce(self, state: str) -> None:
        if state == self._announced:
            return
        self._announced = state
        if self.on_state:
            try:
                try:
                    holder = self.lease.holder()
                except DatabaseUnavailable:
                    holder = None
                info = {"interval_hours": (self._interval_s or 0) / 3600, "root": str(self.root),
                        "database": self.settings.db_name, "holder": holder, "token": self.lease.token}
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
    ``BACKUP_SCHEDULER=off`` (``settings.scheduler_enabled``) returns a service that is
    never started (page tests, a dashboard that must not back up).
    """
    global _atexit_registered
    key = (open_store(settings).url, settings.db_name)
    disabled = not settings.scheduler_enabled
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


def reload_config(settings: Settings) -> bool:
    """After ``save_config``: the scheduler this process runs for the root and database applies it now.

    Returns whether this process holds the active scheduler (otherwise the
    active one, on another host, applies it at its next lease renewal).
    """
    with _registry_guard:
        svc = _registry.get((open_store(settings).url, settings.db_name))
    if svc is None or not svc.is_active:
        return False
    svc.reload()
    return True


def _stop_all() -> None:
    with _registry_guard:
        services = list(_registry.values())
        _registry.clear()
    for svc in services:
        if not svc.running:
            continue
        try:
            svc.stop(wait=False)  # release the lease at once so a standby elsewhere takes over
        except Exception:  # noqa: BLE001
            pass
