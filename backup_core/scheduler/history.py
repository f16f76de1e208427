"""The scheduler's run history and state, and the status built from them.

``<root>/.scheduler/history.jsonl``: one line per run (backup or clean-up),
appended under a ``filelock``, trimmed to the newest ``HISTORY_KEEP`` runs
past ``HISTORY_MAX_BYTES`` (the audit log keeps everything; this is the
dashboard's view). ``state.json``: written by the active scheduler (effective
interval, next runs). ``scheduler_status`` reads files only: no database, no
lease change.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any

from filelock import FileLock

from .. import audit
from ..fsutil import atomic_write
from ..timeutil import iso
from .config import load_config, read_json, scheduler_dir
from .lease import lease_holder

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
HISTORY_MAX_BYTES = 4 << 20  # about 15,000 runs: most of two years of hourly backups
HISTORY_KEEP = 5000


def append_history(root, entry: dict) -> None:
    path = scheduler_dir(root) / HISTORY_FILE
    line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", is_singleton=True, thread_local=True):
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                if os.fstat(fd).st_size > HISTORY_MAX_BYTES:
                    _trim(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        log.warning("cannot write scheduler history %s: %s", path, exc)


def _trim(fd: int) -> None:
    """Keep the newest HISTORY_KEEP runs, rewritten in place under the lock."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    keep = b"".join(chunks).splitlines(keepends=True)[-HISTORY_KEEP:]
    os.ftruncate(fd, 0)
    os.write(fd, b"".join(keep))  # O_APPEND: lands at offset 0 of the emptied file


def run_history(root, limit: int = 50) -> list[dict]:
    """Runs newest first: started_at, duration_s, trigger, outcome, backup_id, counts, error (+ kind)."""
    return audit.read_jsonl_newest_first(scheduler_dir(root) / HISTORY_FILE, limit)


def history_entry(kind: str, trigger: str, started: datetime, duration_s: float, outcome: str, *,
                  backup_id: str | None = None, counts: dict | None = None, error: str | None = None,
                  **extra: Any) -> dict:
    entry = {"started_at": iso(started), "duration_s": round(duration_s, 3), "kind": kind,
             "trigger": trigger, "outcome": outcome, "backup_id": backup_id, "counts": counts or {},
             "error": error}
    entry.update(extra)
    return entry


def write_state(root, state: dict) -> None:
    try:
        atomic_write(scheduler_dir(root) / STATE_FILE, json.dumps(state, indent=2, default=str), durable=False)
    except OSError as exc:
        log.warning("cannot write scheduler state: %s", exc)


def last_backup_run(root) -> dict | None:
    for entry in run_history(root, limit=200):
        if entry.get("kind", "backup") == "backup" and entry.get("outcome") in ("ok", "error"):
            return entry
    return None


def scheduler_status(root) -> dict:
    """What the dashboard and ``status`` show."""
    config = load_config(root)
    holder = lease_holder(root)
    state = read_json(scheduler_dir(root) / STATE_FILE) or {}
    own_state = bool(holder and state.get("owner") == holder.get("owner"))
    last = last_backup_run(root)
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
