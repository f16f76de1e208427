"""Private working space on disk: anonymous spill files and temporary SQLite databases.

Comparing and restoring must not hold a collection in memory, so what they
keep per document goes to disk: spill files of raw BSON or records
(``anonymous_file``: unlinked at once, so they vanish even if the process is
killed) and indexes in private SQLite databases (``temp_db``: a bounded page
cache, ``CACHE_KIB``, whatever their size). A failing temporary disk (full,
say) surfaces as one ``StorageError`` line (``temp_errors``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from typing import IO, Iterator

from .errors import StorageError

CACHE_KIB = 1024  # page cache of each temporary database (KiB): what it may hold in memory, whatever its size


def anonymous_file(prefix: str, suffix: str = ".bin") -> IO[bytes]:
    """A new temporary file opened for reading and writing, already unlinked (gone when closed or killed)."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    os.unlink(path)
    return os.fdopen(fd, "w+b")


def temp_db() -> sqlite3.Connection:
    """A private temporary on-disk SQLite database with a bounded page cache (gone when closed or killed).

    Usable from any thread, one thread at a time (a collection's job hands it on to the next step).
    """
    con = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    for pragma in (f"cache_size = -{CACHE_KIB}", "journal_mode = OFF", "synchronous = OFF",
                   "temp_store = FILE", "locking_mode = EXCLUSIVE"):
        con.execute(f"PRAGMA {pragma}")
    return con


def write_rows(con: sqlite3.Connection, sql: str, rows: list) -> None:
    """``executemany`` in one transaction (a temporary database: nothing to keep if it fails)."""
    con.execute("BEGIN")
    try:
        con.executemany(sql, rows)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextlib.contextmanager
def temp_errors() -> Iterator[None]:
    """A failing temporary index (disk full, say) as a one-line ``StorageError``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"the temporary index on disk failed: {exc}",
                           hint="check the free space of the temporary folder (TMPDIR)") from None
