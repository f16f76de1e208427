"""Comparing a backup with the live database: counts, samples and field-level differences.

The documents are paired by the pairing engine (``pairing.py``: by ``_id``
or another match field, one pass, memory flat); this module turns the pairs
into what people read: per collection the number of documents only in the
backup, only in live data, changed and identical (``compare_backup``, the
CLI's ``compare``), optionally the first differences with the fields that
differ (``Samples``, ``--show``), or every difference of one collection in
turn (``iter_differences``). ``compare_collection`` is the one pass per
collection that ``paged_compare`` (the dashboard's pages) shares.

Besides documents, a comparison reports how the backup's indexes and
collection options differ from live ones (what a replace-restore would add,
remove or change) and what those options would destroy (``mongospec``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from pymongo.database import Database

from . import codec
from .errors import UsageError
from .keys import check_match_field, key_json, type_name
from .mongoutil import from_json_dialect, index_specs, json_dialect, raw_collection
from .pairing import STATUSES, BackupIndex, Pair, Sink, StatusCounts, data_check, pair_collection
from .store import BackupInfo, Store
from .swapin import user_collections


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
    match_field: str
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
    match_field: str
    collections: dict[str, CollectionCompare] = field(default_factory=dict)
    # optional samples of differences per collection (CLI --show)
    samples: dict[str, list[DocDiff]] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return any(c.only_in_backup or c.only_in_live or c.changed or c.schema_differs
                   for c in self.collections.values())

    def to_json(self) -> dict:
        out = {"backup_id": self.backup_id, "key": self.match_field,
               "collections": {n: c.to_json() for n, c in self.collections.items()}}
        if self.samples:
            out["differences"] = {n: [d.to_json() for d in ds] for n, ds in self.samples.items()}
        return out

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id} vs live data (matched by {self.match_field}):"]
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
# Views


def backup_collections(store: Store, backup_id: str, collections: list[str] | None) -> tuple[BackupInfo, list[str]]:
    """The backup and the collections to compare: those chosen (checked against the backup), else all it
    holds or records as absent."""
    info = store.get(backup_id)
    absent = info.absent_collections
    names = list(info.collections) + absent
    if collections:
        for c in collections:
            if c not in absent:
                info.collection(c)  # raises UsageError naming the ones it has
        names = list(dict.fromkeys(collections))
    return info, names


@dataclass
class Samples:
    """Sink: the first ``limit`` differing pairs, with their field differences."""

    limit: int
    match_field: str
    diffs: list["DocDiff"] = field(default_factory=list)

    def add(self, pair: Pair) -> None:
        if pair.status != "identical" and len(self.diffs) < self.limit:
            self.diffs.append(doc_diff(pair, self.match_field))


def compare_collection(db: Database, store: Store, info: BackupInfo, name: str, match_field: str,
                       live_options: dict | None, sinks: Iterable[Sink] = ()) -> CollectionCompare:
    """One collection paired once (``sinks`` see every pair too): its counts, index and option
    differences (``live_options`` None: no live collection) and warnings."""
    counts = StatusCounts()
    check = data_check(info, name)
    with BackupIndex(store, info, name, match_field, check) as index:
        pair_collection(index, db, [counts, *sinks])
    cc = CollectionCompare(name, match_field, **counts.as_dict())
    cc.indexes, cc.options = schema_differences(db, info, name, live_options)
    cc.warnings = check.findings() if check is not None else []
    return cc


def compare_backup(db: Database, store: Store, backup_id: str, collections: list[str] | None = None,
                   match_field: str = "_id", *, show: int = 0) -> CompareResult:
    """Counts of only-in-backup, only-in-live, changed and identical documents per collection,
    plus index and option differences and warnings.

    ``show`` > 0 also keeps that many differing documents per collection (with
    their field differences) in ``result.samples``.
    """
    check_match_field(match_field)
    info, names = backup_collections(store, backup_id, collections)
    live = user_collections(db)
    result = CompareResult(info.backup_id, match_field)
    for name in names:
        samples = Samples(show, match_field)
        result.collections[name] = compare_collection(db, store, info, name, match_field, live.get(name),
                                                      [samples] if show else [])
        if show:
            result.samples[name] = samples.diffs
    return result


def doc_diff(pair: Pair, match_field: str = "_id") -> DocDiff:
    """A pair as people read it: its key, status, both documents in the JSON dialect and, when changed,
    the fields that differ."""
    b = json.loads(codec.to_json_text(pair.backup)) if pair.backup is not None else None
    if pair.status == "identical":
        b = json.loads(codec.to_json_text(pair.live))
    lv = json.loads(codec.to_json_text(pair.live)) if pair.live is not None else None
    fields = field_diffs(pair.backup, pair.live) if pair.status == "changed" else []
    return DocDiff(key_json(pair.doc_key(match_field)), pair.status, fields, b, lv)


def iter_differences(db: Database, store: Store, backup_id: str, collection: str, match_field: str = "_id",
                     statuses: Iterable[str] | None = None) -> Iterator[DocDiff]:
    """Every paired document of one collection with the given statuses (default: all but identical).

    Order: live documents in ``_id`` order, then documents only in the backup.
    """
    check_match_field(match_field)
    wanted = set(statuses) if statuses is not None else {"only_in_backup", "only_in_live", "changed"}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise UsageError(f"unknown status {', '.join(sorted(unknown))}; use {', '.join(STATUSES)}")
    info, _ = backup_collections(store, backup_id, [collection])
    with BackupIndex(store, info, collection, match_field) as index:
        for pair in index.pairs(db):
            if pair.status in wanted:
                yield doc_diff(pair, match_field)
