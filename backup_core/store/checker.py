"""The checker: proving that a backup's data is what its manifest says (restic's ``internal/checker``).

Every read of a backup's data goes through a ``HashingReader``: it counts and
hashes the bytes as they pass and, at the end of the part, compares size and
SHA-256 with the manifest, raising ``IntegrityError`` on any difference. So a
restore reads each part once, and a damaged or replaced object stops it while
it plans, before anything is written to the database; ``verify`` reads the
same way and additionally decodes every row (deep), counts documents and
finds ``_id``s MongoDB would take as one. ``check_backup`` works on any
*source* of backups (a repository, or an archive being imported), so an
import is checked exactly like a stored backup.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from ..errors import BackupError, FormatError, IntegrityError, KeyMissing, StorageError
from ..keys import key_bytes, key_identity, key_text, type_name
from ..mongospec import DataCheck
from .manifest import CollectionEntry, Part

CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """Passes a part's bytes through, and at their end proves their size and SHA-256 (see module doc)."""

    def __init__(self, src: BinaryIO, part: Part, what: str) -> None:
        self._src, self.part, self.what = src, part, what
        self._h = hashlib.sha256()
        self.size = 0
        self.checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._src.readinto(b) if hasattr(self._src, "readinto") else _readinto(self._src, b)
        if n:
            self._h.update(memoryview(b)[:n])
            self.size += n
        elif not self.checked:
            self._check()
        return n

    def _check(self) -> None:
        self.checked = True
        if self.size != self.part.bytes:
            raise IntegrityError(f"{self.what}: size {self.size} != {self.part.bytes} in the manifest "
                                 "(damaged or tampered)")
        if self._h.hexdigest() != self.part.sha256:
            raise IntegrityError(f"{self.what}: sha256 mismatch with the manifest (damaged or tampered)")

    def finish(self) -> None:
        """Read what is left and prove the whole part (for readers that stop at the last row)."""
        while self.read(CHUNK):
            pass
        if not self.checked:
            self._check()

    def close(self) -> None:
        try:
            self._src.close()
        finally:
            super().close()


def _readinto(src: BinaryIO, b) -> int:
    data = src.read(len(b))
    b[:len(data)] = data
    return len(data)


@dataclass
class VerifyResult:
    backup_id: str
    ok: bool
    collections: dict[str, dict]
    problems: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "ok": self.ok, "collections": self.collections,
                "problems": self.problems, "warnings": self.warnings}

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id}: {'OK' if self.ok else 'FAILED'}"]
        for name, c in self.collections.items():
            lines.append(f"  {name}: {c.get('count')} documents, {c.get('status')}")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def check_collection(source, info, entry: CollectionEntry, *, deep: bool) -> tuple[str, list[str]]:
    """(status, warnings) of one collection of a backup: every part's presence, size and SHA-256, and
    with ``deep`` every row decoded, the documents counted and their ``_id``s checked.

    ``source`` gives ``stat_part(info, part)`` (stored size or None) and ``open_part(info, part)`` (a
    ``HashingReader``) and ``documents(info, name)`` (the collection's documents, parts resolved).
    """
    try:
        for part in entry.stored_parts():
            size = source.stat_part(info, part)
            if size is None:
                return f"missing data object {part.object or part.location}", []
            if size != part.stored_bytes:
                return f"data object {part.object or part.location}: size {size} != {part.stored_bytes} in the " \
                       "manifest", []
        if not deep:
            for part in entry.stored_parts():
                with source.open_part(info, part) as fh:
                    fh.finish()
            return "ok", []
        for part in entry.parts if len(entry.parts) > 1 else ():  # (one part: counted below)
            rows = source.part_documents(info, part)
            n = sum(1 for _ in rows)
            if n != part.count:
                return f"{part.file}: {n} documents, the manifest says {part.count}", []
        if entry.doc_index is not None:
            with source.open_part(info, entry.doc_index) as fh:
                fh.finish()
        check = DataCheck(entry.decoded_indexes(), entry.decoded_options())
        count, duplicate = count_and_check_ids(source.documents(info, entry.name), check)
    except KeyMissing:
        raise
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}", []
    except (IntegrityError, StorageError) as exc:
        return _short(exc, entry), []
    if count != entry.count:
        return f"{count} documents, manifest says {entry.count}", []
    if duplicate is not None:
        return duplicate, []
    return "ok", check.findings()


def _short(exc: BackupError, entry: CollectionEntry) -> str:
    text = str(exc)
    if isinstance(exc, FormatError) and not text.startswith("unreadable"):
        return f"unreadable: {text}"
    return text


def count_and_check_ids(docs: Iterator[bytes], check: DataCheck | None = None) -> tuple[int, str | None]:
    """Count documents and find the first ``_id`` MongoDB would take as a repeat.

    Only a 16-byte digest per document is kept, so memory stays small for large collections.
    """
    seen: dict[bytes, bytes] = {}
    count = 0
    duplicate = None
    for raw in docs:
        count += 1
        if check is not None:
            check.add(raw)
        if duplicate is not None:
            continue
        kb = key_bytes(raw, "_id")
        if not kb:
            duplicate = f"document {count} has no _id"
            continue
        digest = hashlib.blake2b(key_identity(kb), digest_size=16).digest()
        first = seen.get(digest)
        if first is not None:
            duplicate = _duplicate_message(first, kb)
        seen[digest] = kb[:1]
    return count, duplicate


def _duplicate_message(first_type: bytes, kb: bytes) -> str:
    if first_type == kb[:1]:
        return f"_id {key_text(kb)} occurs more than once"
    return (f"_id {key_text(kb)} occurs more than once: as {type_name(first_type[0])} and as "
            f"{type_name(kb[0])}, which MongoDB treats as the same key")


def check_backup(source, info, *, deep: bool = True, collections: list[str] | None = None,
                 extra: Callable[[], list[str]] | None = None) -> VerifyResult:
    """Check every chosen collection of ``info`` through ``source`` (see ``check_collection``)."""
    problems: list[str] = list(extra() if extra is not None else [])
    warnings: list[str] = []
    result: dict[str, dict] = {}
    for name in collections or list(info.collections):
        entry = info.collection(name)
        status, found = check_collection(source, info, entry, deep=deep)
        warnings += [f"{name}: {w}" for w in found]
        if status != "ok":
            problems.append(f"{name}: {status}")
        result[name] = {"count": entry.count, "sha256": entry.sha256, "status": status,
                        "parts": len(entry.parts)}
    return VerifyResult(info.backup_id, not problems, result, problems, warnings)


__all__ = ["HashingReader", "VerifyResult", "check_collection", "check_backup", "count_and_check_ids"]
