"""Clean-up: delete backups older than the retention period.

Never deletes the newest backup (whatever its age: an idle system must keep
its last good copy) and never anything younger than the retention period,
safety backups included. Runs under the root lock and is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import audit
from .errors import UsageError
from .locks import root_lock
from .store import Store

DEFAULT_RETENTION = timedelta(days=7)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def format_duration(seconds: float) -> str:
    """A short duration for messages: ``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``30s``, ``10m``, ``1.5h``, ``7d``, ``2w`` (a bare number means hours)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text).lower())
    if not m:
        raise UsageError(f"invalid {what} {text!r}: use a number with a unit s, m, h, d or w (e.g. 30s, 1h, 7d)")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "h"]
    if seconds <= 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    if seconds > 100 * 365 * 86400:
        raise UsageError(f"{what} {text!r} is too long")
    return timedelta(seconds=seconds)


@dataclass
class CleanupResult:
    deleted: list[str] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = False
    freed_bytes: int = 0

    def to_json(self) -> dict:
        return {"deleted": self.deleted, "kept": self.kept, "dry_run": self.dry_run,
                "freed_bytes": self.freed_bytes}

    def to_text(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        head = f"{verb} {len(self.deleted)} backup(s), kept {self.kept}, {self.freed_bytes} bytes"
        return "\n".join([head] + [f"  {b}" for b in self.deleted])


def select_expired(store: Store, older_than: timedelta, now: datetime | None = None) -> tuple[list, int]:
    now = now or datetime.now(timezone.utc)
    backups = store.list_backups()
    cutoff = now - older_than
    expired = [b for b in backups[1:] if b.created < cutoff]  # backups[0] is the newest
    return expired, len(backups) - len(expired)


def cleanup(store: Store, older_than: timedelta = DEFAULT_RETENTION, *, dry_run: bool = False,
            user: str = "unknown", now: datetime | None = None, trigger: str = "manual") -> CleanupResult:
    with root_lock(store.root, "clean-up"):
        expired, kept = select_expired(store, older_than, now)
        result = CleanupResult(dry_run=dry_run, kept=kept)
        for info in expired:
            result.freed_bytes += info.total_bytes
            if not dry_run:
                store.delete(info.backup_id)
            result.deleted.append(info.backup_id)
        if not dry_run:
            store.sweep_temporaries()
            audit.record(store.root, user=user, action="cleanup", trigger=trigger,
                         older_than_s=older_than.total_seconds(), deleted=result.deleted,
                         freed_bytes=result.freed_bytes)
        return result
