"""The head of each audit log kept in the metadata database: one anchor the log cannot take along.

A chain alone cannot show entries cut off its end, nor a log rewritten from
the start with every hash recomputed, so its head (``seq``, ``hash``, and
``kid``) is also kept outside it. Here: in the metadata database, collection
``audit_head``, one document per log, moved forward after every append by a
process that has opened that database (``anchor_in``), and never back.
``meta_anchor`` reads it again for verification. (The other anchors are in
the backups' manifests, written with each backup.)
"""

from __future__ import annotations

import logging
import threading

from ..timeutil import now_iso
from .chain import Anchor

log = logging.getLogger(__name__)

HEAD_COLLECTION = "audit_head"  # in the metadata database: one anchor document per log


def anchor_in(log_, meta_db) -> None:
    """Keep the head of ``log_`` (an ``AuditLog``) in ``meta_db`` (a pymongo ``Database``, the metadata database) from now
    on: after every append of this process, and once now. Best effort: an unreachable database is
    skipped (the anchor then lags; it never moves back)."""
    sink = _HeadSink(meta_db)
    with _sinks_guard:
        sinks = _sinks.setdefault(log_.where, {})
        sinks[sink.key] = sink
        while len(sinks) > 8:  # bounded: a long-running process opens many connections over time
            sinks.pop(next(iter(sinks)))
    head = log_.head()
    if head is not None:
        sink.publish(log_.where, head)


class _HeadSink:
    def __init__(self, meta_db) -> None:
        self.key = (id(meta_db.client), meta_db.name)
        self.coll = meta_db[HEAD_COLLECTION]

    def publish(self, where: str, head: dict) -> bool:
        import pymongo
        from pymongo.errors import DuplicateKeyError, PyMongoError

        doc = {"seq": head["seq"], "hash": head["hash"], "at": head.get("at"), "kid": head.get("kid"),
               "chain": head.get("chain"), "log": where, "updated_at": now_iso()}
        try:
            with pymongo.timeout(2.0):
                # only forward: a slower process never moves the anchor back
                self.coll.update_one({"_id": where, "seq": {"$lt": head["seq"]}}, {"$set": doc}, upsert=True)
        except DuplicateKeyError:
            pass  # the anchor is at this seq or beyond already
        except PyMongoError as exc:
            log.debug("cannot anchor the audit log in %s: %s", self.coll.database.name, exc)
            return False
        return True


_sinks: dict[str, dict[tuple, _HeadSink]] = {}
_sinks_guard = threading.Lock()


def publish(log_, head: dict) -> None:
    """Move the anchors of ``log_`` forward to ``head``, its newest entry (after every append)."""
    with _sinks_guard:
        sinks = list(_sinks.get(log_.where, {}).values())
    if not sinks:
        return
    if "chain" not in head:
        head = dict(head, chain=log_.chain_id() if head.get("seq") != 1 else head.get("hash"))
    for sink in sinks:
        if not sink.publish(log_.where, head):
            with _sinks_guard:
                _sinks.get(log_.where, {}).pop(sink.key, None)


def meta_anchor(log_, meta_db) -> Anchor | None:
    """The anchor of ``log_`` kept in the metadata database ``meta_db`` (None if there is none)."""
    doc = meta_db[HEAD_COLLECTION].find_one({"_id": log_.where})
    return Anchor.from_json(f"the metadata database {meta_db.name}", doc, own=True) if doc else None
