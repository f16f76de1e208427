"""The audit log of a repository, on its backend.

A local root keeps one append-only file (``audit.FileAuditLog``); an object
store keeps numbered objects (``audit.BlobAuditLog``) written through the
small interface below.
"""

from __future__ import annotations

from ..audit import AUDIT_DIR, AUDIT_FILE, BlobAuditLog, FileAuditLog, PreconditionFailed
from .backend import Backend


class AuditBlobs:
    """``list``/``get``/``put`` of the audit log's objects over a backend (``put`` never replaces an
    object unless it is told the version it replaces)."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def list(self, prefix: str) -> list[str]:
        return [e.name for e in self.b.list(prefix)]

    def get(self, name: str) -> tuple[bytes, str] | None:
        data = self.b.read(name, 64 << 20)
        if data is None:
            return None
        st = self.b.stat(name)
        return data, (st.version if st is not None else "")

    def put(self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        if if_match:
            replace = getattr(self.b, "replace_if", None)
            if replace is None:
                raise PreconditionFailed(name)
            return replace(name, data, if_match)
        if not self.b.save(name, data):
            raise PreconditionFailed(name)
        st = self.b.stat(name)
        return st.version if st is not None else ""


def audit_log_for(backend: Backend):
    root = getattr(backend, "root", None)
    if root is not None:
        return FileAuditLog(root / AUDIT_DIR / AUDIT_FILE)
    return BlobAuditLog(AuditBlobs(backend), f"{AUDIT_DIR}/", f"{backend.url}/{AUDIT_DIR}/")
