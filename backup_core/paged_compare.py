"""A comparison kept on disk: computed once, then any page or filter of it read back cheaply.

The dashboard shows a backup-vs-live comparison one page at a time, filtered
by status or text. Recomputing it on every click would rebuild the backup's
index and rescan the live collection each time, so ``StoredComparison``
pairs the documents once (``compare.compare_collection``, the pairing
engine's one pass) with a sink of its own (``_Records``) that writes every
differing pair to an anonymous temporary file (status, key, both raw
documents) plus a lower-cased search text, and keeps only an offset and a
status code in memory (9 bytes a differing document). A page or a filter
then reads that file, never the database or the backup: a text filter is one
pass over the search text in large blocks (``bytes.find``), and the last few
selections (statuses and text) are kept, so paging through one reads only
the page's records.
``live_token`` is a cheap fingerprint of the live collections (document
counts) that tells when the comparison is out of date.
"""

from __future__ import annotations

import json
import struct
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Callable

from pymongo.database import Database

from . import codec
from .compare import CollectionCompare, DocDiff, backup_collections, compare_collection, doc_diff
from .errors import UsageError
from .keys import check_match_field, key_json, key_text
from .mongoutil import translate_errors
from .pairing import STATUSES, Pair
from .store import Store
from .swapin import user_collections
from .tempdisk import anonymous_file
from .timeutil import now_iso

_HEAD = struct.Struct("<BIII")  # status, key length, backup length, live length
_CODES = {s: i for i, s in enumerate(STATUSES)}
DIFF_STATUSES = ("only_in_backup", "only_in_live", "changed")
_SCAN_BLOCK = 1 << 22  # bytes of search text read at a time by a text filter
_KEPT_SELECTIONS = 8  # (statuses, text) selections kept per collection


def live_token(db: Database, collections: list[str]) -> tuple:
    """Document counts of the live collections: changes when documents are added or removed."""
    live = user_collections(db)
    with translate_errors("counting documents"):
        return tuple((n, db[n].estimated_document_count() if n in live else None) for n in collections)


def _anonymous_file() -> IO[bytes]:
    return anonymous_file("backup-comparison-")


@dataclass
class _Records:
    """Sink: the differing pairs of one collection in a temporary file, and where each one is.

    ``hay`` holds one line of lower-cased search text per record, in record order.
    """

    match_field: str
    fh: IO[bytes] = field(default_factory=_anonymous_file)
    hay: IO[bytes] = field(default_factory=_anonymous_file)
    order: array = field(default_factory=lambda: array("q"))  # record number -> offset
    codes: bytearray = field(default_factory=bytearray)  # record number -> status code
    _selections: OrderedDict = field(default_factory=OrderedDict)  # (statuses, needle) -> record numbers
    _end: int = 0  # where the next record goes

    def add(self, pair: Pair) -> None:
        if pair.status == "identical":
            return
        kb = pair.doc_key(self.match_field)
        key_obj = json.dumps(key_json(kb), ensure_ascii=False).encode("utf-8")
        backup, live = pair.backup or b"", pair.live or b""
        blob = _HEAD.pack(_CODES[pair.status], len(key_obj), len(backup), len(live)) + key_obj + backup + live
        self.fh.write(blob)
        self.order.append(self._end)
        self.codes.append(_CODES[pair.status])
        self.hay.write(_haystack(kb, pair.backup, pair.live) + b"\n")
        self._end += len(blob)

    def flush(self) -> None:
        self.fh.flush()
        self.hay.flush()

    def matching(self, needle: bytes) -> array:
        """Numbers of the records whose search text contains ``needle``, ascending (one pass, in blocks)."""
        out = array("q")
        if not needle or b"\n" in needle:
            return out
        hay = self.hay
        hay.seek(0)
        line, carry = 0, b""
        while True:
            block = hay.read(_SCAN_BLOCK)
            data = carry + block
            end = data.rfind(b"\n") + 1 if block else len(data)
            chunk, carry = data[:end], data[end:]
            pos = counted = 0
            while (hit := chunk.find(needle, pos)) >= 0:
                line += chunk.count(b"\n", counted, hit)
                out.append(line)
                nl = chunk.find(b"\n", hit)
                if nl < 0:
                    break
                pos = counted = nl + 1
                line += 1
            else:
                line += chunk.count(b"\n", counted)
            if not block:
                return out

    def selection(self, statuses: tuple[str, ...], needle: bytes) -> array:
        """Record numbers with one of ``statuses`` whose text contains ``needle`` (kept for the next call)."""
        chosen = (statuses, needle)
        got = self._selections.get(chosen)
        if got is not None:
            self._selections.move_to_end(chosen)
            return got
        candidates = self.matching(needle) if needle else range(len(self.order))
        if set(statuses) >= set(DIFF_STATUSES):
            got = array("q", candidates)
        else:
            wanted = {_CODES[s] for s in statuses}
            codes = self.codes
            got = array("q", (n for n in candidates if codes[n] in wanted))
        self._selections[chosen] = got
        while len(self._selections) > _KEPT_SELECTIONS:
            self._selections.popitem(last=False)
        return got

    def close(self) -> None:
        for fh in (self.fh, self.hay):
            try:
                fh.close()
            except OSError:
                pass


@dataclass
class StoredComparison:
    backup_id: str
    match_field: str
    collections: dict[str, CollectionCompare]
    computed_at: str
    live_token: tuple
    duration_s: float
    _records: dict[str, _Records] = field(default_factory=dict, repr=False)

    @classmethod
    def compute(cls, db: Database, store: Store, backup_id: str, collections: list[str] | None = None,
                match_field: str = "_id", progress: Callable[[str, int, int], None] | None = None,
                ) -> "StoredComparison":
        check_match_field(match_field)
        started = time.monotonic()
        info, names = backup_collections(store, backup_id, collections)
        live = user_collections(db)
        token = live_token(db, names)
        out = cls(info.backup_id, match_field, {}, now_iso(), token, 0.0)
        try:
            for i, name in enumerate(names):
                if progress:
                    progress(name, i, len(names))
                rec = out._records[name] = _Records(match_field)
                out.collections[name] = compare_collection(db, store, info, name, match_field, live.get(name),
                                                           [rec])
                rec.flush()
        except BaseException:
            out.close()
            raise
        out.duration_s = time.monotonic() - started
        return out

    def differing(self) -> list[str]:
        return [n for n, c in self.collections.items() if c.only_in_backup or c.only_in_live or c.changed]

    def page(self, collection: str, statuses: list[str] | None = None, text: str = "", page: int = 0,
             page_size: int = 50) -> tuple[list[DocDiff], bool]:
        """(page ``page`` of the differences of ``collection`` with ``statuses`` whose text contains
        ``text``, whether more follow). Reads the temporary file only."""
        rec = self._records.get(collection)
        if rec is None:
            raise UsageError(f"collection {collection!r} is not part of this comparison")
        numbers = rec.selection(*_selector(statuses, text))
        start = page * page_size
        chosen = numbers[start:start + page_size]
        return [self._read(rec, n) for n in chosen], len(numbers) > start + page_size

    def count(self, collection: str, statuses: list[str] | None = None, text: str = "") -> int:
        return len(self._records[collection].selection(*_selector(statuses, text)))

    def _read(self, rec: _Records, number: int) -> DocDiff:
        fh = rec.fh
        fh.seek(rec.order[number])
        code, klen, blen, llen = _HEAD.unpack(fh.read(_HEAD.size))
        key = json.loads(fh.read(klen))
        backup = fh.read(blen) if blen else None
        live = fh.read(llen) if llen else None
        diff = doc_diff(Pair(STATUSES[code], b"", backup, live), self.match_field)
        diff.key = key
        return diff

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "key": self.match_field, "computed_at": self.computed_at,
                "collections": {n: c.to_json() for n, c in self.collections.items()}}

    def close(self) -> None:
        for rec in self._records.values():
            rec.close()
        self._records.clear()

    def __del__(self) -> None:  # the files are anonymous; closing just frees them sooner
        self.close()


def _selector(statuses: list[str] | None, text: str) -> tuple[tuple[str, ...], bytes]:
    """(the chosen differing statuses in a fixed order, the lower-cased search text as bytes)."""
    wanted = tuple(s for s in DIFF_STATUSES if s in (statuses or DIFF_STATUSES))
    return wanted, text.strip().casefold().encode("utf-8")


def _haystack(kb: bytes, backup: bytes | None, live: bytes | None) -> bytes:
    parts = [key_text(kb) if kb else ""]
    for raw in (backup, live):
        if raw is not None:
            parts.append(codec.to_json_text(raw))
    return " ".join(parts).casefold().replace("\n", " ").encode("utf-8")
