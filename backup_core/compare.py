"""Comparing a backup with the live database, document by document and field by field.

Documents are paired by a key (``_id`` by default, or any unique field such
as ``asset_id``), by MongoDB's notion of equal keys (``keys.key_identity``:
int32 ``1`` and int64 ``1`` are one key). A pair is ``identical`` only when the
two raw BSON documents are equal byte for byte: a field reorder or an
int32 -> int64 change is a change.

Memory does not grow with the collection: the backup documents are spilled
to an anonymous temporary file of raw BSON (the backup may be a gzipped CSV,
which cannot be seeked) and indexed in a temporary on-disk SQLite table
(key identity -> where the document sits, its length, a 16-byte digest and
whether live data had it), whose page cache is bounded (``CACHE_KIB``); the
live collection is streamed once with a cursor and looked up a batch at a
time. Duplicate keys are found by the same table (a unique index), in
document order, with the messages they always had.

Besides documents, a comparison reports how the backup's indexes and
collection options differ from live ones (what a replace-restore would add,
remove or change) and what those options would destroy (``mongospec``).
``BackupIndex.pairs`` is the engine restore uses; ``compare_backup`` and
``iter_differences`` are the views the CLI and the dashboard use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from pymongo.database import Database

from . import codec
from .errors import IntegrityError, StorageError, UsageError
from .keys import (MISSING, TYPE_NAMES, check_key, id_matcher, key_bytes, key_identity, key_json, key_text,
                   type_name)
from .mongospec import DataCheck
from .mongoutil import index_specs, json_dialect, raw_collection, translate_errors
from .store import BackupInfo, Store

STATUSES = ("only_in_backup", "only_in_live", "changed", "identical")
_I32 = struct.Struct("<i")
_BATCH = 1000  # documents looked up / indexed per SQLite round trip
_SQL_VARS = 900  # parameters per IN (...) query
CACHE_KIB = 1024  # page cache of each temporary index (KiB): what it may hold in memory, whatever its size

__all__ = ["STATUSES", "MISSING", "TYPE_NAMES", "BackupIndex", "temp_db", "temp_errors",
           "write_rows", "NotUnique", "Pair", "CompareResult",
           "CollectionCompare", "DocDiff", "FieldDiff", "compare_backup", "iter_differences", "field_diffs",
           "schema_differences", "key_bytes", "key_text", "key_json", "id_matcher"]


@dataclass
class FieldDiff:
    """One differing field: values in the codec's JSON dialect, types as BSON type names."""

    path: str
    backup: Any
    live: Any
    backup_type: str
    live_type: str

    def to_json(self) -> dict:
        return {"path": self.path, "backup": self.backup, "live": self.live,
                "backup_type": self.backup_type, "live_type": self.live_type}


@dataclass
class DocDiff:
    key: Any
    status: str
    fields: list[FieldDiff] = field(default_factory=list)
    backup_doc: Any | None = None
    live_doc: Any | None = None

    def to_json(self) -> dict:
        return {"key": self.key, "status": self.status, "fields": [f.to_json() for f in self.fields],
                "backup_doc": self.backup_doc, "live_doc": self.live_doc}


def _empty_diff() -> dict:
    return {"added": [], "removed": [], "changed": []}


@dataclass
class CollectionCompare:
    name: str
    key: str
    only_in_backup: int = 0
    only_in_live: int = 0
    changed: int = 0
    identical: int = 0
    # index names and option keys a replace-restore would add, remove or change
    indexes: dict = field(default_factory=_empty_diff)
    options: dict = field(default_factory=_empty_diff)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.only_in_backup + self.only_in_live + self.changed + self.identical

    @property
    def schema_differs(self) -> bool:
        return any(self.indexes.values()) or any(self.options.values())

    def to_json(self) -> dict:
        return {"only_in_backup": self.only_in_backup, "only_in_live": self.only_in_live,
                "changed": self.changed, "identical": self.identical, "indexes": self.indexes,
                "options": self.options, "warnings": self.warnings}


@dataclass
class CompareResult:
    backup_id: str
    key: str
    collections: dict[str, CollectionCompare] = field(default_factory=dict)
    # optional samples of differences per collection (CLI --show)
    samples: dict[str, list[DocDiff]] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return any(c.only_in_backup or c.only_in_live or c.changed or c.schema_differs
                   for c in self.collections.values())

    def to_json(self) -> dict:
        out = {"backup_id": self.backup_id, "key": self.key,
               "collections": {n: c.to_json() for n, c in self.collections.items()}}
        if self.samples:
            out["differences"] = {n: [d.to_json() for d in ds] for n, ds in self.samples.items()}
        return out

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id} vs live data (matched by {self.key}):"]
        for n, c in self.collections.items():
            lines.append(f"  {n}: {c.only_in_backup} only in backup, {c.only_in_live} only in live, "
                         f"{c.changed} changed, {c.identical} identical")
            lines += schema_lines(c, "    ")
            for d in self.samples.get(n, []):
                lines.append(f"    {d.status} {_short(d.key)}")
                for f in d.fields:
                    lines.append(f"      {f.path or '(document)'}: backup {_short(f.backup)} ({f.backup_type})"
                                 f" / live {_short(f.live)} ({f.live_type})")
        return "\n".join(lines)


def schema_lines(c: CollectionCompare, indent: str) -> list[str]:
    """Index/option differences and warnings of one collection, as text lines."""
    lines = []
    for what, diff in (("indexes", c.indexes), ("options", c.options)):
        parts = [f"{verb} {', '.join(diff[verb])}" for verb in ("added", "removed", "changed") if diff[verb]]
        if parts:
            lines.append(f"{indent}{what}: {'; '.join(parts)}")
    lines += [f"{indent}WARNING: {w}" for w in c.warnings]
    return lines


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------
# The pairing engine


class NotUnique(UsageError):
    """The chosen key does not identify documents uniquely (``side``: "backup" or "live")."""

    def __init__(self, message: str, *, hint: str, side: str, key: str) -> None:
        super().__init__(message, hint=hint)
        self.side, self.key = side, key


def _missing_key(side: str, where: str, key: str, missing: int, total: int) -> NotUnique:
    if missing == total:
        message = f"no document in {where} has a field {key!r}"
        hint = "check the spelling of the key field, or match by _id"
    else:
        message = f"key {key!r} cannot pair documents: {missing} of the {total} documents in {where} lack it"
        hint = "choose a key field every document has, or use _id"
    return NotUnique(message, hint=hint, side=side, key=key)


def _not_unique(side: str, where: str, key: str, first: bytes | None, kb: bytes) -> NotUnique:
    if kb == MISSING:
        what = "lack the key field"
    elif first is not None and first[:1] != kb[:1]:
        what = (f"share the key value {key_text(kb)} (as {type_name(first[0])} and {type_name(kb[0])}, "
                "which MongoDB treats as the same value)")
    else:
        what = f"share the key value {key_text(kb)}"
    hint = ("MongoDB cannot hold two documents with the same _id: the backup is damaged or was edited "
            "(run `verify` on it); restore another backup" if key == "_id" and side == "backup"
            else "choose a key field that is unique, or use _id")
    return NotUnique(f"key {key!r} is not unique in {where}: several documents {what}", hint=hint,
                     side=side, key=key)


@dataclass
class Pair:
    status: str
    key: bytes  # key identity
    backup: bytes | None
    live: bytes | None

    def key_value(self, key: str) -> bytes:
        """The exact key bytes (the live document's when there is one)."""
        return key_bytes(self.live if self.live is not None else self.backup, key)  # type: ignore[arg-type]


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


def _chunks(items: list, size: int | None = None) -> Iterator[list]:
    size = size or _SQL_VARS
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BackupIndex:
    """One collection of a backup, spilled to a temporary file, indexed by key on disk.

    Use as a context manager; the spill file and the index are removed on
    exit. ``check`` (a ``mongospec.DataCheck``) sees every backup document
    while the index is built. ``progress(documents)``, if given, hears the
    number of documents read so far (backup, then live) every ``_BATCH``.
    """

    def __init__(self, store: Store, info: BackupInfo, collection: str, key: str,
                 check: DataCheck | None = None, progress: Callable[[int], None] | None = None) -> None:
        self.store, self.info, self.collection, self.key = store, info, collection, key
        self.check = check
        self.progress = progress
        self.count = 0
        self.missing_key = 0
        self.read_documents = 0  # backup and live, for progress
        self._paired = False
        self._fh = None
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "BackupIndex":
        fd, path = tempfile.mkstemp(prefix="backup-compare-", suffix=".bson")
        os.unlink(path)  # anonymous: vanishes even if we are killed
        self._fh = os.fdopen(fd, "w+b")
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
        fh, offset, key = self._fh, 0, self.key
        if self.collection in self.info.absent_collections:
            return  # the collection did not exist when the backup was taken: an empty side
        pending: list[tuple[int, bytes, int, bytes, bytes]] = []
        docs = self.store.iter_documents(self.info, self.collection)
        try:
            for raw in docs:
                kb = key_bytes(raw, key)
                if kb == MISSING:
                    self.missing_key += 1
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
        if self.missing_key > 1:
            raise _missing_key("backup", f"the backup of {self.collection}", key, self.missing_key, self.count)

    def _insert(self, rows: list[tuple[int, bytes, int, bytes, bytes]]) -> None:
        """Index a batch; a key identity seen before (this batch or earlier) is refused, the first in order.

        Documents lacking the key share the identity ``MISSING``; only the first is
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
                first = key_bytes(self.read(first_off, first_len), self.key)
                raise _not_unique("backup", f"the backup of {self.collection}", self.key, first, kb)

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

    def read_key(self, ident: bytes) -> bytes:
        """The raw BSON of the backup document with key identity ``ident``."""
        found = self.locate(ident)
        if found is None:
            raise KeyError(ident)
        return self.read(*found)

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
        key = self.key
        live_missing = live_total = 0
        batch: list[tuple[bytes, bytes, bytes]] = []
        # key != _id: live documents that pair with nothing are checked for repeats too (_id is unique)
        self._db.execute("DROP TABLE IF EXISTS live_only")
        if self._paired:
            self._db.execute("UPDATE b SET seen = 0")
        self._paired = True
        if key != "_id":
            self._db.execute("CREATE TABLE live_only (ident BLOB PRIMARY KEY, t BLOB) WITHOUT ROWID")
        coll = raw_collection(db, self.collection)
        with translate_errors(f"reading collection {self.collection}"):
            for doc in coll.find({}, sort=[("_id", 1)], batch_size=1000):
                raw = bytes(doc.raw)  # may be a memoryview into the batch
                kb = key_bytes(raw, key)
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
            raise _missing_key("live", f"live collection {self.collection}", key, live_missing, live_total)
        last = -1
        while True:
            rows = self._db.execute("SELECT off, len, ident FROM b WHERE seen = 0 AND off > ? ORDER BY off LIMIT ?",
                                    (last, _BATCH)).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            for off, ln, ident in rows:
                raw = self.read(off, ln)
                if matcher is None or matcher(key_bytes(raw, key)):
                    yield Pair("only_in_backup", ident, raw, None)

    def _pair_batch(self, batch: list[tuple[bytes, bytes, bytes]]) -> Iterator[Pair]:
        """Pair a batch of live documents (in live order) with the backup's index."""
        if not batch:
            return
        con, key = self._db, self.key
        idents = list({ident for _, _, ident in batch})
        found: dict[bytes, tuple] = {}
        for chunk in _chunks(idents):
            marks = ",".join("?" * len(chunk))
            for row in con.execute(f"SELECT ident, off, len, digest, seen FROM b WHERE ident IN ({marks})", chunk):
                found[row[0]] = row[1:]
        earlier: dict[bytes, bytes] = {}  # live-only identities of earlier batches -> key type byte
        if key != "_id":
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
                if key != "_id":
                    first = earlier.get(ident, lonely_now.get(ident))
                    if first is not None:
                        raise _not_unique("live", where, key, first, kb)
                    lonely_now[ident] = kb[:1]
                yield Pair("only_in_live", ident, None, raw)
                continue
            off, ln, digest, seen = hit
            if seen or off in seen_now:
                raise _not_unique("live", where, key, None, kb)
            seen_now.add(off)
            if len(raw) == ln and hashlib.blake2b(raw, digest_size=16).digest() == digest:
                yield Pair("identical", ident, None, raw)  # backup bytes equal live bytes
            else:
                yield Pair("changed", ident, self.read(off, ln), raw)
        write_rows(con, "UPDATE b SET seen = 1 WHERE off = ?", [(o,) for o in seen_now])
        if lonely_now:
            write_rows(con, "INSERT INTO live_only (ident, t) VALUES (?, ?)", list(lonely_now.items()))
        self._tick(len(batch))


def _backup_and_collections(store: Store, backup_id: str, collections: list[str] | None) -> tuple[BackupInfo, list[str]]:
    info = store.get(backup_id)
    absent = info.absent_collections
    names = list(info.collections) + absent
    if collections:
        for c in collections:
            if c not in absent:
                info.collection(c)  # raises UsageError naming the ones it has
        names = list(dict.fromkeys(collections))
    return info, names


# --------------------------------------------------------------------------
# Indexes and collection options


def _norm(value: Any) -> Any:
    """A comparable form of a decoded spec value: every number as a float, sub-documents as pair lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return [[k, _norm(v)] for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    try:
        return float(value.to_decimal()) if hasattr(value, "to_decimal") else float(value)
    except (TypeError, ValueError):
        return repr(value)


_IGNORED_INDEX_KEYS = ("v", "ns", "background")


def _index_map(specs: list[dict]) -> dict[str, Any]:
    return {s["name"]: _norm({k: v for k, v in s.items() if k not in _IGNORED_INDEX_KEYS}) for s in specs}


def _diff(backup: dict[str, Any], live: dict[str, Any]) -> dict:
    return {"added": [n for n in backup if n not in live],
            "removed": [n for n in live if n not in backup],
            "changed": [n for n in backup if n in live and backup[n] != live[n]]}


def schema_differences(db: Database, info: BackupInfo, name: str, live_options: dict | None) -> tuple[dict, dict]:
    """(indexes, options) differences of collection ``name``: backup vs live (``live_options`` None: absent)."""
    from .mongoutil import from_json_dialect

    if name in info.absent_collections:
        backup_idx, backup_opts = {}, {}
    else:
        entry = info.collection(name)
        backup_idx, backup_opts = _index_map(entry.decoded_indexes()), entry.decoded_options()
    if live_options is None:
        live_idx, live_opts = {}, {}
    else:
        live_idx = _index_map([from_json_dialect(s) for s in index_specs(raw_collection(db, name))])
        live_opts = from_json_dialect(json_dialect(live_options))
    options = _diff({k: _norm(v) for k, v in backup_opts.items()}, {k: _norm(v) for k, v in live_opts.items()})
    return _diff(backup_idx, live_idx), options


def data_check(info: BackupInfo, name: str) -> DataCheck | None:
    if name in info.absent_collections:
        return None
    entry = info.collection(name)
    return DataCheck(entry.decoded_indexes(), entry.decoded_options())


# --------------------------------------------------------------------------
# Field-level differences


def _value(t: int, buf: bytes, vs: int, ve: int) -> Any:
    return json.loads(codec.value_to_json_text(t, buf, vs, ve))


def field_diffs(backup: bytes, live: bytes) -> list[FieldDiff]:
    """Where two raw documents differ: per field path, recursing into sub-documents and arrays."""
    out: list[FieldDiff] = []
    _diff_docs(backup, 0, len(backup), live, 0, len(live), "", out)
    return out


def _diff_docs(b: bytes, bs: int, be: int, l: bytes, ls: int, le: int, prefix: str,
               out: list[FieldDiff]) -> None:
    bf, lf = list(codec.iter_elements(b, bs)), list(codec.iter_elements(l, ls))
    bnames, lnames = [f[1] for f in bf], [f[1] for f in lf]
    if len(set(bnames)) != len(bnames) or len(set(lnames)) != len(lnames):
        # repeated field names cannot be paired by name: show the whole value
        out.append(FieldDiff(prefix.rstrip(".") or "(document)", _value(codec.T_DOC, b, bs, be),
                             _value(codec.T_DOC, l, ls, le), "object", "object"))
        return
    bmap = {f[1]: f for f in bf}
    lmap = {f[1]: f for f in lf}
    for name in bnames + [n for n in lnames if n not in bmap]:
        path = prefix + name
        bt, lt = bmap.get(name), lmap.get(name)
        if bt is None or lt is None:
            out.append(FieldDiff(path,
                                 _value(bt[0], b, bt[2], bt[3]) if bt else None,
                                 _value(lt[0], l, lt[2], lt[3]) if lt else None,
                                 type_name(bt[0] if bt else None), type_name(lt[0] if lt else None)))
            continue
        t1, _, v1s, v1e = bt
        t2, _, v2s, v2e = lt
        if t1 == t2 and b[v1s:v1e] == l[v2s:v2e]:
            continue
        if t1 == t2 and t1 in (codec.T_DOC, codec.T_ARRAY):
            # recurse; a pure reorder inside shows up as that level's "(field order)"
            _diff_docs(b, v1s, v1e, l, v2s, v2e, path + ".", out)
            continue
        out.append(FieldDiff(path, _value(t1, b, v1s, v1e), _value(t2, l, v2s, v2e),
                             type_name(t1), type_name(t2)))
    common_b = [n for n in bnames if n in lmap]
    common_l = [n for n in lnames if n in bmap]
    if common_b != common_l:
        out.append(FieldDiff(prefix + "(field order)", bnames, lnames, "fieldOrder", "fieldOrder"))


# --------------------------------------------------------------------------
# Public views


def compare_backup(db: Database, store: Store, backup_id: str, collections: list[str] | None = None,
                   key: str = "_id", *, show: int = 0) -> CompareResult:
    """Counts of only-in-backup, only-in-live, changed and identical documents per collection,
    plus index and option differences and warnings.

    ``show`` > 0 also keeps that many differing documents per collection (with
    their field differences) in ``result.samples``.
    """
    from .mongoutil import user_collections

    check_key(key)
    info, names = _backup_and_collections(store, backup_id, collections)
    live = user_collections(db)
    result = CompareResult(info.backup_id, key)
    for name in names:
        cc = CollectionCompare(name, key)
        samples: list[DocDiff] = []
        check = data_check(info, name)
        with BackupIndex(store, info, name, key, check) as index:
            for pair in index.pairs(db):
                setattr(cc, pair.status, getattr(cc, pair.status) + 1)
                if pair.status != "identical" and len(samples) < show:
                    samples.append(doc_diff(pair, key))
        cc.indexes, cc.options = schema_differences(db, info, name, live.get(name))
        cc.warnings = check.findings() if check is not None else []
        result.collections[name] = cc
        if show:
            result.samples[name] = samples
    return result


def doc_diff(pair: Pair, key: str = "_id") -> DocDiff:
    b = json.loads(codec.to_json_text(pair.backup)) if pair.backup is not None else None
    if pair.status == "identical":
        b = json.loads(codec.to_json_text(pair.live))
    lv = json.loads(codec.to_json_text(pair.live)) if pair.live is not None else None
    fields = field_diffs(pair.backup, pair.live) if pair.status == "changed" else []
    return DocDiff(key_json(pair.key_value(key)), pair.status, fields, b, lv)


def iter_differences(db: Database, store: Store, backup_id: str, collection: str, key: str = "_id",
                     statuses: Iterable[str] | None = None) -> Iterator[DocDiff]:
    """Every paired document of one collection with the given statuses (default: all but identical).

    Order: live documents in ``_id`` order, then documents only in the backup.
    """
    check_key(key)
    wanted = set(statuses) if statuses is not None else {"only_in_backup", "only_in_live", "changed"}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise UsageError(f"unknown status {', '.join(sorted(unknown))}; use {', '.join(STATUSES)}")
    info, _ = _backup_and_collections(store, backup_id, [collection])
    with BackupIndex(store, info, collection, key) as index:
        for pair in index.pairs(db):
            if pair.status in wanted:
                yield doc_diff(pair, key)
