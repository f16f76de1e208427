"""Small pymongo helpers shared by backup, compare and restore.

Everything here works on a standalone MongoDB, a replica set or Atlas, and on
the embedded server; where a server lacks a feature the helper falls back to
the portable way rather than the caller special-casing servers.
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterator

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from . import codec
from .config import mask_uri
from .errors import DatabaseUnavailable

RAW = CodecOptions(document_class=RawBSONDocument)


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
    return None


def raw_collection(db: Database, name: str) -> Collection:
    return db.get_collection(name, codec_options=RAW)


def user_collections(db: Database, meta_db: str | None = None) -> dict[str, dict]:
    """The user's collections with their options, by name.

    Not views, not ``system.*``, and not the staging collections of restores
    (known from the staging registry, never from their names).
    """
    from .staging import StagingRegistry

    staging = StagingRegistry.of(db, meta_db).names()
    out = {}
    with translate_errors("listing collections"):
        for info in db.list_collections():
            name = info["name"]
            if (name.startswith("system.") or name in staging
                    or info.get("type", "collection") != "collection"):
                continue
            out[name] = dict(info.get("options") or {})
    return dict(sorted(out.items()))


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


@contextlib.contextmanager
def snapshot_session(db: Database) -> Iterator[object | None]:
    """A snapshot-read session where the deployment supports one, else None.

    Replica sets and sharded clusters give every read of a backup one point in
    time; a standalone server has no snapshots and reads each collection as of
    its own time (see docs/RELIABILITY.md).
    """
    topology = db.client.topology_description.topology_type_name
    if topology not in ("ReplicaSetWithPrimary", "Sharded", "LoadBalanced"):
        yield None
        return
    try:
        session = db.client.start_session(snapshot=True)
    except (ConfigurationError, OperationFailure):
        yield None
        return
    with session:
        yield session


__all__ = ["RAW", "translate_errors", "error_hint", "raw_collection", "user_collections", "index_specs",
           "json_dialect", "from_json_dialect", "rename_collection", "snapshot_session", "driver_message",
           "mask_uri"]
