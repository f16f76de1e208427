"""Every backup of a root in time order, readable or not: what every view lists (``list``, ``status``, pages).

``store.list_backups`` returns the backups this process can read and reports
an encrypted backup whose key is not configured only on the side
(``locked=``), so a view that shows the first list alone silently loses it,
newest backups included. ``list_all`` merges both into one newest-first
list. A locked backup's manifest cannot be read, so its time is its id (the
UTC timestamp of its creation, ``YYYYMMDDTHHMMSSZ``) and all that is known
about it is that id, its day folder and the fingerprint of the key it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .store import BackupInfo, Store
from .timeutil import iso


def created_from_id(backup_id: str) -> datetime:
    """The UTC time a backup id names (``20261124T143022Z`` or ``20261124T143022Z-01``)."""
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class LockedBackup:
    """An encrypted backup whose key is not configured: listed, marked, never read."""

    backup_id: str
    day: str
    key_fingerprint: str
    location: str = ""

    locked = True
    encrypted = True
    trigger = None

    @property
    def created(self) -> datetime:
        return created_from_id(self.backup_id)

    @property
    def created_at(self) -> str:
        return iso(self.created)  # type: ignore[return-value]

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "day": self.day, "created_at": self.created_at, "trigger": None,
                "locked": True, "encrypted": True, "key_fingerprint": self.key_fingerprint,
                "location": self.location, "collections": {}}


def is_locked(entry: object) -> bool:
    return isinstance(entry, LockedBackup)


@dataclass
class Listing:
    """``entries``: every committed backup, newest first; ``unreadable``: folders that are not readable backups."""

    entries: list = field(default_factory=list)  # BackupInfo | LockedBackup
    unreadable: list[str] = field(default_factory=list)

    @property
    def readable(self) -> list[BackupInfo]:
        return [e for e in self.entries if not is_locked(e)]

    @property
    def locked(self) -> list[LockedBackup]:
        return [e for e in self.entries if is_locked(e)]

    def newest(self, *, safety: bool = True):
        """The newest backup (locked ones included: they are backups too); ``safety=False`` skips the
        backups taken on the way to something else (a restore's safety backup, a pre-write or archive
        backup). None when there is none."""
        from .backup import SIDE_TRIGGERS

        for e in self.entries:
            if safety or e.trigger not in SIDE_TRIGGERS:
                return e
        return None

    def needed_keys(self) -> list[str]:
        """Fingerprints of the keys the locked backups need, each once."""
        return sorted({e.key_fingerprint for e in self.locked})

    def locked_text(self) -> str:
        """One line for people about the locked backups ('' when there is none)."""
        locked = self.locked
        if not locked:
            return ""
        keys = ", ".join(self.needed_keys())
        what = "1 backup is" if len(locked) == 1 else f"{len(locked)} backups are"
        return (f"{what} encrypted with a key that is not configured (key {keys}): listed, but it cannot be "
                "read, compared or restored here; add its key file to BACKUP_KEY_FILES")


def list_all(store: Store) -> Listing:
    """Every backup of ``store``, readable or locked, newest first (see the module docstring)."""
    errors: list[str] = []
    locked: list[dict] = []
    readable = store.list_backups(errors=errors, locked=locked)
    entries: list = list(readable)
    for item in locked:
        entries.append(LockedBackup(item["backup_id"], item["day"], str(item.get("key_fingerprint") or "?"),
                                    str(item.get("location") or "")))
    entries.sort(key=lambda e: (e.created, e.backup_id), reverse=True)
    return Listing(entries, errors)


__all__ = ["LockedBackup", "Listing", "created_from_id", "is_locked", "list_all"]
