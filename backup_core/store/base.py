"""The store interface and everything that is the same for every backend.

A store holds backups; only its implementations (``LocalStore``, an object
store) know paths, renames and object keys. They provide a handful of
primitives (list candidates, read the manifest, open a file, list a backup's
files, stage a new backup, remove one, lock, sweep, usage); this class builds
on them the listing, reading, verification and commit rules of
docs/FORMAT.md, so they hold identically everywhere:

- a backup is visible only once its manifest is written, last; anything
  without a valid manifest is never listed, verified or restored;
- links and other non-files are refused wherever a file is expected;
- verification recomputes every size and SHA-256 and, deep, decodes every row,
  counts documents and finds keys MongoDB would take as one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator

from .. import codec
from ..errors import BackupNotFound, CodecError, FormatError, IntegrityError, KeyMissing, StorageError
from ..keys import key_bytes, key_identity, key_text, type_name
from ..mongospec import DataCheck
from .crypto import (CHUNK as CRYPTO_CHUNK, CIPHER, DecryptingReader, EncryptingWriter, Keyring, decrypt_bytes,
                     encrypt_bytes, header_fingerprint, is_encrypted)
from .csvfile import CountingWriter, RowReader
from .layout import MANIFEST, MANIFEST_ENC, backup_id_for, check_backup_id, file_name_for
from .manifest import CollectionEntry, Manifest

CHUNK = 1 << 20


@dataclass
class BackupInfo:
    """A committed backup, as listed: its manifest plus where it lives."""

    backup_id: str
    day: str
    manifest: Manifest = field(repr=False)
    location: str = ""
    stored_manifest: bytes = field(default=b"", repr=False)  # the manifest as stored (encrypted or not)

    @property
    def encrypted(self) -> bool:
        return self.manifest.encryption is not None

    @property
    def restore_of(self) -> str | None:
        return self.manifest.restore_of

    @property
    def stored_bytes(self) -> int:
        """What this backup added to the store: its manifest and the data it did not share."""
        return len(self.stored_manifest) + sum(c.stored_bytes for c in self.collections.values()
                                                if c.reused_from is None)

    @property
    def logical_bytes(self) -> int:
        """The size of its CSV files before compression, encryption and sharing."""
        return sum(c.logical_bytes for c in self.collections.values())

    @property
    def key_fingerprint(self) -> str | None:
        return self.manifest.key_fingerprint

    @property
    def created_at(self) -> str:
        return self.manifest.created_at

    @property
    def created(self) -> datetime:
        return self.manifest.created

    @property
    def trigger(self) -> str:
        return self.manifest.trigger

    @property
    def database(self) -> str:
        return self.manifest.database

    @property
    def user(self) -> str | None:
        return self.manifest.user

    @property
    def collections(self) -> dict[str, CollectionEntry]:
        return self.manifest.collections

    @property
    def absent_collections(self) -> list[str]:
        return self.manifest.absent_collections

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.collections.values())

    @property
    def total_documents(self) -> int:
        return sum(c.count for c in self.collections.values())

    def collection(self, name: str) -> CollectionEntry:
        return self.manifest.collection(name)

    def schema(self, name: str) -> codec.Schema:
        return self.collection(name).schema

    def to_json(self) -> dict:
        return {
            "backup_id": self.backup_id, "day": self.day, "created_at": self.created_at,
            "trigger": self.trigger, "database": self.database, "location": self.location,
            "bytes": self.total_bytes, "encrypted": self.encrypted, "key_fingerprint": self.key_fingerprint,
            "collections": {n: {"count": c.count, "bytes": c.bytes} for n, c in self.collections.items()},
        }


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


class Staging(ABC):
    """Where one new backup is written before it becomes visible (backend-specific)."""

    @abstractmethod
    def open(self, name: str) -> ContextManager[BinaryIO]:
        """A writable binary stream for data file ``name``; the file exists once the block exits cleanly."""

    @abstractmethod
    def scratch(self, name: str) -> Path:
        """A local path for a temporary file of this backup (removed with the staging area)."""

    @abstractmethod
    def reuse(self, name: str, ref: object) -> tuple[bool, str | None]:
        """Replace the written file ``name`` by the already stored data ``ref`` (deduplication).

        Returns (done, the ``object`` reference to record in the manifest, if the
        backend stores a reference instead of a file of its own)."""

    @abstractmethod
    def commit(self, name: str, data: bytes) -> None:
        """Write the manifest (``name``, its stored bytes) last and make the backup visible, atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Remove everything written so far (best effort; the sweeper finishes the job)."""


class BackupWriter:
    """Writes one backup through a ``Staging``; ``commit`` makes it visible, manifest last.

    With a current key in the store's keyring, every data file and the
    manifest are encrypted (``crypto.py``), data files get unreadable names,
    and the manifest records the cipher and the key's fingerprint.

    Thread-safe for parallel jobs: each job writes its own files (``open``,
    ``scratch``, ``reuse`` of its own name); ``commit`` and ``abort`` are
    called once, after the jobs.
    """

    def __init__(self, store: "Store", backup_id: str, day: str, staging: Staging) -> None:
        self.store, self.backup_id, self.day, self.staging = store, backup_id, day, staging
        self.key = store.keyring.current
        self.stored: dict[str, int] = {}  # file name -> bytes as stored
        self.reused: dict[str, dict] = {}  # file name -> {"reused_from": id, "object": ref or None}
        self._earlier: list[BackupInfo] | None = None
        self._guard = threading.Lock()  # the bookkeeping above, shared by parallel jobs

    def file_name(self, collection: str, compressed: bool) -> str:
        if self.key is None:
            return file_name_for(collection, compressed)
        return self.key.name_for(collection) + (".csv.gz.enc" if compressed else ".csv.enc")

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """A plaintext sink for data file ``name`` (encrypted on the way when a key is configured)."""
        with self.staging.open(name) as fh:
            counter = CountingWriter(fh)
            if self.key is None:
                yield counter  # type: ignore[misc]
            else:
                enc = EncryptingWriter(counter, self.key)  # type: ignore[arg-type]
                yield enc  # type: ignore[misc]
                enc.close()
        with self._guard:
            self.stored[name] = counter.bytes

    @contextlib.contextmanager
    def open_raw(self, name: str) -> Iterator[BinaryIO]:
        """A sink for the stored bytes of a file copied as it is (imports, copies)."""
        with self.staging.open(name) as fh:
            counter = CountingWriter(fh)
            yield counter  # type: ignore[misc]
        with self._guard:
            self.stored[name] = counter.bytes

    def scratch(self, name: str) -> Path:
        return self.staging.scratch(name)

    def reuse(self, name: str, collection: str, sha256: str, compressed: bool) -> str | None:
        """Store ``name`` once: if an earlier backup holds the same collection with exactly these bytes
        (same compression, same key), share its stored data instead; returns that backup's id."""
        with self._guard:  # one listing for all jobs; a staging swaps one file at a time
            if self._earlier is None:
                self._earlier = self.store.list_backups()
            fingerprint = self.key.fingerprint if self.key else None
            for info in self._earlier:
                entry = info.collections.get(collection)
                if entry is None or entry.sha256 != sha256 or entry.compressed != compressed \
                        or info.key_fingerprint != fingerprint or entry.file != name:
                    continue
                done, obj = self.staging.reuse(name, self.store._stored_ref(info, entry))
                if done:
                    # the backup that first stored this data (for a chain of reuses, the first of them)
                    self.reused[name] = {"reused_from": entry.reused_from or info.backup_id, "object": obj}
                    self.stored[name] = entry.stored_bytes
                    return info.backup_id
            return None

    def commit(self, body: dict) -> Manifest:
        """Seal the manifest ``body``, check it against what was written, and commit."""
        body = dict(body)
        body["collections"] = {n: {**e, **{k: v for k, v in self.reused.get(e["file"], {}).items() if v}}
                               for n, e in body["collections"].items()}
        if self.key is not None:
            body["encryption"] = {"cipher": CIPHER, "key_fingerprint": self.key.fingerprint, "chunk_bytes": CRYPTO_CHUNK}
            body["collections"] = {n: {**e, "stored_bytes": self.stored.get(e["file"], -1)}
                                   for n, e in body["collections"].items()}
        manifest = Manifest.create(body)
        stored = manifest.raw if self.key is None else encrypt_bytes(manifest.raw, self.key)
        self.commit_manifest(manifest, stored)
        return manifest

    def commit_manifest(self, manifest: Manifest, stored: bytes) -> None:
        """Commit ``manifest`` whose stored form is ``stored`` (as written by ``commit`` or copied)."""
        if manifest.backup_id != self.backup_id:
            raise StorageError(f"manifest of {manifest.backup_id} cannot commit backup {self.backup_id}")
        for entry in manifest.collections.values():
            if self.stored.get(entry.file) != entry.stored_bytes:
                raise StorageError(f"backup {self.backup_id}: {entry.file} was not written as the manifest says")
        self.store.check_lock()  # the staging's commit itself never replaces an existing backup
        self.staging.commit(MANIFEST_ENC if manifest.encryption else MANIFEST, stored)

    def abort(self) -> None:
        self.staging.abort()


class Store(ABC):
    """A backup root. See the module docstring; FORMAT.md for the layout."""

    keyring: Keyring = Keyring()

    # ---- what every backend provides
    @property
    @abstractmethod
    def url(self) -> str:
        """Where the backups are, for people (a path or ``s3://bucket/prefix``; never credentials)."""

    @abstractmethod
    def _candidates(self) -> Iterator[tuple[str, str, str | None]]:
        """(day, backup_id, problem) for every entry named like a backup; problem says why it is unusable."""

    @abstractmethod
    def _find(self, backup_id: str) -> tuple[str, str | None] | None:
        """(day, problem) of ``backup_id``, or None when no such entry exists."""

    @abstractmethod
    def _read_manifest(self, day: str, backup_id: str) -> bytes:
        """The manifest's stored bytes (``manifest.json``, or ``manifest.enc`` of an encrypted backup);
        FormatError when absent, IntegrityError when not a plain file."""

    @abstractmethod
    def _open(self, day: str, backup_id: str, name: str) -> BinaryIO:
        """A data file, opened for reading; IntegrityError when it is a link or not a plain file."""

    @abstractmethod
    def _entries(self, day: str, backup_id: str) -> dict[str, tuple[str, int]]:
        """Every entry of a backup: name -> (kind, size), kind "file", "link" or "other"."""

    @abstractmethod
    def _stage(self, backup_id: str, day: str) -> Staging:
        ...

    def _stored_ref(self, info: BackupInfo, entry: CollectionEntry) -> object:
        """How a new backup's staging can point at ``entry``'s stored data (backend-specific)."""
        raise NotImplementedError

    def _open_object(self, ref: str) -> BinaryIO:
        """Stored data that an entry refers to (``entry.object``) instead of holding a file of its own."""
        raise FileNotFoundError(ref)

    def _stat_object(self, ref: str) -> tuple[str, int] | None:
        return None

    @abstractmethod
    def _remove(self, day: str, backup_id: str) -> None:
        """Remove a backup so that it disappears at once (manifest first) and then its files."""

    @abstractmethod
    def location(self, day: str, backup_id: str) -> str:
        ...

    @abstractmethod
    def lock(self, operation: str, timeout: float, *, exclusive: bool = True) -> ContextManager[None]:
        """The lock of this root: exclusive for backup, restore, clean-up, delete and import; shared
        for readers that only clean-up must wait for."""

    @abstractmethod
    def sweep(self) -> list[str]:
        """Remove what killed writers and deleters left behind (call under the lock); returns what went."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """What ``sweep`` would remove now or later (shown by ``status``)."""

    @abstractmethod
    def usage(self) -> int:
        """Bytes the backups actually take under this root (data shared by several backups counted once)."""

    @abstractmethod
    def audit_log(self):
        """The ``audit.AuditLog`` of this root."""

    @abstractmethod
    def state(self, area: str):
        """Small shared documents kept with the backups (``area`` "auth": users and lock-out state),
        so every host that shares this root sees the same: a ``StateFiles``."""

    def check_lock(self) -> None:
        """Raise if this process no longer holds the store's lock (a lease that expired); no-op locally."""

    def change_token(self) -> object | None:
        """Something that changes whenever a backup is added or removed (None: cannot tell cheaply)."""
        return None

    # ---- listing
    def _load(self, day: str, backup_id: str, problem: str | None) -> BackupInfo:
        if problem:
            raise IntegrityError(f"{self.location(day, backup_id)} {problem}; refused")
        stored = self._read_manifest(day, backup_id)
        plain = stored
        if is_encrypted(stored):
            plain = decrypt_bytes(stored, self.keyring, f"backup {backup_id}")
        manifest = Manifest.parse(plain, backup_id=backup_id)
        if is_encrypted(stored) != (manifest.encryption is not None) or \
                (manifest.key_fingerprint and manifest.key_fingerprint != header_fingerprint(stored)):
            raise IntegrityError(f"backup {backup_id}: its manifest's encryption does not match how it is stored")
        return BackupInfo(backup_id, day, manifest, self.location(day, backup_id), stored)

    def list_backups(self, *, errors: list[str] | None = None,
                     locked: list[dict] | None = None) -> list[BackupInfo]:
        """Every committed, readable backup, newest first. Unreadable ones go to ``errors``; encrypted
        ones whose key is not configured to ``locked`` (id, day, key fingerprint)."""
        out = []
        for day, backup_id, problem in self._candidates():
            try:
                out.append(self._load(day, backup_id, problem))
            except KeyMissing as exc:
                if locked is not None:
                    locked.append({"backup_id": backup_id, "day": day, "encrypted": True,
                                   "key_fingerprint": exc.fingerprint, "location": self.location(day, backup_id)})
            except (FormatError, IntegrityError, StorageError) as exc:
                if errors is not None:
                    errors.append(f"{day}/{backup_id}: {exc}")
        out.sort(key=lambda b: (b.created_at, b.backup_id), reverse=True)
        return out

    def get(self, backup_id: str) -> BackupInfo:
        check_backup_id(backup_id)
        found = self._find(backup_id)
        if found is None:
            raise BackupNotFound(f"no backup with id {backup_id} in {self.url}",
                                 hint="run `python -m backup_core list` to see the backups")
        day, problem = found
        return self._load(day, backup_id, problem)

    def exists(self, backup_id: str) -> bool:
        return self._find(backup_id) is not None

    def new_backup_id(self, when: datetime) -> str:
        base = backup_id_for(when)
        if not self.exists(base):
            return base
        for n in range(1, 10000):
            candidate = f"{base}-{n:02d}"
            if not self.exists(candidate):
                return candidate
        raise StorageError("too many backups within one second")

    # ---- writing and deleting
    def begin(self, backup_id: str, day: str) -> BackupWriter:
        check_backup_id(backup_id)
        return BackupWriter(self, backup_id, day, self._stage(backup_id, day))

    def delete(self, backup_id: str) -> BackupInfo:
        info = self.get(backup_id)
        self._remove(info.day, backup_id)
        return info

    # ---- reading
    def manifest_bytes(self, info: BackupInfo) -> bytes:
        """The manifest exactly as stored; refused if it changed since ``info`` was read."""
        raw = self._read_manifest(info.day, info.backup_id)
        if raw != info.stored_manifest:
            raise IntegrityError(f"backup {info.backup_id} changed while being read")
        return raw

    def manifest_name(self, info: BackupInfo) -> str:
        return MANIFEST_ENC if info.encrypted else MANIFEST

    def open_stored(self, info: BackupInfo, collection: str) -> BinaryIO:
        """The bytes of one collection's file exactly as stored (encrypted for an encrypted backup)."""
        entry = info.collection(collection)
        try:
            return self._open(info.day, info.backup_id, entry.file)
        except FileNotFoundError:
            if entry.object is not None:  # deduplicated: stored once, under the backup that wrote it first
                try:
                    return self._open_object(entry.object)
                except FileNotFoundError:
                    pass
            raise IntegrityError(f"backup {info.backup_id} does not verify: {entry.file} is missing") from None

    def open_file(self, info: BackupInfo, collection: str) -> BinaryIO:
        """The CSV bytes of one collection's file (gzip bytes for a compressed one), decrypted if need be."""
        raw = self.open_stored(info, collection)
        if not info.encrypted:
            return raw
        return io.BufferedReader(DecryptingReader(raw, self.keyring, f"backup {info.backup_id}, {collection}"),
                                 CHUNK)

    def open_rows(self, info: BackupInfo, collection: str) -> RowReader:
        entry = info.collection(collection)
        return RowReader(self.open_file(info, collection), entry.schema, compressed=entry.compressed,
                         label=entry.file)

    def iter_documents(self, info: BackupInfo, collection: str) -> Iterator[bytes]:
        """Raw BSON documents of one collection, in backup order, strictly decoded."""
        with self.open_rows(info, collection) as rows:
            yield from rows.documents()

    # ---- verification
    def verify(self, backup_id: str, *, deep: bool = True, collections: list[str] | None = None) -> VerifyResult:
        """Recompute every size and hash; with ``deep`` also decode every row, count, check keys."""
        info = self.get(backup_id)
        problems: list[str] = []
        warnings: list[str] = []
        result: dict[str, dict] = {}
        expected = {c.file for c in info.collections.values()} | {self.manifest_name(info)}
        entries = self._entries(info.day, backup_id)
        for name in sorted(set(entries) - expected):
            problems.append(f"unexpected {'link' if entries[name][0] == 'link' else 'file'} {name}")
        for name in collections or list(info.collections):
            entry = info.collection(name)
            kind, size = entries.get(entry.file, (None, 0))
            if kind is None and entry.object is not None:
                kind, size = self._stat_object(entry.object) or (None, 0)
            if kind is None:
                status = "missing file"
            elif kind != "file":
                status = "is a link or not a plain file"
            elif size != entry.stored_bytes:
                status = f"size {size} != {entry.stored_bytes} in manifest"
            else:
                status, found = check_collection(entry, lambda n=name: self.open_file(info, n), deep=deep)
                warnings += [f"{name}: {w}" for w in found]
            if status != "ok":
                problems.append(f"{name}: {status}")
            result[name] = {"count": entry.count, "sha256": entry.sha256, "status": status}
        return VerifyResult(backup_id, not problems, result, problems, warnings)

    def require_verified(self, backup_id: str, collections: list[str] | None = None) -> BackupInfo:
        res = self.verify(backup_id, deep=False, collections=collections)
        if not res.ok:
            raise IntegrityError(f"backup {backup_id} does not verify: {'; '.join(res.problems)}",
                                 hint="it was changed or damaged after it was written; pick another backup")
        return self.get(backup_id)


def check_collection(entry: CollectionEntry, opener, *, deep: bool) -> tuple[str, list[str]]:
    """(status, warnings) of one stored file: size and SHA-256, and with ``deep`` every row.

    ``opener()`` returns a fresh binary stream of the stored bytes. Used by
    ``Store.verify`` and by imports (on the extracted copy, before it is listed).
    """
    h = hashlib.sha256()
    size = 0
    try:
        with opener() as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}", []
    except KeyMissing:
        raise
    except (IntegrityError, StorageError) as exc:
        return str(exc), []
    if size != entry.bytes:
        return f"size {size} != {entry.bytes} in manifest", []
    if h.hexdigest() != entry.sha256:
        return "sha256 mismatch", []
    if not deep:
        return "ok", []
    check = DataCheck(entry.decoded_indexes(), entry.decoded_options())
    try:
        with RowReader(opener(), entry.schema, compressed=entry.compressed, label=entry.file) as rows:
            count, duplicate = _count_and_check_ids(rows.documents(), check)
    except (FormatError, StorageError) as exc:
        return f"unreadable: {exc}", []
    if count != entry.count:
        return f"{count} documents, manifest says {entry.count}", []
    if duplicate is not None:
        return duplicate, []
    return "ok", check.findings()


def _count_and_check_ids(docs: Iterator[bytes], check: DataCheck) -> tuple[int, str | None]:
    """Count documents and find the first ``_id`` MongoDB would take as a repeat.

    Only a 16-byte digest per document is kept, so memory stays small for large collections.
    """
    seen: dict[bytes, bytes] = {}
    count = 0
    duplicate = None
    for raw in docs:
        count += 1
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


__all__ = ["Store", "BackupInfo", "BackupWriter", "Staging", "VerifyResult", "check_collection", "CodecError"]
