"""Small pymongo helpers shared by backup, compare and restore.

Everything here works on a standalone MongoDB, a replica set or Atlas, and on
the embedded server; where a server lacks a feature the helper falls back to
the portable way rather than the caller special-casing servers.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from dataclasses import dataclass
from typing import Iterator

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError
from pymongo.read_preferences import Nearest, Primary, PrimaryPreferred, Secondary, SecondaryPreferred

from . import codec
from .config import mask_uri
from .errors import DatabaseUnavailable

RAW = CodecOptions(document_class=RawBSONDocument)
WRITE_BATCH = 500  # documents per write request of a restore (inserts, bulk writes, lookups)


def driver_message(exc: BaseException) -> str:
    """The first line of a driver error, without the "full error" dump or a password."""
    text = str(exc)
    msg = text.split(", full error:")[0].splitlines()[0] if text else type(exc).__name__
    return mask_uri(msg)


@contextlib.contextmanager
def translate_errors(what: str, hint: str | None = None) -> Iterator[None]:
    """Turn driver errors into a one-line DatabaseUnavailable."""
    try:
        yield
    except PyMongoError as exc:
        msg = driver_message(exc)
        raise DatabaseUnavailable(f"{what} failed: {msg}", hint=hint or error_hint(msg)) from None


def error_hint(msg: str) -> str | None:
    """What to do about a server error message, when we know."""
    if "malformed JSON" in msg:  # mongoeco's SQLite engine refusing a non-finite double
        return ("the embedded server's SQLite storage cannot hold NaN or Infinity numbers; "
                "use a real MongoDB (or the embedded server with --memory) for such data")
    if any(text in msg for text in ("SnapshotTooOld", "SnapshotUnavailable", "older than the oldest available")):
        # a backup reads every collection at the cluster time of its first read (replica sets)
        return ("the backup took longer than the server keeps old snapshots "
                "(minSnapshotHistoryWindowInSeconds, 300 s by default): raise it on every member, "
                "or back up fewer collections at a time")
    return None


def raw_collection(db: Database, name: str) -> Collection:
    return db.get_collection(name, codec_options=RAW)


def index_specs(coll: Collection) -> list[dict]:
    """Index definitions as JSON-able objects in the codec's JSON dialect (``ns`` dropped)."""
    specs = []
    with translate_errors(f"listing indexes of {coll.name}"):
        for spec in coll.list_indexes():
            spec = {k: v for k, v in spec.items() if k not in ("ns",)}
            specs.append(json_dialect(spec))
    return specs


def json_dialect(doc: dict) -> dict:
    """A BSON-able dict as a JSON-able object, losslessly (the codec's dialect)."""
    return json.loads(codec.to_json_text(bson.encode(doc)))


def from_json_dialect(obj: dict) -> dict:
    return bson.decode(codec.from_json_text(json.dumps(obj)))


def rename_collection(db: Database, source: str, target: str, *, drop_target: bool) -> None:
    """``renameCollection`` within one database, atomically replacing ``target``.

    MongoDB requires the command on ``admin``; some compatible servers accept it
    only on the database itself, so that is the fallback.
    """
    cmd = {"renameCollection": f"{db.name}.{source}", "to": f"{db.name}.{target}", "dropTarget": drop_target}
    try:
        db.client.admin.command(cmd)
    except OperationFailure as exc:
        if "current database" not in str(exc):
            raise
        db.command(cmd)


# where backups read, per client (``db.connect`` records BACKUP_READ_PREFERENCE here); the client's own
# default stays as the URI says, and ``Connection.db`` pins the primary for everything else
DEFAULT_BACKUP_READ_PREFERENCE = "secondaryPreferred"
_READ_PREFERENCES = {"primary": Primary, "primaryPreferred": PrimaryPreferred, "secondary": Secondary,
                     "secondaryPreferred": SecondaryPreferred, "nearest": Nearest}
_backup_read_preference: "weakref.WeakKeyDictionary[MongoClient, str]" = weakref.WeakKeyDictionary()
# deployments with snapshots: every read of one backup at one cluster time
SNAPSHOT_TOPOLOGIES = ("ReplicaSetWithPrimary", "ReplicaSetNoPrimary", "Sharded", "LoadBalanced")
SNAPSHOT_MIN_WIRE_VERSION = 13  # MongoDB 5.0: readConcern "snapshot" outside transactions


def set_backup_read_preference(client: MongoClient, mode: str) -> None:
    if mode not in _READ_PREFERENCES:
        raise ValueError(f"unknown read preference {mode!r}")
    _backup_read_preference[client] = mode


def backup_read_preference(client: MongoClient) -> str:
    return _backup_read_preference.get(client, DEFAULT_BACKUP_READ_PREFERENCE)


@dataclass
class BackupReads:
    """How one backup reads: the database view (read preference), the snapshot session, if any.

    ``consistency()`` is what the manifest records: whether every collection was
    read at one cluster time, which one, and otherwise why not.
    """

    db: Database
    session: ClientSession | None
    read_preference: str
    topology: str
    reason: str | None = None

    @property
    def max_jobs(self) -> int | None:
        """How many collections may be read at once (None: no limit).

        A snapshot session must not be used by two threads at once, and pymongo
        (4.x) has no public way to start a second snapshot session at the first
        one's cluster time, so a point-in-time backup reads one collection at a time.
        """
        return 1 if self.session is not None else None

    def cluster_time(self) -> Timestamp | None:
        if self.session is None:
            return None
        # pymongo keeps the atClusterTime of the session's first snapshot read (and sends it with
        # every later read); it has no public accessor, so fall back to the documented operation_time
        at = getattr(self.session, "snapshot_time", None) or getattr(self.session, "_snapshot_time", None)
        return at if isinstance(at, Timestamp) else self.session.operation_time

    def consistency(self) -> dict:
        at = self.cluster_time()
        reason = self.reason
        if self.session is not None and at is None:
            reason = "the server named no snapshot time (no collection was read)"
        return {
            "point_in_time": self.session is not None and at is not None,
            "cluster_time": {"t": at.time, "i": at.inc} if at is not None else None,
            "topology": self.topology,
            "read_preference": self.read_preference,
            "reason": None if at is not None else reason,
        }


@contextlib.contextmanager
def backup_reads(db: Database, *, primary: bool = False) -> Iterator[BackupReads]:
    """The reads of one backup: read preference applied, one snapshot where the deployment has them.

    ``primary``: read the primary whatever is configured (a restore's safety
    backup must hold the very latest data). Replica sets and sharded clusters
    of MongoDB 5.0+ give every read of the backup one point in time (a
    snapshot session); a standalone server (and the embedded one) has no
    snapshots, so each collection is as of the moment its read started.
    """
    mode = "primary" if primary else backup_read_preference(db.client)
    view = db.with_options(read_preference=_READ_PREFERENCES[mode]())
    description = db.client.topology_description
    topology = description.topology_type_name
    if topology not in SNAPSHOT_TOPOLOGIES:
        yield BackupReads(view, None, mode, topology,
                          "standalone server: no snapshot reads, each collection is read as of its own "
                          "moment, so writes during the backup can make collections disagree")
        return
    servers = description.known_servers
    # (a load balancer hides the servers' versions: the first read then says whether snapshots work)
    if topology != "LoadBalanced" and servers and \
            min(s.max_wire_version for s in servers) < SNAPSHOT_MIN_WIRE_VERSION:
        yield BackupReads(view, None, mode, topology, "MongoDB older than 5.0: no snapshot reads")
        return
    try:
        session = db.client.start_session(snapshot=True)
    except (ConfigurationError, OperationFailure) as exc:
        yield BackupReads(view, None, mode, topology, f"no snapshot session: {driver_message(exc)}")
        return
    with session:
        yield BackupReads(view, session, mode, topology)


@contextlib.contextmanager
def snapshot_session(db: Database) -> Iterator[object | None]:
    """A snapshot-read session where the deployment supports one, else None (see ``backup_reads``)."""
    with backup_reads(db) as reads:
        yield reads.session


__all__ = ["RAW", "WRITE_BATCH", "translate_errors", "error_hint", "raw_collection", "index_specs",
           "json_dialect", "from_json_dialect", "rename_collection", "snapshot_session", "driver_message",
           "mask_uri", "BackupReads", "backup_reads", "backup_read_preference", "set_backup_read_preference",
           "DEFAULT_BACKUP_READ_PREFERENCE"]
