"""Who may run the scheduler of a backup root: a lease that its holder renews.

``FileLease`` keeps the lease in ``<root>/.scheduler/lease.json`` and changes
it only under a ``filelock`` (held for the read-modify-write, never for the
lease's lifetime, so status calls can always read it). A holder that dies
stops renewing, so its lease expires, or is seen to belong to a dead process
on this host, and a standby takes over. Any lease implementing the three
calls of ``Lease`` can replace it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

from ..fsutil import atomic_write
from ..locks import owner_record, process_alive
from ..timeutil import now_iso
from .config import read_json, scheduler_dir

log = logging.getLogger(__name__)

LEASE_FILE = "lease.json"
LEASE_LOCK_FILE = "lease.lock"


class Lease(Protocol):
    def acquire(self) -> bool:
        """Take the lease if free/expired/dead, or renew it if ours. True when we hold it now."""

    def release(self) -> None:
        """Give the lease up now (if ours), so a standby need not wait for it to expire."""

    def holder(self) -> dict | None:
        """The live holder's record, or None."""


class FileLease:
    def __init__(self, directory: Path, owner: str, lease_seconds: float, *, database: str = "") -> None:
        self.dir = Path(directory)
        self.owner = owner
        self.lease_seconds = float(lease_seconds)
        self.database = database

    @property
    def path(self) -> Path:
        return self.dir / LEASE_FILE

    def _lock(self) -> FileLock:
        return FileLock(str(self.dir / LEASE_LOCK_FILE), is_singleton=True, thread_local=True)

    @staticmethod
    def _live(rec: dict | None, now: float) -> bool:
        if not rec:
            return False
        try:
            if float(rec.get("expires_at", 0)) <= now:
                return False
        except (TypeError, ValueError):
            return False
        # a holder killed with SIGKILL on this host is dead now, not only when its lease expires
        return process_alive(rec.get("pid"), rec.get("pid_started"), rec.get("host"))

    def acquire(self) -> bool:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._lock().acquire(timeout=max(1.0, self.lease_seconds / 3)):
                now = time.time()
                current = read_json(self.path)
                if current and current.get("owner") != self.owner and self._live(current, now):
                    return False
                since = current.get("since") if current and current.get("owner") == self.owner else None
                record = {"owner": self.owner, **owner_record(), "database": self.database,
                          "since": since or now_iso(), "renewed_at": now,
                          "expires_at": now + self.lease_seconds, "lease_seconds": self.lease_seconds}
                atomic_write(self.path, json.dumps(record, indent=2), durable=False)
                return True
        except (OSError, Timeout) as exc:
            log.warning("cannot renew the scheduler lease in %s: %s", self.dir, exc)
            return False

    def release(self) -> None:
        try:
            with self._lock().acquire(timeout=5):
                current = read_json(self.path)
                if current and current.get("owner") == self.owner:
                    self.path.unlink(missing_ok=True)
        except (OSError, Timeout):
            pass

    def holder(self) -> dict | None:
        rec = read_json(self.path)
        return rec if self._live(rec, time.time()) else None


def lease_holder(root) -> dict | None:
    """The live scheduler lease of ``root`` (owner, pid, host, database, expires_at) or None."""
    return FileLease(scheduler_dir(root), owner="", lease_seconds=0).holder()
