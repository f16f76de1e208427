"""The repository: backups as manifests over content-addressed data objects (restic's ``internal/repository``).

Layout on any backend (docs/FORMAT.md, "Repository layout")::

    <day>/<backup_id>/manifest.json     the manifest (manifest.enc when encrypted), written last
    <day>/<backup_id>/<collection>.csv  local unencrypted roots: readable hard links to the data
    data/<id[:2]>/<id>                  data objects, named by the SHA-256 of their bytes
                                        (by a keyed hash of it when encrypted)
    locks/                              the lock (``lock.py``)
    .audit/ .auth/                      the audit log, the dashboard's users

The repository is the one home of: naming data by content (a manifest refers
to data only by object id, never to another backup, so a backup never depends
on another backup's folder), encryption (a root read with a key refuses
plaintext manifests unless ``allow_plaintext`` says otherwise), deduplication
(an object is stored once, whichever backups refer to it), garbage collection
(``prune``: mark every object any manifest refers to, sweep the rest, under
the exclusive lock; a manifest that cannot be read blocks the sweep; the
work itself is in ``gc.py``, with the other housekeeping) and the lock. Backups of formats 1 and 2 (one file per collection in the backup's
folder) are read in place and forgotten like the others.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from .. import codec
from ..errors import (BackupError, BackupNotFound, FormatError, IntegrityError, KeyMissing, StorageError)
from ..keys import key_bytes, key_identity
from .backend import Backend, open_backend
from .checker import HashingReader, VerifyResult, check_backup
from .crypto import DecryptingReader, Keyring, decrypt_bytes, header_fingerprint, is_encrypted
from .csvfile import RowReader
from .gc import PruneResult
from .layout import ID_RE, MANIFEST, MANIFEST_ENC, WEEKDAYS, backup_id_for, check_backup_id, day_for
from .lock import RepositoryLock
from .manifest import MAX_MANIFEST_BYTES, CollectionEntry, Manifest, Part
from .writer import BackupWriter
from . import gc, spool

CHUNK = 1 << 20
_MANIFEST_NAMES = (MANIFEST, MANIFEST_ENC)


class Unauthenticated(IntegrityError):
    """A plaintext backup where a key is configured: anyone who can write the root could have made it."""


@dataclass
class BackupInfo:
    """A committed backup, as listed: its manifest plus where it lives."""

    backup_id: str
    day: str
    manifest: Manifest = field(repr=False)
    location: str = ""
    stored_manifest: bytes = field(default=b"", repr=False)  # the manifest as stored (encrypted or not)
    # objects that an older backup of the repository refers to too (filled by ``list_backups``)
    shared: dict[str, str] = field(default_factory=dict, repr=False)  # object name -> oldest backup using it
    plaintext_allowed: bool = False  # a plaintext backup trusted only because the admin said so

    @property
    def encrypted(self) -> bool:
        return self.manifest.encryption is not None

    @property
    def restore_of(self) -> str | None:
        return self.manifest.restore_of

    @property
    def stored_bytes(self) -> int:
        """What this backup added to the repository: its manifest and the data no older backup shares."""
        own = {p.location: p.stored_bytes for e in self.collections.values() for p in e.stored_parts()
               if self.shared.get(p.location, self.backup_id) == self.backup_id}
        return len(self.stored_manifest) + sum(own.values())

    @property
    def logical_bytes(self) -> int:
        """The size of its CSV files before compression, encryption and sharing."""
        return sum(c.logical_bytes for c in self.collections.values())

    def reused_from(self, collection: str) -> str | None:
        """The older backup whose stored data this collection's own file shares (None: stored here)."""
        entry = self.collection(collection)
        if entry.reused_from:
            return entry.reused_from
        owner = self.shared.get(entry.own.location)
        return owner if owner and owner != self.backup_id else None

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
            "format_version": self.manifest.format_version,
            "collections": {n: {"count": c.count, "bytes": c.bytes, "parts": len(c.parts)}
                            for n, c in self.collections.items()},
        }


def day_of(backup_id: str) -> str:
    """A backup's weekday folder: the UTC weekday of the time its id names."""
    when = datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return day_for(when)


class Repository:
    """Backups of one root (see the module docstring)."""

    def __init__(self, backend: Backend, keyring: Keyring | None = None, *, allow_plaintext: bool = False) -> None:
        self.backend = backend
        self.keyring = keyring or Keyring()
        self.allow_plaintext = allow_plaintext
        self._lock = RepositoryLock(backend)
        self._cache: dict[tuple[str, str], bytes] = {}  # (manifest name, version) -> stored bytes

    def __repr__(self) -> str:
        return f"Repository({self.url!r})"

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def root(self) -> Path:
        """The folder of a local repository (for local tools and tests)."""
        root = getattr(self.backend, "root", None)
        if root is None:
            raise StorageError(f"{self.url} is not a local folder")
        return root

    def location(self, day: str, backup_id: str) -> str:
        sep = "" if self.url.endswith("/") else "/"
        return f"{self.url}{sep}{day}/{backup_id}"

    def folder(self, backup_id: str) -> Path:
        """The folder of a committed backup of a local repository (for local tools and tests)."""
        info = self.get(backup_id)
        return self.root / info.day / backup_id

    # ---- the lock
    def lock(self, operation: str, timeout: float = 10.0, *, exclusive: bool = True, mode: str | None = None):
        """The repository's lock: ``mode`` read, write or exclusive (``exclusive=False``: read)."""
        return self._lock.hold(operation, timeout, mode or ("write" if exclusive else "read"))

    def check_lock(self, *, writing: bool = False) -> None:
        """Raise if this process lost the repository's lock (``writing``: it must hold it to write)."""
        if writing and self._lock.held() not in ("write", "exclusive"):
            raise StorageError(f"writing to {self.url} needs its lock; none is held by this operation")
        self._lock.check()

    def lock_holders(self) -> list[dict]:
        return self._lock.holders()

    # ---- listing
    def _manifest_entries(self) -> list[tuple[str, str, str, str]]:
        """(day, backup id, manifest name, version) of every manifest, from one listing per weekday.

        While this process holds the write lock only it can change them: the listing is then kept for
        the rest of that hold (every repository object of the root shares it; a commit or a deletion
        forgets it)."""
        token = self._lock.write_token()
        if token is not None:
            with _LISTINGS_GUARD:
                kept = _LISTINGS.get(self.backend.identity)
            if kept is not None and kept[0] is token:
                return list(kept[1])
        out = []
        for e in self._weekday_entries():
            parts = e.name.split("/")
            if len(parts) == 3 and parts[0] in WEEKDAYS and parts[2] in _MANIFEST_NAMES and ID_RE.match(parts[1]):
                out.append((parts[0], parts[1], e.name, e.version or f"{e.size}"))
        if token is not None and token is self._lock.write_token():
            with _LISTINGS_GUARD:
                _LISTINGS[self.backend.identity] = (token, list(out))
        return out

    def _weekday_entries(self) -> Iterator:
        """Everything under the weekday folders. A local root: one walk per weekday. An object store: one
        listing that starts after ``data/`` (the weekday folders, ``locks/`` and little else sort after
        it), so a root of a few hundred backups is one request, not seven."""
        if getattr(self.backend, "root", None) is not None:
            for day in WEEKDAYS:
                yield from self.backend.list(f"{day}/")
            return
        yield from self.backend.list("", after=_AFTER_DATA)

    def _read_manifest(self, name: str, version: str | None = None) -> bytes | None:
        if version is not None and (name, version) in self._cache:
            return self._cache[(name, version)]
        data = self.backend.read(name, MAX_MANIFEST_BYTES)
        if data is not None and version is not None:
            self._cache[(name, version)] = data
        return data

    def forget_cached(self) -> None:
        self._cache.clear()
        with _LISTINGS_GUARD:
            _LISTINGS.pop(self.backend.identity, None)

    def _load(self, day: str, backup_id: str, stored: bytes, *, trust: bool = True) -> BackupInfo:
        encrypted = is_encrypted(stored)
        plain = decrypt_bytes(stored, self.keyring, f"backup {backup_id}") if encrypted else stored
        manifest = Manifest.parse(plain, backup_id=backup_id, location=f"{day}/{backup_id}")
        if encrypted != (manifest.encryption is not None) or \
                (manifest.key_fingerprint and manifest.key_fingerprint != header_fingerprint(stored)):
            raise IntegrityError(f"backup {backup_id}: its manifest's encryption does not match how it is stored")
        allowed = False
        if not encrypted and self.keyring.keys:
            if trust and not self.allow_plaintext:
                raise Unauthenticated(
                    f"backup {backup_id} is not encrypted, but a key is configured: its manifest and data are "
                    "unauthenticated (anyone who can write the backup root could have made them); refused",
                    hint="if you know where it comes from, pass --allow-plaintext (recorded in the audit log)")
            allowed = True
        return BackupInfo(backup_id, day, manifest, self.location(day, backup_id), stored,
                          plaintext_allowed=allowed)

    def list_backups(self, *, errors: list[str] | None = None, locked: list[dict] | None = None,
                     trust: bool = True) -> list[BackupInfo]:
        """Every committed, readable backup, newest first. Unreadable ones go to ``errors``; encrypted
        ones whose key is not configured to ``locked`` (id, day, created_at, key fingerprint)."""
        out = []
        if errors is not None:
            for day in WEEKDAYS:
                errors += [f"{name}: {self.location(*name.split('/', 1))} {why}; refused"
                           for name, why in self.backend.refused(f"{day}/") if ID_RE.match(name.split("/")[-1])]
        for day, backup_id, name, version in self._manifest_entries():
            try:
                stored = self._read_manifest(name, version)
                if stored is None:
                    continue  # deleted since it was listed
                out.append(self._load(day, backup_id, stored, trust=trust))
            except KeyMissing as exc:
                if locked is not None:
                    locked.append({"backup_id": backup_id, "day": day, "encrypted": True,
                                   "created_at": _id_time(backup_id), "key_fingerprint": exc.fingerprint,
                                   "location": self.location(day, backup_id)})
            except (FormatError, IntegrityError, StorageError) as exc:
                if errors is not None:
                    errors.append(f"{day}/{backup_id}: {exc}")
        out.sort(key=lambda b: (b.created_at, b.backup_id), reverse=True)
        _mark_shared(out)
        return out

    def newest_first(self) -> Iterator[BackupInfo]:
        """The readable backups, newest id first, each read only when reached (an incremental backup
        looks for its base among the first few)."""
        for day, backup_id, name, version in sorted(self._manifest_entries(), key=lambda e: e[1], reverse=True):
            try:
                stored = self._read_manifest(name, version)
                if stored is not None:
                    yield self._load(day, backup_id, stored)
            except BackupError:
                continue

    def index_cache(self):
        """This machine's cache of document indexes for this repository (``incremental.IndexCache``)."""
        from .incremental import IndexCache

        return IndexCache(spool.temp_dir_for(self.backend) / "index-cache", self.keyring)

    def get(self, backup_id: str) -> BackupInfo:
        check_backup_id(backup_id)
        days = [day_of(backup_id)] + [d for d in WEEKDAYS if d != day_of(backup_id)]
        names = (MANIFEST_ENC, MANIFEST) if self.keyring.current else _MANIFEST_NAMES
        for i, day in enumerate(days):
            if i and getattr(self.backend, "root", None) is None:
                break  # an object store: the folder is always the id's weekday
            for name in names:
                stored = self.backend.read(f"{day}/{backup_id}/{name}", MAX_MANIFEST_BYTES)
                if stored is not None:
                    return self._load(day, backup_id, stored)
        raise BackupNotFound(f"no backup with id {backup_id} in {self.url}",
                             hint="run `python -m backup_core list` to see the backups")

    def exists(self, backup_id: str) -> bool:
        """Whether anything (a backup, or what a killed write left) uses this id."""
        check_backup_id(backup_id)
        return any(True for _ in self.backend.list(f"{day_of(backup_id)}/{backup_id}/"))

    def new_backup_id(self, when: datetime) -> str:
        """A free id for a backup started at ``when`` (one listing finds every id of that second)."""
        base = backup_id_for(when)
        taken = {e.name.split("/")[1] for e in self.backend.list(f"{day_of(base)}/{base}")}
        if base not in taken:
            return base
        for n in range(1, 10000):
            candidate = f"{base}-{n:02d}"
            if candidate not in taken:
                return candidate
        raise StorageError("too many backups within one second")

    # ---- reading
    def stat_part(self, info: BackupInfo, part: Part) -> int | None:
        entry = self.backend.stat(part.location)
        if entry is None and self.backend.kind(part.location) is not None:
            raise IntegrityError(f"data object {part.object or part.location} is a symbolic link or not a plain "
                                 "file; refused")
        return None if entry is None else entry.size

    def open_stored(self, info: BackupInfo, part: Part) -> BinaryIO:
        """The bytes of one part exactly as stored (ciphertext for an encrypted backup)."""
        try:
            return self.backend.load(part.location)
        except FileNotFoundError:
            raise IntegrityError(f"backup {info.backup_id} does not verify: data object "
                                 f"{part.object or part.location} is missing") from None

    def open_part(self, info: BackupInfo, part: Part) -> HashingReader:
        """The CSV bytes of one part (gzip bytes when compressed), decrypted, proved at their end."""
        what = f"backup {info.backup_id}, {part.file}"
        if info.encrypted and part.object is not None:
            key = self.keyring.get(info.key_fingerprint or "", f"backup {info.backup_id}")
            if key.content_id(part.sha256) != part.object:
                raise IntegrityError(f"{what}: its object id does not belong to its content (tampered manifest)")
        raw = self.open_stored(info, part)
        stream: BinaryIO = raw
        if info.encrypted:
            stream = io.BufferedReader(DecryptingReader(raw, self.keyring, what), CHUNK)  # type: ignore[arg-type]
        return HashingReader(stream, part, what)

    def part_documents(self, info: BackupInfo, part: Part) -> Iterator[bytes]:
        """Raw BSON documents of one part, in file order, strictly decoded; the part is proved at its end."""
        with self.open_part(info, part) as fh:
            try:
                with RowReader(fh, part.schema, compressed=part.compressed, label=f"{info.backup_id}/{part.file}",
                               owns_stream=False) as rows:
                    yield from rows.documents()
            except FormatError:
                fh.finish()  # bytes that do not decode are most often bytes that changed: say so if they did
                raise
            fh.finish()

    def iter_documents(self, info: BackupInfo, collection: str) -> Iterator[bytes]:
        """The documents of one collection as this backup holds them, its parts resolved (a full copy,
        then each step's changes and deletions by ``_id``; see docs/FORMAT.md)."""
        entry = info.collection(collection)
        if len(entry.parts) == 1:
            yield from self.part_documents(info, entry.parts[0])
            return
        last: dict[bytes, int] = {}  # _id identity -> the last step that touched it
        kept: dict[int, list[bytes]] | None = {}  # the steps' changed documents, unless too big to keep
        budget = STEPS_KEPT_BYTES
        read: dict[str, list[bytes]] = {}  # a step object several steps share (no deletions) is read once
        for i, part in enumerate(entry.parts[1:], 1):
            docs: list[bytes] = []
            for raw in read[part.location] if part.location in read else self.part_documents(info, part):
                last[key_identity(key_bytes(raw, "_id"))] = i
                if kept is not None:
                    docs.append(raw)
                    budget -= len(raw)
                    if budget < 0:
                        kept = None  # read the steps again below rather than hold them all
            if kept is not None:
                kept[i] = read[part.location] = docs
        for raw in self.part_documents(info, entry.parts[0]):
            if key_identity(key_bytes(raw, "_id")) not in last:
                yield raw
        for i, part in enumerate(entry.parts[1:], 1):
            if part.kind == "changes":
                for raw in kept[i] if kept is not None else self.part_documents(info, part):
                    if last.get(key_identity(key_bytes(raw, "_id"))) == i:
                        yield raw

    documents = iter_documents

    def open_file(self, info: BackupInfo, collection: str) -> BinaryIO:
        """The CSV bytes of a collection's own file (gzip bytes when compressed), decrypted, proved."""
        return self.open_part(info, info.collection(collection).own)  # type: ignore[return-value]

    def open_rows(self, info: BackupInfo, collection: str) -> RowReader:
        entry = info.collection(collection)
        return RowReader(self.open_file(info, collection), entry.schema, compressed=entry.compressed,
                         label=entry.file)

    # ---- verification
    def verify(self, backup_id: str, *, deep: bool = True, collections: list[str] | None = None) -> VerifyResult:
        """Prove every part's presence, size and hash; ``deep`` also decodes, counts and checks ``_id``s."""
        info = self.get(backup_id)
        problems, warnings = self._folder_problems(info)
        result = check_backup(self, info, deep=deep, collections=collections, extra=lambda: problems)
        result.warnings += warnings
        if info.plaintext_allowed:
            result.warnings.append("not encrypted although a key is configured: trusted only because "
                                   "--allow-plaintext was given")
        return result

    def presence_problem(self, info: BackupInfo, collection: str) -> str | None:
        """Why a collection's data cannot be read (a part missing, or of another size), or None: a stat
        per part, no reading (every byte is proved when it is read)."""
        parts = {p.location: p for p in info.collection(collection).parts}  # each object once; its
        for part in parts.values():  # document index is not read back (verify checks it)
            size = self.stat_part(info, part)
            if size is None:
                return f"missing data object {part.object or part.location}"
            if size != part.stored_bytes:
                return f"data object {part.object or part.location}: size {size} != {part.stored_bytes} in the manifest"
        return None

    def require_present(self, info: BackupInfo, collections: list[str]) -> None:
        """Every part of these collections is in the repository with its size (a stat each, no reading)."""
        for name in collections:
            problem = self.presence_problem(info, name)
            if problem:
                raise IntegrityError(f"backup {info.backup_id} does not verify: {name}: {problem}; nothing was "
                                     "changed", hint="it was changed or damaged after it was written; pick another "
                                                     "backup")

    def require_verified(self, backup_id: str, collections: list[str] | None = None) -> BackupInfo:
        res = self.verify(backup_id, deep=False, collections=collections)
        if not res.ok:
            raise IntegrityError(f"backup {backup_id} does not verify: {'; '.join(res.problems)}",
                                 hint="it was changed or damaged after it was written; pick another backup")
        return self.get(backup_id)

    def _folder_problems(self, info: BackupInfo) -> tuple[list[str], list[str]]:
        """(problems, warnings) of a backup's folder: what it holds beyond its manifest and readable files,
        readable files that are not the backup's data (replaced by an edited file), readable files that
        are gone (the data itself is intact: a warning)."""
        folder = f"{info.day}/{info.backup_id}/"
        expected = {MANIFEST_ENC if info.encrypted else MANIFEST}
        views: dict[str, Part] = {}
        for e in info.collections.values():
            if info.manifest.format_version < 3:
                expected.update(p.location[len(folder):] for p in e.parts if p.location.startswith(folder))
            elif not info.encrypted:
                views.update({p.file: p for p in e.own_parts()})
        problems: list[str] = []
        same = getattr(self.backend, "same", None)
        seen = set()
        for entry in self.backend.list(folder):
            name = entry.name[len(folder):]
            seen.add(name)
            if name in expected:
                continue
            part = views.get(name)
            if part is None:
                problems.append(f"unexpected file {name}")
            elif same is not None and not same(entry.name, part.location) and not self._same_bytes(entry.name, part):
                problems.append(f"{name} is not the backup's data any more (changed or replaced)")
        warnings = [f"the readable file {name} is missing from the backup's folder (its data is intact)"
                    for name in sorted(set(views) - seen)] if same is not None else []
        return problems + self.backend.oddities(folder), warnings

    def _same_bytes(self, name: str, part: Part) -> bool:
        """A readable copy (where the filesystem could not link) holds exactly the part's bytes."""
        import hashlib

        h = hashlib.sha256()
        try:
            with self.backend.load(name) as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
        except (OSError, BackupError):
            return False
        return h.hexdigest() == part.sha256

    # ---- writing
    def begin(self, backup_id: str, day: str | None = None) -> BackupWriter:
        check_backup_id(backup_id)
        return BackupWriter(self, backup_id, day or day_of(backup_id))

    def delete(self, backup_id: str, *, timeout: float = 10.0) -> BackupInfo:
        """Delete one backup (under the exclusive lock): its manifest goes first (it disappears at once),
        then its folder's files, then the data no other backup refers to (``prune``)."""
        with self.lock(f"delete backup {backup_id}", timeout, mode="exclusive"):
            info = self.get(backup_id)
            self.forget([info])
            self.prune()
            return info

    # ---- garbage collection and housekeeping (``gc.py``)
    def forget(self, infos: list[BackupInfo]) -> None:
        """Remove these backups, but not their data objects (``prune`` does)."""
        gc.forget(self, infos)

    def referenced(self) -> tuple[dict[str, set[str]], list[str]]:
        """(object name -> backups referring to it, manifests that cannot be read)."""
        return gc.referenced(self)

    def prune(self) -> PruneResult:
        """Garbage collection: remove every data object no manifest refers to (see ``gc.prune``)."""
        return gc.prune(self)

    def sweep(self) -> list[str]:
        """Remove what killed writers left (call under the lock)."""
        return gc.sweep(self)

    def leftovers(self) -> list[str]:
        """What ``sweep`` would remove, as locations to show."""
        return gc.leftovers(self)

    def usage(self) -> int:
        """Bytes the backups take (each object once, however many backups share it)."""
        return gc.usage(self)

    def change_token(self) -> object:
        """Changes whenever a backup is added or removed."""
        return tuple(sorted((n, v) for _d, _b, n, v in self._manifest_entries()))

    def audit_log(self):
        from .audit_blobs import audit_log_for

        return audit_log_for(self.backend, self.keyring)

    def state(self, area: str):
        from .state import StateFiles

        return StateFiles(self.backend, area)


# backend identity -> (the write hold it was listed under, its manifest entries): see _manifest_entries
_LISTINGS: dict[str, tuple[object, list[tuple[str, str, str, str]]]] = {}
_LISTINGS_GUARD = threading.Lock()
_AFTER_DATA = "data0"  # sorts after every "data/..." name and before every weekday folder
STEPS_KEPT_BYTES = 64 << 20  # increments' changed documents held in memory while a collection is read


def _is_view(name: str) -> bool:
    # a format 3 readable file (a hard link to an object) is counted with the objects
    return name.endswith((".csv", ".csv.gz"))


def _id_time(backup_id: str) -> str:
    when = datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _mark_shared(newest_first: list[BackupInfo]) -> None:
    first: dict[str, str] = {}
    for info in reversed(newest_first):
        for name in info.manifest.objects():
            first.setdefault(name, info.backup_id)
    for info in newest_first:
        info.shared = {n: first[n] for n in info.manifest.objects()}


def open_repository(root: "str | Path | Repository", keyring: Keyring | None = None, *,
                    allow_plaintext: bool = False) -> Repository:
    """The repository of a backup root: ``s3://bucket/prefix`` or a local folder."""
    if isinstance(root, Repository):
        return root
    return Repository(open_backend(root), keyring, allow_plaintext=allow_plaintext)


__all__ = ["Repository", "BackupInfo", "PruneResult", "Unauthenticated", "open_repository", "day_of"]
