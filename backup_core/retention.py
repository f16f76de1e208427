"""Clean-up: delete backups older than the retention period.

Never deletes the newest backup (whatever its age: an idle system must keep
its last good copy) and never anything younger than the retention period,
safety backups included. Runs as an audited, locked operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .operation import operation
from .store import BackupInfo, Store
from .timeutil import format_duration, parse_duration, utc_now

DEFAULT_RETENTION = timedelta(days=7)

__all__ = ["DEFAULT_RETENTION", "CleanupResult", "select_expired", "cleanup", "parse_duration",
           "format_duration"]


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


def select_expired(store: Store, older_than: timedelta, now: datetime | None = None) -> tuple[list[BackupInfo], int]:
    now = now or utc_now()
    backups = store.list_backups()
    cutoff = now - older_than
    expired = [b for b in backups[1:] if b.created < cutoff]  # backups[0] is the newest
    return expired, len(backups) - len(expired)


def cleanup(store: Store, older_than: timedelta = DEFAULT_RETENTION, *, dry_run: bool = False,
            user: str = "unknown", now: datetime | None = None, trigger: str = "manual") -> CleanupResult:
    action = "cleanup_dry_run" if dry_run else "cleanup"
    with operation(store, action, user=user, lock=not dry_run,
                   details={"trigger": trigger, "older_than_s": older_than.total_seconds()}) as op:
        expired, kept = select_expired(store, older_than, now)
        result = CleanupResult(dry_run=dry_run, kept=kept)
        for info in expired:
            result.freed_bytes += info.total_bytes
            if not dry_run:
                store.delete(info.backup_id)
            result.deleted.append(info.backup_id)
        op.note(deleted=result.deleted, freed_bytes=result.freed_bytes, kept=result.kept)
        return result
