"""Small shared documents kept with the backups (users, lock-out state), on any backend.

``<root>/.<area>/<name>``: every host that shares the backup root sees the
same users. A document is replaced atomically (``Backend.put``); read,
modify and write happen under the area's own ``RepositoryLock`` (lock files
in ``.<area>/locks/``), so two hosts never lose each other's change.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .backend import Backend
from .lock import RepositoryLock

LOCK_TIMEOUT_S = 30.0


class StateFiles:
    def __init__(self, backend: Backend, area: str) -> None:
        self.backend, self.area = backend, area
        self.prefix = f".{area}/"
        self._lock = RepositoryLock(backend, f"{self.prefix}locks/")

    def where(self, name: str = "") -> str:
        sep = "" if self.backend.url.endswith("/") else "/"
        return f"{self.backend.url}{sep}.{self.area}" + (f"/{name}" if name else "")

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        with self._lock.hold(f"changing {self.area}", LOCK_TIMEOUT_S if timeout is None else timeout,
                             "exclusive"):
            yield

    def read(self, name: str) -> bytes | None:
        return self.backend.read(self.prefix + name, 16 << 20)

    def write(self, name: str, data: bytes) -> None:
        self.backend.put(self.prefix + name, data)

    def remove(self, name: str) -> bool:
        existed = self.backend.stat(self.prefix + name) is not None
        self.backend.remove(self.prefix + name)
        return existed

    def exists(self) -> bool:
        return any(True for e in self.backend.list(self.prefix) if not e.name.startswith(self.prefix + "locks/"))

    def signature(self, name: str) -> tuple:
        """Changes whenever the document does (one stat)."""
        entry = self.backend.stat(self.prefix + name)
        return (name, None) if entry is None else (name, entry.size, entry.version)
