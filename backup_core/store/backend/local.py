"""The local-folder backend: every blob is a file under the root, private to the owner.

``save`` writes a temporary file in ``<root>/tmp/``, ``fsync``s it and
hard-links it to its name, which fails if the name exists: create-if-absent
is atomic, and a reader never sees half a file. A source that already is a
file in ``<root>/tmp/`` (a spooled data object) is linked without a copy.
Folders are created ``0700`` and files ``0600``: backups hold the
application's data.

Links are refused: a blob, or any folder on the way to it, that is a
symbolic link is never read, listed or written through (``IntegrityError``
on reading, skipped when listing), and reading refuses FIFOs and devices.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from ...errors import IntegrityError, StorageError
from ...fsutil import O_NOFOLLOW, atomic_write, fsync_dir
from . import Backend, Entry, check_name

TEMP = "tmp"
DIR_MODE = 0o700
FILE_MODE = 0o600
_CHUNK = 1 << 20


def _storage_error(what: str, path: Path, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{what} {path} failed: the disk is full", hint="free space or choose another root")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"{what} {path} failed: {exc.strerror} (the backup root is not writable)",
                            hint="check the folder's permissions and that the filesystem is mounted read-write")
    return StorageError(f"{what} {path} failed: {exc.strerror or exc}")


class LocalBackend(Backend):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalBackend({self.url!r})"

    @property
    def identity(self) -> str:
        return "file:" + os.path.realpath(self.root)

    # ---- paths
    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _check_parents(self, name: str) -> None:
        """Refuse a name whose folders (below the root) include a symbolic link."""
        here = self.root
        for part in name.split("/")[:-1]:
            here = here / part
            try:
                if stat.S_ISLNK(os.lstat(here).st_mode):
                    raise IntegrityError(f"{here} is a symbolic link; refused")
            except FileNotFoundError:
                return

    def _mkdirs(self, folder: Path) -> None:
        if folder.is_dir():
            return
        parent = folder.parent
        if parent != folder and not parent.is_dir():
            self._mkdirs(parent)
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            pass

    def local_temp(self) -> Path:
        folder = self.root / TEMP
        try:
            self._mkdirs(folder)
        except OSError as exc:
            raise _storage_error("creating", folder, exc) from None
        return folder

    # ---- the verbs
    def save(self, name: str, source) -> bool:
        target = self.path(name)
        self._check_parents(name)
        try:
            self._mkdirs(target.parent)
            if isinstance(source, Path) and source.is_relative_to(self.root / TEMP):  # a spooled file: link it
                os.chmod(source, FILE_MODE)
                with open(source, "rb+") as fh:
                    os.fsync(fh.fileno())
                return self._link_new(source, target)
            tmp = self.local_temp() / f".save-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, FILE_MODE)
                with os.fdopen(fd, "wb") as out:
                    if isinstance(source, (bytes, bytearray, memoryview)):
                        out.write(source)
                    elif isinstance(source, Path):
                        with open(source, "rb") as src:
                            shutil.copyfileobj(src, out, _CHUNK)
                    else:
                        shutil.copyfileobj(source, out, _CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                return self._link_new(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise _storage_error("writing", target, exc) from None

    def _link_new(self, source: Path, target: Path) -> bool:
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            return False
        fsync_dir(target.parent)
        return True

    def load(self, name: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        self._check_parents(name)
        fh = open_regular(self.path(name))
        if offset:
            fh.seek(offset)
        if length is not None:
            return _Limited(fh, length)  # type: ignore[return-value]
        return fh

    def stat(self, name: str) -> Entry | None:
        try:
            self._check_parents(name)
            st = os.lstat(self.path(name))
        except (FileNotFoundError, NotADirectoryError, IntegrityError):
            return None
        except OSError as exc:
            raise _storage_error("reading", self.path(name), exc) from None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Entry(name, st.st_size, max(0.0, time.time() - st.st_mtime),
                     f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}")

    def list(self, prefix: str = "", *, after: str | None = None) -> Iterator[Entry]:
        base, _, stem = prefix.rpartition("/")
        start = self.root / base if base else self.root
        if base:
            try:
                self._check_parents(base + "/x")
                if stat.S_ISLNK(os.lstat(start).st_mode):
                    return  # never listed through a link (``refused`` names it)
            except (OSError, IntegrityError):
                return
        now = time.time()
        out = []
        for dirpath, dirs, files in os.walk(start):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keep = []
            for d in dirs:
                full = os.path.join(dirpath, d)
                if not os.path.islink(full) and (rel + d + "/").startswith(prefix[:len(rel + d + "/")]):
                    keep.append(d)
            dirs[:] = keep  # never descend into links
            for f in files:
                name = rel + f
                if not name.startswith(prefix) or (after is not None and name <= after):
                    continue
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append(Entry(name, st.st_size, max(0.0, now - st.st_mtime)))
        out.sort(key=lambda e: e.name)
        yield from out

    def remove(self, name: str) -> None:
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _storage_error("deleting", path, exc) from None
        # a folder left empty goes too (backup folders, object fan-out folders)
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def prefixes(self, prefix: str = "") -> Iterator[str]:
        """Folders directly under ``prefix`` (``day/``), empty ones included, links excluded."""
        folder = self.root / prefix.rstrip("/") if prefix else self.root
        for name, mode in self._modes(folder):
            if stat.S_ISDIR(mode):
                yield f"{prefix}{name}/"

    def remove_all(self, prefix: str) -> None:
        folder = self.path(prefix.rstrip("/"))
        self._check_parents(prefix.rstrip("/"))
        try:
            if stat.S_ISLNK(os.lstat(folder).st_mode):
                folder.unlink()  # a link where a folder should be: the link goes, never its target
                return
        except FileNotFoundError:
            return
        shutil.rmtree(folder, ignore_errors=True)

    # ---- capabilities
    def link(self, target: str, name: str) -> bool:
        src, dst = self.path(target), self.path(name)
        self._check_parents(name)
        try:
            self._mkdirs(dst.parent)
            try:
                os.link(src, dst, follow_symlinks=False)
            except FileExistsError:
                if self.same(target, name):
                    return True
                os.unlink(dst)  # a stale file of a write that was killed: show the right data
                os.link(src, dst, follow_symlinks=False)
        except OSError:
            return False
        return True

    def same(self, a: str, b: str) -> bool:
        """Whether two names are one file (a readable view and its object)."""
        try:
            sa, sb = os.lstat(self.path(a)), os.lstat(self.path(b))
        except OSError:
            return False
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)

    def _modes(self, folder: Path) -> Iterator[tuple[str, int]]:
        """(name, lstat mode) of each entry of ``folder``, sorted; nothing if it cannot be read."""
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return
        for name in names:
            try:
                yield name, os.lstat(folder / name).st_mode
            except OSError:
                continue

    def refused(self, prefix: str) -> list[tuple[str, str]]:
        """Under a weekday folder: the folder itself a link (each backup-like entry inside is named), backup
        folders that are links, manifests that are links or not plain files."""
        folder = self.root / prefix.rstrip("/")
        try:
            if stat.S_ISLNK(os.lstat(folder).st_mode):
                return [(f"{prefix}{n}", "is inside a weekday folder that is a symbolic link")
                        for n in sorted(os.listdir(folder))]
        except OSError:
            return []
        out: list[tuple[str, str]] = []
        for name, mode in self._modes(folder):
            if stat.S_ISLNK(mode):
                out.append((f"{prefix}{name}", "is a symbolic link, not a backup folder"))
            elif stat.S_ISDIR(mode):
                out += [(f"{prefix}{name}", f"its {m} is a symbolic link or not a plain file")
                        for m in ("manifest.json", "manifest.enc") if self.kind(f"{prefix}{name}/{m}") is not None]
        return out

    def kind(self, name: str) -> str | None:
        try:
            mode = os.lstat(self.path(name)).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return None if stat.S_ISREG(mode) else "other"

    def oddities(self, prefix: str) -> list[str]:
        out = []
        for name, mode in self._modes(self.root / prefix.rstrip("/")):
            if stat.S_ISLNK(mode):
                out.append(f"unexpected link {name}")
            elif not stat.S_ISREG(mode):
                out.append(f"unexpected file {name} (not a plain file)")
        return out

    def put(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._check_parents(name)
        try:
            self._mkdirs(path.parent)
            atomic_write(path, data, mode=FILE_MODE)
        except OSError as exc:
            raise _storage_error("writing", path, exc) from None


def open_regular(path: Path) -> BinaryIO:
    """Open a plain file for reading, refusing links, FIFOs and devices (IntegrityError)."""
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileNotFoundError(errno.ENOENT, "not found", str(path)) from None
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"{path.name} is a symbolic link, not a file; refused") from None
        raise _storage_error("reading", path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IntegrityError(f"{path.name} is not a plain file; refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=1 << 16)


class _Limited:
    """At most ``n`` bytes of a stream."""

    def __init__(self, fh: BinaryIO, n: int) -> None:
        self._fh, self._left = fh, n

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
