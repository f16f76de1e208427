"""Names in a backup root: backup ids, weekday folders, data file names.

These rules are the same for every storage backend (a local folder or an
object store prefix), see docs/FORMAT.md.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ..errors import UsageError

MANIFEST = "manifest.json"
MANIFEST_ENC = "manifest.enc"  # the manifest of an encrypted backup
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{2,4})?$")
TRIGGERS = ("manual", "scheduled", "safety", "pre-write", "archive")
_SAFE_CHARS = re.compile(r"[A-Za-z0-9_\-]")


def backup_id_for(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def day_for(when: datetime) -> str:
    return WEEKDAYS[when.astimezone(timezone.utc).weekday()]


def is_backup_id(text: object) -> bool:
    return isinstance(text, str) and bool(ID_RE.match(text))


def check_backup_id(backup_id: object) -> str:
    if not is_backup_id(backup_id):
        raise UsageError(f"invalid backup id {backup_id!r}: expected a UTC timestamp like 20261124T143022Z")
    return backup_id  # type: ignore[return-value]


def file_name_for(collection: str, compressed: bool) -> str:
    """A safe, reversible file name for a collection (no separators, no leading dot)."""
    out = []
    for i, ch in enumerate(collection):
        if _SAFE_CHARS.match(ch) or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out) + (".csv.gz" if compressed else ".csv")
