"""The one pairing engine: a backup's collection and the live one, document by document, in one pass.

Comparing (``compare``: the CLI's counts and samples; ``paged_compare``: the
dashboard's pages) and restoring (``restore_plan``: its counts and writes)
all start the same way: every document of either side, paired with its
partner. Documents are paired by a match field (``_id`` by default, or any
unique field such as ``asset_id``), by MongoDB's notion of equal keys
(``keys.key_identity``: int32 ``1`` and int64 ``1`` are one key). A pair is
``identical`` only when the two raw BSON documents are equal byte for byte:
a field reorder or an int32 -> int64 change is a change.

Memory does not grow with the collection: ``BackupIndex`` spills the backup
documents to an anonymous temporary file of raw BSON (the backup may be a
gzipped CSV, which cannot be seeked) and indexes them in a temporary on-disk
SQLite table (key identity -> where the document sits, its length, a
16-byte digest and whether live data had it; ``tempdisk``); the live
collection is streamed once with a cursor and looked up a batch at a time.
Keys that are not unique, on either side, are found by the same table, in
document order, and refused (``NotUnique``).

``pair_collection`` runs that one pass and hands every pair to each of its
sinks (``add(pair)``); each user brings the sinks it needs: ``StatusCounts``
here, ``compare.Samples``, ``paged_compare``'s on-disk pages,
``restore_plan``'s restore operations.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator, Protocol

from pymongo.database import Database

from .errors import IntegrityError, UsageError
from .keys import MISSING, key_bytes, key_identity, key_text, type_name
from .mongospec import DataCheck
from .mongoutil import raw_collection, translate_errors
from .store import BackupInfo, Store
from .tempdisk import anonymous_file, temp_db, temp_errors, write_rows

STATUSES = ("only_in_backup", "only_in_live", "changed", "identical")
_I32 = struct.Struct("<i")
_BATCH = 1000  # documents looked up / indexed per SQLite round trip
_SQL_VARS = 900  # parameters per IN (...) query


class NotUnique(UsageError):
    """The match field does not identify documents uniquely (``side``: "backup" or "live")."""

    def __init__(self, message: str, *, hint: str, side: str, match_field: str) -> None:
        super().__init__(message, hint=hint)
        self.side, self.match_field = side, match_field


def _missing_field(side: str, where: str, field: str, missing: int, total: int) -> NotUnique:
    if missing == total:
        message = f"no document in {where} has a field {field!r}"
        hint = "check the spelling of the key field, or match by _id"
    else:
        message = f"key {field!r} cannot pair documents: {missing} of the {total} documents in {where} lack it"
        hint = "choose a key field every document has, or use _id"
    return NotUnique(message, hint=hint, side=side, match_field=field)


def _not_unique(side: str, where: str, field: str, first: bytes | None, kb: bytes) -> NotUnique:
    if kb == MISSING:
        what = "lack the key field"
    elif first is not None and first[:1] != kb[:1]:
        what = (f"share the key value {key_text(kb)} (as {type_name(first[0])} and {type_name(kb[0])}, "
                "which MongoDB treats as the same value)")
    else:
        what = f"share the key value {key_text(kb)}"
    hint = ("MongoDB cannot hold two documents with the same _id: the backup is damaged or was edited "
            "(run `verify` on it); restore another backup" if field == "_id" and side == "backup"
            else "choose a key field that is unique, or use _id")
    return NotUnique(f"key {field!r} is not unique in {where}: several documents {what}", hint=hint,
                     side=side, match_field=field)


@dataclass
class Pair:
    status: str
    ident: bytes  # the key identity (``keys.key_identity``) of both documents
    backup: bytes | None
    live: bytes | None

    def doc_key(self, match_field: str) -> bytes:
        """The exact key bytes (the live document's when there is one)."""
        return key_bytes(self.live if self.live is not None else self.backup, match_field)  # type: ignore[arg-type]


def _chunks(items: list, size: int | None = None) -> Iterator[list]:
    size = size or _SQL_VARS
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BackupIndex:
    """One collection of a backup, spilled to a temporary file, indexed on disk by the key identity of its
    match field.

    Use as a context manager; the spill file and the index are removed on
    exit. ``check`` (a ``mongospec.DataCheck``) sees every backup document
    while the index is built. ``progress(documents)``, if given, hears the
    number of documents read so far (backup, then live) every ``_BATCH``.
    """

    def __init__(self, store: Store, info: BackupInfo, collection: str, match_field: str,
                 check: DataCheck | None = None, progress: Callable[[int], None] | None = None) -> None:
        self.store, self.info, self.collection, self.match_field = store, info, collection, match_field
        self.check = check
        self.progress = progress
        self.count = 0
        self.missing_field = 0
        self.read_documents = 0  # backup and live, for progress
        self._paired = False
        self._fh = None
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "BackupIndex":
        self._fh = anonymous_file("backup-pairing-", ".bson")
        try:
            with temp_errors():
                self._db = temp_db()
                # rowid = where the document starts in the spill file: a scan in rowid order is backup order
                self._db.execute("CREATE TABLE b (off INTEGER PRIMARY KEY, ident BLOB NOT NULL, "
                                 "len INTEGER NOT NULL, digest BLOB NOT NULL, seen INTEGER NOT NULL DEFAULT 0)")
                self._db.execute("CREATE UNIQUE INDEX b_ident ON b (ident)")
                self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _tick(self, n: int) -> None:
        self.read_documents += n
        if self.progress is not None:
            self.progress(self.read_documents)

    def _build(self) -> None:
        fh, offset, field = self._fh, 0, self.match_field
        if self.collection in self.info.absent_collections:
            return  # the collection did not exist when the backup was taken: an empty side
        pending: list[tuple[int, bytes, int, bytes, bytes]] = []
        docs = self.store.iter_documents(self.info, self.collection)
        try:
            for raw in docs:
                kb = key_bytes(raw, field)
                if kb == MISSING:
                    self.missing_field += 1
                if self.check is not None:
                    self.check.add(raw)
                pending.append((offset, key_identity(kb), len(raw), hashlib.blake2b(raw, digest_size=16).digest(),
                                kb))
                fh.write(raw)
                offset += len(raw)
                self.count += 1
                if len(pending) >= _BATCH:
                    self._insert(pending)
                    self._tick(len(pending))
                    pending = []
        except BaseException:
            # a repeated key before the failure is what the document order reports first
            self._insert(pending)
            raise
        self._insert(pending)
        self._tick(len(pending))
        expected = self.info.collection(self.collection).count
        if self.count != expected:
            raise IntegrityError(f"backup {self.info.backup_id}, {self.collection}: the file holds "
                                 f"{self.count} documents but the manifest says {expected}")
        if self.missing_field > 1:
            raise _missing_field("backup", f"the backup of {self.collection}", field, self.missing_field, self.count)

    def _insert(self, rows: list[tuple[int, bytes, int, bytes, bytes]]) -> None:
        """Index a batch; a key identity seen before (this batch or earlier) is refused, the first in order.

        Documents lacking the match field share the identity ``MISSING``; only the first is
        indexed (more than one is refused once the whole backup was read)."""
        if not rows:
            return
        con = self._db
        before = con.total_changes
        write_rows(con, "INSERT OR IGNORE INTO b (off, ident, len, digest) VALUES (?, ?, ?, ?)",
                   [r[:4] for r in rows])
        if con.total_changes - before == len(rows):
            return
        for off, ident, _ln, _digest, kb in rows:
            if kb == MISSING:
                continue
            first_off, first_len = con.execute("SELECT off, len FROM b WHERE ident = ?", (ident,)).fetchone()
            if first_off != off:
                first = key_bytes(self.read(first_off, first_len), self.match_field)
                raise _not_unique("backup", f"the backup of {self.collection}", self.match_field, first, kb)

    def iter_documents(self) -> Iterator[bytes]:
        """The backup's documents in backup order (from the spill file, already decoded once)."""
        fh = self._fh
        fh.seek(0)
        while head := fh.read(4):
            n = _I32.unpack(head)[0]
            yield head + fh.read(n - 4)

    def read(self, offset: int, length: int) -> bytes:
        """The raw BSON of the backup document at ``offset`` of the spill file."""
        self._fh.seek(offset)
        return self._fh.read(length)

    def locate(self, ident: bytes) -> tuple[int, int] | None:
        """(offset, length) of the backup document with key identity ``ident``, or None."""
        with temp_errors():
            return self._db.execute("SELECT off, len FROM b WHERE ident = ?", (ident,)).fetchone()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def __exit__(self, *exc) -> None:
        self.close()

    def pairs(self, db: Database, matcher=None) -> Iterator[Pair]:
        """Every document of either side, paired: live order first, then backup-only ones (backup order).

        The live cursor is fully consumed before the last pairs (only_in_backup)
        are produced; callers that write must collect first (restore does).
        """
        with temp_errors():
            yield from self._pairs(db, matcher)

    def _pairs(self, db: Database, matcher) -> Iterator[Pair]:
        field = self.match_field
        live_missing = live_total = 0
        batch: list[tuple[bytes, bytes, bytes]] = []
        # field != _id: live documents that pair with nothing are checked for repeats too (_id is unique)
        self._db.execute("DROP TABLE IF EXISTS live_only")
        if self._paired:
            self._db.execute("UPDATE b SET seen = 0")
        self._paired = True
        if field != "_id":
            self._db.execute("CREATE TABLE live_only (ident BLOB PRIMARY KEY, t BLOB) WITHOUT ROWID")
        coll = raw_collection(db, self.collection)
        with translate_errors(f"reading collection {self.collection}"):
            for doc in coll.find({}, sort=[("_id", 1)], batch_size=1000):
                raw = bytes(doc.raw)  # may be a memoryview into the batch
                kb = key_bytes(raw, field)
                live_total += 1
                if kb == MISSING:
                    live_missing += 1
                    if live_missing > 1:
                        continue  # reported once the whole collection was seen
                if matcher is not None and not matcher(kb):
                    continue  # outside the chosen documents
                batch.append((raw, kb, key_identity(kb)))
                if len(batch) >= _BATCH:
                    yield from self._pair_batch(batch)
                    batch = []
            yield from self._pair_batch(batch)
        if live_missing > 1:
            raise _missing_field("live", f"live collection {self.collection}", field, live_missing, live_total)
        last = -1
        while True:
            rows = self._db.execute("SELECT off, len, ident FROM b WHERE seen = 0 AND off > ? ORDER BY off LIMIT ?",
                                    (last, _BATCH)).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            for off, ln, ident in rows:
                raw = self.read(off, ln)
                if matcher is None or matcher(key_bytes(raw, field)):
                    yield Pair("only_in_backup", ident, raw, None)

    def _pair_batch(self, batch: list[tuple[bytes, bytes, bytes]]) -> Iterator[Pair]:
        """Pair a batch of live documents (in live order) with the backup's index."""
        if not batch:
            return
        con, field = self._db, self.match_field
        idents = list({ident for _, _, ident in batch})
        found: dict[bytes, tuple] = {}
        for chunk in _chunks(idents):
            marks = ",".join("?" * len(chunk))
            for row in con.execute(f"SELECT ident, off, len, digest, seen FROM b WHERE ident IN ({marks})", chunk):
                found[row[0]] = row[1:]
        earlier: dict[bytes, bytes] = {}  # live-only identities of earlier batches -> key type byte
        if field != "_id":
            lonely = [i for i in idents if i not in found]
            for chunk in _chunks(lonely):
                marks = ",".join("?" * len(chunk))
                earlier.update(con.execute(f"SELECT ident, t FROM live_only WHERE ident IN ({marks})", chunk))
        seen_now: set[int] = set()
        lonely_now: dict[bytes, bytes] = {}
        where = f"live collection {self.collection}"
        for raw, kb, ident in batch:
            hit = found.get(ident)
            if hit is None:
                if field != "_id":
                    first = earlier.get(ident, lonely_now.get(ident))
                    if first is not None:
                        raise _not_unique("live", where, field, first, kb)
                    lonely_now[ident] = kb[:1]
                yield Pair("only_in_live", ident, None, raw)
                continue
            off, ln, digest, seen = hit
            if seen or off in seen_now:
                raise _not_unique("live", where, field, None, kb)
            seen_now.add(off)
            if len(raw) == ln and hashlib.blake2b(raw, digest_size=16).digest() == digest:
                yield Pair("identical", ident, None, raw)  # backup bytes equal live bytes
            else:
                yield Pair("changed", ident, self.read(off, ln), raw)
        write_rows(con, "UPDATE b SET seen = 1 WHERE off = ?", [(o,) for o in seen_now])
        if lonely_now:
            write_rows(con, "INSERT INTO live_only (ident, t) VALUES (?, ?)", list(lonely_now.items()))
        self._tick(len(batch))


class Sink(Protocol):
    """What ``pair_collection`` feeds: it sees every pair once, in pairing order."""

    def add(self, pair: Pair) -> None: ...


@dataclass
class StatusCounts:
    """Sink: how many pairs of each status."""

    only_in_backup: int = 0
    only_in_live: int = 0
    changed: int = 0
    identical: int = 0

    def add(self, pair: Pair) -> None:
        setattr(self, pair.status, getattr(self, pair.status) + 1)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def pair_collection(index: BackupIndex, db: Database, sinks: Iterable[Sink],
                    matcher: Callable[[bytes], bool] | None = None) -> None:
    """Pair ``index``'s collection with the live one in ``db`` (one pass), handing every pair to every sink.

    ``matcher`` (``keys.id_matcher``) limits the pairs to the chosen keys.
    """
    sinks = list(sinks)
    for pair in index.pairs(db, matcher):
        for sink in sinks:
            sink.add(pair)


def data_check(info: BackupInfo, name: str) -> DataCheck | None:
    """What the backup's indexes and options would destroy (``mongospec``), fed while the index is built."""
    if name in info.absent_collections:
        return None
    entry = info.collection(name)
    return DataCheck(entry.decoded_indexes(), entry.decoded_options())
