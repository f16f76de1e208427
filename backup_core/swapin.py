"""Swap-in collections of replace-restores: filled beside the live one, then swapped in; their registry.

A replace-restore fills each collection under a fresh name (a *swap-in
collection*: ``write_collection`` creates it with the backup's options and
indexes and inserts every document) and swaps all of them in with
``renameCollection(dropTarget)`` once all are filled (``replace_collections``),
so live data is either the old or the new, never half-restored.

Those names are never recognised by their look (a user may name a collection
anything): ``SwapInRegistry.create`` records a random name in the registry, a
collection of the metadata database (default ``<db>_backup_meta``, never
backed up or restored), *before* the collection exists. Whatever the
registry holds is not user data: ``user_collections`` leaves it out, and
``sweep`` removes it once its owner is gone.

An owner is gone when its process no longer runs (same host: pid and start
time; this process: its operation is no longer running) or its heartbeat is
older than ``STALE_S`` (another host). A killed restore's last insert may
still be running on the server after the client died and re-create the
collection after it was dropped, so a dropped entry stays registered for
``GRACE_S`` and every sweep drops the collection again if it reappeared;
``status`` shows what is left.

Names kept from earlier versions, so their leftovers are still found: the
registry collection is called ``staging``, swap-in collections are named
``__bk_stage_<24 hex digits>``, and ``status --json`` lists them under
``leftovers.staging``.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable, Collection, Iterable

from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from .config import meta_name
from .errors import BackupError, DatabaseUnavailable, RestoreRefused
from .jobs import run_jobs
from .locks import owner_record, process_alive
from .mongoutil import WRITE_BATCH, from_json_dialect, raw_collection, rename_collection, translate_errors
from .pairing import BackupIndex
from .progress import ProgressCallback
from .store import BackupInfo, CollectionEntry
from .testseam import checkpoint
from .timeutil import now_iso, parse_iso

REGISTRY = "staging"  # the registry's collection in the metadata database (its first name, kept)
PREFIX = "__bk_stage_"  # swap-in collection names: PREFIX + 24 random hex digits (the first prefix, kept)
STALE_S = 600.0
GRACE_S = 600.0
HEARTBEAT_S = 10.0


def _translate(what: str, meta: Database):
    return translate_errors(what, hint=f"the backup user needs readWrite on the metadata database {meta.name}")


def owner_gone(entry: dict, now: float, running: Collection[str], stale_s: float = STALE_S) -> bool:
    """Whether the operation that registered ``entry`` (host, pid, pid_started, op, heartbeat_at) is gone.

    This process: when that operation is not among ``running`` (the ids of
    the operations still running here, ``operation.running_ids()``); another
    process of this host: when it no longer runs or its heartbeat is older
    than ``stale_s``; another host: when its heartbeat is.
    """
    beat = parse_iso(entry.get("heartbeat_at"))
    old = beat is None or now - beat.timestamp() > stale_s
    me = owner_record()
    if entry.get("host") == me["host"] and entry.get("pid") == me["pid"]:
        return entry.get("op") not in running
    if entry.get("host") == me["host"]:
        return old or not process_alive(entry.get("pid"), entry.get("pid_started"), entry.get("host"))
    return old


@dataclass
class SwapInRegistry:
    """The swap-in collections of one user database, registered in its metadata database."""

    db: Database
    meta: Database

    @classmethod
    def of(cls, db: Database, meta_db: str | None = None) -> "SwapInRegistry":
        return cls(db, db.client[meta_db or meta_name(db.name)])

    @property
    def _coll(self):
        return self.meta[REGISTRY]

    def _id(self, name: str) -> str:
        return f"{self.db.name}.{name}"

    def create(self, target: str, op_id: str = "") -> str:
        """Register and return a new swap-in name for ``target`` (the collection is not created here)."""
        now = now_iso()
        with _translate("registering a swap-in collection", self.meta):
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
        with _translate("updating the swap-in registry", self.meta):
            self._coll.update_one({"_id": self._id(name)}, {"$set": {"heartbeat_at": now_iso()}})

    def finished(self, name: str) -> None:
        """The swap-in collection was renamed into place: forget it."""
        with _translate("updating the swap-in registry", self.meta):
            self._coll.delete_one({"_id": self._id(name)})

    def discard(self, name: str) -> None:
        """Drop a swap-in collection and keep its entry for the grace period."""
        with _translate("dropping a swap-in collection", self.meta):
            self.db.drop_collection(name)
            self._coll.update_one({"_id": self._id(name)},
                                  {"$set": {"state": "dropped", "dropped_at": now_iso()}})

    def names(self) -> set[str]:
        """Every registered name of this database (active or recently dropped)."""
        with _translate("reading the swap-in registry", self.meta):
            return {e["name"] for e in self._coll.find({"db": self.db.name}, {"name": 1})}

    def sweep(self, running: Collection[str] = ()) -> list[str]:
        """Drop the swap-in collections of owners that are gone; returns the names dropped.

        ``running``: the ids of the operations still running in this process
        (``operation.running_ids()``); this process's entries of any other are gone.
        """
        dropped: list[str] = []
        now = time.time()
        with _translate("cleaning up swap-in collections", self.meta):
            live = set(self.db.list_collection_names())
            for entry in list(self._coll.find({"db": self.db.name})):
                name = entry.get("name")
                if not isinstance(name, str) or not name.startswith(PREFIX):
                    continue  # never drop anything the registry does not clearly own
                if entry.get("state") == "active":
                    if not owner_gone(entry, now, running):
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

    def leftovers(self, running: Collection[str] = ()) -> list[dict]:
        """Registered swap-in collections that still exist, with who made them and when.

        ``state``: ``active`` only while the restore that made it still runs; ``abandoned`` when its
        owner is gone (a killed restore: the next sweep drops it); ``dropped`` when a killed client's
        last insert re-created it after it was dropped. ``running``: as for ``sweep``.
        """
        now = time.time()
        with _translate("reading the swap-in registry", self.meta):
            live = set(self.db.list_collection_names())
            out = []
            for e in self._coll.find({"db": self.db.name}):
                if e.get("name") in live:
                    state = e.get("state")
                    if state == "active" and owner_gone(e, now, running):
                        state = "abandoned"
                    out.append({"name": e["name"], "target": e.get("target"), "state": state,
                                "created_at": e.get("created_at"), "host": e.get("host"), "pid": e.get("pid"),
                                "documents": self.db[e["name"]].estimated_document_count()})
            return out


def user_collections(db: Database, meta_db: str | None = None) -> dict[str, dict]:
    """The user's collections with their options, by name.

    Not views, not ``system.*``, and not the swap-in collections of restores
    (known from the registry, never from their names).
    """
    swap_ins = SwapInRegistry.of(db, meta_db).names()
    out = {}
    with translate_errors("listing collections"):
        for info in db.list_collections():
            name = info["name"]
            if (name.startswith("system.") or name in swap_ins
                    or info.get("type", "collection") != "collection"):
                continue
            out[name] = dict(info.get("options") or {})
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------
# Filling and swapping in


def write_collection(db: Database, entry: CollectionEntry, target: str, documents: Iterable[bytes], total: int,
                     progress: ProgressCallback | None = None, *, heartbeat: Callable[[], None] | None = None,
                     label: str | None = None) -> int:
    """Create collection ``target`` with the options and indexes ``entry`` (a backup's collection) records
    and insert ``documents`` (raw BSON, in order); returns how many documents it then holds.

    Swap-in collections are filled with it; anything else that writes a
    backup's collection into a new one (a restore drill) can use it too.
    ``progress`` hears ``label`` (default ``target``) of ``total``;
    ``heartbeat`` is called every ``HEARTBEAT_S`` while documents go in.
    """
    label = label or target
    with translate_errors(f"writing collection {label}"):
        db.create_collection(target, **from_json_dialect(entry.options or {}))
        specs = []
        for spec in entry.decoded_indexes():
            if spec.get("name") == "_id_":
                continue  # created with the collection
            spec.pop("v", None)
            spec.pop("ns", None)
            specs.append(spec)
        if specs:
            db.command("createIndexes", target, indexes=specs)
        coll = raw_collection(db, target)
        batch: list[RawBSONDocument] = []
        done, beat = 0, time.monotonic()
        if progress:
            progress(label, 0, total)
        for raw in documents:
            batch.append(RawBSONDocument(raw))
            if len(batch) >= WRITE_BATCH:
                coll.insert_many(batch, ordered=True)
                done += len(batch)
                batch = []
                if progress:
                    progress(label, done, total)
                if heartbeat is not None and time.monotonic() - beat > HEARTBEAT_S:
                    heartbeat()
                    beat = time.monotonic()
        if batch:
            coll.insert_many(batch, ordered=True)
            done += len(batch)
        if progress:
            progress(label, done, total)
        # the count command: exact for a collection just filled (count_documents is an aggregation that
        # reads every document on MongoDB, and the embedded server refuses it beyond 50 000 documents)
        return coll.estimated_document_count()


def replace_collections(db: Database, info: BackupInfo, indexes: dict[str, BackupIndex], registry: SwapInRegistry,
                        op_id: str, *, progress: ProgressCallback | None = None, jobs: int = 1,
                        allow_loss: bool = False, lock_check: Callable[[], None] | None = None) -> None:
    """Make each collection of ``indexes`` (name -> its backup's documents) exactly what the backup holds.

    Fills a registered swap-in collection per collection (``write_collection``,
    ``jobs`` at a time), checks each holds every document (unless
    ``allow_loss``: the admin confirmed the backup's options may discard
    some), then swaps them in one after the other, in ``indexes`` order, only
    once all are filled. A failure before the first swap drops the swap-in
    collections and leaves live data untouched; a failure between swaps says
    which collections were already restored. ``lock_check`` runs before each
    swap: a restore whose repository lock was lost stops there.
    """
    temps: dict[str, str] = {}
    guard = threading.Lock()

    def fill(name: str, report: ProgressCallback | None) -> None:
        temp = registry.create(name, op_id)
        with guard:
            temps[name] = temp
        index = indexes[name]
        total = index.count
        filled = write_collection(db, info.collection(name), temp, index.iter_documents(), total, report,
                                  heartbeat=lambda: registry.heartbeat(temp), label=name)
        # a loss the admin accepted (destructive options confirmed) is expected; any other is refused
        if filled != total and not allow_loss:
            raise RestoreRefused(f"the swap-in copy of {name} holds {filled} of the backup's {total} documents: "
                                 "its collection options or indexes discarded some (capped size, TTL, "
                                 "validator); live data was not changed",
                                 hint="compare the backup to see its options")
        checkpoint("fill")

    try:
        run_jobs(list(indexes), fill, jobs, progress)
    except BaseException:
        # live data was not touched yet: only the swap-in collections go
        _discard(registry, temps.values())
        raise
    swapped: list[str] = []
    try:
        for name in indexes:
            if lock_check is not None:
                lock_check()
            with translate_errors(f"swapping in restored collection {name}"):
                rename_collection(db, temps[name], name, drop_target=True)
            swapped.append(name)
            with contextlib.suppress(BackupError):
                registry.finished(temps[name])
            checkpoint("swap")
    except BackupError as exc:
        _discard(registry, [t for n, t in temps.items() if n not in swapped])
        raise DatabaseUnavailable(f"{exc}; collections already restored: {', '.join(swapped) or 'none'}, "
                                  f"the others are unchanged") from None


def _discard(registry: SwapInRegistry, names: Iterable[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):  # clean-up of a restore that fails anyway
            registry.discard(name)
