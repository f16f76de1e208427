"""Restores and their undo: what was restored when, the safety backup each one took, and whether it
was undone, read from the audit log so it survives restarts and is the same for every session and host.

Every restore writes a safety backup first (``trigger: safety``, its
manifest naming the backup it was taken for in ``restore_of``); restoring
that safety backup in replace mode undoes the restore. ``recent_restores``
pairs each finished restore with its safety backup and with a later restore
of that safety backup (its undo); ``latest_undoable`` is the restore the
dashboard's Undo button offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .store import Store


@dataclass
class RestoreRecord:
    at: str
    user: str
    backup_id: str
    mode: str
    database: str
    safety_backup_id: str | None
    collections: list[str] = field(default_factory=list)
    undone_by: str | None = None  # the safety backup of the restore that undid this one
    undone_at: str | None = None

    @property
    def undoable(self) -> bool:
        return bool(self.safety_backup_id) and self.undone_by is None

    def to_json(self) -> dict:
        return {"at": self.at, "user": self.user, "backup_id": self.backup_id, "mode": self.mode,
                "database": self.database, "safety_backup_id": self.safety_backup_id,
                "collections": self.collections, "undone_by": self.undone_by, "undone_at": self.undone_at}


def recent_restores(store: Store, limit: int = 20, scan: int = 5000) -> list[RestoreRecord]:
    """Finished restores, newest first (at most ``limit``), each with its safety backup and undo."""
    records: list[RestoreRecord] = []
    undo_of: dict[str, tuple[str | None, str]] = {}  # safety id -> (its undo's own safety id, when)
    for e in store.audit_log().read(scan):
        if e.get("action") != "restore" or e.get("outcome") != "ok":
            continue
        counts = e.get("counts") or {}
        rec = RestoreRecord(e.get("at", ""), e.get("user", ""), e.get("backup_id", ""), e.get("mode", ""),
                            e.get("database", ""), e.get("safety_backup_id"), sorted(counts))
        # entries come newest first: a restore of a safety backup seen already undid an older restore
        undo = undo_of.get(rec.safety_backup_id or "")
        if undo is not None:
            rec.undone_by, rec.undone_at = undo
        undo_of.setdefault(rec.backup_id, (rec.safety_backup_id, rec.at))
        records.append(rec)
        if len(records) >= limit:
            break
    return records


def latest_undoable(store: Store) -> RestoreRecord | None:
    """The newest restore, if it can still be undone (its safety backup exists and it was not undone)."""
    for rec in recent_restores(store, limit=1):
        if rec.undoable and rec.safety_backup_id and store.exists(rec.safety_backup_id):
            return rec
    return None
