"""Comparing a backup with the live database, document by document and field by field.

Documents are paired by a key (``_id`` by default, or any unique field such
as ``asset_id``) whose values are compared by their exact BSON encoding
(type byte + value bytes), so ``1`` (int32) and ``1`` (int64) are different
keys. A pair is ``identical`` only when the two raw BSON documents are equal
byte for byte: a field reorder or an int32 -> int64 change is a change.

Memory: only the backup side is indexed, as ``{key bytes -> document number}``
plus compact arrays of offsets, lengths and 16-byte digests (about 160 bytes
a document for an ObjectId key); the backup documents themselves are spilled to a temporary file
of raw BSON (the backup may be a gzipped CSV, which cannot be seeked), and the
live collection is streamed once with a cursor. Both sides are never held
whole in memory.

``pair_documents`` is the engine restore uses (raw bytes); ``compare_backup``
and ``iter_differences`` are the views the CLI and the dashboard use.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from pymongo.database import Database

from . import codec
from .errors import IntegrityError, UsageError
from .mongoutil import raw_collection, translate_errors
from .store import BackupInfo, Store

STATUSES = ("only_in_backup", "only_in_live", "changed", "identical")
MISSING = b""  # key bytes of a document that lacks the key field
_I32 = struct.Struct("<i")

# MongoDB's own $type aliases, so the names mean something to an admin
TYPE_NAMES = {
    1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 6: "undefined", 7: "objectId",
    8: "bool", 9: "date", 10: "null", 11: "regex", 12: "dbPointer", 13: "javascript", 14: "symbol",
    15: "javascriptWithScope", 16: "int", 17: "timestamp", 18: "long", 19: "decimal", 255: "minKey",
    127: "maxKey",
}


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


@dataclass
class CollectionCompare:
    name: str
    key: str
    only_in_backup: int = 0
    only_in_live: int = 0
    changed: int = 0
    identical: int = 0

    @property
    def total(self) -> int:
        return self.only_in_backup + self.only_in_live + self.changed + self.identical

    def to_json(self) -> dict:
        return {"only_in_backup": self.only_in_backup, "only_in_live": self.only_in_live,
                "changed": self.changed, "identical": self.identical}


@dataclass
class CompareResult:
    backup_id: str
    key: str
    collections: dict[str, CollectionCompare] = field(default_factory=dict)
    # optional samples of differences per collection (CLI --show)
    samples: dict[str, list[DocDiff]] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return any(c.only_in_backup or c.only_in_live or c.changed for c in self.collections.values())

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
            for d in self.samples.get(n, []):
                lines.append(f"    {d.status} {_short(d.key)}")
                for f in d.fields:
                    lines.append(f"      {f.path or '(document)'}: backup {_short(f.backup)} ({f.backup_type})"
                                 f" / live {_short(f.live)} ({f.live_type})")
        return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------
# Keys


def key_bytes(raw: bytes, key: str) -> bytes:
    """The exact BSON encoding (type byte + value) of ``key`` (dotted path) in ``raw``."""
    start = 0
    parts = key.split(".")
    for depth, part in enumerate(parts):
        for t, name, vs, ve in codec.iter_elements(raw, start):
            if name == part:
                if depth == len(parts) - 1:
                    return bytes((t,)) + raw[vs:ve]
                if t != codec.T_DOC:
                    return MISSING
                start = vs
                break
        else:
            return MISSING
    return MISSING


def key_json(kb: bytes) -> Any:
    """Key bytes as a JSON-dialect object (None for a missing key)."""
    if kb == MISSING:
        return None
    return json.loads(codec.value_to_json_text(kb[0], kb, 1, len(kb)))


def key_text(kb: bytes) -> str:
    """How a user types a key: strings as-is, ObjectIds as hex, numbers as digits."""
    obj = key_json(kb)
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bool) or obj is None:
        return json.dumps(obj)
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, v), = obj.items()
        if tag in ("$oid", "$numberLong", "$numberDecimal") and isinstance(v, str):
            return v
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def key_filter(key: str, kb: bytes) -> "Any":
    """A query ``{key: value}`` built from raw bytes, so the value keeps its exact type."""
    from bson.raw_bson import RawBSONDocument

    body = kb[:1] + key.encode("utf-8") + b"\x00" + kb[1:]
    return RawBSONDocument(_I32.pack(len(body) + 5) + body + b"\x00")


def id_matcher(ids: Iterable[Any] | None):
    """A predicate on key bytes for a list of key values (JSON-dialect objects or typed text)."""
    if ids is None:
        return None
    objs, texts = [], set()
    for v in ids:
        if isinstance(v, str):
            texts.add(v)
        else:
            objs.append(json.dumps(v, sort_keys=True))
    objs_set = set(objs)

    def match(kb: bytes) -> bool:
        if kb == MISSING:
            return False
        if texts and key_text(kb) in texts:
            return True
        return bool(objs_set) and json.dumps(key_json(kb), sort_keys=True) in objs_set

    return match


# --------------------------------------------------------------------------
# The pairing engine


class NotUnique(UsageError):
    """The chosen key does not identify documents uniquely."""


@dataclass
class Pair:
    status: str
    key: bytes
    backup: bytes | None
    live: bytes | None


class BackupIndex:
    """One collection of a backup, spilled to a temporary file, indexed by key.

    Use as a context manager; the spill file is removed on exit.
    """

    def __init__(self, store: Store, info: BackupInfo, collection: str, key: str) -> None:
        self.store, self.info, self.collection, self.key = store, info, collection, key
        # key bytes -> document number; per document, in compact arrays: where it sits in the spill
        # file, its length, a 16-byte digest and whether live data had it (~150 B a document in all)
        self.entries: dict[bytes, int] = {}
        self._offsets = array("q")
        self._lengths = array("q")
        self._digests = bytearray()
        self._seen = bytearray()
        self.count = 0
        self._fh = None

    def __enter__(self) -> "BackupIndex":
        fd, path = tempfile.mkstemp(prefix="backup-compare-", suffix=".bson")
        os.unlink(path)  # anonymous: vanishes even if we are killed
        self._fh = os.fdopen(fd, "w+b")
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        entries, fh, offset = self.entries, self._fh, 0
        if self.collection in self.info.absent_collections:
            return  # the collection did not exist when the backup was taken: an empty side
        for raw in self.store.iter_documents(self.info, self.collection):
            kb = key_bytes(raw, self.key)
            if kb in entries:
                what = "lack the key field" if kb == MISSING else f"share the key value {key_text(kb)}"
                raise NotUnique(f"key {self.key!r} is not unique in the backup of {self.collection}: "
                                f"several documents {what}",
                                hint="choose a key field that is unique, or use _id")
            entries[kb] = self.count
            self._offsets.append(offset)
            self._lengths.append(len(raw))
            self._digests += hashlib.blake2b(raw, digest_size=16).digest()
            self._seen.append(0)
            fh.write(raw)
            offset += len(raw)
            self.count += 1
        expected = self.info.collection(self.collection)["count"]
        if self.count != expected:
            raise IntegrityError(f"backup {self.info.backup_id}, {self.collection}: the file holds "
                                 f"{self.count} documents but the manifest says {expected}")

    def iter_documents(self) -> Iterator[bytes]:
        """The backup's documents in backup order (from the spill file, already decoded once)."""
        fh = self._fh
        fh.seek(0)
        while head := fh.read(4):
            n = _I32.unpack(head)[0]
            yield head + fh.read(n - 4)

    def read(self, number: int) -> bytes:
        """The raw BSON of document ``number`` (a value of ``entries``)."""
        self._fh.seek(self._offsets[number])
        return self._fh.read(self._lengths[number])

    def read_key(self, kb: bytes) -> bytes:
        """The raw BSON of the backup document with key bytes ``kb``."""
        return self.read(self.entries[kb])

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __exit__(self, *exc) -> None:
        self.close()

    def pairs(self, db: Database, matcher=None) -> Iterator[Pair]:
        """Every document of either side, paired: live order first, then backup-only ones.

        The live cursor is fully consumed before the last pairs (only_in_backup)
        are produced; callers that write must collect first (restore does).
        """
        entries, key = self.entries, self.key
        seen, lengths, digests = self._seen, self._lengths, self._digests
        live_only_keys: set[bytes] | None = None if key == "_id" else set()
        coll = raw_collection(db, self.collection)
        with translate_errors(f"reading collection {self.collection}"):
            for doc in coll.find({}, sort=[("_id", 1)], batch_size=1000):
                raw = bytes(doc.raw)  # may be a memoryview into the batch
                kb = key_bytes(raw, key)
                if matcher is not None and not matcher(kb):
                    continue  # outside the chosen documents
                number = entries.get(kb)
                if number is None:
                    if live_only_keys is not None:
                        if kb in live_only_keys:
                            raise self._live_dup(kb)
                        live_only_keys.add(kb)
                    yield Pair("only_in_live", kb, None, raw)
                    continue
                if seen[number]:
                    raise self._live_dup(kb)
                seen[number] = 1
                if len(raw) == lengths[number] and \
                        hashlib.blake2b(raw, digest_size=16).digest() == digests[16 * number:16 * number + 16]:
                    yield Pair("identical", kb, None, raw)  # backup bytes equal live bytes
                else:
                    yield Pair("changed", kb, self.read(number), raw)
        for kb, number in entries.items():
            if not seen[number] and (matcher is None or matcher(kb)):
                yield Pair("only_in_backup", kb, self.read(number), None)

    def _live_dup(self, kb: bytes) -> NotUnique:
        what = "lack the key field" if kb == MISSING else f"share the key value {key_text(kb)}"
        return NotUnique(f"key {self.key!r} is not unique in live collection {self.collection}: "
                         f"several documents {what}", hint="choose a key field that is unique, or use _id")


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


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or key.startswith("$") or "\x00" in key or ".." in key \
            or key.startswith(".") or key.endswith("."):
        raise UsageError(f"invalid key field {key!r}")
    return key


# --------------------------------------------------------------------------
# Field-level differences


def _fields(raw: bytes, start: int) -> list[tuple[int, str, int, int]]:
    return list(codec.iter_elements(raw, start))


def _value(t: int, buf: bytes, vs: int, ve: int) -> Any:
    return json.loads(codec.value_to_json_text(t, buf, vs, ve))


def field_diffs(backup: bytes, live: bytes) -> list[FieldDiff]:
    """Where two raw documents differ: per field path, recursing into sub-documents and arrays."""
    out: list[FieldDiff] = []
    _diff_docs(backup, 0, len(backup), live, 0, len(live), "", out)
    return out


def _type_name(t: int) -> str:
    return TYPE_NAMES.get(t, f"0x{t:02x}")


def _diff_docs(b: bytes, bs: int, be: int, l: bytes, ls: int, le: int, prefix: str,
               out: list[FieldDiff]) -> None:
    bf, lf = _fields(b, bs), _fields(l, ls)
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
                                 _type_name(bt[0]) if bt else "missing",
                                 _type_name(lt[0]) if lt else "missing"))
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
                             _type_name(t1), _type_name(t2)))
    common_b = [n for n in bnames if n in lmap]
    common_l = [n for n in lnames if n in bmap]
    if common_b != common_l:
        out.append(FieldDiff(prefix + "(field order)", bnames, lnames, "fieldOrder", "fieldOrder"))


# --------------------------------------------------------------------------
# Public views


def compare_backup(db: Database, store: Store, backup_id: str, collections: list[str] | None = None,
                   key: str = "_id", *, show: int = 0) -> CompareResult:
    """Counts of only-in-backup, only-in-live, changed and identical documents per collection.

    ``show`` > 0 also keeps that many differing documents per collection (with
    their field differences) in ``result.samples``.
    """
    _check_key(key)
    info, names = _backup_and_collections(store, backup_id, collections)
    result = CompareResult(info.backup_id, key)
    for name in names:
        cc = CollectionCompare(name, key)
        samples: list[DocDiff] = []
        with BackupIndex(store, info, name, key) as index:
            for pair in index.pairs(db):
                setattr(cc, pair.status, getattr(cc, pair.status) + 1)
                if pair.status != "identical" and len(samples) < show:
                    samples.append(_doc_diff(pair))
        result.collections[name] = cc
        if show:
            result.samples[name] = samples
    return result


def _doc_diff(pair: Pair) -> DocDiff:
    b = json.loads(codec.to_json_text(pair.backup)) if pair.backup is not None else None
    if pair.status == "identical":
        b = json.loads(codec.to_json_text(pair.live))
    lv = json.loads(codec.to_json_text(pair.live)) if pair.live is not None else None
    fields = field_diffs(pair.backup, pair.live) if pair.status == "changed" else []
    return DocDiff(key_json(pair.key), pair.status, fields, b, lv)


def iter_differences(db: Database, store: Store, backup_id: str, collection: str, key: str = "_id",
                     statuses: Iterable[str] | None = None) -> Iterator[DocDiff]:
    """Every paired document of one collection with the given statuses (default: all but identical).

    A generator: the dashboard pages through it with ``itertools.islice``.
    Order: live documents in ``_id`` order, then documents only in the backup.
    """
    _check_key(key)
    wanted = set(statuses) if statuses is not None else {"only_in_backup", "only_in_live", "changed"}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise UsageError(f"unknown status {', '.join(sorted(unknown))}; use {', '.join(STATUSES)}")
    info, _ = _backup_and_collections(store, backup_id, [collection])
    with BackupIndex(store, info, collection, key) as index:
        for pair in index.pairs(db):
            if pair.status in wanted:
                yield _doc_diff(pair)
