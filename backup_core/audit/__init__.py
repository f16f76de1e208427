"""The audit log: append-only, hash-chained, anchored outside itself, authenticated when a key is configured.

- ``chain``: the hash chain (``seq``, ``prev``, ``hash``), the ``mac`` of
  authenticated entries, anchors, and the verification of a log's lines
  (``verify_lines``, ``ChainReport``): pure, no storage;
- ``logs``: where the lines are kept (``FileAuditLog`` for a local root,
  ``BlobAuditLog`` for an object store), appending and reading them;
- ``heads``: the head of each log kept in the metadata database
  (``anchor_in``, ``meta_anchor``);
- here: what the rest of the product calls (``record``, ``read``,
  ``check``, ``require_intact``), for a backup root given as settings, a
  store, a log or a path.

Anchors. A chain alone cannot show entries cut off its end, nor a log
rewritten from the start with every hash recomputed. So the head (``seq``,
``hash``, and ``kid``) is also kept outside the file: in every backup's
manifest (``audit_head``, written when the backup is made; authenticated
with the backup when it is encrypted) and in the metadata database
(collection ``audit_head``, one document per log, moved forward after every
append by a process that has opened the database: ``anchor_in``).
``verify(anchors)`` checks that the log still holds each anchored entry,
unchanged: a deleted, emptied or cut log, or one rewritten up to an anchor,
fails. ``check(settings)`` gathers the anchors and verifies (``python -m
backup_core audit --verify``). Exactly what is and is not detected, with and
without a key: docs/RELIABILITY.md.

Operations (``operation.py``) write two entries: ``outcome: "started"`` before
they change anything and their outcome (``ok``, ``error``, ``refused``) after,
linked by ``op``; an operation killed in between shows as started without an
outcome (``read`` marks it ``interrupted`` once its process is gone).
Instant events (login, logout, set-password) are one entry each.

The submodules import nothing of the product above the store's level; the
functions here that open a store or the metadata database from settings
import them when called, since the store itself opens its log through
``logs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import BackupError, IntegrityError
from ..timeutil import now_iso
from .chain import GENESIS, Anchor, ChainReport, entry_hash, entry_mac, verify_lines
from .heads import HEAD_COLLECTION, anchor_in, meta_anchor
from .logs import (AUDIT_DIR, AUDIT_FILE, AuditFilter, AuditLog, AuditUnwritable, BlobAuditLog, FileAuditLog,
                   PreconditionFailed, audit_path, read_jsonl_newest_first)
from .logs import _blob_heads as _blob_heads  # noqa: F401 - this process's newest entry of each object-store log

OUTCOMES = ("started", "ok", "error", "refused")


def manifest_anchors(backups) -> list[Anchor]:
    """The ``audit_head`` of every backup (``BackupInfo``) that recorded one."""
    out = []
    for info in backups:
        a = Anchor.from_json(f"backup {info.backup_id}", info.manifest.get("audit_head"))
        if a is not None:
            out.append(a)
    return out


def check(settings, store=None) -> ChainReport:
    """Verify the log of the configured backup root against every anchor that can be read: the
    manifests of its backups and the metadata database (a database that cannot be reached is noted)."""
    from ..context import open_store

    store = store if store is not None else open_store(settings)
    log_ = store.audit_log()
    notes: list[str] = []
    errors: list[str] = []
    locked: list[dict] = []
    anchors = manifest_anchors(store.list_backups(errors=errors, locked=locked))
    if locked:
        notes.append(f"{len(locked)} encrypted backup(s) whose key is not configured: their anchors were not "
                     "checked")
    try:
        from ..scheduler.metadb import meta

        with meta(settings, "reading the audit log's anchor") as db:
            a = meta_anchor(log_, db)
        if a is not None:
            anchors.append(a)
    except BackupError as exc:
        notes.append(f"the metadata database could not be read, its anchor was not checked: {exc}")
    report = log_.verify(anchors)
    report.warnings += notes
    return report


def verify_chain(path: Path | str, keyring=None) -> ChainReport:
    """Check every link of a local audit file (see ``chain``)."""
    return FileAuditLog(path, keyring).verify()


def require_intact(log_or_report: AuditLog | ChainReport, anchors: Iterable[Anchor] = ()) -> ChainReport:
    """The verification (of a log, or a report made already); raises ``IntegrityError`` (exit 5)
    carrying the report when broken."""
    report = log_or_report if isinstance(log_or_report, ChainReport) else log_or_report.verify(anchors)
    if not report.ok:
        b = report.broken_at or {}
        where = f"line {b.get('line')} (seq {b.get('seq')})" if b.get("line") else f"seq {b.get('seq')}"
        more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        raise IntegrityError(f"the audit log's hash chain is broken at {where}: {b.get('reason')}{more}",
                             payload=report.to_json())
    return report


# ---------------------------------------------------------------- module-level helpers

def log_for(root: Any) -> AuditLog:
    """The audit log of a backup root: ``Settings`` (the configured root and keys), a Store, the log
    itself, or a bare path / ``s3://`` URL (then without a key: entries are not authenticated)."""
    if isinstance(root, AuditLog):
        return root
    if hasattr(root, "audit_log"):  # a Store
        return root.audit_log()
    if hasattr(root, "backup_root") and hasattr(root, "key_file"):  # Settings
        from ..context import open_store

        return open_store(root).audit_log()
    if str(root).startswith("s3://"):
        from ..store import open_store

        return open_store(root).audit_log()
    return FileAuditLog(audit_path(root))


def record(root: Any, *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
    """Append one entry to the audit log of ``root`` (see ``log_for``); ``outcome`` is started, ok, error
    or refused."""
    return log_for(root).record(user=user, action=action, outcome=outcome, **details)


def read(root: Any, limit: int | None = 100, flt: AuditFilter | None = None) -> list[dict]:
    """Entries newest first, at most ``limit`` (None: all)."""
    return log_for(root).read(limit, flt)


def now() -> str:
    return now_iso()


__all__ = ["AuditLog", "FileAuditLog", "BlobAuditLog", "PreconditionFailed", "AuditUnwritable", "AuditFilter", "ChainReport",
           "Anchor", "record", "read", "verify_chain", "require_intact", "check", "anchor_in", "meta_anchor",
           "manifest_anchors", "log_for", "audit_path", "read_jsonl_newest_first", "entry_hash", "entry_mac",
           "verify_lines", "OUTCOMES", "HEAD_COLLECTION", "GENESIS", "AUDIT_DIR", "AUDIT_FILE"]
