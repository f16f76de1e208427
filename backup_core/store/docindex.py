"""Per-document hashes of a collection as a backup holds it: what an incremental backup compares with.

A document index lists, for every document, a 16-byte digest of its ``_id``
(of MongoDB's equality class of it: int32 ``1`` and int64 ``1`` are one
``_id``), a 16-byte digest of its exact BSON bytes, and its ``_id`` value (so
a later backup can name the documents that are gone). Records are sorted by
the ``_id`` digest, so a lookup is a binary search over one bytes buffer:
memory stays small (about 40 bytes and the ``_id`` per document) and no
Python object is kept per document.

Binary layout (``to_bytes``), stored gzip-compressed as a data object beside
a full copy, and cached on the machine that made it::

    b"BKDI" | version 1 | count (uint32, big-endian)
    count records of 38 bytes: id digest (16) | document digest (16) | key offset (uint32) | key length (uint16)
    the keys: each ``_id`` as its BSON type byte and value bytes, back to back
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import struct
from typing import Iterable, Iterator

from ..errors import FormatError
from ..keys import key_bytes, key_identity

MAGIC = b"BKDI\x01"
_HEAD = struct.Struct(">5sI")
RECORD = struct.Struct(">16s16sIH")


def id_digest(kb: bytes) -> bytes:
    """The digest of an ``_id`` (its BSON type byte and value), equal for ``_id``s MongoDB takes as one."""
    return hashlib.blake2b(key_identity(kb), digest_size=16).digest()


def doc_digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def id_document(kb: bytes) -> bytes:
    """The BSON document ``{"_id": <kb>}`` (a deleted document, as the list of deletions stores it)."""
    element = kb[:1] + b"_id\x00" + kb[1:]
    return struct.pack("<i", len(element) + 5) + element + b"\x00"


class _Digests:
    """The records' ``_id`` digests as a sequence, for ``bisect``."""

    def __init__(self, records: bytes, n: int) -> None:
        self._r, self._n = records, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> bytes:
        at = i * RECORD.size
        return self._r[at:at + 16]


class DocIndex:
    """A sorted, compact document index (see the module docstring)."""

    def __init__(self, records: bytes, keys: bytes, count: int) -> None:
        self._records, self._keys, self.count = records, keys, count
        self._digests = _Digests(records, count)

    def __len__(self) -> int:
        return self.count

    # ---- building
    @classmethod
    def build(cls, entries: Iterable[tuple[bytes, bytes, bytes]]) -> "DocIndex":
        """From (id digest, document digest, ``_id`` bytes) in any order (a repeated ``_id`` is kept once)."""
        return cls.from_packed([idd + dd + kb for idd, dd, kb in entries])

    @classmethod
    def from_packed(cls, packed: list[bytes]) -> "DocIndex":
        """From a list of ``id digest + document digest + _id bytes`` (sorted in place: one bytes object per
        document while building, none afterwards)."""
        packed.sort()
        records = bytearray()
        keys = bytearray()
        last = None
        for item in packed:
            idd = item[:16]
            if idd == last:
                continue
            last = idd
            kb = item[32:]
            records += RECORD.pack(idd, item[16:32], len(keys), len(kb))
            keys += kb
        return cls(bytes(records), bytes(keys), len(records) // RECORD.size)

    @classmethod
    def of_documents(cls, docs: Iterable[bytes]) -> "DocIndex":
        return cls.build((id_digest(kb), doc_digest(raw), kb) for raw in docs for kb in (key_bytes(raw, "_id"),))

    def applied(self, changed: Iterable[bytes], deleted: Iterable[bytes]) -> "DocIndex":
        """The index after one step: ``changed`` documents (new or different) and ``deleted`` ones
        (documents holding only their ``_id``)."""
        gone = {id_digest(key_bytes(raw, "_id")) for raw in deleted}
        fresh = {id_digest(kb): (doc_digest(raw), kb) for raw in changed for kb in (key_bytes(raw, "_id"),)}
        kept = ((idd, dd, kb) for idd, dd, kb in self if idd not in gone and idd not in fresh)
        return DocIndex.build(list(kept) + [(idd, dd, kb) for idd, (dd, kb) in fresh.items()])

    # ---- reading
    def find(self, idd: bytes) -> int:
        """The position of the record with ``_id`` digest ``idd``, or -1."""
        i = bisect.bisect_left(self._digests, idd)
        return i if i < self.count and self._digests[i] == idd else -1

    def digest_at(self, i: int) -> bytes:
        at = i * RECORD.size
        return self._records[at + 16:at + 32]

    def key_at(self, i: int) -> bytes:
        _idd, _dd, off, n = RECORD.unpack_from(self._records, i * RECORD.size)
        return self._keys[off:off + n]

    def __iter__(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        for i in range(self.count):
            idd, dd, off, n = RECORD.unpack_from(self._records, i * RECORD.size)
            yield idd, dd, self._keys[off:off + n]

    # ---- bytes
    def to_bytes(self) -> bytes:
        return gzip.compress(_HEAD.pack(MAGIC, self.count) + self._records + self._keys, compresslevel=6, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "a document index") -> "DocIndex":
        try:
            raw = gzip.decompress(data)
            magic, count = _HEAD.unpack_from(raw)
        except (OSError, EOFError, struct.error) as exc:
            raise FormatError(f"{what} is damaged: {exc}") from None
        if magic != MAGIC:
            raise FormatError(f"{what} is not a document index of this version")
        start = _HEAD.size
        end = start + count * RECORD.size
        if len(raw) < end:
            raise FormatError(f"{what} is truncated")
        return cls(raw[start:end], raw[end:], count)


__all__ = ["DocIndex", "id_digest", "doc_digest", "id_document"]
