"""The scheduler's state and health as one typed result, for the dashboard and any other front-end.

``history.scheduler_status`` returns the raw facts (a dict that ``status
--json`` and ``/metrics`` publish as they are). ``SchedulerStatus`` reads
them once, with the rules in one place:

- ``state``: who runs the scheduled backups. ``here`` (this process holds the
  lease), ``elsewhere`` (another process does, ``owner_host``/``owner_pid``),
  ``none`` (no scheduler runs, so no automatic backups are taken), ``off``
  (switched off in the schedule), ``unknown`` (the metadata database cannot
  be read).
- ``health``: whether backups are being taken. ``failing`` (the last
  scheduled or manual run failed), ``late`` (the newest backup is older than
  twice the interval while automatic backups are on), ``no-backup`` (there is
  none yet), ``unknown``, else ``ok``; ``problems`` says each in a sentence.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from ..errors import UsageError
from ..timeutil import format_duration, parse_iso, utc_now
from .config import MAX_INTERVAL_HOURS, MIN_INTERVAL_HOURS, ScheduleConfig
from .history import scheduler_status

# a backup older than this many intervals means automatic backups are not happening
LATE_AFTER_INTERVALS = 2

STATE_LABELS = {"here": "active", "elsewhere": "active elsewhere", "none": "not running", "off": "switched off",
                "unknown": "unknown"}


class Problem(NamedTuple):
    kind: str  # failing, late, no-backup
    text: str  # one sentence for people, without a final period


@dataclass(frozen=True)
class LastRun:
    """The latest backup run of the scheduler, ``Run now`` or the auto-backup check."""

    started_at: datetime | None
    outcome: str  # "ok" or "error"
    trigger: str
    backup_id: str | None
    error: str | None

    @classmethod
    def of(cls, raw: dict | None) -> "LastRun | None":
        if not isinstance(raw, dict) or raw.get("outcome") not in ("ok", "error"):
            return None
        return cls(parse_iso(raw.get("started_at")), str(raw["outcome"]), str(raw.get("trigger") or ""),
                   raw.get("backup_id"), raw.get("error"))

    @property
    def failed(self) -> bool:
        return self.outcome == "error"


@dataclass(frozen=True)
class SchedulerStatus:
    available: bool
    state: str
    health: str
    config: ScheduleConfig
    interval_hours: float  # what the running scheduler uses (a CLI --every may override the saved one)
    interval_override: bool = False
    error: str | None = None  # why the state is unknown
    next_run: datetime | None = None
    next_cleanup: datetime | None = None
    last_run: LastRun | None = None
    last_backup_at: datetime | None = None
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_since: datetime | None = None
    lease_seconds: float | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    @property
    def running(self) -> bool:
        return self.state in ("here", "elsewhere")

    @property
    def configured_interval_hours(self) -> float:
        return self.config.interval_hours

    @property
    def applies_within_s(self) -> float:
        """How soon the running scheduler reads a saved change (it checks at each lease renewal)."""
        return max(1.0, round((self.lease_seconds or 30.0) / 3))


def _state(raw: dict, me: tuple[str, int]) -> str:
    if not raw.get("available"):
        return "unknown"
    if raw.get("enabled") is False:
        return "off"
    owner = raw.get("owner") or {}
    if not raw.get("active") or not owner:
        return "none"
    return "here" if (owner.get("host"), owner.get("pid")) == me else "elsewhere"


def _problems(available: bool, enabled: bool, interval_h: float, last: LastRun | None,
              last_backup: datetime | None, now: datetime) -> tuple[str, list[Problem]]:
    if not available:
        return "unknown", []
    problems: list[Problem] = []
    if last is not None and last.failed:
        problems.append(Problem("failing", f"The last {last.trigger or 'scheduled'} backup failed: {last.error}"))
    if last_backup is None:
        problems.append(Problem("no-backup", "There is no backup yet"))
    elif enabled and interval_h and now - last_backup > timedelta(hours=LATE_AFTER_INTERVALS * interval_h):
        age = format_duration((now - last_backup).total_seconds())
        problems.append(Problem("late", f"The last backup is {age} old, more than {LATE_AFTER_INTERVALS} times the "
                                 f"{interval_h:g} h backup interval"))
    return (problems[0].kind if problems else "ok"), problems


def build_status(raw: dict, *, last_backup_at: datetime | None, now: datetime | None = None,
                 me: tuple[str, int] | None = None) -> SchedulerStatus:
    """``SchedulerStatus`` from ``scheduler_status``'s facts and the newest backup's time."""
    now = now or utc_now()
    me = me or (socket.gethostname(), os.getpid())
    available = bool(raw.get("available"))
    try:
        config = ScheduleConfig(**raw["config"]) if available else ScheduleConfig()
    except (KeyError, TypeError):
        config = ScheduleConfig()
    interval = float(raw.get("interval_hours") or config.interval_hours)
    last = LastRun.of(raw.get("last_run"))
    health, problems = _problems(available, config.enabled, interval, last, last_backup_at, now)
    owner = raw.get("owner") or {}
    return SchedulerStatus(
        available=available, state=_state(raw, me), health=health, config=config, interval_hours=interval,
        interval_override=bool(raw.get("interval_override")), error=raw.get("error"),
        next_run=parse_iso(raw.get("next_run")), next_cleanup=parse_iso(raw.get("next_cleanup")),
        last_run=last, last_backup_at=last_backup_at, owner_host=owner.get("host"), owner_pid=owner.get("pid"),
        owner_since=parse_iso(owner.get("since")), lease_seconds=owner.get("lease_seconds"), problems=problems)


def status_of(settings, *, last_backup_at: datetime | None, now: datetime | None = None) -> SchedulerStatus:
    """The scheduler's status for ``settings``; never raises for an unreachable database (state ``unknown``)."""
    return build_status(scheduler_status(settings), last_backup_at=last_backup_at, now=now)


# ---------------------------------------------------------------------------- the schedule as people type it

def schedule_from_form(saved: ScheduleConfig, *, interval_hours: float | None, max_root_mb: float | None,
                       enabled: bool) -> ScheduleConfig:
    """The schedule a person entered (hours, megabytes; empty or 0 MB: no limit), checked; the saved
    settings (retention, archive rules, drill period) are kept. Every wrong value is a ``UsageError``
    naming its field."""
    if interval_hours is None or not (MIN_INTERVAL_HOURS <= float(interval_hours) <= MAX_INTERVAL_HOURS):
        shown = "nothing" if interval_hours is None else f"{float(interval_hours):g}"
        raise UsageError(f"the backup interval must be between {MIN_INTERVAL_HOURS:g} and {MAX_INTERVAL_HOURS:g} "
                         f"hours (6 minutes to one week), got {shown}")
    if max_root_mb is not None and not float(max_root_mb) >= 0:  # also refuses nan
        raise UsageError("the maximum backup root size must be 0 (no limit) or more MB")
    limit = int(float(max_root_mb or 0) * 1024 * 1024) or None
    return replace(saved, interval_hours=round(float(interval_hours), 3), max_root_bytes=limit,
                   enabled=bool(enabled))


__all__ = ["LATE_AFTER_INTERVALS", "Problem", "LastRun", "SchedulerStatus", "build_status", "status_of", "schedule_from_form"]
