"""Local-file helpers: the one atomic write, directory fsync, and opening without following links.

``atomic_write`` is how every small state file (users, lock-out state,
scheduler config and state, the embedded server's discovery file) is
replaced: a temporary sibling is written and ``fsync``ed, then renamed over
the target, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

# O_NOFOLLOW makes open() fail on a symbolic link instead of following it
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def os_error_text(exc: OSError, where: str = "the backup root") -> str:
    """Why a write to ``where`` failed, as people say it: a read-only or full file system says so."""
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where} is read-only for this account ({exc.strerror})"
    if exc.errno in FULL_ERRNOS:
        return f"{where} is full ({exc.strerror})"
    return exc.strerror or str(exc)


def fsync_dir(path: Path | str) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path | str, data: bytes | str, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (raises OSError; callers say what failed)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode does not apply to a leftover file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def open_nofollow(path: Path | str, mode: str = "rb"):
    """Open an existing file for reading, refusing a symbolic link (OSError ELOOP)."""
    if mode != "rb":
        raise ValueError("open_nofollow only reads")
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW)
    return os.fdopen(fd, "rb")
