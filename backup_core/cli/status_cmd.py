"""``status``: the database, its collections, the newest backup and the scheduler, at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ..context import open_store
from ..errors import BackupError
from ..retention import format_duration
from ..scheduler import scheduler_status


@dataclass
class StatusResult:
    database: str
    embedded: bool
    uri: str
    collections: dict
    last_backup: dict | None
    scheduler: dict

    def to_json(self) -> dict:
        return {"database": self.database, "embedded": self.embedded, "uri": self.uri,
                "collections": self.collections, "last_backup": self.last_backup,
                "scheduler": self.scheduler}

    def to_text(self) -> str:
        lines = [f"database {self.database} ({self.uri})"]
        for name, c in self.collections.items():
            lines.append(f"  {name}: {c['count']} documents")
        b = self.last_backup
        lines.append(f"last backup: {b['backup_id']} ({b['trigger']}, {b['age_text']} ago)" if b
                     else "last backup: none")
        s = self.scheduler
        if s["active"]:
            owner = s.get("owner") or {}
            lines.append(f"scheduler: active (pid {owner.get('pid')} on {owner.get('host')}), every "
                         f"{s['interval_hours']:g} h, next run {s['next_run'] or '-'}")
        else:
            lines.append(f"scheduler: not running (interval {s['interval_hours']:g} h)")
        result = s.get("last_result")
        if result:
            warn = "WARNING: " if result.get("outcome") == "error" else ""
            lines.append(f"{warn}last scheduled run {result.get('at')}: {result.get('outcome')}"
                         + (f" ({result['error']})" if result.get("error") else ""))
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("status", help="database, newest backup and scheduler status")
    p.set_defaults(handler=run)
    return p


def last_backup_info(settings) -> dict | None:
    backups = open_store(settings).list_backups()
    if not backups:
        return None
    b = backups[0]
    age = (datetime.now(timezone.utc) - b.created).total_seconds()
    return {"backup_id": b.backup_id, "created_at": b.created_at, "trigger": b.trigger, "day": b.day,
            "age": round(age, 1), "age_text": format_duration(age)}


def run(args, settings):
    from ..db import connect, database_info  # late: the driver is only needed here

    sched = scheduler_status(settings.backup_root)
    last = last_backup_info(settings)
    try:
        with connect(settings) as conn:
            info = database_info(conn)
    except BackupError as exc:
        # the backup side is still worth showing when the database is down
        exc.payload = {"database": settings.db_name, "embedded": settings.embedded,
                       "last_backup": last, "scheduler": sched}
        raise
    return StatusResult(info["database"], info["embedded"], info["uri"], info["collections"], last, sched)
