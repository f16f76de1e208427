"""Backends: where a repository's named blobs live (restic's ``internal/backend``).

A backend knows five verbs and nothing about backups:

- ``save(name, source)``: create ``name`` if it does not exist yet (never
  replaces an existing blob; returns False when it existed);
- ``load(name, offset, length)``: a binary stream of the blob (a range of it);
- ``stat(name)``: its size and age, or None;
- ``list(prefix)``: every blob under ``prefix``, with size and age;
- ``remove(name)``: delete it (absent is fine).

Names are ``/``-separated relative paths (``data/ab/abcd...``,
``monday/20261124T143022Z/manifest.json``); ``check_name`` refuses anything
that could leave the root. Ages come from the storage's own clock (the local
file's mtime against the local clock, an object's ``LastModified`` against
the object store's ``Date`` header), so lock staleness never depends on two
hosts' clocks agreeing.

Beyond the verbs, a backend offers what only some storage can do, each
optional and named for what it gives: ``link`` (a local folder's hard links,
for the readable per-backup view), ``put`` (replacing a small state document
such as the users file, atomically), ``local_temp`` (a folder for spooling on
the same filesystem, so saving a spooled blob is a rename).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from ...errors import StorageError

_NAME_RE = re.compile(r"^[A-Za-z0-9_.~%+\-]+(/[A-Za-z0-9_.~%+\-]+)*$")


@dataclass(frozen=True)
class Entry:
    """One blob as listed: its name (relative to the root), size in bytes and age in seconds."""

    name: str
    size: int
    age: float
    version: str = ""  # changes whenever the blob is replaced (ETag, or inode and mtime)


def check_name(name: str) -> str:
    """Refuse names that are empty, absolute, contain ``..``/``.`` components or unusual characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or \
            any(part in (".", "..") for part in name.split("/")):
        raise StorageError(f"invalid storage name {name!r}")
    return name


class Backend(ABC):
    """Named blobs under one root (see the module docstring)."""

    #: where the blobs are, for people (a path or ``s3://bucket/prefix``; never credentials)
    url: str = ""

    @property
    @abstractmethod
    def identity(self) -> str:
        """A string equal for every backend object of the same root in this process (the lock registry key)."""

    @abstractmethod
    def save(self, name: str, source: "bytes | Path | BinaryIO") -> bool:
        """Create ``name`` with the bytes of ``source`` unless it exists; True when created."""

    @abstractmethod
    def load(self, name: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A binary stream of the blob (from ``offset``, at most ``length`` bytes); FileNotFoundError if absent."""

    @abstractmethod
    def stat(self, name: str) -> Entry | None:
        """Size and age of the blob, or None when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "", *, after: str | None = None) -> Iterator[Entry]:
        """Every blob whose name starts with ``prefix`` (and sorts after ``after``), in name order."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete the blob; an absent one is not an error."""

    # ---- optional capabilities
    def read(self, name: str, limit: int) -> bytes | None:
        """The whole blob (at most ``limit`` + 1 bytes, so a caller can refuse a larger one), or None."""
        try:
            with self.load(name) as fh:
                return fh.read(limit + 1)
        except FileNotFoundError:
            return None

    def link(self, target: str, name: str) -> bool:
        """Make ``name`` show the blob ``target`` without storing it twice; False where not supported."""
        return False

    def put(self, name: str, data: bytes) -> None:
        """Replace a small document atomically (readers see the old or the new bytes)."""
        raise StorageError(f"{self.url} cannot replace {name}")

    def refused(self, prefix: str) -> list[tuple[str, str]]:
        """(name, why) of entries under ``prefix`` that reading refuses (links where folders or files
        should be); a local folder has them, an object store has no links."""
        return []

    def kind(self, name: str) -> str | None:
        """What is at ``name`` when ``stat`` says nothing: "link" or "other" (not a plain blob), or None."""
        return None

    def oddities(self, prefix: str) -> list[str]:
        """Entries under ``prefix`` that are not plain blobs (links, devices: listing skips them)."""
        return []

    def local_temp(self) -> Path | None:
        """A local folder on the same filesystem as the blobs, or None (then spool elsewhere)."""
        return None

    def remove_all(self, prefix: str) -> None:
        """Remove every blob under ``prefix`` (a folder of a backup, a spool)."""
        for e in list(self.list(prefix)):
            self.remove(e.name)

    def prefixes(self, prefix: str = "") -> Iterator[str]:
        """The "folders" directly under ``prefix`` (names ending in ``/``)."""
        seen: set[str] = set()
        for e in self.list(prefix):
            rest = e.name[len(prefix):]
            if "/" in rest:
                head = prefix + rest.split("/", 1)[0] + "/"
                if head not in seen:
                    seen.add(head)
                    yield head


def open_backend(root: "str | Path") -> Backend:
    """The backend of a root: ``s3://bucket/prefix`` or a local folder."""
    if str(root).startswith("s3://"):
        from .s3 import S3Backend

        return S3Backend(str(root))
    from .local import LocalBackend

    return LocalBackend(Path(root))


__all__ = ["Backend", "Entry", "check_name", "open_backend"]
