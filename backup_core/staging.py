"""Staging collections of replace-restores, and the registry that is the only way to know them.

A replace-restore fills each collection under a fresh name and swaps it in
with ``renameCollection(dropTarget)`` once all are filled. Those names are
never recognised by their look (a user may name a collection anything):
``create`` records a random name in the registry, a collection of the
metadata database (default ``<db>_backup_meta``, never backed up or
restored), *before* the collection exists. Whatever the registry holds is not
user data: backups skip it, and ``sweep`` removes it once its owner is gone.

An owner is gone when its process no longer runs (same host: pid and start
time) or its heartbeat is older than ``STALE_S`` (another host). A killed
restore's last insert may still be running on the server after the client
died and re-create the collection after it was dropped, so a dropped entry
stays registered for ``GRACE_S`` and every sweep drops the collection again
if it reappeared; ``status`` shows what is left.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from pymongo.database import Database

from .locks import owner_record, process_alive
from .mongoutil import translate_errors
from .timeutil import now_iso, parse_iso

REGISTRY = "staging"
PREFIX = "__bk_stage_"
STALE_S = 600.0
GRACE_S = 600.0
HEARTBEAT_S = 10.0


def meta_name(db_name: str) -> str:
    return f"{db_name}_backup_meta"


def _translate(what: str, meta: Database):
    return translate_errors(what, hint=f"the backup user needs readWrite on the metadata database {meta.name}")


@dataclass
class StagingRegistry:
    """The staging collections of one user database, registered in its metadata database."""

    db: Database
    meta: Database

    @classmethod
    def of(cls, db: Database, meta_db: str | None = None) -> "StagingRegistry":
        return cls(db, db.client[meta_db or meta_name(db.name)])

    @property
    def _coll(self):
        return self.meta[REGISTRY]

    def _id(self, name: str) -> str:
        return f"{self.db.name}.{name}"

    def create(self, target: str, op_id: str = "") -> str:
        """Register and return a new staging name for ``target`` (the collection is not created here)."""
        now = now_iso()
        with _translate("registering a staging collection", self.meta):
            existing = set(self.db.list_collection_names())
            while True:
                name = PREFIX + secrets.token_hex(12)
                if name not in existing:
                    break
            self._coll.insert_one({"_id": self._id(name), "db": self.db.name, "name": name, "target": target,
                                   "op": op_id, **owner_record(), "created_at": now, "heartbeat_at": now,
                                   "state": "active"})
        return name

    def heartbeat(self, name: str) -> None:
        with _translate("updating the staging registry", self.meta):
            self._coll.update_one({"_id": self._id(name)}, {"$set": {"heartbeat_at": now_iso()}})

    def finished(self, name: str) -> None:
        """The staging collection was renamed into place: forget it."""
        with _translate("updating the staging registry", self.meta):
            self._coll.delete_one({"_id": self._id(name)})

    def discard(self, name: str) -> None:
        """Drop a staging collection and keep its entry for the grace period."""
        with _translate("dropping a staging collection", self.meta):
            self.db.drop_collection(name)
            self._coll.update_one({"_id": self._id(name)},
                                  {"$set": {"state": "dropped", "dropped_at": now_iso()}})

    def names(self) -> set[str]:
        """Every registered name of this database (active or recently dropped)."""
        with _translate("reading the staging registry", self.meta):
            return {e["name"] for e in self._coll.find({"db": self.db.name}, {"name": 1})}

    def _stale(self, entry: dict, now: float) -> bool:
        beat = parse_iso(entry.get("heartbeat_at"))
        old = beat is None or now - beat.timestamp() > STALE_S
        me = owner_record()
        if entry.get("host") == me["host"] and entry.get("pid") == me["pid"]:
            # this process: stale unless the operation that made it is still running here
            from .operation import running_ids

            return entry.get("op") not in running_ids()
        if entry.get("host") == me["host"]:
            return old or not process_alive(entry.get("pid"), entry.get("pid_started"), entry.get("host"))
        return old

    def sweep(self) -> list[str]:
        """Drop the staging collections of owners that are gone; returns the names dropped."""
        dropped: list[str] = []
        now = time.time()
        with _translate("cleaning up staging collections", self.meta):
            live = set(self.db.list_collection_names())
            for entry in list(self._coll.find({"db": self.db.name})):
                name = entry.get("name")
                if not isinstance(name, str) or not name.startswith(PREFIX):
                    continue  # never drop anything the registry does not clearly own
                if entry.get("state") == "active":
                    if not self._stale(entry, now):
                        continue
                    self.db.drop_collection(name)
                    self._coll.update_one({"_id": entry["_id"]},
                                          {"$set": {"state": "dropped", "dropped_at": now_iso()}})
                    dropped.append(name)
                elif name in live:  # re-created by a killed client's last insert
                    self.db.drop_collection(name)
                    self._coll.update_one({"_id": entry["_id"]}, {"$set": {"dropped_at": now_iso()}})
                    dropped.append(name)
                else:
                    since = parse_iso(entry.get("dropped_at"))
                    if since is None or now - since.timestamp() > GRACE_S:
                        self._coll.delete_one({"_id": entry["_id"]})
        return dropped

    def leftovers(self) -> list[dict]:
        """Registered staging collections that still exist, with who made them and when.

        ``state``: ``active`` only while the restore that made it still runs; ``abandoned`` when its
        owner is gone (a killed restore: the next sweep drops it); ``dropped`` when a killed client's
        last insert re-created it after it was dropped.
        """
        now = time.time()
        with _translate("reading the staging registry", self.meta):
            live = set(self.db.list_collection_names())
            out = []
            for e in self._coll.find({"db": self.db.name}):
                if e.get("name") in live:
                    state = e.get("state")
                    if state == "active" and self._stale(e, now):
                        state = "abandoned"
                    out.append({"name": e["name"], "target": e.get("target"), "state": state,
                                "created_at": e.get("created_at"), "host": e.get("host"), "pid": e.get("pid"),
                                "documents": self.db[e["name"]].estimated_document_count()})
            return out

