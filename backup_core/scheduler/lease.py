"""Who may run the scheduler of a backup root: a lease in MongoDB with a fencing token.

``MongoLease`` keeps one document per backup root and database in the
metadata database (``scheduler_lease``, see ``metadb``)::

    {_id: "<db>@<root>", root, database,
     owner: "<host>:<pid>:<random>", host, pid, pid_started,
     token: 7,                      # fencing token: +1 whenever the lease changes hands
     since, renewed_at, expires_at, # the SERVER's clock ($$NOW), never a host's
     lease_seconds,
     slot: {started, owner, token, backup_id, committed_at},  # the current backup interval
     state: {...}}                  # the holder's schedule: interval, next runs (status shows it)

Every change is one atomic ``find_one_and_update`` whose filter states the
condition and whose update pipeline reads ``$$NOW``, so hosts with skewed
clocks agree on who holds the lease:

- **acquire / renew**: matches when the lease is ours or has expired
  (``expires_at <= $$NOW``); upserts the document on first use. A lease held
  by someone else does not match, the upsert then collides on ``_id``
  (``DuplicateKeyError``): not ours. A holder that stopped renewing is
  taken over once its lease expires (standbys retry right at the expiry the
  server reports); one whose process is seen dead on this host at once.
- **slot**: before a scheduled backup starts, the holder claims the interval's
  slot: only with its current token, only while its lease is unexpired, and
  only if no slot was started in the last half interval (by anyone).
- **fence**: right before a backup commits (``BackupOptions.fence``) the
  holder proves it still holds the lease with the same token *and* still owns
  the slot, and records the backup id. A scheduler paused past its lease
  (a stopped VM, SIGSTOP, a long GC) finds the token changed and aborts the
  backup instead of committing a second one for the slot.

Any lease implementing ``Lease`` can replace this one.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..config import Settings
from ..errors import DatabaseUnavailable, LockBusy
from ..locks import HOST, owner_record, process_alive
from ..timeutil import iso, parse_iso
from .metadb import LEASE, Scope, as_settings, literal, meta, scope_of

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class LeaseLost(LockBusy):
    """This scheduler no longer holds the lease (or its token changed): it must not commit."""

    backup_id: str | None = None  # the backup the fence refused to commit


class SlotTaken(LeaseLost):
    """A scheduled backup of this interval was already started (by this or another holder)."""


class Lease(Protocol):
    token: int | None        # the fencing token of our current tenure, None when not held
    retry_in: float | None   # when not held: seconds until the holder's lease expires (server clock)
    valid_until: float       # time.monotonic() until which our lease is surely valid

    def acquire(self) -> bool:
        """Take the lease if free/expired, or renew it if ours. True when we hold it now.

        Raises ``DatabaseUnavailable`` when that cannot be told."""

    def release(self) -> None:
        """Give the lease up now (if ours), so a standby need not wait for it to expire."""

    def holder(self) -> dict | None:
        """The live holder's record, or None."""

    def begin_slot(self, token: int, min_gap_s: float) -> None:
        """Claim the current backup interval (``SlotTaken``/``LeaseLost`` when we may not back up)."""

    def fence(self, token: int, backup_id: str | None = None) -> None:
        """Raise ``LeaseLost`` unless we still hold the lease with ``token`` (and, with ``backup_id``,
        still own the slot); records the backup id."""

    def write_state(self, token: int, state: dict) -> None:
        """Publish the holder's schedule (status, dashboard)."""


def read_lease(db: Database, scope: Scope) -> tuple[dict | None, datetime | None]:
    """The lease document of ``scope`` and the server's clock, read together."""
    docs = list(db[LEASE].aggregate([{"$match": {"_id": scope.id}}, {"$addFields": {"server_now": "$$NOW"}}]))
    if not docs:
        return None, None
    doc = docs[0]
    return doc, parse_iso(doc.pop("server_now", None), text=False)


def _process_space() -> str | None:
    """Which processes a pid names: this boot of this machine and this pid namespace (Linux), else None.

    Host names alone are not enough to trust "that pid is not running here":
    cloned VMs and containers may share a host name.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


PROCESS_SPACE = _process_space()


def _seen_dead(doc: dict) -> bool:
    """The holder's process is known to be gone (same host, same pid space, pid not running)."""
    if doc.get("host") != HOST or PROCESS_SPACE is None or doc.get("pid_space") != PROCESS_SPACE:
        return False
    return not process_alive(doc.get("pid"), doc.get("pid_started"), HOST)


def is_live(doc: dict | None, server_now: datetime | None) -> bool:
    if not doc or server_now is None:
        return False
    expires = parse_iso(doc.get("expires_at"), text=False)
    if expires is None or expires <= server_now:
        return False
    # a holder killed with SIGKILL on this host is dead now, not only when its lease expires
    return not _seen_dead(doc)


def holder_view(doc: dict, server_now: datetime | None) -> dict:
    """The lease document as JSON-able text (dates ISO-8601), plus ``expires_in_s`` by the server clock."""
    out = {}
    for k, v in doc.items():
        if k == "_id":
            continue
        out[k] = _jsonable(v)
    expires = parse_iso(doc.get("expires_at"), text=False)
    if expires is not None and server_now is not None:
        out["expires_in_s"] = round((expires - server_now).total_seconds(), 3)
    return out


def _jsonable(v):
    if isinstance(v, datetime):
        return iso(v)  # (naive means UTC)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


class MongoLease:
    """The lease of one backup root and database, competed for by ``owner``."""

    def __init__(self, settings: Settings, owner: str, lease_seconds: float) -> None:
        self.settings = settings
        self.scope = scope_of(settings)
        self.owner = owner
        self.lease_seconds = float(lease_seconds)
        self.token: int | None = None
        self.retry_in: float | None = None
        self.valid_until = 0.0
        self.last: dict | None = None  # the document as of our last successful acquire
        # one lease operation may take a third of the lease (so a renewal fails before the lease ends)
        self.timeout = max(1.0, min(5.0, self.lease_seconds / 3))

    # -- the update pipeline that makes us the holder (renewing keeps token and since)
    def _take(self) -> list[dict]:
        ours = {"$eq": ["$owner", literal(self.owner)]}
        me = owner_record()
        return [{"$set": {
            "token": {"$cond": [ours, "$token", {"$add": [{"$ifNull": ["$token", 0]}, 1]}]},
            "since": {"$cond": [ours, "$since", "$$NOW"]},
            "owner": literal(self.owner), "host": literal(me["host"]), "pid": literal(me["pid"]),
            "pid_started": literal(me["pid_started"]), "pid_space": literal(PROCESS_SPACE),
            "root": literal(self.scope.root), "database": literal(self.scope.database),
            "renewed_at": "$$NOW", "expires_at": self._expiry(),
            "lease_seconds": literal(self.lease_seconds), "released_at": None,
        }}]

    def _expiry(self) -> dict:
        return {"$add": ["$$NOW", int(self.lease_seconds * 1000)]}

    def _renew(self) -> dict:
        return {"renewed_at": "$$NOW", "expires_at": self._expiry()}

    def _ours(self, token: int) -> dict:
        """Filter: our tenure ``token``, unexpired by the server's clock."""
        return {"_id": self.scope.id, "owner": self.owner, "token": token,
                "$expr": {"$gt": ["$expires_at", "$$NOW"]}}

    # -- Lease
    def acquire(self) -> bool:
        started = time.monotonic()
        with meta(self.settings, "renewing the scheduler lease", self.timeout) as db:
            coll = db[LEASE]
            try:
                doc = coll.find_one_and_update(
                    {"_id": self.scope.id,
                     "$expr": {"$or": [{"$eq": ["$owner", literal(self.owner)]},
                                       {"$lte": ["$expires_at", "$$NOW"]}]}},
                    self._take(), upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                doc = None
            if doc is None:
                doc = self._take_from_dead(db)
        if doc is None:
            self.token = None
            return False
        self.token = int(doc["token"])
        self.valid_until = started + self.lease_seconds
        self.retry_in = None
        self.last = doc
        return True

    def _take_from_dead(self, db: Database) -> dict | None:
        current, now = read_lease(db, self.scope)
        self.retry_in = None
        if current is None:
            return None
        expires = parse_iso(current.get("expires_at"), text=False)
        if expires is not None and now is not None:
            self.retry_in = max(0.0, (expires - now).total_seconds())
        if not _seen_dead(current):
            return None
        # its process is gone: take over now, but only from exactly that tenure (compare-and-set)
        log.warning("scheduler lease holder %s is gone; taking over", current.get("owner"))
        return db[LEASE].find_one_and_update(
            {"_id": self.scope.id, "owner": current.get("owner"), "token": current.get("token")},
            self._take(), return_document=ReturnDocument.AFTER)

    def release(self) -> None:
        try:
            with meta(self.settings, "releasing the scheduler lease", self.timeout) as db:
                db[LEASE].update_one({"_id": self.scope.id, "owner": self.owner},
                                     [{"$set": {"expires_at": "$$NOW", "released_at": "$$NOW"}}])
        except DatabaseUnavailable as exc:
            log.warning("cannot release the scheduler lease (it expires on its own): %s", exc)
        self.token = None

    def holder(self) -> dict | None:
        with meta(self.settings) as db:
            doc, now = read_lease(db, self.scope)
        return holder_view(doc, now) if is_live(doc, now) else None

    def begin_slot(self, token: int, min_gap_s: float) -> None:
        with meta(self.settings, "claiming the backup slot", self.timeout) as db:
            flt = self._ours(token)
            flt["$expr"] = {"$and": [flt["$expr"], {"$lte": [
                {"$ifNull": ["$slot.started", _EPOCH]}, {"$subtract": ["$$NOW", int(min_gap_s * 1000)]}]}]}
            doc = db[LEASE].find_one_and_update(flt, [{"$set": {
                "slot": {"started": "$$NOW", "owner": literal(self.owner), "token": literal(token)},
                **self._renew()}}], return_document=ReturnDocument.AFTER)
            if doc is None:
                raise self._why_not(db, token, slot=False, min_gap_s=min_gap_s)
            self.last = doc

    def fence(self, token: int, backup_id: str | None = None) -> None:
        with meta(self.settings, "checking the scheduler lease", self.timeout) as db:
            flt = self._ours(token)
            update: dict = self._renew()
            if backup_id is not None:
                flt.update({"slot.owner": self.owner, "slot.token": token})
                update.update({"slot.backup_id": literal(backup_id), "slot.committed_at": "$$NOW"})
            doc = db[LEASE].find_one_and_update(flt, [{"$set": update}], return_document=ReturnDocument.AFTER)
            if doc is None:
                exc = self._why_not(db, token, slot=backup_id is not None)
                exc.backup_id = backup_id
                raise exc
            self.last = doc

    def _why_not(self, db: Database, token: int, *, slot: bool, min_gap_s: float = 0.0) -> LeaseLost:
        doc, now = read_lease(db, self.scope)
        if doc is None:
            return LeaseLost("scheduler lease lost: the lease document is gone")
        if doc.get("owner") != self.owner or doc.get("token") != token:
            who = f"{doc.get('owner')} (pid {doc.get('pid')} on {doc.get('host')})"
            return LeaseLost(f"scheduler lease lost: {who} holds it now (fencing token {doc.get('token')}, "
                             f"ours was {token})")
        expires = parse_iso(doc.get("expires_at"), text=False)
        if expires is None or now is None or expires <= now:
            return LeaseLost("scheduler lease expired before the backup could commit (this scheduler was "
                             "paused or could not renew it)")
        s = doc.get("slot") or {}
        if slot:
            return LeaseLost(f"another scheduler ({s.get('owner')}) started this interval's backup")
        started = parse_iso(s.get("started"), text=False)
        return SlotTaken(f"this interval's scheduled backup was already started at {iso(started)} by "
                         f"{s.get('owner')}" + (f" (backup {s['backup_id']})" if s.get("backup_id") else ""))

    def write_state(self, token: int, state: dict) -> None:
        with meta(self.settings, "publishing the scheduler state", self.timeout) as db:
            db[LEASE].update_one({"_id": self.scope.id, "owner": self.owner, "token": token},
                                 {"$set": {"state": state}})


def lease_holder(settings: "Settings | str") -> dict | None:
    """The live scheduler lease (owner, pid, host, token, expires_at, state, ...) or None."""
    settings = as_settings(settings)
    with meta(settings) as db:
        doc, now = read_lease(db, scope_of(settings))
    return holder_view(doc, now) if is_live(doc, now) else None
