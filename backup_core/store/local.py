"""The local-folder store: ``<root>/<weekday>/<backup_id>/`` with one file per collection.

A backup is written into ``<root>/<day>/.tmp-<id>-<pid>/``, ``manifest.json``
last, every file and the folder ``fsync``ed, then renamed to
``<root>/<day>/<id>`` (atomic). Deleting renames to ``.trash-<id>-<pid>``
first, so a backup disappears at once too. ``sweep`` removes the temporaries
of dead writers and every ``.trash-*``. Links are refused: a backup folder,
weekday folder, manifest or data file that is a symbolic link (or not a plain
file) is never read, listed as a backup, verified or restored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from ..audit import FileAuditLog, audit_path
from ..errors import IncompleteBackup, IntegrityError, StorageError
from ..fsutil import O_NOFOLLOW, atomic_write, fsync_dir
from ..locks import DEFAULT_TIMEOUT, process_alive, root_lock
from .base import Staging, Store
from .crypto import Keyring
from .layout import ID_RE, MANIFEST, MANIFEST_ENC, WEEKDAYS
from .manifest import MAX_MANIFEST_BYTES

_TEMP_RE = re.compile(r"^\.(tmp|trash)-(.*)-(\d+)$")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    return "file" if stat.S_ISREG(mode) else "other"


def open_regular(path: Path) -> BinaryIO:
    """Open a plain file for reading, refusing links, FIFOs and devices (IntegrityError)."""
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(exc.errno, exc.strerror, str(path)) from None
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"{path.name} is a symbolic link, not a file; refused") from None
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IntegrityError(f"{path.name} is not a plain file; refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=1 << 16)


class _LocalStaging(Staging):
    def __init__(self, store: "LocalStore", backup_id: str, day: str) -> None:
        self.final = store.root / day / backup_id
        self.tmp = store.root / day / f".tmp-{backup_id}-{os.getpid()}"
        try:
            store._day_dir(day, create=True)
            self.tmp.mkdir()
        except FileExistsError:
            raise StorageError(f"backup {backup_id} is already being written by this process") from None
        except OSError as exc:
            raise StorageError(f"cannot write to backup root {store.root}: {exc.strerror}") from None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        path = self.tmp / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    def scratch(self, name: str) -> Path:
        return self.tmp / f".{name}"

    def reuse(self, name: str, ref: object) -> tuple[bool, str | None]:
        """A hard link to the earlier backup's file: every folder keeps a readable file, stored once."""
        target = self.tmp / name
        spare = self.tmp / f".{name}.copy"
        try:
            os.rename(target, spare)
            os.link(ref, target, follow_symlinks=False)  # type: ignore[arg-type]
        except OSError:
            if spare.exists() and not target.exists():
                os.rename(spare, target)  # another filesystem, no links: keep the copy
            return False, None
        spare.unlink(missing_ok=True)
        return True, None

    def commit(self, name: str, data: bytes) -> None:
        with (self.tmp / name).open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.tmp)
        if self.final.exists() or self.final.is_symlink():
            raise StorageError(f"backup {self.final.name} already exists")
        os.rename(self.tmp, self.final)
        fsync_dir(self.final.parent)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class LocalStore(Store):
    """Backups in a folder of the local filesystem."""

    def __init__(self, root: Path | str, keyring: Keyring | None = None) -> None:
        self.root = Path(root)
        if keyring is not None:
            self.keyring = keyring

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def url(self) -> str:
        return str(self.root)

    def folder(self, backup_id: str) -> Path:
        """The folder of a committed backup (for local tools and tests; the product reads through the store)."""
        info = self.get(backup_id)
        return self.root / info.day / backup_id

    def location(self, day: str, backup_id: str) -> str:
        return str(self.root / day / backup_id)

    def _day_dir(self, day: str, create: bool = False) -> Path | None:
        d = self.root / day
        try:
            mode = os.lstat(d).st_mode
        except FileNotFoundError:
            if not create:
                return None
            d.mkdir(parents=True, exist_ok=True)
            return d
        if stat.S_ISLNK(mode):
            raise IntegrityError(f"weekday folder {d} is a symbolic link; refused")
        return d if stat.S_ISDIR(mode) else None

    # ---- primitives
    def _candidates(self) -> Iterator[tuple[str, str, str | None]]:
        for day in WEEKDAYS:
            try:
                d = self._day_dir(day)
            except IntegrityError:
                for name in _listdir(self.root / day):
                    if ID_RE.match(name):
                        yield day, name, "is inside a weekday folder that is a symbolic link"
                continue
            if d is None:
                continue
            for name in _listdir(d):
                if not ID_RE.match(name):
                    continue
                try:
                    mode = os.lstat(d / name).st_mode
                except OSError:
                    continue
                if stat.S_ISLNK(mode):
                    yield day, name, "is a symbolic link, not a backup folder"
                elif stat.S_ISDIR(mode):
                    yield day, name, None

    def _find(self, backup_id: str) -> tuple[str, str | None] | None:
        for day in WEEKDAYS:
            path = self.root / day / backup_id
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if os.path.islink(self.root / day):
                return day, "is inside a weekday folder that is a symbolic link"
            if stat.S_ISLNK(mode):
                return day, "is a symbolic link, not a backup folder"
            if stat.S_ISDIR(mode):
                return day, None
        return None

    def _read_manifest(self, day: str, backup_id: str) -> bytes:
        folder = self.root / day / backup_id
        path = folder / MANIFEST
        if not os.path.lexists(path) and os.path.lexists(folder / MANIFEST_ENC):
            path = folder / MANIFEST_ENC
        try:
            with open_regular(path) as fh:
                data = fh.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise IncompleteBackup(f"{path.parent} has no manifest (an incomplete backup)") from None
        except IntegrityError as exc:
            raise IntegrityError(f"{path.parent}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        return data

    def _open(self, day: str, backup_id: str, name: str) -> BinaryIO:
        return open_regular(self.root / day / backup_id / name)

    def _entries(self, day: str, backup_id: str) -> dict[str, tuple[str, int]]:
        folder = self.root / day / backup_id
        out = {}
        for name in _listdir(folder):
            try:
                st = os.lstat(folder / name)
            except OSError:
                continue
            out[name] = (_kind(st.st_mode), st.st_size)
        return out

    def _stage(self, backup_id: str, day: str) -> Staging:
        return _LocalStaging(self, backup_id, day)

    def _stored_ref(self, info, entry) -> Path:
        return self.root / info.day / info.backup_id / entry.file

    def _object_path(self, ref: str) -> Path:
        day, backup_id, _name = ref.split("/")
        if os.path.islink(self.root / day) or os.path.islink(self.root / day / backup_id):
            raise IntegrityError(f"{ref} lies in a folder that is a symbolic link; refused")
        return self.root / ref

    def _open_object(self, ref: str) -> BinaryIO:
        return open_regular(self._object_path(ref))

    def _stat_object(self, ref: str) -> tuple[str, int] | None:
        try:
            st = os.lstat(self._object_path(ref))
        except (OSError, IntegrityError):
            return None
        return _kind(st.st_mode), st.st_size

    def _remove(self, day: str, backup_id: str) -> None:
        path = self.root / day / backup_id
        trash = path.parent / f".trash-{backup_id}-{os.getpid()}"
        try:
            os.rename(path, trash)  # the backup disappears at once, then its files go
        except OSError as exc:
            raise StorageError(f"cannot delete backup {backup_id}: {exc.strerror}") from None
        fsync_dir(path.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def lock(self, operation: str, timeout: float = DEFAULT_TIMEOUT, *, exclusive: bool = True):
        return root_lock(self.root, operation, timeout)

    def state(self, area: str) -> "LocalStateFiles":
        return LocalStateFiles(self.root / f".{area}")

    def change_token(self) -> object:
        # creating, renaming or deleting a backup folder changes its weekday folder's mtime
        sig = []
        for day in WEEKDAYS:
            try:
                sig.append(os.stat(self.root / day).st_mtime_ns)
            except OSError:
                sig.append(None)
        return tuple(sig)

    def audit_log(self) -> AuditLog:
        return FileAuditLog(audit_path(self.root), self.keyring)

    def _temporaries(self) -> Iterator[tuple[Path, bool]]:
        """(path, removable now) of every temporary folder."""
        for day in WEEKDAYS:
            d = self.root / day
            if os.path.islink(d) or not d.is_dir():
                continue
            for name in _listdir(d):
                m = _TEMP_RE.match(name)
                if m:
                    yield d / name, m.group(1) == "trash" or not process_alive(int(m.group(3)))

    def sweep(self) -> list[str]:
        removed = []
        for path, dead in self._temporaries():
            if dead:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
        return removed

    def leftovers(self) -> list[str]:
        return [str(p) for p, dead in self._temporaries() if dead]

    def usage(self) -> int:
        """Bytes the backups take on disk (data shared by several backups counted once)."""
        total = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, _dirs, files in (w for day in WEEKDAYS if not os.path.islink(self.root / day)
                                      for w in os.walk(self.root / day)):
            for f in files:
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue  # a hard link to data counted already
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
        return total


class LocalStateFiles:
    """Small private files in ``<root>/.<area>/``, replaced atomically (mode 0600), under a ``filelock``."""

    LOCK_TIMEOUT_S = 30.0

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def where(self, name: str = "") -> str:
        return str(self.folder / name) if name else str(self.folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        from filelock import FileLock, Timeout

        from ..errors import LockBusy

        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot open {self.folder}: {exc.strerror}") from None
        lock = FileLock(str(self.folder / ".lock"), timeout=self.LOCK_TIMEOUT_S if timeout is None else timeout,
                        mode=0o600, thread_local=True)
        try:
            with lock:
                yield
        except Timeout:
            raise LockBusy(f"{self.folder} is locked by another process for more than "
                           f"{lock.timeout:g}s", hint="try again in a moment") from None

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.folder / name}: {exc.strerror}") from None

    def write(self, name: str, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.folder / name, data, mode=0o600)
        except OSError as exc:
            raise StorageError(f"cannot write {self.folder / name}: {exc.strerror}") from None

    def remove(self, name: str) -> bool:
        try:
            (self.folder / name).unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot delete {self.folder / name}: {exc.strerror}") from None

    def exists(self) -> bool:
        return self.folder.is_dir()

    def signature(self, name: str) -> tuple:
        """Changes whenever the file does (cheap: one stat)."""
        try:
            st = os.stat(self.folder / name)
        except OSError:
            return (name, None)
        return (name, st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
