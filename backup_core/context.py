"""Open resources in one place: every entry point gets its database and store here.

``open_context(settings)`` yields a ``Context`` with the pymongo database,
the backup store and the settings; the dashboard, the CLI and the scheduler
all use it, so connection, error translation and clean-up happen once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from pymongo.database import Database

from .config import Settings
from .store import Store


@dataclass
class Context:
    settings: Settings
    db: Database
    store: Store
    embedded: bool

    @property
    def user(self) -> str:
        return self.settings.user


def open_store(settings: Settings) -> Store:
    return Store(settings.backup_root)


@contextlib.contextmanager
def open_context(settings: Settings) -> Iterator[Context]:
    from .db import connect  # imported late: store-only commands need no driver set-up

    conn = connect(settings)
    try:
        yield Context(settings, conn.db, open_store(settings), conn.embedded)
    finally:
        conn.close()
