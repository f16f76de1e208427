"""Incremental backups by document: store what changed since the previous backup, not another full copy.

A backup of a collection looks for its *base*: the newest earlier backup of
the same database that holds the whole collection (not an archive's subset,
nor a restore's safety backup: that holds the data the restore replaced),
written with the same key and compression, with a document index
(``docindex.py``). While it reads the live collection once, it compares each
document's digests with the base's index. At the end it writes either

- one step: the documents that are new or different (a ``changes`` CSV) and
  the ``_id``s that are gone (a ``deleted`` CSV), after the base's parts, which
  the new manifest lists too (it never refers to the base backup itself); or
- a full copy and its document index, when there is no base, when the change
  is large (over ``MAX_STEP_FRACTION`` of the documents), or when the chain is
  long (``MAX_STEPS`` steps, or its steps together over ``MAX_CHAIN_FRACTION``
  of the full copy's size): so a restore never reads much more than one copy.

An unchanged collection keeps exactly its base's full copy, or, after an
increment, gets an empty step (so that its folder says "nothing changed";
the two empty files are one shared object each). The base's index is
read from this machine's cache (the index of the state each backup wrote,
keyed by the objects its chain is made of, encrypted with the key when there
is one) or else from the repository: the full copy's index object and the
steps after it, never the full copy itself. A cache entry that is missing,
stale or unreadable is simply not used.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .. import codec
from ..errors import BackupError
from ..keys import key_bytes
from .crypto import DecryptingReader, EncryptingWriter, Keyring
from .docindex import DocIndex, doc_digest, id_digest, id_document
from .manifest import CollectionEntry, Part

MAX_STEPS = 48
MAX_STEP_FRACTION = 0.25
MAX_CHAIN_FRACTION = 0.5


@dataclass
class Base:
    """The previous state of a collection: its backup's entry and index."""

    backup_id: str
    entry: CollectionEntry
    index: DocIndex


def cache_key(parts: Iterable[Part]) -> str:
    return hashlib.sha256("|".join(p.object or p.location for p in parts).encode()).hexdigest()[:32]


class IndexCache:
    """Document indexes of the states this machine wrote, in the repository's local temporary area."""

    def __init__(self, folder: Path, keyring: Keyring) -> None:
        self.folder, self.keyring = folder, keyring

    def get(self, key: str) -> DocIndex | None:
        path = self.folder / f"{key}.idx"
        try:
            data = path.read_bytes()
            if self.keyring.current is not None:
                with DecryptingReader(io.BytesIO(data), self.keyring, "a cached document index") as r:
                    data = r.read()
            return DocIndex.from_bytes(data)
        except (OSError, BackupError):
            return None  # missing, stale or damaged: read it from the repository instead

    def put(self, key: str, index: DocIndex) -> None:
        data = index.to_bytes()
        if self.keyring.current is not None:
            out = io.BytesIO()
            w = EncryptingWriter(out, self.keyring.current)
            w.write(data)
            w.close()
            data = out.getvalue()
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.folder / f".{key}.tmp"
            tmp.write_bytes(data)
            tmp.chmod(0o600)
            tmp.replace(self.folder / f"{key}.idx")
        except OSError:
            pass  # a cache: the next backup reads the repository instead

    def keep_only(self, keys: set[str]) -> int:
        """Remove the cached indexes of states no backup holds any more (after a clean-up); returns how
        many were removed."""
        removed = 0
        try:
            cached = list(self.folder.glob("*.idx"))
        except OSError:
            return 0
        for path in cached:
            if path.stem not in keys:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def find_base(repo, database: str, collection: str, *, compress: bool) -> Base | None:
    """The newest backup of ``collection`` of ``database`` an increment can build on (see the module doc)."""
    fingerprint = repo.keyring.current.fingerprint if repo.keyring.current is not None else None
    for info in repo.newest_first():
        if info.database != database or info.manifest.get("filter") is not None or info.trigger == "safety":
            # a safety backup holds the data a restore was about to replace: the least likely to match
            continue
        if collection in info.absent_collections:
            return None
        entry = info.collections.get(collection)
        if entry is None:
            continue
        if entry.doc_index is None or info.key_fingerprint != fingerprint or \
                entry.parts[0].compressed != compress or (len(entry.parts) - 1) // 2 >= MAX_STEPS:
            return None
        index = load_index(repo, info, entry)
        return Base(info.backup_id, entry, index) if index is not None else None
    return None


def load_index(repo, info, entry: CollectionEntry) -> DocIndex | None:
    cache = repo.index_cache()
    key = cache_key(entry.stored_parts())
    index = cache.get(key)
    if index is not None:
        return index
    try:
        with repo.open_part(info, entry.doc_index) as fh:
            index = DocIndex.from_bytes(fh.read(), f"the document index of {info.backup_id}/{entry.name}")
            fh.finish()
        for changes, deleted in zip(entry.parts[1::2], entry.parts[2::2]):
            index = index.applied(repo.part_documents(info, changes), repo.part_documents(info, deleted))
    except BackupError:
        return None  # a damaged chain: the next backup is a full copy
    cache.put(key, index)
    return index


def write_collection(writer, collection: str, docs: Iterable[bytes], *, compress: bool, base: Base | None,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Back up one collection (see the module docstring); returns its manifest entry's count, parts and
    document index."""
    seen = bytearray(len(base.index)) if base is not None else bytearray()
    changed = bytearray()
    changes_schema = codec.SchemaBuilder()
    states: list[bytes] = []
    tally = {"changed": 0, "changed_bytes": 0, "bytes": 0}

    def classify(raw: bytes) -> bool:
        kb = key_bytes(raw, "_id")
        idd, dd = id_digest(kb), doc_digest(raw)
        states.append(idd + dd + kb)
        tally["bytes"] += len(raw)
        if base is None:
            return False
        i = base.index.find(idd)
        if i >= 0:
            seen[i] = 1
            if base.index.digest_at(i) == dd:
                changed.append(0)
                return False
        changed.append(1)
        changes_schema.add(raw)
        tally["changed"] += 1
        tally["changed_bytes"] += len(raw)
        return True

    with writer.spill(docs, on_document=classify, progress=progress) as spill:
        count = spill.count
        deleted = [base.index.key_at(i) for i in range(len(base.index)) if not seen[i]] if base is not None else []
        state = DocIndex.from_packed(states)
        del states[:]
        if base is not None and not tally["changed"] and not deleted and not base.entry.incremental:
            parts, doc_index = base.entry.parts, base.entry.doc_index  # unchanged: the same full copy
            for p in base.entry.stored_parts():
                writer.adopt(p)
        elif base is not None and _small_enough(base, count, tally, len(deleted)):
            # (an unchanged collection after an increment gets an empty step: its folder then says
            # "nothing changed", and the empty files are one shared object each)
            step = writer.write_spilled(collection, "changes", spill, changes_schema.build(), compress=compress,
                                        select=changed)
            gone = writer.write_part(collection, "deleted", (id_document(kb) for kb in deleted), compress=compress)
            for p in base.entry.stored_parts():
                writer.adopt(p)
            parts, doc_index = base.entry.parts + (step, gone), base.entry.doc_index
        else:
            full = writer.write_spilled(collection, "full", spill, spill.schema(), compress=compress)
            parts, doc_index = (full,), writer.write_blob("index", state.to_bytes(), count=count)
    writer.repo.index_cache().put(cache_key(parts + ((doc_index,) if doc_index else ())), state)
    return {"count": count, "parts": list(parts), "doc_index": doc_index}


def _small_enough(base: Base, count: int, tally: dict, deleted: int) -> bool:
    steps = (len(base.entry.parts) - 1) // 2
    if steps + 1 > MAX_STEPS:
        return False
    if tally["changed"] + deleted > MAX_STEP_FRACTION * max(count, 1):
        return False
    full = base.entry.parts[0]
    chain = sum(p.bytes for p in base.entry.parts[1:])
    # the step's CSV is about as large, relative to the full copy, as its documents are to all of them
    step = full.bytes * (tally["changed_bytes"] / tally["bytes"]) if tally["bytes"] else 0
    return chain + step <= MAX_CHAIN_FRACTION * full.bytes


__all__ = ["Base", "find_base", "load_index", "write_collection", "MAX_STEPS", "MAX_STEP_FRACTION",
           "MAX_CHAIN_FRACTION"]
