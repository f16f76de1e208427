"""Local locks and process liveness.

``root_lock`` is the exclusive lock of a local backup root: one backup,
restore, clean-up, delete or import at a time. It is ``filelock``'s
``FileLock`` on ``<root>/.lock`` (an OS ``flock``: the kernel drops it when
its holder dies, so a lock left by a killed process is never stale). Within
one thread it is re-entrant (a restore takes its safety backup while holding
it); other threads of the same process wait like other processes do.
``<root>/.lock.json`` names the holder for the "busy" message only.

``process_alive`` answers "is the process that wrote this record still
running?" with ``psutil``, comparing the start time too, so a recycled pid
does not count as the old process.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
from filelock import FileLock, Timeout

from .errors import LockBusy, StorageError
from .fsutil import atomic_write
from .timeutil import now_iso

DEFAULT_TIMEOUT = 10.0
LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.json"
HOST = socket.gethostname()

_depth = threading.local()


def process_start_time(pid: int | None = None) -> float | None:
    try:
        return psutil.Process(pid or os.getpid()).create_time()
    except (psutil.Error, OSError):
        return None


def process_alive(pid: object, started: object = None, host: object = None) -> bool:
    """Whether process ``pid`` (started at ``started``, on ``host``) still runs.

    A record from another host is assumed alive (only its own expiry can tell);
    a zombie counts as dead; so does a live process with another start time.
    """
    if host not in (None, HOST):
        return True
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if isinstance(started, (int, float)) and abs(proc.create_time() - started) > 1.0:
            return False
        return True
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True  # exists but cannot be inspected (another user's)


def owner_record() -> dict:
    """Who this process is, for lock holders, leases and staging entries."""
    return {"host": HOST, "pid": os.getpid(), "pid_started": process_start_time()}


def lock_holder(root: Path) -> dict | None:
    try:
        data = json.loads((Path(root) / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _busy(root: Path, operation: str, timeout: float) -> LockBusy:
    holder = lock_holder(root) or {}
    who = (f"{holder.get('operation', 'another operation')} (pid {holder.get('pid', '?')}, "
           f"since {holder.get('since', '?')})")
    return LockBusy(f"cannot {operation}: the backup root {root} is locked by {who}; "
                    f"gave up after {timeout:g}s", hint="wait for it to finish and try again")


@contextmanager
def root_lock(root: Path, operation: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock of ``root`` for ``operation`` (waits up to ``timeout`` seconds)."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create backup root {root}: {exc.strerror}") from None
    # one FileLock object per path (is_singleton): its per-thread counter makes it re-entrant
    lock = FileLock(str(root.resolve() / LOCK_FILE), is_singleton=True, thread_local=True)
    key = str(root.resolve())
    depths: dict = getattr(_depth, "map", None) or {}
    _depth.map = depths
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise _busy(root, operation, timeout) from None
    except OSError as exc:
        raise StorageError(f"cannot open lock file {root / LOCK_FILE}: {exc.strerror}") from None
    depths[key] = depths.get(key, 0) + 1
    if depths[key] == 1:
        try:
            atomic_write(root / HOLDER_FILE, json.dumps({**owner_record(), "operation": operation,
                                                         "since": now_iso()}), durable=False)
        except OSError:
            pass  # informational only
    try:
        yield
    finally:
        depths[key] -= 1
        if depths[key] == 0:
            try:
                (root / HOLDER_FILE).unlink(missing_ok=True)
            except OSError:
                pass
        lock.release()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (compatibility helper)."""
    return process_alive(pid)
