"""Snapshot storage: day-of-week folders, manifests, atomic commits, listing, verify.

Layout (docs/FORMAT.md)::

    <root>/<weekday>/<backup_id>/<collection>.csv[.gz]
    <root>/<weekday>/<backup_id>/manifest.json        written last

A backup is written into ``<root>/<weekday>/.tmp-<backup_id>-<pid>/`` and
renamed into place only when complete, ``manifest.json`` being the last file
written. A folder without a valid manifest is not a backup: it is never
listed, verified or restored. All storage access goes through ``Store`` so a
different backend (an object store) can replace the local folder.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from . import codec
from .errors import BackupNotFound, CodecError, FormatError, IntegrityError, StorageError, UsageError
from .locks import pid_alive

FORMAT_VERSION = codec.FORMAT_VERSION
MANIFEST = "manifest.json"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{2,4})?$")
TRIGGERS = ("manual", "scheduled", "safety")
_SAFE_CHARS = re.compile(r"[A-Za-z0-9_\-]")


def backup_id_for(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def day_for(when: datetime) -> str:
    return WEEKDAYS[when.astimezone(timezone.utc).weekday()]


def check_backup_id(backup_id: str) -> str:
    if not isinstance(backup_id, str) or not ID_RE.match(backup_id):
        raise UsageError(f"invalid backup id {backup_id!r}: expected a UTC timestamp like 20261124T143022Z")
    return backup_id


def file_name_for(collection: str, compressed: bool) -> str:
    """A safe, reversible file name for a collection (no separators, no leading dot)."""
    out = []
    for i, ch in enumerate(collection):
        if _SAFE_CHARS.match(ch) or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out) + (".csv.gz" if compressed else ".csv")


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_hash(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingWriter(io.RawIOBase):
    """Passes bytes through to a file while counting them and hashing them."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        n = self._fh.write(b)
        self.sha256.update(memoryview(b)[:n])
        self.bytes += n
        return n


@dataclass
class BackupInfo:
    """A committed backup, as listed: its manifest plus where it lives."""

    backup_id: str
    day: str
    path: Path
    manifest: dict = field(repr=False)

    @property
    def created_at(self) -> str:
        return self.manifest["created_at"]

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))

    @property
    def trigger(self) -> str:
        return self.manifest.get("trigger", "manual")

    @property
    def database(self) -> str:
        return self.manifest.get("database", "")

    @property
    def collections(self) -> dict[str, dict]:
        return self.manifest["collections"]

    @property
    def absent_collections(self) -> list[str]:
        """Collections that did not exist when this backup was taken (safety backups record them,
        so that restoring one also removes what the restore had created)."""
        return list(self.manifest.get("absent_collections") or [])

    @property
    def total_bytes(self) -> int:
        return sum(c.get("bytes", 0) for c in self.collections.values())

    @property
    def total_documents(self) -> int:
        return sum(c.get("count", 0) for c in self.collections.values())

    def schema(self, collection: str) -> codec.Schema:
        return codec.Schema.from_json(self.collection(collection)["schema"])

    def collection(self, name: str) -> dict:
        try:
            return self.collections[name]
        except KeyError:
            raise UsageError(f"backup {self.backup_id} has no collection {name!r}; "
                             f"it has {', '.join(sorted(self.collections)) or 'none'}") from None

    def to_json(self) -> dict:
        return {
            "backup_id": self.backup_id,
            "day": self.day,
            "created_at": self.created_at,
            "trigger": self.trigger,
            "database": self.database,
            "path": str(self.path),
            "bytes": self.total_bytes,
            "collections": {n: {"count": c["count"], "bytes": c["bytes"]} for n, c in self.collections.items()},
        }


def parse_manifest(data: bytes, *, folder_name: str | None = None) -> dict:
    """Parse and validate a manifest; raises FormatError/IntegrityError with the reason."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise FormatError("manifest is not a JSON object")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError("manifest has no format_version")
    if version > FORMAT_VERSION:
        raise FormatError(f"backup uses format version {version}; this program reads up to "
                          f"version {FORMAT_VERSION}", hint="upgrade the backup tool")
    if version < 1:
        raise FormatError(f"unknown format version {version}")
    if manifest.get("manifest_sha256") != manifest_hash(manifest):
        raise IntegrityError("manifest does not match its recorded hash (edited or corrupted)")
    for key in ("backup_id", "created_at", "database", "trigger", "collections"):
        if key not in manifest:
            raise FormatError(f"manifest lacks {key!r}")
    if not ID_RE.match(str(manifest["backup_id"])):
        raise FormatError(f"manifest has an invalid backup_id {manifest['backup_id']!r}")
    if folder_name is not None and manifest["backup_id"] != folder_name:
        raise FormatError(f"manifest names backup {manifest['backup_id']} but lives in folder {folder_name}")
    if not isinstance(manifest["collections"], dict):
        raise FormatError("manifest collections must be an object")
    for name, entry in manifest["collections"].items():
        if not isinstance(entry, dict):
            raise FormatError(f"manifest entry for {name!r} is not an object")
        expected = file_name_for(name, bool(entry.get("compressed")))
        if entry.get("file") != expected:
            # also refuses '../x', '/etc/passwd' and any other path
            raise FormatError(f"manifest names file {entry.get('file')!r} for collection {name!r}; "
                              f"expected {expected!r}")
        for key, kind in (("count", int), ("bytes", int), ("sha256", str), ("schema", dict)):
            if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
                raise FormatError(f"manifest entry for {name!r} lacks a valid {key!r}")
        codec.Schema.from_json(entry["schema"])
    absent = manifest.get("absent_collections", [])
    if not isinstance(absent, list) or not all(isinstance(n, str) and n for n in absent):
        raise FormatError("manifest absent_collections must be a list of collection names")
    if set(absent) & set(manifest["collections"]):
        raise FormatError("manifest lists a collection both as backed up and as absent")
    return manifest


@dataclass
class VerifyResult:
    backup_id: str
    ok: bool
    collections: dict[str, dict]
    problems: list[str]

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "ok": self.ok, "collections": self.collections,
                "problems": self.problems}

    def to_text(self) -> str:
        lines = [f"backup {self.backup_id}: {'OK' if self.ok else 'FAILED'}"]
        for name, c in self.collections.items():
            lines.append(f"  {name}: {c.get('count')} documents, {c.get('status')}")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


class BackupWriter:
    """Writes one backup into a temporary folder; ``commit`` makes it visible atomically."""

    def __init__(self, store: "Store", backup_id: str, day: str) -> None:
        self.store = store
        self.backup_id = backup_id
        self.day = day
        self.final = store.root / day / backup_id
        self.tmp = store.root / day / f".tmp-{backup_id}-{os.getpid()}"
        try:
            self.tmp.mkdir(parents=True)
        except OSError as exc:
            raise StorageError(f"cannot write to backup root {store.root}: {exc.strerror}") from None

    def path_for(self, file_name: str) -> Path:
        return self.tmp / file_name

    def commit(self, manifest: dict) -> Path:
        manifest = dict(manifest)
        manifest["manifest_sha256"] = manifest_hash(manifest)
        data = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        parse_manifest(data, folder_name=self.backup_id)  # never commit what we could not read back
        for f in self.tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        with (self.tmp / MANIFEST).open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.tmp)
        if self.final.exists():
            raise StorageError(f"backup {self.backup_id} already exists")
        os.rename(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Store:
    """The local-folder backup store."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---- listing
    def _candidate_dirs(self) -> Iterator[tuple[str, Path]]:
        for day in WEEKDAYS:
            d = self.root / day
            if not d.is_dir():
                continue
            for entry in d.iterdir():
                if ID_RE.match(entry.name) and entry.is_dir():
                    yield day, entry

    def _load(self, day: str, path: Path) -> BackupInfo:
        try:
            data = (path / MANIFEST).read_bytes()
        except FileNotFoundError:
            raise FormatError(f"{path} has no manifest (an incomplete backup)") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path / MANIFEST}: {exc.strerror}") from None
        manifest = parse_manifest(data, folder_name=path.name)
        return BackupInfo(manifest["backup_id"], day, path, manifest)

    def list_backups(self, *, errors: list[str] | None = None) -> list[BackupInfo]:
        """Every committed, readable backup, newest first. Unreadable folders go to ``errors``."""
        out = []
        for day, path in self._candidate_dirs():
            try:
                out.append(self._load(day, path))
            except (FormatError, IntegrityError, StorageError) as exc:
                if errors is not None:
                    errors.append(f"{path.relative_to(self.root)}: {exc}")
        out.sort(key=lambda b: (b.created_at, b.backup_id), reverse=True)
        return out

    def get(self, backup_id: str) -> BackupInfo:
        check_backup_id(backup_id)
        for day in WEEKDAYS:
            path = self.root / day / backup_id
            if path.is_dir():
                return self._load(day, path)
        raise BackupNotFound(f"no backup with id {backup_id} in {self.root}",
                             hint="run `python -m backup_core list` to see the backups")

    def exists(self, backup_id: str) -> bool:
        return any((self.root / day / backup_id).exists() for day in WEEKDAYS)

    def new_backup_id(self, when: datetime) -> str:
        base = backup_id_for(when)
        if not self.exists(base):
            return base
        for n in range(1, 10000):
            candidate = f"{base}-{n:02d}"
            if not self.exists(candidate):
                return candidate
        raise StorageError("too many backups within one second")

    def writer(self, backup_id: str, day: str) -> BackupWriter:
        return BackupWriter(self, backup_id, day)

    def delete(self, backup_id: str) -> None:
        info = self.get(backup_id)
        # rename first so the backup disappears atomically, then remove the files
        trash = info.path.parent / f".trash-{backup_id}-{os.getpid()}"
        try:
            os.rename(info.path, trash)
        except OSError as exc:
            raise StorageError(f"cannot delete backup {backup_id}: {exc.strerror}") from None
        shutil.rmtree(trash, ignore_errors=True)

    def sweep_temporaries(self, *, is_alive: Callable[[int], bool] | None = None) -> list[Path]:
        """Remove temporary folders left by killed writers (call under the root lock)."""
        removed = []
        alive = is_alive or pid_alive
        for day in WEEKDAYS:
            d = self.root / day
            if not d.is_dir():
                continue
            for entry in d.iterdir():
                m = re.match(r"^\.(tmp|trash)-.*-(\d+)$", entry.name)
                if m and (m.group(1) == "trash" or not alive(int(m.group(2)))):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
        return removed

    def disk_usage(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    # ---- reading files
    def open_rows(self, info: BackupInfo, collection: str) -> "RowReader":
        return RowReader(info, collection)

    def iter_documents(self, info: BackupInfo, collection: str) -> Iterator[bytes]:
        """Raw BSON documents of one collection, in backup order, strictly decoded."""
        with self.open_rows(info, collection) as rows:
            decoder = codec.RowDecoder(rows.schema)
            for row in rows:
                try:
                    yield decoder.decode(row)
                except CodecError as exc:
                    raise CodecError(f"{collection}, row {rows.line}: {exc}") from None

    def file_sha256(self, info: BackupInfo, collection: str) -> str:
        entry = info.collection(collection)
        h = hashlib.sha256()
        with (info.path / entry["file"]).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def verify(self, backup_id: str, *, deep: bool = True,
               collections: list[str] | None = None) -> VerifyResult:
        """Recompute every hash; with ``deep`` also decode every row and check counts."""
        info = self.get(backup_id)
        problems: list[str] = []
        result: dict[str, dict] = {}
        expected = {c["file"] for c in info.collections.values()} | {MANIFEST}
        actual = {p.name for p in info.path.iterdir()}
        for extra in sorted(actual - expected):
            problems.append(f"unexpected file {extra}")
        names = collections or list(info.collections)
        for name in names:
            entry = info.collection(name)
            status = "ok"
            path = info.path / entry["file"]
            if not path.is_file() or path.is_symlink():
                status = "missing file"
            elif path.stat().st_size != entry["bytes"]:
                status = f"size {path.stat().st_size} != {entry['bytes']} in manifest"
            elif self.file_sha256(info, name) != entry["sha256"]:
                status = "sha256 mismatch"
            elif deep:
                try:
                    count, duplicate = _count_and_check_ids(self.iter_documents(info, name))
                    if count != entry["count"]:
                        status = f"{count} documents, manifest says {entry['count']}"
                    elif duplicate is not None:
                        status = f"_id {duplicate} occurs more than once"
                except (FormatError, StorageError) as exc:
                    status = f"unreadable: {exc}"
            if status != "ok":
                problems.append(f"{name}: {status}")
            result[name] = {"count": entry["count"], "sha256": entry["sha256"], "status": status}
        return VerifyResult(backup_id, not problems, result, problems)

    def require_verified(self, backup_id: str, collections: list[str] | None = None) -> BackupInfo:
        res = self.verify(backup_id, deep=False, collections=collections)
        if not res.ok:
            raise IntegrityError(f"backup {backup_id} does not verify: {'; '.join(res.problems)}",
                                 hint="it was changed or damaged after it was written; pick another backup")
        return self.get(backup_id)


def _count_and_check_ids(docs: Iterator[bytes]) -> tuple[int, str | None]:
    """Count documents and find the first repeated ``_id`` (compared as exact BSON bytes).

    Only a 16-byte digest per document is kept, so memory stays small for large collections.
    """
    seen: set[bytes] = set()
    count = 0
    duplicate = None
    for raw in docs:
        count += 1
        if duplicate is not None:
            continue
        for t, name, vs, ve in codec.iter_elements(raw, 0):
            if name == "_id":
                digest = hashlib.blake2b(bytes((t,)) + raw[vs:ve], digest_size=16).digest()
                if digest in seen:
                    duplicate = codec.value_to_json_text(t, raw, vs, ve)
                seen.add(digest)
                break
    return count, duplicate


class RowReader:
    """Iterates the data rows of one CSV file, checking encoding and header."""

    def __init__(self, info: BackupInfo, collection: str) -> None:
        entry = info.collection(collection)
        self.collection = collection
        self.schema = codec.Schema.from_json(entry["schema"])
        self.path = info.path / entry["file"]
        self.compressed = bool(entry.get("compressed"))
        self.line = 1
        self._fh: Any = None

    def __enter__(self) -> "RowReader":
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise FormatError(f"cannot open {self.path.name}: {exc.strerror}") from None
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw
        self._raw = raw
        try:
            head = stream.peek(3)[:3] if hasattr(stream, "peek") else b""
        except (OSError, EOFError) as exc:
            raw.close()
            raise FormatError(f"{self.path.name}: {exc}") from None
        if head == b"\xef\xbb\xbf":
            raw.close()
            raise FormatError(f"{self.path.name} starts with a byte-order mark; backup files are plain UTF-8")
        self._fh = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
        self._reader = csv.reader(self._fh, strict=True)
        header = self._next()
        if header is None or header != self.schema.header():
            self.close()
            raise FormatError(f"{self.path.name}: header does not match the manifest's columns")
        return self

    def _next(self) -> list[str] | None:
        try:
            row = next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise FormatError(f"{self.path.name}: not valid UTF-8 near line {self.line}") from None
        except csv.Error as exc:
            raise FormatError(f"{self.path.name}, line {self.line}: {exc}") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise FormatError(f"{self.path.name}: damaged file ({exc})") from None
        self.line += 1
        return row

    def __iter__(self) -> Iterator[list[str]]:
        while (row := self._next()) is not None:
            yield row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._raw.close()

    def __exit__(self, *exc) -> None:
        self.close()
