"""Append-only audit log, kept in the backup root, outside the backed-up database.

One JSON object per line in ``<root>/.audit/audit.jsonl``. Each entry is
written with a single ``write`` on a file opened with ``O_APPEND`` under an
advisory lock, so concurrent writers never interleave and no entry is ever
rewritten. A restore cannot erase it: it lives on disk, not in MongoDB.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import mask_uri
from .errors import StorageError

AUDIT_DIR = ".audit"
AUDIT_FILE = "audit.jsonl"


def audit_path(root: Path) -> Path:
    return Path(root) / AUDIT_DIR / AUDIT_FILE


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _scrub(value: Any) -> Any:
    """Never let a password in a URI reach the log."""
    if isinstance(value, str) and "://" in value and "@" in value:
        return mask_uri(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def record(root: Path, *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
    """Append one entry; returns it. ``outcome`` is ``ok``, ``error`` or ``refused``."""
    entry = {"at": now_iso(), "user": user, "action": action, "outcome": outcome}
    entry.update(_scrub({k: v for k, v in details.items() if v is not None}))
    line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    path = audit_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot write the audit log {path}: {exc.strerror}") from None
    return entry


@dataclass
class AuditFilter:
    action: str | None = None
    user: str | None = None
    outcome: str | None = None
    text: str | None = None

    def match(self, e: dict) -> bool:
        if self.action and e.get("action") != self.action:
            return False
        if self.user and e.get("user") != self.user:
            return False
        if self.outcome and e.get("outcome") != self.outcome:
            return False
        if self.text and self.text.lower() not in json.dumps(e, ensure_ascii=False).lower():
            return False
        return True


def _lines_reversed(path: Path, block: int = 65536) -> Iterable[bytes]:
    """Lines of a file, last first, reading from the end in blocks."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


def read(root: Path, limit: int | None = 100, flt: AuditFilter | None = None) -> list[dict]:
    """Entries newest first, at most ``limit`` (None: all)."""
    return read_jsonl_newest_first(audit_path(root), limit, flt.match if flt is not None else None)


def read_jsonl_newest_first(path: Path, limit: int | None = None,
                            match: Callable[[dict], bool] | None = None) -> list[dict]:
    """JSON objects of an append-only JSON-lines file, last first; a torn or foreign line is skipped."""
    if (limit is not None and limit <= 0) or not path.is_file():
        return []
    out: list[dict] = []
    for raw in _lines_reversed(path):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # a torn last line from a crash is skipped, not fatal
        if isinstance(entry, dict) and (match is None or match(entry)):
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
    return out
