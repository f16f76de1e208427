"""Opening the database: ``MONGODB_URI`` when set, else the embedded server.

Every entry point (dashboard, CLI, scheduler) gets its ``MongoClient`` from
``connect``, so connection options, the ping check and the error messages are
the same everywhere. Errors are one line and never contain a password: URIs
are shown masked and driver messages are scrubbed before they reach a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError
from pymongo.read_preferences import Primary

from .config import Settings, mask_uri
from .errors import ConfigError, DatabaseUnavailable
from .embedded import ensure_server
from .mongoutil import DEFAULT_BACKUP_READ_PREFERENCE, set_backup_read_preference

APPNAME = "backup_core"


@dataclass
class Connection:
    """An open client plus the configured database; close it when done."""

    client: MongoClient
    db: Database
    settings: Settings
    embedded: bool
    uri: str = field(default="", repr=False)

    @property
    def uri_display(self) -> str:
        if self.embedded:
            return f"embedded ({self.settings.data_dir}) at {mask_uri(self.uri)}"
        return mask_uri(self.uri)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings, *, timeout_ms: int = 5000) -> Connection:
    """Connect to the configured database and prove it answers ``ping``.

    Raises ``ConfigError`` for a malformed URI and ``DatabaseUnavailable``
    when the server cannot be reached or refuses us (e.g. bad credentials).

    ``Connection.db`` always reads from the primary (restores, compare, status);
    the client remembers where *backups* read (``BACKUP_READ_PREFERENCE``, else
    the URI's ``readPreference``, else ``secondaryPreferred``), which
    ``mongoutil.backup_reads`` applies.
    """
    embedded = settings.embedded
    if embedded:
        uri = ensure_server(settings.data_dir, timeout=max(30.0, timeout_ms / 1000),
                            db_name=settings.db_name)
    else:
        uri = str(settings.uri)
    shown = mask_uri(uri)
    try:
        client = _client(uri, settings, timeout_ms, busy_server=embedded)
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigError(f"invalid MongoDB URI {shown}: {_scrub(exc, uri)}",
                          hint="check MONGODB_URI / --uri") from None
    try:
        client.admin.command("ping")
        if not embedded and _is_embedded_server(client):  # started by hand and named by MONGODB_URI
            client.close()
            client = _client(uri, settings, timeout_ms, busy_server=True)
    except OperationFailure as exc:
        client.close()
        raise DatabaseUnavailable(f"MongoDB at {shown} refused the connection: {_scrub(exc, uri)}",
                                  hint="check the user name, password and authSource") from None
    except PyMongoError as exc:
        client.close()
        raise _unreachable(exc, uri, shown) from None
    return Connection(client=client, db=client.get_database(settings.db_name, read_preference=Primary()),
                      settings=settings,
                      embedded=embedded, uri=uri)


def _client(uri: str, settings: Settings, timeout_ms: int, *, busy_server: bool) -> MongoClient:
    """A client for ``uri``; ``busy_server``: one that may not answer anything for a long time.

    The driver's monitor sends ``hello`` every few seconds on a connection of
    its own and waits ``connectTimeoutMS`` for the answer; when none comes, it
    marks the server unknown and clears the pool, cancelling the operations in
    flight ("operation cancelled"). MongoDB answers ``hello`` while it works,
    but the embedded server is one Python process: during a long command (an
    insert or an index build of a big collection, more so on a loaded
    machine) it may answer nothing at all, and a restore that is merely slow
    would fail. So for the embedded server the monitor waits as long as it
    takes (``connectTimeoutMS=0``); whether a server is there at all is still
    decided within ``serverSelectionTimeoutMS``.
    """
    client: MongoClient = MongoClient(uri, appname=APPNAME, serverSelectionTimeoutMS=timeout_ms,
                                      connectTimeoutMS=0 if busy_server else timeout_ms)
    uri_mode = client.read_preference.mongos_mode if "readpreference=" in uri.lower() else None
    set_backup_read_preference(client, settings.read_preference or uri_mode or DEFAULT_BACKUP_READ_PREFERENCE)
    return client


def _is_embedded_server(client: MongoClient) -> bool:
    """Whether the server is the embedded (mongoeco) one, which says so in ``hello``."""
    try:
        hello = client.admin.command("hello")
    except PyMongoError:
        return False
    return "mongoeco" in str(hello.get("gitVersion", ""))


# what the driver says when the other side answers, but not in the MongoDB wire protocol
_NOT_MONGO = ("Got response id", "ProtocolError", "message length", "Message length", "unexpected message",
              "invalid message size", "opcode")


def _unreachable(exc: BaseException, uri: str, shown: str) -> DatabaseUnavailable:
    text = str(exc)
    hosts = _hosts(uri)
    if any(marker in text for marker in _NOT_MONGO):
        return DatabaseUnavailable(f"the server at {hosts} answered, but not as a MongoDB server",
                                   hint="check that MONGODB_URI names the MongoDB host and port "
                                        "(27017 by default), not another service")
    if "connection closed" in text or "SSL" in text or "EOF occurred" in text:
        return DatabaseUnavailable(f"the server at {hosts} closed the connection: it may not be a MongoDB "
                                   "server, or it expects TLS",
                                   hint="check the host and port in MONGODB_URI; add tls=true if the server "
                                        "requires TLS")
    return DatabaseUnavailable(f"cannot reach MongoDB at {shown}: {_scrub(exc, uri)}",
                               hint="is the server running and reachable?")


def _hosts(uri: str) -> str:
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return "<unparseable URI>"
    return netloc.rpartition("@")[2] or mask_uri(uri)


def database_info(conn: Connection) -> dict[str, Any]:
    """Name, masked URI, embedded flag and per-collection document counts."""
    from .mongoutil import translate_errors
    from .swapin import user_collections

    names = list(user_collections(conn.db, conn.settings.meta_db))
    with translate_errors("counting documents"):
        # the count command: count_documents is an aggregation, which reads every document on MongoDB and
        # which the embedded server refuses beyond 50 000 documents
        counts = {name: {"count": conn.db[name].estimated_document_count()} for name in names}
    return {
        "database": conn.db.name,
        "uri": mask_uri(conn.uri) if conn.uri else conn.settings.uri_display,
        "embedded": conn.embedded,
        "collections": counts,
    }


def _scrub(exc: BaseException, uri: str) -> str:
    """One line of a driver error, without the password and without the topology dump."""
    text = " ".join(str(exc).split())
    # pymongo appends a long topology description to selection timeouts.
    text = re.split(r",? Timeout: [\d.]+s, Topology Description:", text)[0]
    for secret in _passwords(uri):
        text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def _passwords(uri: str) -> list[str]:
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        netloc = uri.split("://", 1)[-1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    if ":" not in userinfo:
        return []
    raw = userinfo.split(":", 1)[1]
    return sorted({s for s in (raw, unquote(raw)) if s}, key=len, reverse=True)
