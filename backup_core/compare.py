"""Comparing a backup with the live database, document by document and field by field.

Documents are paired by a key (``_id`` by default, or any unique field such
as ``asset_id``), by MongoDB's notion of equal keys (``keys.key_identity``:
int32 ``1`` and int64 ``1`` are one key). A pair is ``identical`` only when the
two raw BSON documents are equal byte for byte: a field reorder or an
int32 -> int64 change is a change.

Memory: only the backup side is indexed, as ``{key identity -> document
number}`` plus compact arrays of offsets, lengths and 16-byte digests; the
backup documents themselves are spilled to an anonymous temporary file of raw
BSON (the backup may be a gzipped CSV, which cannot be seeked), and the live
collection is streamed once with a cursor.

Besides documents, a comparison reports how the backup's indexes and
collection options differ from live ones (what a replace-restore would add,
remove or change) and what those options would destroy (``mongospec``).
``BackupIndex.pairs`` is the engine restore uses; ``compare_backup`` and
``iter_differences`` are the views the CLI and the dashboard use.
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
from .keys import (MISSING, TYPE_NAMES, check_key, id_matcher, key_bytes, key_identity, key_json, key_text,
                   type_name)
from .mongospec import DataCheck
from .mongoutil import index_specs, json_dialect, raw_collection, translate_errors
from .store import BackupInfo, Store

STATUSES = ("only_in_backup", "only_in_live", "changed", "identical")
_I32 = struct.Struct("<i")
_check_key = check_key  # kept for callers of the old name

__all__ = ["STATUSES", "MISSING", "TYPE_NAMES", "BackupIndex", "NotUnique", "Pair", "CompareResult",
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


class BackupIndex:
    """One collection of a backup, spilled to a temporary file, indexed by key.

    Use as a context manager; the spill file is removed on exit. ``check``
    (a ``mongospec.DataCheck``) sees every backup document while the index is built.
    """

    def __init__(self, store: Store, info: BackupInfo, collection: str, key: str,
                 check: DataCheck | None = None) -> None:
        self.store, self.info, self.collection, self.key = store, info, collection, key
        self.check = check
        # key identity -> document number; per document, in compact arrays: where it sits in the spill
        # file, its length, a 16-byte digest and whether live data had it (~150 B a document in all)
        self.entries: dict[bytes, int] = {}
        self._offsets = array("q")
        self._lengths = array("q")
        self._digests = bytearray()
        self._seen = bytearray()
        self.count = 0
        self.missing_key = 0
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
        entries, fh, offset, key = self.entries, self._fh, 0, self.key
        if self.collection in self.info.absent_collections:
            return  # the collection did not exist when the backup was taken: an empty side
        for raw in self.store.iter_documents(self.info, self.collection):
            kb = key_bytes(raw, key)
            ident = key_identity(kb)
            if kb == MISSING:
                self.missing_key += 1
            elif ident in entries:
                first = key_bytes(self.read(entries[ident]), key)
                raise _not_unique("backup", f"the backup of {self.collection}", key, first, kb)
            if self.check is not None:
                self.check.add(raw)
            entries[ident] = self.count
            self._offsets.append(offset)
            self._lengths.append(len(raw))
            self._digests += hashlib.blake2b(raw, digest_size=16).digest()
            self._seen.append(0)
            fh.write(raw)
            offset += len(raw)
            self.count += 1
        expected = self.info.collection(self.collection).count
        if self.count != expected:
            raise IntegrityError(f"backup {self.info.backup_id}, {self.collection}: the file holds "
                                 f"{self.count} documents but the manifest says {expected}")
        if self.missing_key > 1:
            raise _missing_key("backup", f"the backup of {self.collection}", key, self.missing_key, self.count)

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

    def read_key(self, ident: bytes) -> bytes:
        """The raw BSON of the backup document with key identity ``ident``."""
        return self.read(self.entries[ident])

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
        live_only: dict[bytes, bytes] | None = None if key == "_id" else {}
        live_missing = live_total = 0
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
                ident = key_identity(kb)
                number = entries.get(ident)
                if number is None:
                    if live_only is not None:
                        if ident in live_only:
                            raise _not_unique("live", f"live collection {self.collection}", key,
                                              live_only[ident], kb)
                        live_only[ident] = kb[:1]
                    yield Pair("only_in_live", ident, None, raw)
                    continue
                if seen[number]:
                    raise _not_unique("live", f"live collection {self.collection}", key, None, kb)
                seen[number] = 1
                if len(raw) == lengths[number] and \
                        hashlib.blake2b(raw, digest_size=16).digest() == digests[16 * number:16 * number + 16]:
                    yield Pair("identical", ident, None, raw)  # backup bytes equal live bytes
                else:
                    yield Pair("changed", ident, self.read(number), raw)
        if live_missing > 1:
            raise _missing_key("live", f"live collection {self.collection}", key, live_missing, live_total)
        for ident, number in entries.items():
            if not seen[number]:
                raw = self.read(number)
                if matcher is None or matcher(key_bytes(raw, key)):
                    yield Pair("only_in_backup", ident, raw, None)


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
