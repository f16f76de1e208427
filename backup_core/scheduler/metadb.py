"""Where the scheduler's shared state lives: collections of the metadata database.

Schedulers on several hosts share nothing but MongoDB and the backup root, so
everything they must agree on is kept in the metadata database
(``settings.meta_db``, default ``<db>_backup_meta``, never backed up or
restored), in collections created on demand:

- ``scheduler_lease``: the lease, its fencing token, the current backup slot
  and the holder's state (interval, next runs), one document per scope;
- ``scheduler_config``: the saved schedule, one document per scope;
- ``scheduler_history``: one document per run (backup or clean-up);
- ``scheduler_stats``: counters and the latest facts that ``status`` and
  ``/metrics`` report, one document per scope;
- ``notify_state``: the notification streaks (``backup_core.notify``);
- ``archive_pending``: archives prepared by ``confirm`` rules, waiting for an admin (``archive_rules``).

A *scope* is one backup root (its URL; a local folder as an absolute path, so
processes with different working folders agree) plus one database.

``meta(settings)`` gives the metadata database through a client cached per
MongoDB target and process, with short timeouts (a scheduler must notice an
outage, not hang in it). Driver errors become ``DatabaseUnavailable`` and
drop the cached client, so the next call connects afresh (an embedded server
may have come back on another port).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Iterator

import pymongo
from bson.codec_options import CodecOptions
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.read_preferences import Primary

from ..config import Settings
from ..errors import DatabaseUnavailable
from ..mongoutil import translate_errors

log = logging.getLogger(__name__)

LEASE = "scheduler_lease"
CONFIG = "scheduler_config"
HISTORY = "scheduler_history"
STATS = "scheduler_stats"
NOTIFY = "notify_state"

TIMEOUT_S = 3.0  # per use of the metadata database (pymongo.timeout): an outage is seen, never waited out
_CODEC = CodecOptions(tz_aware=True, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Scope:
    """One backup root and one database: what one lease, schedule and history belong to."""

    root: str
    database: str

    @property
    def id(self) -> str:
        return f"{self.database}@{self.root}"

    def fields(self) -> dict:
        return {"root": self.root, "database": self.database}


def as_settings(settings_or_root: "Settings | str | Path") -> Settings:
    """``Settings`` as given; a bare backup root takes everything else from the environment."""
    if isinstance(settings_or_root, Settings):
        return settings_or_root
    return Settings.load(root=settings_or_root)


def root_url(settings: Settings) -> str:
    """The backup root as every host names it: ``s3://bucket/prefix`` as is, a folder by its absolute path."""
    url = str(settings.backup_root)
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def scope_of(settings: Settings) -> Scope:
    return Scope(root_url(settings), settings.db_name)


# ---------------------------------------------------------------------------- the cached client

_clients: dict[tuple, object] = {}
_indexed: set[tuple] = set()
_guard = threading.Lock()


def _target(settings: Settings) -> tuple:
    return (settings.uri, str(settings.data_dir) if settings.embedded else None)


def _client(settings: Settings, timeout: float) -> MongoClient:
    from ..db import connect  # late: connecting may start the embedded server

    key = _target(settings)
    with _guard:
        conn = _clients.get(key)
    if conn is not None:
        return conn.client  # type: ignore[attr-defined]
    conn = connect(settings, timeout_ms=int(timeout * 1000))
    with _guard:
        existing = _clients.setdefault(key, conn)
    if existing is not conn:
        conn.close()
    return existing.client  # type: ignore[attr-defined]


def _forget(settings: Settings, client: MongoClient) -> None:
    key = _target(settings)
    with _guard:
        conn = _clients.get(key)
        if conn is None or conn.client is not client:  # type: ignore[attr-defined]
            return
        del _clients[key]
    try:
        conn.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - already broken
        pass


def close_all() -> None:
    """Close every cached client (tests; process exit closes them anyway)."""
    with _guard:
        conns = list(_clients.values())
        _clients.clear()
    for conn in conns:
        try:
            conn.close()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            pass


@contextlib.contextmanager
def meta(settings: Settings, what: str = "reading the scheduler state",
         timeout: float | None = None) -> Iterator[Database]:
    """The metadata database; driver errors inside become one-line ``DatabaseUnavailable``.

    The operations in the block share one deadline of ``timeout`` seconds
    (``pymongo.timeout``, default ``TIMEOUT_S``); connecting first (which may
    start the embedded server) has its own.
    """
    timeout = timeout or TIMEOUT_S
    client = _client(settings, timeout)
    with pymongo.timeout(timeout):
        try:
            with translate_errors(what, hint=f"the backup user needs readWrite on the metadata database "
                                             f"{settings.meta_db}"):
                db = client.get_database(settings.meta_db, read_preference=Primary(), codec_options=_CODEC)
                _ensure_indexes(db)
                yield db
        except DatabaseUnavailable as exc:
            _forget(settings, client)
            # one line: without the driver's topology dump
            short = re.split(r",? Timeout: [\d.]+s, Topology Description:", str(exc))[0]
            if short != str(exc):
                raise DatabaseUnavailable(short, hint=exc.hint) from None
            raise


def _ensure_indexes(db: Database) -> None:
    key = (id(db.client), db.name)
    if key in _indexed:
        return
    db[HISTORY].create_index([("scope", 1), ("started_at", -1)], name="scope_started")
    _indexed.add(key)


def literal(value):
    """A constant inside an update pipeline (a string starting with ``$`` would be read as a field)."""
    return {"$literal": value}
