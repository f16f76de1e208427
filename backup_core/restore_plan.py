"""Planning a restore, one collection at a time: what it will do, counted from one pairing pass.

``plan_collection`` pairs the backup's collection with the live one (the
pairing engine, ``pairing.py``) and feeds every pair to a ``RestoreTally``,
which counts what the restore does with it (``CollectionRestore``: inserted,
updated, deleted, unchanged, skipped, kept) and, for restores that write per
key (merge, or replace limited to chosen ids), records the write in
``KeyedWrites`` (a temporary SQLite table: memory stays flat). The dry run
and the real restore run this same plan, so the dry run's counts are exactly
what the restore then does (DESIGN.md section 7).

A plan also refuses what cannot be restored safely, before anything is
written: keys that are not unique on either side (``pairing.NotUnique``), a
merge by a field some backup documents lack, and per-key writes that would
insert an ``_id`` another live document already has.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Callable, Iterator

from pymongo.database import Database

from .compare import schema_differences
from .errors import IntegrityError, RestoreRefused
from .keys import id_matcher, in_filter, key_bytes, key_text
from .mongoutil import WRITE_BATCH, raw_collection, translate_errors
from .pairing import BackupIndex, NotUnique, Pair, data_check, pair_collection
from .progress import ProgressCallback
from .store import BackupInfo, Store
from .tempdisk import temp_db, temp_errors, write_rows

INSERT, REPLACE, DELETE = 1, 2, 3


def _no_diff() -> dict:
    return {"added": [], "removed": [], "changed": []}


@dataclass
class CollectionRestore:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    kept: int = 0  # merge: live documents absent from the backup, left alone (not "considered")
    # what a replace does to indexes and collection options (merge leaves them as they are)
    indexes: dict = field(default_factory=_no_diff)
    options: dict = field(default_factory=_no_diff)
    warnings: list[str] = field(default_factory=list)

    @property
    def considered(self) -> int:
        return self.inserted + self.updated + self.deleted + self.unchanged + self.skipped

    def counts(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged, "skipped": self.skipped, "kept": self.kept}

    def to_json(self) -> dict:
        return {**self.counts(), "indexes": self.indexes, "options": self.options, "warnings": self.warnings}


class KeyedWrites:
    """The per-key writes of one collection, in order, in a temporary SQLite table (memory stays flat).

    A row: kind, where the backup document sits in the index's spill file
    (offset, length), its ``_id`` bytes (``bid``) and the live ``_id`` (``lid``):
    insert (offset, length, bid), replace (offset, length, bid, lid), delete (lid).
    """

    def __init__(self) -> None:
        self._db = temp_db()
        self._db.execute("CREATE TABLE ops (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, off INTEGER, "
                         "len INTEGER, bid BLOB, lid BLOB)")
        self._pending: list[tuple] = []
        self.count = 0

    def add(self, kind: int, off: int | None, length: int | None, bid: bytes | None, lid: bytes | None) -> None:
        self.count += 1
        self._pending.append((self.count, kind, off, length, bid, lid))
        if len(self._pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self._pending = self._pending, []
        if rows:
            write_rows(self._db, "INSERT INTO ops (seq, kind, off, len, bid, lid) VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self.count

    def select(self, where: str, columns: str = "kind, off, len, bid, lid") -> Iterator[tuple]:
        """Rows matching ``where`` in order, a batch at a time (no statement stays open between batches)."""
        self.flush()
        last = 0
        while True:
            rows = self._db.execute(f"SELECT seq, {columns} FROM ops WHERE seq > ? AND ({where}) "
                                    f"ORDER BY seq LIMIT {WRITE_BATCH}", (last,)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for row in rows:
                yield row[1:]

    def __iter__(self) -> Iterator[tuple]:
        return self.select("1")

    def freed_ids(self) -> None:
        """Fill table ``freed``: the live ``_id``s these writes delete or replace by another ``_id``."""
        self.flush()
        self._db.execute("CREATE TABLE IF NOT EXISTS freed (id BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute(f"INSERT OR IGNORE INTO freed SELECT lid FROM ops WHERE kind = {DELETE} OR "
                         f"(kind = {REPLACE} AND bid != x'' AND bid != lid)")

    def is_freed(self, ident: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM freed WHERE id = ?", (ident,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()


@dataclass
class CollectionPlan:
    """What one collection's restore will do: counts, and for per-key writes the writes."""

    name: str
    index: BackupIndex
    counts: CollectionRestore
    swapped: bool  # True: the whole collection is replaced through a swap-in collection (``swapin.py``)
    writes: KeyedWrites | None = None  # per-key writes (not swapped)

    def close(self) -> None:
        if self.writes is not None:
            self.writes.close()
        self.index.close()


@dataclass
class RestoreTally:
    """Sink: what the restore does with each pair, counted into the plan (and its writes recorded)."""

    plan: CollectionPlan
    mode: str
    strategy: str

    def add(self, pair: Pair) -> None:
        c, writes, s = self.plan.counts, self.plan.writes, pair.status
        if s == "identical":
            c.unchanged += 1
        elif s == "only_in_backup":
            c.inserted += 1
            if writes is not None:
                off, length = self.plan.index.locate(pair.ident)  # type: ignore[misc]
                writes.add(INSERT, off, length, key_bytes(pair.backup, "_id"), None)  # type: ignore[arg-type]
        elif s == "changed":
            if self.mode == "merge" and self.strategy == "live-wins":
                c.skipped += 1
            else:
                c.updated += 1
                if writes is not None:
                    off, length = self.plan.index.locate(pair.ident)  # type: ignore[misc]
                    writes.add(REPLACE, off, length, key_bytes(pair.backup, "_id"),  # type: ignore[arg-type]
                               key_bytes(pair.live, "_id"))  # type: ignore[arg-type]
        else:  # only_in_live
            if self.mode == "merge":
                c.kept += 1
            else:
                c.deleted += 1
                if writes is not None:
                    writes.add(DELETE, None, None, None, key_bytes(pair.live, "_id"))  # type: ignore[arg-type]


def plan_collection(db: Database, store: Store, info: BackupInfo, name: str, *, mode: str, strategy: str,
                    match_field: str, ids: list | None, live_options: dict | None,
                    progress: ProgressCallback | None = None) -> CollectionPlan:
    """Pair one collection and count what its restore does (the caller closes the plan).

    ``live_options``: the live collection's options, None when it does not exist.
    """
    exists = live_options is not None
    # a merge into a collection that does not exist creates it like a replace: with its options and indexes
    swapped = ids is None and (mode == "replace" or not exists)
    report, total = _document_progress(db, info, name, exists, progress)
    index = BackupIndex(store, info, name, match_field, data_check(info, name), progress=report)
    plan = None
    try:
        index.__enter__()
        if mode == "merge" and index.missing_field:
            raise RestoreRefused(f"cannot merge {name} by {match_field!r}: {index.missing_field} document(s) of the "
                                 "backup lack that field",
                                 hint="merge by _id" if match_field != "_id"
                                 else "use --mode replace (the server gives those documents a new _id)")
        plan = CollectionPlan(name, index, CollectionRestore(), swapped, None if swapped else KeyedWrites())
        pair_collection(index, db, [RestoreTally(plan, mode, strategy)], id_matcher(ids))
        if progress is not None:
            progress(name, total, total)  # (documents outside ``ids`` were read, not reported)
        if plan.writes:
            _check_id_collisions(db, plan, match_field)
        if swapped:
            plan.counts.indexes, plan.counts.options = schema_differences(db, info, name, live_options)
            plan.counts.warnings = index.check.findings() if index.check is not None else []
        return plan
    except sqlite3.Error as exc:  # the merge's table of writes (the index maps its own)
        _close(plan, index)
        with temp_errors():
            raise exc
    except NotUnique as exc:
        _close(plan, index)
        if exc.side == "backup" and exc.match_field == "_id":
            raise IntegrityError(f"backup {info.backup_id} cannot be restored: {exc}; nothing was changed",
                                 hint=exc.hint) from None
        raise RestoreRefused(f"{exc}: nothing was changed", hint=exc.hint) from None
    except BaseException:
        _close(plan, index)
        raise


def _document_progress(db: Database, info: BackupInfo, name: str, exists: bool,
                       progress: ProgressCallback | None) -> tuple[Callable[[int], None] | None, int]:
    """(the index's progress callback, the documents to read: the backup's, then the live ones)."""
    if progress is None:
        return None, 0
    total = 0 if name in info.absent_collections else info.collection(name).count
    if exists:
        with translate_errors(f"counting collection {name}"):
            total += db[name].estimated_document_count()
    progress(name, 0, total)

    def report(done: int) -> None:
        progress(name, min(done, total), total)
    return report, total


def _close(plan: CollectionPlan | None, index: BackupIndex) -> None:
    if plan is not None:
        plan.close()
    else:
        index.close()


def _check_id_collisions(db: Database, plan: CollectionPlan, match_field: str) -> None:
    """Refuse per-key writes that would insert an ``_id`` another live document already has.

    Happens when documents are paired by another field (the backup's _id now
    belongs to a different live document).
    """
    writes = plan.writes
    assert writes is not None
    writes.freed_ids()
    # backup _ids these writes put in: inserts, and replaces that change the _id (a document without
    # _id gets a new one from the server: it cannot collide)
    inserted = (bid for (bid,) in writes.select(
        f"bid != x'' AND (kind = {INSERT} OR (kind = {REPLACE} AND bid != lid))", "bid"))
    coll = raw_collection(db, plan.name)
    while batch := [b for _, b in zip(range(WRITE_BATCH), inserted)]:
        with translate_errors(f"reading collection {plan.name}"):
            hits = [key_bytes(bytes(d.raw), "_id")
                    for d in coll.find(in_filter("_id", batch), projection={"_id": 1})]
        clash = [h for h in hits if not writes.is_freed(h)]
        if clash:
            raise RestoreRefused(
                f"cannot restore {plan.name} by {match_field!r}: backup documents would reuse the _id of other "
                f"live documents (e.g. _id {key_text(clash[0])}); nothing was changed",
                hint="use --mode replace, or merge by _id" if match_field != "_id" else "use --mode replace")


def plan_removals(db: Database, info: BackupInfo, drops: list[str],
                  live: dict[str, dict]) -> dict[str, CollectionRestore]:
    """Collections the backup records as absent that exist live: each is removed, all its documents
    deleted (and its indexes and options with it)."""
    out = {}
    for name in drops:
        if name in live:
            with translate_errors(f"counting collection {name}"):
                out[name] = c = CollectionRestore(deleted=db[name].estimated_document_count())  # (see swapin.write_collection)
            c.indexes, c.options = schema_differences(db, info, name, live[name])
    return out
