"""What MongoDB accepts for index specs and collection options, and which of them destroy data.

A manifest carries each collection's indexes (``listIndexes``) and options
(``listCollections``), which a replace-restore recreates. A forged or damaged
manifest could inject an option that makes MongoDB throw restored data away:
a TTL index whose expiry lies in the past for the restored documents (the TTL
monitor deletes them within a minute), or a capped collection smaller than
the data (the oldest documents are overwritten as the newest arrive). So:

- ``check_index_spec`` / ``check_collection_options`` refuse anything MongoDB
  would not accept or this tool does not know (unknown keys, wrong types,
  views), when a manifest is read;
- ``DataCheck`` looks at the documents a restore is about to write and says
  which options would destroy some of them (``findings``). A restore refuses
  such a backup unless the admin confirms it; ``verify`` reports them as
  warnings (a faithful backup of a TTL collection taken a week ago is not
  damaged, but restoring it loses what has since expired).

Specs are handled as Python objects decoded from the codec's JSON dialect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from . import codec
from .errors import FormatError
from .timeutil import utc_now

INDEX_TYPES = frozenset({"text", "2dsphere", "2d", "hashed", "geoHaystack", "columnstore"})
MAX_TTL = 2**31 - 1
_T_DATE = codec.T_DATE


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, (float, Int64, Decimal128))) and not isinstance(v, bool)


def _as_float(v: Any) -> float:
    return float(v.to_decimal()) if isinstance(v, Decimal128) else float(v)


def _doc(v: Any) -> bool:
    return isinstance(v, dict)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str) and "\x00" not in v


def _enum(*values: str) -> Callable[[Any], bool]:
    return lambda v: v in values


def _nonneg_number(v: Any) -> bool:
    return _is_number(v) and math.isfinite(_as_float(v)) and _as_float(v) >= 0


def _pos_number(v: Any) -> bool:
    return _is_number(v) and math.isfinite(_as_float(v)) and _as_float(v) > 0


def _ttl(v: Any) -> bool:
    return _is_number(v) and math.isfinite(_as_float(v)) and 0 <= _as_float(v) <= MAX_TTL \
        and _as_float(v) == int(_as_float(v))


def _collation(v: Any) -> bool:
    return isinstance(v, dict) and _str(v.get("locale"))


def _doc_or_bool(v: Any) -> bool:
    return isinstance(v, (dict, bool))


_INDEX_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "v": _is_number, "key": _doc, "name": _str, "ns": _str, "unique": _bool, "sparse": _bool,
    "background": _bool, "partialFilterExpression": _doc, "expireAfterSeconds": _ttl, "hidden": _bool,
    "collation": _collation, "weights": _doc, "default_language": _str, "language_override": _str,
    "textIndexVersion": _is_number, "2dsphereIndexVersion": _is_number, "bits": _is_number,
    "min": _is_number, "max": _is_number, "bucketSize": _is_number, "wildcardProjection": _doc,
    "storageEngine": _doc, "dropDups": _bool, "clustered": _bool, "prepareUnique": _bool,
    "coarsestIndexedLevel": _is_number, "finestIndexedLevel": _is_number, "columnstoreProjection": _doc,
    "originalSpec": _doc,
}

_COLLECTION_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "capped": _bool, "size": _pos_number, "max": _is_number, "autoIndexId": _bool, "flags": _is_number,
    "validator": _doc, "validationLevel": _enum("off", "strict", "moderate"),
    "validationAction": _enum("error", "warn", "errorAndLog"), "collation": _collation, "storageEngine": _doc,
    "indexOptionDefaults": _doc, "timeseries": _doc, "expireAfterSeconds": _ttl, "clusteredIndex": _doc_or_bool,
    "changeStreamPreAndPostImages": _doc, "encryptedFields": _doc, "recordIdsReplicated": _bool, "temp": _bool,
}


def _field_name_ok(name: Any) -> bool:
    if not isinstance(name, str) or not name or "\x00" in name:
        return False
    if name == "$**" or name.endswith(".$**"):
        return True
    return not name.startswith("$") and ".." not in name and not name.startswith(".") and not name.endswith(".")


def check_index_spec(spec: Any, where: str) -> None:
    """Raise ``FormatError`` unless ``spec`` is an index definition MongoDB accepts."""
    if not isinstance(spec, dict):
        raise FormatError(f"{where}: an index is not an object")
    name = spec.get("name")
    if not _str(name) or not name:
        raise FormatError(f"{where}: an index has no valid name")
    what = f"{where}: index {name!r}"
    for k, v in spec.items():
        check = _INDEX_OPTIONS.get(k)
        if check is None:
            raise FormatError(f"{what} has an option MongoDB does not know: {k!r}")
        if not check(v):
            raise FormatError(f"{what} has an invalid {k!r}: {v!r}")
    key = spec.get("key")
    if not isinstance(key, dict) or not key:
        raise FormatError(f"{what} has no key")
    for fname, direction in key.items():
        if not _field_name_ok(fname):
            raise FormatError(f"{what} indexes an invalid field name {fname!r}")
        if isinstance(direction, str):
            if direction not in INDEX_TYPES:
                raise FormatError(f"{what} has an unknown index type {direction!r}")
        elif not _is_number(direction) or _as_float(direction) == 0 or not math.isfinite(_as_float(direction)):
            raise FormatError(f"{what} has an invalid direction {direction!r} for {fname!r}")
    if name == "_id_" and (list(key) != ["_id"] or spec.get("unique") is False):
        raise FormatError(f"{what} is not the _id index MongoDB creates")
    if "expireAfterSeconds" in spec and (len(key) != 1 or list(key) == ["_id"]):
        raise FormatError(f"{what}: a TTL index must be on one field other than _id")


def check_collection_options(options: Any, where: str) -> None:
    """Raise ``FormatError`` unless ``options`` are collection options MongoDB accepts."""
    if not isinstance(options, dict):
        raise FormatError(f"{where}: collection options are not an object")
    if "viewOn" in options or "pipeline" in options:
        raise FormatError(f"{where}: the options describe a view; views are not backed up or restored")
    for k, v in options.items():
        check = _COLLECTION_OPTIONS.get(k)
        if check is None:
            raise FormatError(f"{where}: collection option MongoDB does not know: {k!r}")
        if not check(v):
            raise FormatError(f"{where}: invalid collection option {k!r}: {v!r}")
    if options.get("capped") and "size" not in options:
        raise FormatError(f"{where}: a capped collection needs a size")
    if not options.get("capped") and ("size" in options or "max" in options):
        raise FormatError(f"{where}: size and max are only valid for a capped collection")
    ts = options.get("timeseries")
    if ts is not None and not _str(ts.get("timeField")):
        raise FormatError(f"{where}: a time series collection needs a timeField")


# --------------------------------------------------------------------------- data that options destroy


def _dates_at(raw: bytes, path: list[str], start: int = 0) -> list[int]:
    """Millisecond values of the datetimes at ``path`` in a raw document (arrays: every element)."""
    out: list[int] = []
    head, rest = path[0], path[1:]
    for t, name, vs, ve in codec.iter_elements(raw, start):
        if name != head:
            continue
        if not rest:
            if t == _T_DATE:
                out.append(int.from_bytes(raw[vs:ve], "little", signed=True))
            elif t == codec.T_ARRAY:
                for t2, _n, vs2, ve2 in codec.iter_elements(raw, vs):
                    if t2 == _T_DATE:
                        out.append(int.from_bytes(raw[vs2:ve2], "little", signed=True))
        elif t == codec.T_DOC:
            out += _dates_at(raw, rest, vs)
        elif t == codec.T_ARRAY:
            for t2, _n, vs2, _ve2 in codec.iter_elements(raw, vs):
                if t2 == codec.T_DOC:
                    out += _dates_at(raw, rest, vs2)
        break
    return out


@dataclass
class _Ttl:
    what: str
    path: list[str]
    seconds: float
    expiring: int = 0


@dataclass
class DataCheck:
    """Feeds on the documents of one collection; ``findings()`` says what its options would destroy."""

    indexes: list[dict]
    options: dict
    now: datetime = field(default_factory=utc_now)
    count: int = 0
    bson_bytes: int = 0
    _ttls: list[_Ttl] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for spec in self.indexes:
            if isinstance(spec, dict) and "expireAfterSeconds" in spec and isinstance(spec.get("key"), dict):
                (fname,) = list(spec["key"])[:1] or [None]
                if fname:
                    self._ttls.append(_Ttl(f"TTL index {spec.get('name')!r} ({fname}, expireAfterSeconds "
                                           f"{_as_float(spec['expireAfterSeconds']):g})",
                                           fname.split("."), _as_float(spec["expireAfterSeconds"])))
        seconds = self.options.get("expireAfterSeconds")
        if seconds is not None and _is_number(seconds):
            ts = self.options.get("timeseries") or {}
            fname = ts.get("timeField") if isinstance(ts, dict) else None
            fname = fname or ("_id" if self.options.get("clusteredIndex") else None)
            if fname:
                self._ttls.append(_Ttl(f"collection option expireAfterSeconds {_as_float(seconds):g} on {fname}",
                                       fname.split("."), _as_float(seconds)))
        self._now_ms = int(self.now.timestamp() * 1000)

    def add(self, raw: bytes) -> None:
        self.count += 1
        self.bson_bytes += len(raw)
        for ttl in self._ttls:
            dates = _dates_at(raw, ttl.path)
            # MongoDB expires a document by the earliest date in the field
            if dates and min(dates) + ttl.seconds * 1000 <= self._now_ms:
                ttl.expiring += 1

    def findings(self) -> list[str]:
        out = [f"{ttl.what} would delete {ttl.expiring} of {self.count} restored documents within a minute"
               for ttl in self._ttls if ttl.expiring]
        if self.options.get("capped"):
            size = _as_float(self.options.get("size", 0))
            if self.bson_bytes > size:
                out.append(f"capped collection of {size:g} bytes cannot hold the {self.bson_bytes} bytes of "
                           f"its {self.count} documents: the oldest would be overwritten")
            max_docs = self.options.get("max")
            if max_docs is not None and _is_number(max_docs) and 0 < _as_float(max_docs) < self.count:
                out.append(f"capped collection of at most {_as_float(max_docs):g} documents cannot hold "
                           f"its {self.count}: the oldest would be overwritten")
        return out
