"""Open resources in one place: every entry point gets its store, database and operation here.

``open_context(settings)`` yields a ``Context`` with the backup store and the
settings; the database is connected on first use of ``ctx.db``, so an entry
point that opens an operation first (``open_operation``) has a connection
failure recorded in the audit log like any other failure. The dashboard, the
CLI and the scheduler all use it, so connection, error translation, locking,
auditing and clean-up happen the same way everywhere.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

from pymongo.database import Database

from .config import Settings
from .operation import Operation, operation
from .store import Keyring, Store, open_store as _open_store


@dataclass
class Context:
    settings: Settings
    store: Store
    op: Operation | None = None
    _conn: object = field(default=None, repr=False)

    @property
    def user(self) -> str:
        return self.settings.user

    def connect(self):
        if self._conn is None:
            from .db import connect  # late: store-only commands need no driver set-up

            self._conn = connect(self.settings)
        return self._conn

    @property
    def db(self) -> Database:
        """The configured database, connected now if it was not yet (DatabaseUnavailable if down)."""
        return self.connect().db  # type: ignore[attr-defined]

    @property
    def embedded(self) -> bool:
        return self.settings.embedded

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # type: ignore[attr-defined]
            self._conn = None


def keyring_of(settings: Settings) -> Keyring:
    return Keyring.load(settings.key_file, settings.key_files)


def open_store(settings: Settings, root: str | None = None) -> Store:
    """The store of the configured backup root (or of ``root``), with the configured keys."""
    return _open_store(root or settings.backup_root, keyring_of(settings))


@contextlib.contextmanager
def open_context(settings: Settings) -> Iterator[Context]:
    ctx = Context(settings, open_store(settings))
    try:
        yield ctx
    finally:
        ctx.close()


@contextlib.contextmanager
def open_operation(settings: Settings, action: str, *, details: dict | None = None,
                   lock: bool | str = True, lock_timeout: float | None = None) -> Iterator[Context]:
    """``open_context`` plus an audited ``operation`` around everything, the connection included."""
    with open_context(settings) as ctx:
        kw = {} if lock_timeout is None else {"lock_timeout": lock_timeout}
        with operation(ctx.store, action, user=settings.user, details=details, lock=lock,
                       meta_db=settings.meta_db, **kw) as op:
            ctx.op = op
            yield ctx
