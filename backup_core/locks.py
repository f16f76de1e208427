"""One exclusive lock per backup root for backup, restore and clean-up.

The lock is an OS file lock (``flock``) on ``<root>/.lock``: the kernel drops
it when its holder dies, so a lock left by a killed process is never stale.
``<root>/.lock.json`` names the current holder for the "busy" message.
Within one process the lock is re-entrant for the thread that holds it (a
restore takes its safety backup while holding the lock); other threads wait
like other processes do.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .errors import LockBusy, StorageError

DEFAULT_TIMEOUT = 10.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    # an exited but unreaped child still "exists"; it serves nobody
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _PathLock:
    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_registry: dict[str, _PathLock] = {}
_registry_guard = threading.Lock()


def _path_lock(path: Path) -> _PathLock:
    key = str(path.resolve())
    with _registry_guard:
        return _registry.setdefault(key, _PathLock())


def lock_holder(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / ".lock.json").read_text())
    except (OSError, ValueError):
        return None


def _busy(root: Path, operation: str, timeout: float) -> LockBusy:
    holder = lock_holder(root) or {}
    who = (f"{holder.get('operation', 'another operation')} (pid {holder.get('pid', '?')}, "
           f"since {holder.get('since', '?')})")
    return LockBusy(f"cannot {operation}: the backup root {root} is locked by {who}; "
                    f"gave up after {timeout:g}s", hint="wait for it to finish and try again")


@contextmanager
def root_lock(root: Path, operation: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock of ``root`` for ``operation`` (waits up to ``timeout`` s)."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create backup root {root}: {exc.strerror}") from None
    lock_file = root / ".lock"
    pl = _path_lock(lock_file)
    if not pl.thread_lock.acquire(timeout=timeout):
        raise _busy(root, operation, timeout)
    try:
        if pl.depth == 0:
            pl.fd = _acquire_file(lock_file, root, operation, timeout)
        pl.depth += 1
        try:
            yield
        finally:
            pl.depth -= 1
            if pl.depth == 0 and pl.fd is not None:
                fd, pl.fd = pl.fd, None
                try:
                    (root / ".lock.json").unlink(missing_ok=True)
                except OSError:
                    pass
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
    finally:
        pl.thread_lock.release()


def _acquire_file(lock_file: Path, root: Path, operation: str, timeout: float) -> int:
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {lock_file}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise _busy(root, operation, timeout) from None
            time.sleep(0.05)
    info = {"pid": os.getpid(), "operation": operation,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        (root / ".lock.json").write_text(json.dumps(info))
    except OSError:
        pass  # informational only
    return fd
