"""Moving backups between environments: one zip file out, one verified zip file in.

Export writes ``<backup_id>/manifest.json`` and ``<backup_id>/<file>`` for
every file the manifest lists, with the exact bytes on disk (the manifest is
never rewritten, so its hash still holds on the other side). Each data file
is hashed while it is zipped and must match the manifest, so a damaged
backup is never shipped.

Import treats the archive as hostile until proven otherwise:

1. size: the archive may not exceed ``max_bytes`` (default 100 MB, env
   ``BACKUP_IMPORT_MAX_MB``), and neither the uncompressed total declared in
   the central directory nor the bytes actually inflated may exceed
   ``BOMB_FACTOR`` times that;
2. shape: exactly one folder named like a backup id, holding only
   ``manifest.json`` and the files the manifest lists; no absolute paths,
   ``..``, backslashes, nested folders, links or other special entries,
   duplicate names, encrypted or exotically compressed entries;
3. content: the manifest must parse and match its own hash, every file its
   size and sha256, and ``Store.verify`` (deep: every row decoded) must pass
   on the extracted copy;
4. commit: each file is extracted to a private temporary folder, checked
   (size, sha256, every row decoded, keys unique as MongoDB sees them), then
   copied into the store's staging area; the manifest is committed last with
   its exact bytes, so the backup appears complete or not at all. An existing
   backup with that id is never replaced; a byte-identical one is reported as
   already present.

Both run as audited operations (``operation.py``); the import holds the
store's lock, the export only reads. Only the store knows where files live.
"""

from __future__ import annotations

import hashlib
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
from .store import ID_RE, MANIFEST, WEEKDAYS, BackupInfo, Manifest, Store, check_collection, day_for
from .store.crypto import DecryptingReader, Keyring, decrypt_bytes, is_encrypted
from .store.layout import MANIFEST_ENC
from .store.csvfile import CountingWriter
from .store.manifest import MAX_MANIFEST_BYTES

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


def export_backup(store: Store, backup_id: str, out: Path | str | BinaryIO,
                  user: str = "unknown") -> ExportResult:
    """Write backup ``backup_id`` as one zip to ``out`` (a path, replaced atomically, or a stream)."""
    to_path = isinstance(out, (str, os.PathLike))
    with operation(store, "export", user=user, lock=False,
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


def _write_zip(store: Store, info: BackupInfo, fh) -> tuple[int, list[str]]:
    bid = info.backup_id
    when = _zip_time(info.created_at)
    files: list[str] = []
    # the bytes we ship must be the manifest we validated, not a later edit
    manifest_bytes = store.manifest_bytes(info)
    manifest_name = store.manifest_name(info)
    if info.encrypted:
        # stored bytes are ciphertext: prove they decrypt to what the manifest says before shipping them
        store.require_verified(bid)
    try:
        with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
            zf.writestr(_member(f"{bid}/{manifest_name}", when, zipfile.ZIP_DEFLATED), manifest_bytes)
            files.append(manifest_name)
            for name, entry in info.collections.items():
                # gzip and ciphertext do not shrink again; deflating them only costs time
                method = zipfile.ZIP_STORED if entry.compressed or info.encrypted else zipfile.ZIP_DEFLATED
                h = hashlib.sha256()
                n = 0
                with store.open_stored(info, name) as sf, \
                        zf.open(_member(f"{bid}/{entry.file}", when, method), "w",
                                force_zip64=entry.stored_bytes > (1 << 31)) as zo:
                    while chunk := sf.read(_CHUNK):
                        h.update(chunk)
                        n += len(chunk)
                        zo.write(chunk)
                if n != entry.stored_bytes or (not info.encrypted and h.hexdigest() != entry.sha256):
                    raise IntegrityError(f"backup {bid} does not verify: {name}: "
                                         f"{entry.file} differs from its manifest; not exported")
                files.append(entry.file)
        size = fh.tell() if hasattr(fh, "seekable") and fh.seekable() else getattr(fh, "bytes", 0)
    except OSError as exc:
        raise StorageError(f"cannot read backup {bid}: {exc.strerror or exc}") from None
    return size, files


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
            bid, members, manifest, stored_manifest = _check_archive(zf, limit, store.keyring)
            day = _day(manifest)
            collections = {n: {"count": e.count, "sha256": e.sha256} for n, e in manifest.collections.items()}
            if store.exists(bid):
                existing = store.get(bid)
                same = existing.stored_manifest == stored_manifest and store.verify(bid, deep=False).ok
                if not same:
                    raise ArchiveRefused(f"a different backup with id {bid} already exists in "
                                         f"{existing.location}; it is not replaced")
                return ImportResult(bid, existing.location, collections, existing.day, True, size)
            with tempfile.TemporaryDirectory(prefix="backup-import-") as tmp:
                extracted = _extract(zf, members, manifest, Path(tmp), limit, store.keyring)
                writer = store.begin(bid, day)
                try:
                    for entry in manifest.collections.values():
                        with writer.open_raw(entry.file) as out, extracted[entry.file].open("rb") as src:
                            while chunk := src.read(_CHUNK):
                                out.write(chunk)
                    writer.commit_manifest(manifest, stored_manifest)
                except OSError as exc:
                    writer.abort()
                    raise StorageError(f"cannot write the imported backup to {store.url}: "
                                       f"{exc.strerror or exc}") from None
                except BaseException:
                    writer.abort()
                    raise
            return ImportResult(bid, store.location(day, bid), collections, day, False, size)


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


def _check_archive(zf: zipfile.ZipFile, limit: int, keyring: Keyring) -> tuple[str, dict, Manifest, bytes]:
    """Everything that can be judged from the central directory and the manifest."""
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
        mode = info.external_attr >> 16
        ftype = stat.S_IFMT(mode)
        if ftype == stat.S_IFLNK:
            raise ArchiveRefused(f"entry {name!r} is a symbolic link")
        if info.is_dir():
            if len(parts) != 1:
                raise ArchiveRefused(f"entry {name!r} is a nested folder")
            continue  # the backup folder itself, as some zip tools add it
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
        members[parts[1]] = info
    if top is None or not ID_RE.match(top):
        raise ArchiveRefused(f"the archive's folder {top!r} is not a backup id")
    names = [n for n in (MANIFEST, MANIFEST_ENC) if n in members]
    if len(names) != 1:
        raise ArchiveRefused(f"the archive has no {top}/{MANIFEST}" if not names
                             else "the archive holds two manifests")
    manifest_name = names[0]
    stored = _read_member(zf, members[manifest_name], MAX_MANIFEST_BYTES)
    plain = decrypt_bytes(stored, keyring, f"backup {top} in the archive") if is_encrypted(stored) else stored
    manifest = Manifest.parse(plain, backup_id=top)
    if (manifest_name == MANIFEST_ENC) != is_encrypted(stored) or \
            (manifest.encryption is not None) != is_encrypted(stored):
        raise ArchiveRefused("the archive's manifest is not stored the way it says it is")
    expected = {entry.file: (name, entry) for name, entry in manifest.collections.items()}
    extra = sorted(set(members) - set(expected) - {manifest_name})
    if extra:
        raise ArchiveRefused(f"the archive holds {', '.join(extra)}, which the manifest does not list")
    missing = sorted(set(expected) - set(members))
    if missing:
        raise ArchiveRefused(f"the archive lacks {', '.join(missing)}, which the manifest lists")
    for file_name, (coll, entry) in expected.items():
        if members[file_name].file_size != entry.stored_bytes:
            raise IntegrityError(f"{file_name} is {members[file_name].file_size} bytes in the archive but "
                                 f"{entry.stored_bytes} in the manifest (tampered or damaged)")
    return top, members, manifest, stored


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


def _day(manifest: Manifest) -> str:
    day = manifest.day_of_week
    if day in WEEKDAYS:
        return day
    return day_for(manifest.created)


def _extract(zf: zipfile.ZipFile, members: dict, manifest: Manifest, folder: Path,
             limit: int, keyring: Keyring) -> dict[str, Path]:
    """Unpack every data file into ``folder``, counting every byte, and check each (see module doc)."""
    budget = BOMB_FACTOR * limit
    written = 0
    out_paths: dict[str, Path] = {}
    for coll, entry in manifest.collections.items():
        info = members[entry.file]
        h = hashlib.sha256()
        n = 0
        target = folder / entry.file
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while chunk := src.read(_CHUNK):
                    n += len(chunk)
                    written += len(chunk)
                    # the central directory can lie; the inflated bytes cannot
                    if n > entry.stored_bytes or written > budget:
                        raise ArchiveRefused(f"entry {info.filename!r} inflates beyond its declared size: "
                                             "refused as a possible zip bomb")
                    h.update(chunk)
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise ArchiveRefused(f"entry {info.filename!r} is damaged: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot unpack {entry.file}: {exc.strerror or exc}") from None
        if n != entry.stored_bytes or (manifest.encryption is None and h.hexdigest() != entry.sha256):
            raise IntegrityError(f"{entry.file} does not match its sha256 in the manifest "
                                 f"(collection {coll}: tampered or damaged); nothing imported")

        def opener(t=target, c=coll):
            raw = t.open("rb")
            if manifest.encryption is None:
                return raw
            return io.BufferedReader(DecryptingReader(raw, keyring, f"backup {manifest.backup_id}, {c}"))

        status, _warnings = check_collection(entry, opener, deep=True)
        if status != "ok":
            raise IntegrityError(f"backup {manifest.backup_id} in the archive does not verify: {coll}: {status}; "
                                 "nothing imported",
                                 payload={"backup_id": manifest.backup_id, "ok": False,
                                          "problems": [f"{coll}: {status}"]})
        out_paths[entry.file] = target
    return out_paths
