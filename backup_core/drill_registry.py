"""Drill databases: the scratch databases of restore drills, and the registry that is the only way to know them.

A restore drill (``drill.py``) restores a backup into a database of its own,
on the live database's server or on another one (``BACKUP_DRILL_URI``). Such
a database is never recognised by its name alone (anyone may name a database
anything): ``register`` records it in ``drill_databases``, a collection of
the metadata database *on the server that holds it*, before anything is
written there, with its owner (host, pid and the pid's start time, the
operation) and a heartbeat. Its name starts with ``drill_`` so people
recognise it, but the name alone never makes a database a drill database:
only a registered database whose name has that prefix is ever dropped (never
a system or metadata database, whatever an entry says), and a database that
exists without being registered is never used.

A drill drops its database when it ends, whatever happened. One that was
killed cannot: ``sweep`` drops the databases whose owner is gone
(``swapin.owner_gone``: the process no longer runs on this host, or the
heartbeat of another host's drill is older than ``STALE_S``). A killed
drill's last insert may still run on the server after its client died and
re-create the database after it was dropped, so a dropped entry stays
registered for ``GRACE_S`` and every sweep drops the database again if it
came back. The next drill and every clean-up sweep; ``status`` shows what
is left (``leftovers``).
"""

from __future__ import annotations

import time
from typing import Iterator

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .errors import RestoreRefused
from .locks import owner_record
from .mongoutil import translate_errors
from .operation import running_ids
from .swapin import GRACE_S, HEARTBEAT_S, STALE_S, owner_gone
from .timeutil import now_iso, parse_iso

REGISTRY = "drill_databases"
DRILL_PREFIX = "drill_"
SYSTEM_DATABASES = ("admin", "local", "config")

__all__ = ["REGISTRY", "DRILL_PREFIX", "SYSTEM_DATABASES", "DrillRegistry", "database_exists", "HEARTBEAT_S",
           "STALE_S", "GRACE_S"]


def database_exists(client: MongoClient, name: str) -> bool:
    """Whether database ``name`` exists (MongoDB keeps a database exactly while it has a collection)."""
    with translate_errors(f"looking for database {name}"):
        return bool(client[name].list_collection_names())


class DrillRegistry:
    """The drill databases of one server, registered in the metadata database ``meta_db`` on that server."""

    def __init__(self, client: MongoClient, meta_db: str) -> None:
        self.client = client
        self.meta: Database = client[meta_db]

    @property
    def _coll(self):
        return self.meta[REGISTRY]

    def _translate(self, what: str):
        return translate_errors(what, hint=f"the drill needs readWrite on the metadata database {self.meta.name} "
                                           "of the server it restores into")

    def register(self, name: str, *, op_id: str, backup_id: str, source_db: str, root: str) -> None:
        """Record ``name`` as this operation's drill database, before it exists.

        A dropped entry of an earlier drill (kept for its grace period) is taken
        over; the name of a drill that still runs is refused (a name given by hand)."""
        now = now_iso()
        entry = {"_id": name, "name": name, "backup_id": backup_id, "source_db": source_db, "root": root,
                 "op": op_id, **owner_record(), "created_at": now, "heartbeat_at": now, "state": "active"}
        with self._translate("registering the drill database"):
            try:
                self._coll.insert_one(entry)
                return
            except DuplicateKeyError:
                pass
            if self._coll.replace_one({"_id": name, "state": "dropped"}, entry).matched_count:
                return
        raise RestoreRefused(f"database {name} is in use by another drill; nothing was written",
                             hint="wait for it to end, or give another --target-db")

    def is_registered(self, name: str) -> bool:
        with self._translate("reading the drill registry"):
            return self._coll.find_one({"_id": name}, {"_id": 1}) is not None

    def heartbeat(self, name: str) -> None:
        with self._translate("updating the drill registry"):
            self._coll.update_one({"_id": name, "state": "active"}, {"$set": {"heartbeat_at": now_iso()}})

    def drop(self, name: str) -> None:
        """Drop the drill database ``name`` and keep its entry for the grace period."""
        with self._translate(f"dropping drill database {name}"):
            self.client.drop_database(name)
            self._coll.update_one({"_id": name}, {"$set": {"state": "dropped", "dropped_at": now_iso()}})

    def _entries(self) -> Iterator[dict]:
        """The entries that can name a drill database (a forged or damaged one names nothing to drop)."""
        for entry in self._coll.find({}):
            name = entry.get("name")
            if isinstance(name, str) and name == entry.get("_id") and name.startswith(DRILL_PREFIX) \
                    and name.casefold() not in {n.casefold() for n in (*SYSTEM_DATABASES, self.meta.name)}:
                yield entry

    def sweep(self) -> list[str]:
        """Drop the drill databases whose owner is gone (again, if one came back); returns their names."""
        dropped: list[str] = []
        now = time.time()
        with self._translate("cleaning up drill databases"):
            for entry in list(self._entries()):
                name = entry["name"]
                if entry.get("state") == "active":
                    if not owner_gone(entry, now, running_ids(), STALE_S):
                        continue
                    self.client.drop_database(name)
                    self._coll.update_one({"_id": name}, {"$set": {"state": "dropped", "dropped_at": now_iso()}})
                    dropped.append(name)
                elif database_exists(self.client, name):  # re-created by a killed client's last insert
                    self.client.drop_database(name)
                    self._coll.update_one({"_id": name}, {"$set": {"dropped_at": now_iso()}})
                    dropped.append(name)
                else:
                    since = parse_iso(entry.get("dropped_at"))
                    if since is None or now - since.timestamp() > GRACE_S:
                        self._coll.delete_one({"_id": name})
        return dropped

    def leftovers(self) -> list[dict]:
        """Registered drill databases that exist now: whose, since when, and whether a sweep removes them."""
        now = time.time()
        out = []
        with self._translate("reading the drill registry"):
            for e in self._entries():
                if not database_exists(self.client, e["name"]):
                    continue
                gone = e.get("state") != "active" or owner_gone(e, now, running_ids(), STALE_S)
                out.append({"name": e["name"], "backup_id": e.get("backup_id"), "state": e.get("state"),
                            "created_at": e.get("created_at"), "host": e.get("host"), "pid": e.get("pid"),
                            "owner_gone": gone})
        return out
