"""The scheduler's run history and statistics, and the status built from them.

Both live in the metadata database (see ``metadb``), shared by every host:

- ``scheduler_history``: one document per run (backup or clean-up): when,
  how long, trigger, outcome, backup id, counts, error, host and pid; trimmed
  to the newest ``HISTORY_KEEP`` runs of a scope (the audit log keeps
  everything; this is the dashboard's view);
- ``scheduler_stats``: one document per scope with counters that only grow
  (``backups_total``, ``failures_total``, ...) and the latest facts
  (last success, last duration, last size, consecutive failures), updated
  with each run. ``status --json`` and ``/metrics`` report them.

``scheduler_status`` never raises for an unreachable database: it says so
(``available: false``) and shows the defaults, so ``status`` and the pages
still show the backup side.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from ..config import Settings
from ..errors import DatabaseUnavailable
from ..locks import owner_record
from ..timeutil import iso, parse_iso, utc_now
from .config import ScheduleConfig, read_config
from .lease import holder_view, is_live, read_lease
from .metadb import HISTORY, STATS, Scope, as_settings, meta, scope_of

log = logging.getLogger(__name__)

HISTORY_KEEP = 5000  # most of seven months of hourly backups
_TRIM_SLACK = 0.1    # trim once the history is 10 % past HISTORY_KEEP, not at every run


def history_entry(kind: str, trigger: str, started: datetime, duration_s: float, outcome: str, *,
                  backup_id: str | None = None, counts: dict | None = None, error: str | None = None,
                  **extra: Any) -> dict:
    entry = {"started_at": iso(started), "duration_s": round(duration_s, 3), "kind": kind,
             "trigger": trigger, "outcome": outcome, "backup_id": backup_id, "counts": counts or {},
             "error": error}
    entry.update(extra)
    return entry


def append_history(settings: "Settings | str | Path", entry: dict) -> bool:
    """Record one run: its history line and the statistics. Never raises; False when not recorded."""
    settings = as_settings(settings)
    scope = scope_of(settings)
    me = owner_record()
    doc = {**entry, "scope": scope.id, "host": me["host"], "pid": me["pid"]}
    try:
        with meta(settings, "recording a scheduler run") as db:
            db[HISTORY].insert_one(doc)
            _update_stats(db, scope, entry)
            _trim(db, scope)
    except DatabaseUnavailable as exc:
        log.warning("cannot record the scheduler run (%s %s): %s", entry.get("kind"), entry.get("outcome"), exc)
        return False
    return True


def _update_stats(db: Database, scope: Scope, entry: dict) -> None:
    kind, outcome = entry.get("kind", "backup"), entry.get("outcome")
    finished = parse_iso(entry.get("started_at"))
    at = iso(finished + _seconds(entry.get("duration_s"))) if finished else None  # when the run ended
    inc: dict[str, int] = {}
    put: dict[str, Any] = {**scope.fields(), "updated_at": at}
    if kind == "backup" and outcome in ("ok", "error"):
        put["last_run"] = {k: entry.get(k) for k in ("started_at", "duration_s", "trigger", "outcome",
                                                     "backup_id", "error")}
        put["last_duration_s"] = entry.get("duration_s")
        if outcome == "ok":
            inc["backups_total"] = 1
            put.update(consecutive_failures=0, last_success_at=at, last_backup_id=entry.get("backup_id"),
                       last_backup_bytes=entry.get("bytes"))
        else:
            inc.update(failures_total=1, consecutive_failures=1)
            put.update(last_failure_at=at, last_error=entry.get("error"))
    elif kind == "backup":
        inc["skipped_total"] = 1
    elif kind == "cleanup":
        if outcome == "ok":
            put["last_cleanup_at"] = at
        elif outcome == "error":
            inc["cleanup_failures_total"] = 1
    update: dict = {"$set": put}
    if inc:
        update["$inc"] = inc
    db[STATS].update_one({"_id": scope.id}, update, upsert=True)


def _seconds(value) -> timedelta:
    try:
        return timedelta(seconds=float(value or 0))
    except (TypeError, ValueError):
        return timedelta(0)


def _trim(db: Database, scope: Scope) -> None:
    coll = db[HISTORY]
    if coll.count_documents({"scope": scope.id}) <= HISTORY_KEEP * (1 + _TRIM_SLACK):
        return
    keep = list(coll.find({"scope": scope.id}, {"started_at": 1}).sort("started_at", DESCENDING)
                .skip(HISTORY_KEEP - 1).limit(1))
    if keep and keep[0].get("started_at"):
        coll.delete_many({"scope": scope.id, "started_at": {"$lt": keep[0]["started_at"]}})


def _runs(db: Database, scope: Scope, limit: int, query: dict | None = None) -> list[dict]:
    cursor = (db[HISTORY].find({"scope": scope.id, **(query or {})}, {"_id": 0, "scope": 0})
              .sort([("started_at", DESCENDING), ("_id", DESCENDING)]).limit(limit))
    return list(cursor)


def run_history(settings: "Settings | str | Path", limit: int = 50, **query: Any) -> list[dict]:
    """Runs newest first: started_at, duration_s, kind, trigger, outcome, backup_id, counts, error, host, pid."""
    settings = as_settings(settings)
    with meta(settings) as db:
        return _runs(db, scope_of(settings), limit, query)


def last_run(settings: Settings, **query: Any) -> dict | None:
    runs = run_history(settings, 1, **query)
    return runs[0] if runs else None


def cleanup_anchor(settings: Settings, trigger: str = "weekly") -> datetime | None:
    """When the periodic clean-up of this scope counts from: its last run, or else the first time a
    scheduler asked (recorded then, in ``scheduler_stats``), so that starting a scheduler again and
    again never runs a "weekly" clean-up each time. Raises ``DatabaseUnavailable``."""
    scope = scope_of(settings)
    with meta(settings, "reading the clean-up schedule") as db:
        last = _runs(db, scope, 1, {"kind": "cleanup", "trigger": trigger})
        if last and parse_iso(last[0].get("started_at")):
            return parse_iso(last[0]["started_at"])
        # $min keeps the first value ever written: the scope's clean-up period starts once
        db[STATS].update_one({"_id": scope.id}, {"$min": {"cleanup_since": iso(utc_now())}}, upsert=True)
        doc = db[STATS].find_one({"_id": scope.id}, {"cleanup_since": 1}) or {}
    return parse_iso(doc.get("cleanup_since"))


def _unix(text) -> float | None:
    when = parse_iso(text)
    return round(when.timestamp(), 3) if when else None


def scheduler_status(settings: "Settings | str | Path") -> dict:
    """What the dashboard, ``status`` and ``/metrics`` show; degraded (``available: false``) without a database."""
    settings = as_settings(settings)
    scope = scope_of(settings)
    try:
        with meta(settings) as db:
            config = read_config(db, scope, settings)
            doc, now = read_lease(db, scope)
            stats = db[STATS].find_one({"_id": scope.id}) or {}
            last = next(iter(_runs(db, scope, 1, {"kind": "backup", "outcome": {"$in": ["ok", "error"]}})), None)
    except DatabaseUnavailable as exc:
        return _status(scope, ScheduleConfig(), None, None, {}, None, error=str(exc))
    return _status(scope, config, doc, now, stats, last)


def _status(scope: Scope, config: ScheduleConfig, doc: dict | None, now, stats: dict, last: dict | None, *,
            error: str | None = None) -> dict:
    live = is_live(doc, now)
    holder = holder_view(doc, now) if doc else None
    state = (holder or {}).get("state") or {}
    own_state = bool(live and state.get("owner") == holder.get("owner") and state.get("token") == holder.get("token"))
    return {
        "available": error is None,
        "error": error,
        "root": scope.root,
        "active": live,
        "owner": ({k: holder.get(k) for k in ("owner", "pid", "host", "database", "since", "expires_at",
                                               "expires_in_s", "token", "lease_seconds")}
                  if live and holder else None),
        "lease_token": (holder or {}).get("token"),
        "config": config.to_json(),
        "enabled": config.enabled,
        # the active scheduler's effective interval (a CLI --every may override the config)
        "interval_hours": state.get("interval_hours", config.interval_hours) if own_state else config.interval_hours,
        "configured_interval_hours": config.interval_hours,
        "interval_override": bool(state.get("interval_override")) if own_state else False,
        "state_updated_at": state.get("updated_at") if own_state else None,
        "retention_days": config.retention_days,
        "max_root_bytes": config.max_root_bytes,
        "next_run": state.get("next_run") if own_state else None,
        "next_cleanup": state.get("next_cleanup") if own_state else None,
        "next_drill": state.get("next_drill") if own_state else None,
        "drill_every_days": config.drill_every_days,
        "last_run": last,
        "last_result": ({"outcome": last.get("outcome"), "error": last.get("error"),
                         "backup_id": last.get("backup_id"), "at": last.get("started_at"),
                         "trigger": last.get("trigger")} if last else None),
        # the facts /metrics exports (scheduler_stats): counters only grow
        "last_success_at": stats.get("last_success_at"),
        "last_success_unix": _unix(stats.get("last_success_at")),
        "last_duration_s": stats.get("last_duration_s"),
        "last_backup_id": stats.get("last_backup_id"),
        "last_backup_bytes": stats.get("last_backup_bytes"),
        "backups_total": int(stats.get("backups_total") or 0),
        "failures_total": int(stats.get("failures_total") or 0),
        "consecutive_failures": int(stats.get("consecutive_failures") or 0),
        "cleanup_failures_total": int(stats.get("cleanup_failures_total") or 0),
        "skipped_total": int(stats.get("skipped_total") or 0),
    }
