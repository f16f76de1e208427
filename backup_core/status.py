"""The state of the system at a glance: database, newest backup, scheduler, storage, leftovers.

``system_status`` is what ``status`` prints and what the Python API's
``status()`` returns. The backup side (newest backup, scheduler, storage) is
read even when the database is down: the error then carries it as its
``payload`` (``status --json`` prints it with the failure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import codec, drill_results, notify
from .config import Settings
from .context import open_context
from .errors import BackupError
from .listing import is_locked, list_all
from .scheduler import pending_archives, scheduler_status
from .timeutil import format_duration, utc_now


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
    # archives prepared by "confirm" rules, waiting for an admin (None: the metadata database did not say)
    pending_archives: list | None = field(default_factory=list)
    drill: dict = field(default_factory=dict)  # the last proven restorable backup (``drill_results.summary``)
    point_in_time: dict | None = None  # whether this server's backups are of one moment, and why not

    def to_json(self) -> dict:
        return {"database": self.database, "embedded": self.embedded, "uri": self.uri,
                "collections": self.collections, "last_backup": self.last_backup,
                "scheduler": self.scheduler, "leftovers": self.leftovers, "storage": self.storage,
                "codec": self.codec, "pending_archives": self.pending_archives, "drill": self.drill,
                "point_in_time": self.point_in_time}

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
        lines.append(last_backup_text(self.last_backup))
        pit = self.point_in_time
        if pit is not None and not pit.get("consistent"):
            # said here once, not after every backup: on a standalone server it is true of every backup
            lines.append(f"backups are NOT point-in-time consistent: {pit.get('reason') or 'no snapshot read'}")
        lines += drill_lines(self.drill)
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
        for p in self.pending_archives or []:
            lines.append(f"pending archive {p['id']}: {p['matching']} document(s) of {p['collection']} "
                         f"(prepared {p['prepared_at']}), waiting for an admin to confirm or dismiss it")
        for st in self.leftovers.get("staging", []):
            if st["state"] == "active":
                lines.append(f"swap-in collection {st['name']}: a restore into {st['target']} is running "
                             f"(pid {st.get('pid')} on {st.get('host')}, {st['documents']} documents so far)")
            else:
                lines.append(f"leftover: swap-in collection {st['name']} of a restore into {st['target']} "
                             f"({st['documents']} documents, {st['state']}: its restore is gone; removed by "
                             "the next backup or restore)")
        for d in self.leftovers.get("drill_databases", []):
            if d.get("error"):
                lines.append(f"drill databases on {d['server']}: unknown ({d['error']})")
            else:
                lines.append(f"leftover: drill database {d['name']} on {d['server']} (backup {d['backup_id']}, "
                             + ("its drill was killed; removed by the next drill or clean-up)" if d["owner_gone"]
                                else f"drill running: pid {d['pid']} on {d['host']})"))
        return "\n".join(lines)


def drill_lines(drill: dict) -> list[str]:
    """The last proven restorable backup, and a warning when the last drill failed."""
    if not drill:
        return []
    lines = [f"drill: {drill.get('proven')}"]
    last = drill.get("last")
    if last and not last.get("ok"):
        lines.append(f"WARNING: the last drill (backup {last['backup_id']} at {last['at']}) FAILED: "
                     + "; ".join(last.get("failures") or []))
    return lines


def last_backup_text(b: dict | None) -> str:
    if not b:
        return "last backup: none"
    if b.get("locked"):
        return (f"last backup: {b['backup_id']} ({b['age_text']} ago; encrypted with key {b['key_fingerprint']}, "
                "which is not configured here)")
    return f"last backup: {b['backup_id']} ({b['trigger']}, {b['age_text']} ago)"


def last_backup_info(listing) -> dict | None:
    """The newest backup that is not a side backup (safety, pre-write, archive), locked (encrypted, no key)
    ones included."""
    b = listing.newest(safety=False)
    if b is None:
        return None
    age = (utc_now() - b.created).total_seconds()
    return {"backup_id": b.backup_id, "created_at": b.created_at, "trigger": b.trigger, "day": b.day,
            "age": round(age, 1), "age_text": format_duration(age), "locked": is_locked(b),
            "key_fingerprint": b.key_fingerprint if b.encrypted else None}


def point_in_time_info(listing) -> dict | None:
    """From the newest readable backup's manifest: whether its collections are of one moment, and why not."""
    for b in listing.readable:
        c = b.manifest.get("consistency")
        if isinstance(c, dict):
            return {"consistent": bool(c.get("point_in_time")), "reason": c.get("reason"),
                    "backup_id": b.backup_id}
    return None


def storage_info(settings: Settings, store) -> dict:
    """Where backups go and how (never credentials): url, encryption of new backups, the mirror."""
    key = store.keyring.current
    return {"url": store.url, "encrypted": key is not None, "key_fingerprint": key.fingerprint if key else None,
            "mirror": settings.mirror_root}


def system_status(settings: Settings, *, connector: Callable | None = None) -> StatusResult:
    """The status; ``connector`` gives the database connection (default: a new one, closed again)."""
    from .db import database_info  # late: the driver is only needed here
    from .drill import leftover_databases
    from .operation import running_ids
    from .swapin import SwapInRegistry

    with open_context(settings, connector=connector) as ctx:
        store = ctx.store
        sched = scheduler_status(settings)
        sched["notifications"] = notify.describe(settings)  # where failures go (never the secret parts)
        listing = list_all(store)
        last = last_backup_info(listing)
        pit = point_in_time_info(listing)
        # (swap-in collections: "staging", the key's first name)
        leftovers = {"temporaries": store.leftovers(), "staging": [], "drill_databases": []}
        try:
            conn = ctx.connect()
            info = database_info(conn)
            leftovers["staging"] = SwapInRegistry.of(conn.db, settings.meta_db).leftovers(running_ids())
            leftovers["drill_databases"] = leftover_databases(settings, conn.client)
        except BackupError as exc:
            # the backup side is still worth showing when the database is down
            exc.payload = {"database": settings.db_name, "embedded": settings.embedded,
                           "last_backup": last, "scheduler": sched, "leftovers": leftovers,
                           "storage": storage_info(settings, store), "codec": codec.accelerator(),
                           "drill": drill_results.summary(settings), "point_in_time": pit}
            raise
        return StatusResult(info["database"], info["embedded"], info["uri"], info["collections"], last, sched,
                            leftovers, storage_info(settings, store), codec.accelerator(), _pending(settings),
                            drill_results.summary(settings), pit)


def _pending(settings: Settings) -> list | None:
    try:
        return [p.to_json() for p in pending_archives(settings)]
    except BackupError:  # the metadata database cannot be read: unknown, not "none"
        return None
