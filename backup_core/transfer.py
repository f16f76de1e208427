"""Moving backups between environments: one zip file out, one verified zip file in.

Export writes ``<backup_id>/manifest.json`` (``manifest.enc`` when encrypted)
and every data part the backup needs (``archive_names``: the readable file
names of its folder, or the object ids of an encrypted backup), with the exact
bytes the repository stores (the manifest is never rewritten, so its hash
still holds on the other side). Every part is proved while it is zipped (its
SHA-256 through the checker's hashing reader, decrypted when encrypted), so a
damaged backup is never shipped, and the archive is self-contained: an
incremental backup carries the full copy and every step it builds on.

Import treats the archive as hostile until proven otherwise, then opens it as
a read-only source and brings the backup in through the same path as a copy
(``store.arrival.bring``: every part checked, every row decoded, keys unique
as MongoDB sees them, before anything is written; manifest last):

1. size: the archive may not exceed ``max_bytes`` (default 100 MB, env
   ``BACKUP_IMPORT_MAX_MB``), and neither the uncompressed total declared in
   the central directory nor the bytes actually inflated may exceed
   ``BOMB_FACTOR`` times that;
2. shape: exactly one folder named like a backup id, holding only the
   manifest and the files the manifest needs; no absolute paths, ``..``,
   backslashes, nested folders, links or other special entries, duplicate
   names, encrypted or exotically compressed entries;
3. content: the manifest must parse and match its own hash (a plaintext one
   is refused where a key is configured, unless ``--allow-plaintext``); every
   part its size and SHA-256; every row must decode;
4. commit: an existing backup with that id is never replaced; an identical
   one is reported as already present (and completed if parts were missing).

Both run as audited operations (``operation.py``); the import holds the
repository's write lock, the export a read lock (clean-up waits for it).
Archives of formats 1 and 2 (one file per collection) are still imported.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from .config import DEFAULT_IMPORT_MB
from .errors import FormatError, IntegrityError, StorageError, UsageError
from .operation import operation
from .store import ID_RE, MANIFEST, BackupInfo, Manifest, Store
from .store.arrival import bring
from .store.checker import HashingReader
from .store.crypto import DecryptingReader, decrypt_bytes, header_fingerprint, is_encrypted
from .store.csvfile import CountingWriter
from .store.layout import MANIFEST_ENC, PART_SUFFIX, view_stem
from .store.manifest import MAX_MANIFEST_BYTES, Part
from .store.repository import Unauthenticated, day_of

DEFAULT_MAX_MB = DEFAULT_IMPORT_MB
BOMB_FACTOR = 4
# a real backup has one entry per collection; thousands only serve to slow us down
MAX_ENTRIES = 10_000
_CHUNK = 1 << 20
_ALLOWED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class ArchiveRefused(FormatError):
    """The uploaded file is not a safe, well-formed backup archive."""


def default_max_bytes() -> int:
    """The import size limit of the current settings (``BACKUP_IMPORT_MAX_MB``, default 100 MB)."""
    from .config import Settings

    return Settings.load().import_max_bytes


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


# ---------------------------------------------------------------- export

@dataclass
class ExportResult:
    backup_id: str
    path: str | None
    bytes: int
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "path": self.path, "bytes": self.bytes, "files": self.files}

    def to_text(self) -> str:
        where = self.path or "the output stream"
        return f"backup {self.backup_id} exported to {where} ({self.bytes} bytes, {len(self.files)} files)"


def _zip_time(created_at: str) -> tuple:
    # the backup's own time, so exporting the same backup twice gives the same bytes
    try:
        t = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if t.year >= 1980:
            return (t.year, t.month, t.day, t.hour, t.minute, t.second)
    except (AttributeError, ValueError):
        pass
    return (1980, 1, 1, 0, 0, 0)


def archive_names(info: BackupInfo) -> dict[str, str]:
    """Each stored part's file name inside the archive's backup folder (parts shared by two collections
    once). Unencrypted: the readable names of the backup's folder (steps of an incremental backup
    numbered); encrypted: object ids, which say nothing about the collections."""
    names: dict[str, str] = {}
    for collection, entry in info.collections.items():
        for i, part in enumerate(entry.stored_parts()):
            if part.location in names:
                continue
            if info.manifest.format_version < 3 or (info.encrypted and part.kind != "index"):
                name = part.file
            elif info.encrypted:
                name = f"{part.object}.index.enc"
            elif part.kind == "index":
                name = f"{view_stem(collection)}.index"
            elif i == 0:
                name = part.file
            else:
                name = (f"{view_stem(collection)}.step{(i + 1) // 2:03d}{PART_SUFFIX[part.kind]}.csv"
                        + (".gz" if part.compressed else ""))
            names[part.location] = name
    return names


def export_backup(store: Store, backup_id: str, out: Path | str | BinaryIO,
                  user: str = "unknown") -> ExportResult:
    """Write backup ``backup_id`` as one zip to ``out`` (a path, replaced atomically, or a stream)."""
    to_path = isinstance(out, (str, os.PathLike))
    with operation(store, "export", user=user, lock="shared",
                   details={"backup_id": backup_id, "out": str(out) if to_path else None}) as op:
        info = store.get(backup_id)
        if to_path:
            target = Path(out)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            try:
                with tmp.open("wb") as fh:
                    size, files = _write_zip(store, info, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except OSError as exc:
                raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
            finally:
                tmp.unlink(missing_ok=True)
            result = ExportResult(info.backup_id, str(target), size, files)
        else:
            counter = CountingWriter(out)  # type: ignore[arg-type]
            size, files = _write_zip(store, info, counter)
            result = ExportResult(info.backup_id, None, counter.bytes, files)
        op.note(bytes=result.bytes)
        return result


class _Tee(io.RawIOBase):
    """Reads a stream and writes every byte read into ``copy`` as well."""

    def __init__(self, src: BinaryIO, copy: BinaryIO) -> None:
        self._src, self._copy = src, copy

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._src.read(len(b))
        b[:len(data)] = data
        self._copy.write(data)
        return len(data)

    def close(self) -> None:
        self._src.close()
        super().close()


def _write_zip(store: Store, info: BackupInfo, fh) -> tuple[int, list[str]]:
    bid = info.backup_id
    when = _zip_time(info.created_at)
    files: list[str] = []
    # the bytes we ship must be the manifest we validated, not a later edit
    manifest_name = MANIFEST_ENC if info.encrypted else MANIFEST
    parts = {p.location: p for e in info.collections.values() for p in e.stored_parts()}
    try:
        with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
            zf.writestr(_member(f"{bid}/{manifest_name}", when, zipfile.ZIP_DEFLATED), info.stored_manifest)
            files.append(manifest_name)
            for location, name in archive_names(info).items():
                part = parts[location]
                # gzip and ciphertext do not shrink again; deflating them only costs time
                method = zipfile.ZIP_STORED if part.compressed or info.encrypted else zipfile.ZIP_DEFLATED
                with zf.open(_member(f"{bid}/{name}", when, method), "w",
                             force_zip64=part.stored_bytes > (1 << 31)) as zo:
                    _ship(store, info, part, zo)
                files.append(name)
        size = fh.tell() if hasattr(fh, "seekable") and fh.seekable() else getattr(fh, "bytes", 0)
    except OSError as exc:
        raise StorageError(f"cannot read backup {bid}: {exc.strerror or exc}") from None
    return size, files


def _ship(store: Store, info: BackupInfo, part: Part, out: BinaryIO) -> None:
    """Copy one part's stored bytes to ``out``, proving them on the way (never a damaged part)."""
    what = f"backup {info.backup_id}, {part.file}"
    tee = _Tee(store.open_stored(info, part), out)
    plain: BinaryIO = io.BufferedReader(tee, _CHUNK)  # type: ignore[arg-type]
    if info.encrypted:
        plain = io.BufferedReader(DecryptingReader(plain, store.keyring, what), _CHUNK)  # type: ignore[arg-type]
    with HashingReader(plain, part, f"{what}: not exported") as checked:
        checked.finish()


def _member(name: str, when: tuple, method: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=when)
    zi.compress_type = method
    zi.create_system = 3  # unix, so external_attr carries the mode below
    zi.external_attr = (stat.S_IFREG | 0o644) << 16
    return zi


# ---------------------------------------------------------------- import

@dataclass
class ImportResult:
    backup_id: str
    path: str
    collections: dict[str, dict]
    day: str = ""
    already_present: bool = False
    bytes: int = 0

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "path": self.path, "day": self.day,
                "already_present": self.already_present, "bytes": self.bytes,
                "collections": self.collections}

    def to_text(self) -> str:
        if self.already_present:
            head = f"backup {self.backup_id} is already present at {self.path} (identical); nothing imported"
        else:
            head = f"backup {self.backup_id} imported and verified: {self.path}"
        lines = [head]
        for name, c in self.collections.items():
            lines.append(f"  {name}: {c['count']} documents")
        return "\n".join(lines)


def import_backup(store: Store, source: Path | str | BinaryIO, *, max_bytes: int | None = None,
                  user: str = "unknown") -> ImportResult:
    """Check, extract, verify and then list the backup in a zip archive (see module doc)."""
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    if limit <= 0:
        raise UsageError("the import size limit must be positive")
    label = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "upload")
    with operation(store, "import", user=user, details={"source": str(label)}) as op:
        result = _import(store, source, limit)
        op.note(backup_id=result.backup_id, already_present=result.already_present or None, bytes=result.bytes,
                counts={n: c["count"] for n, c in result.collections.items()})
        return result


def _import(store: Store, source, limit: int) -> ImportResult:
    with _open_source(source, limit) as (fh, size):
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
            raise ArchiveRefused("not a zip archive (export a backup with "
                                 "`python -m backup_core export ID --out FILE.zip`)") from None
        with zf:
            info, members = _check_archive(zf, limit, store)
            collections = {n: {"count": e.count, "sha256": e.sha256} for n, e in info.collections.items()}
            budget = [BOMB_FACTOR * limit]

            def fetch(part: Part, out: BinaryIO) -> None:
                _extract(zf, members[part.location], part, out, budget)

            arrival = bring(store, info, fetch)
            return ImportResult(info.backup_id, arrival.location, collections, day_of(info.backup_id),
                                not arrival.arrived, size)


class _open_source:
    """A seekable binary handle on the archive and its size, refusing oversize input early."""

    def __init__(self, source, limit: int) -> None:
        self.source = source
        self.limit = limit
        self._close: list = []

    def __enter__(self):
        src = self.source
        if isinstance(src, (str, os.PathLike)):
            path = Path(src)
            try:
                size = path.stat().st_size
                if not path.is_file():
                    raise UsageError(f"{path} is not a file")
                if size > self.limit:
                    raise self._too_big(size)
                fh = path.open("rb")
            except FileNotFoundError:
                raise UsageError(f"no such file: {path}") from None
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror}") from None
            self._close.append(fh)
            return fh, size
        if hasattr(src, "seekable") and src.seekable():
            start = src.tell()
            size = src.seek(0, io.SEEK_END) - start
            src.seek(start)
            if size > self.limit:
                raise self._too_big(size)
            if start:
                # zipfile finds the central directory from the end; a caller's offset would confuse it
                data = src.read()
                src = io.BytesIO(data)
            return src, size
        # a pipe or socket: copy it, counting, so we never hold more than the limit
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self._close.append(spool)
        size = 0
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > self.limit:
                raise self._too_big(size, at_least=True)
            spool.write(chunk)
        spool.seek(0)
        return spool, size

    def _too_big(self, size: int, at_least: bool = False) -> ArchiveRefused:
        return ArchiveRefused(f"archive is {'over ' if at_least else ''}{_mb(size)}, larger than the "
                              f"import limit of {_mb(self.limit)} (raise it with --max-mb or "
                              f"BACKUP_IMPORT_MAX_MB)")

    def __exit__(self, *exc) -> None:
        for fh in self._close:
            fh.close()


def _entry_problem(name: str) -> str | None:
    """Why an entry name is unsafe, or None."""
    if not name:
        return "has an empty name"
    if "\x00" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".") for p in parts):
        return "leaves its folder (..)"
    if any(p == "" for p in parts):
        return "has an empty path component"
    return None


def _check_archive(zf: zipfile.ZipFile, limit: int, store: Store) -> tuple[BackupInfo, dict[str, zipfile.ZipInfo]]:
    """Everything that can be judged from the central directory and the manifest: the backup as the
    archive holds it, and the archive entry of each stored part."""
    top, members = _members(zf, limit)
    names = [n for n in (MANIFEST, MANIFEST_ENC) if n in members]
    if len(names) != 1:
        raise ArchiveRefused(f"the archive has no {top}/{MANIFEST}" if not names
                             else "the archive holds two manifests")
    manifest_name = names[0]
    stored = _read_member(zf, members[manifest_name], MAX_MANIFEST_BYTES)
    plain = decrypt_bytes(stored, store.keyring, f"backup {top} in the archive") if is_encrypted(stored) else stored
    manifest = Manifest.parse(plain, backup_id=top, location=f"{day_of(top)}/{top}")
    if (manifest_name == MANIFEST_ENC) != is_encrypted(stored) or \
            (manifest.encryption is not None) != is_encrypted(stored) or \
            (manifest.key_fingerprint and manifest.key_fingerprint != header_fingerprint(stored)):
        raise ArchiveRefused("the archive's manifest is not stored the way it says it is")
    if manifest.encryption is None and store.keyring.keys and not store.allow_plaintext:
        raise Unauthenticated(f"backup {top} in the archive is not encrypted, but a key is configured: its "
                              "manifest and data are unauthenticated; refused",
                              hint="if you know where it comes from, pass --allow-plaintext (recorded in the "
                                   "audit log)")
    info = BackupInfo(top, day_of(top), manifest, f"{day_of(top)}/{top}", stored)
    wanted = archive_names(info)
    parts = {p.location: p for e in info.collections.values() for p in e.stored_parts()}
    extra = sorted(set(members) - set(wanted.values()) - {manifest_name})
    if extra:
        raise ArchiveRefused(f"the archive holds {', '.join(extra)}, which the manifest does not list")
    missing = sorted(set(wanted.values()) - set(members))
    if missing:
        raise ArchiveRefused(f"the archive lacks {', '.join(missing)}, which the manifest lists")
    by_location = {}
    for location, name in wanted.items():
        if members[name].file_size != parts[location].stored_bytes:
            raise IntegrityError(f"{name} is {members[name].file_size} bytes in the archive but "
                                 f"{parts[location].stored_bytes} in the manifest (tampered or damaged)")
        by_location[location] = members[name]
    return info, by_location


def _members(zf: zipfile.ZipFile, limit: int) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The archive's one backup folder and its entries by file name, refusing any unsafe entry."""
    infos = zf.infolist()
    if not infos:
        raise ArchiveRefused("the archive is empty")
    if len(infos) > MAX_ENTRIES:
        raise ArchiveRefused(f"the archive has {len(infos)} entries; a backup has far fewer")
    bomb_limit = BOMB_FACTOR * limit
    declared = sum(i.file_size for i in infos)
    if declared > bomb_limit:
        raise ArchiveRefused(f"the archive would unpack to {_mb(declared)}, more than {_mb(bomb_limit)} "
                             f"({BOMB_FACTOR}x the import limit): refused as a possible zip bomb")
    seen: set[str] = set()
    members: dict[str, zipfile.ZipInfo] = {}
    top: str | None = None
    for info in infos:
        name = info.filename
        problem = _entry_problem(name)
        if problem:
            raise ArchiveRefused(f"unsafe entry {name!r}: it {problem}")
        if name in seen:
            raise ArchiveRefused(f"the archive holds {name!r} twice")
        seen.add(name)
        parts = name.rstrip("/").split("/")
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise ArchiveRefused(f"entry {name!r} is outside the backup folder {top}/: "
                                 "an archive holds exactly one backup")
        _check_entry_kind(info, parts)
        if not info.is_dir():
            members[parts[1]] = info
    if top is None or not ID_RE.match(top):
        raise ArchiveRefused(f"the archive's folder {top!r} is not a backup id")
    return top, members


def _check_entry_kind(info: zipfile.ZipInfo, parts: list[str]) -> None:
    name = info.filename
    ftype = stat.S_IFMT(info.external_attr >> 16)
    if ftype == stat.S_IFLNK:
        raise ArchiveRefused(f"entry {name!r} is a symbolic link")
    if info.is_dir():
        if len(parts) != 1:
            raise ArchiveRefused(f"entry {name!r} is a nested folder")
        return  # the backup folder itself, as some zip tools add it
    if ftype not in (0, stat.S_IFREG):
        raise ArchiveRefused(f"entry {name!r} is not a regular file")
    if len(parts) != 2:
        raise ArchiveRefused(f"entry {name!r} is not directly inside the backup folder "
                             "(nested folders are refused)" if len(parts) > 2 else
                             f"entry {name!r} is not inside a backup folder")
    if info.flag_bits & 0x1:
        raise ArchiveRefused(f"entry {name!r} is encrypted")
    if info.compress_type not in _ALLOWED_METHODS:
        raise ArchiveRefused(f"entry {name!r} uses an unsupported compression method")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    buf = bytearray()
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                buf += chunk
                if len(buf) > cap or len(buf) > info.file_size:
                    raise ArchiveRefused(f"entry {info.filename!r} is larger than it declares or allows")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ArchiveRefused(f"entry {info.filename!r} is damaged: {exc}") from None
    return bytes(buf)


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, part: Part, out: BinaryIO, budget: list[int]) -> None:
    """Unpack one entry into ``out``, counting every byte: the central directory can lie, the inflated
    bytes cannot (``budget``: what the whole archive may still inflate to)."""
    n = 0
    try:
        with zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                n += len(chunk)
                budget[0] -= len(chunk)
                if n > part.stored_bytes or budget[0] < 0:
                    raise ArchiveRefused(f"entry {info.filename!r} inflates beyond its declared size: "
                                         "refused as a possible zip bomb")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ArchiveRefused(f"entry {info.filename!r} is damaged: {exc}") from None
