"""The audit log of a repository, on its backend.

A local root keeps one append-only file (``audit.FileAuditLog``); an object
store keeps numbered objects (``audit.BlobAuditLog``) written through the
small interface below.
"""

from __future__ import annotations

from ..audit.logs import AUDIT_DIR, AUDIT_FILE, BlobAuditLog, FileAuditLog, PreconditionFailed
from .backend import Backend


class AuditBlobs:
    """``list``/``get``/``put`` of the audit log's objects over a backend: ``put`` creates an object only if
    its name is free (``PreconditionFailed`` otherwise); entries are never rewritten."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def list(self, prefix: str) -> list[str]:
        return [e.name for e in self.b.list(prefix)]

    def get(self, name: str) -> tuple[bytes, str] | None:
        data = self.b.read(name, 64 << 20)
        return None if data is None else (data, "")

    def put(self, name: str, data: bytes, *, if_none_match: bool = True) -> str:
        if not self.b.save(name, data):
            raise PreconditionFailed(name)
        return ""


def audit_log_for(backend: Backend, keyring=None):
    """The audit log of a backend's root; entries are authenticated with a key derived from ``keyring``'s
    current key when there is one."""
    root = getattr(backend, "root", None)
    if root is not None:
        return FileAuditLog(root / AUDIT_DIR / AUDIT_FILE, keyring)
    return BlobAuditLog(AuditBlobs(backend), f"{AUDIT_DIR}/", f"{backend.url}/{AUDIT_DIR}/", keyring)
