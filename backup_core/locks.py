"""Process identity and liveness: who holds a lock, lease or staging entry, and is it still running.

``owner_record`` says who this process is (host, pid, and the pid's start
time); ``process_alive`` answers "is the process that wrote this record still
running?" with ``psutil``, comparing the start time too, so a recycled pid
does not count as the old process. The repository's lock itself is
``store/lock.py``.
"""

from __future__ import annotations

import os
import socket

import psutil

DEFAULT_TIMEOUT = 10.0
HOST = socket.gethostname()


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
