"""``status``: the database, its collections, the newest backup, the scheduler and any leftovers, at a glance."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import codec, notify
from ..context import open_store
from ..errors import BackupError
from ..scheduler import scheduler_status
from ..timeutil import format_duration, utc_now


@dataclass
class StatusResult:
    database: str
    embedded: bool
    uri: str
    collections: dict
    last_backup: dict | None
    scheduler: dict
    leftovers: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)
    codec: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"database": self.database, "embedded": self.embedded, "uri": self.uri,
                "collections": self.collections, "last_backup": self.last_backup,
                "scheduler": self.scheduler, "leftovers": self.leftovers, "storage": self.storage,
                "codec": self.codec}

    def to_text(self) -> str:
        lines = [f"database {self.database} ({self.uri})"]
        st = self.storage
        if st:
            lines.append(f"backups stored in {st['url']}; new backups "
                         + (f"encrypted (key {st['key_fingerprint']})" if st.get("encrypted") else "not encrypted")
                         + (f"; second copy in {st['mirror']}" if st.get("mirror") else ""))
        if self.codec:
            lines.append(f"codec: {self.codec.get('reason')}")
        for name, c in self.collections.items():
            lines.append(f"  {name}: {c['count']} documents")
        b = self.last_backup
        lines.append(f"last backup: {b['backup_id']} ({b['trigger']}, {b['age_text']} ago)" if b
                     else "last backup: none")
        s = self.scheduler
        if not s.get("available", True):
            lines.append(f"scheduler: unknown ({s.get('error')})")
        elif s["active"]:
            owner = s.get("owner") or {}
            lines.append(f"scheduler: active (pid {owner.get('pid')} on {owner.get('host')}, fencing token "
                         f"{owner.get('token')}), every {s['interval_hours']:g} h, next run {s['next_run'] or '-'}")
        else:
            lines.append(f"scheduler: not running (interval {s['interval_hours']:g} h)")
        if s.get("backups_total") or s.get("failures_total"):
            lines.append(f"scheduler runs: {s['backups_total']} ok, {s['failures_total']} failed "
                         f"({s['consecutive_failures']} in a row), last success {s.get('last_success_at') or '-'}")
        result = s.get("last_result")
        if result:
            warn = "WARNING: " if result.get("outcome") == "error" else ""
            lines.append(f"{warn}last scheduled run {result.get('at')}: {result.get('outcome')}"
                         + (f" ({result['error']})" if result.get("error") else ""))
        for t in self.leftovers.get("temporaries", []):
            lines.append(f"leftover: {t} (removed by the next backup, restore or clean-up)")
        for st in self.leftovers.get("staging", []):
            if st["state"] == "active":
                lines.append(f"staging collection {st['name']}: a restore into {st['target']} is running "
                             f"(pid {st.get('pid')} on {st.get('host')}, {st['documents']} documents so far)")
            else:
                lines.append(f"leftover: staging collection {st['name']} of a restore into {st['target']} "
                             f"({st['documents']} documents, {st['state']}: its restore is gone; removed by "
                             "the next backup or restore)")
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("status", help="database, newest backup, scheduler status and leftovers")
    p.set_defaults(handler=run)
    return p


def last_backup_info(store) -> dict | None:
    backups = store.list_backups()
    if not backups:
        return None
    b = backups[0]
    age = (utc_now() - b.created).total_seconds()
    return {"backup_id": b.backup_id, "created_at": b.created_at, "trigger": b.trigger, "day": b.day,
            "age": round(age, 1), "age_text": format_duration(age)}


def run(args, settings):
    from ..db import connect, database_info  # late: the driver is only needed here
    from ..staging import StagingRegistry

    store = open_store(settings)
    sched = scheduler_status(settings)
    sched["notifications"] = notify.describe(settings)  # where failures go (never the secret parts)
    last = last_backup_info(store)
    leftovers = {"temporaries": store.leftovers(), "staging": []}
    try:
        with connect(settings) as conn:
            info = database_info(conn)
            leftovers["staging"] = StagingRegistry.of(conn.db, settings.meta_db).leftovers()
    except BackupError as exc:
        # the backup side is still worth showing when the database is down
        exc.payload = {"database": settings.db_name, "embedded": settings.embedded,
                       "last_backup": last, "scheduler": sched, "leftovers": leftovers,
                       "storage": storage_info(settings, store), "codec": codec.accelerator()}
        raise
    return StatusResult(info["database"], info["embedded"], info["uri"], info["collections"], last, sched,
                        leftovers, storage_info(settings, store), codec.accelerator())


def storage_info(settings, store) -> dict:
    """Where backups go and how (never credentials): url, encryption of new backups, the mirror."""
    key = store.keyring.current
    return {"url": store.url, "encrypted": key is not None, "key_fingerprint": key.fingerprint if key else None,
            "mirror": settings.mirror_root}
