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
# \Z, not $: "$" also matches before a trailing newline, which would let "<id>\n" name a backup
ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{2,4})?\Z")
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
    """Format 1 and 2: the data file name of a collection (no separators, no leading dot)."""
    out = []
    for i, ch in enumerate(collection):
        if _SAFE_CHARS.match(ch) or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out) + (".csv.gz" if compressed else ".csv")


PART_SUFFIX = {"full": "", "changes": ".changes", "deleted": ".deleted"}
MAX_STEM_BYTES = 180  # a file name stays under the usual 255-byte limit with any suffix


def view_stem(collection: str) -> str:
    """The readable, safe stem of a collection's files: every character outside ``A-Z a-z 0-9 _ -``
    percent-encoded (dots too, so a suffix can never be mistaken for part of a name); a stem longer
    than ``MAX_STEM_BYTES`` is cut and ends in ``~`` and 16 hex digits of the name's SHA-256, so
    two long names never share a file."""
    out = []
    for ch in collection:
        out.append(ch if _SAFE_CHARS.match(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    stem = "".join(out)
    if len(stem) <= MAX_STEM_BYTES:
        return stem
    import hashlib

    cut = MAX_STEM_BYTES - 17
    while "%" in stem[max(0, cut - 2):cut]:  # never cut through a %XX
        cut -= 1
    return stem[:cut] + "~" + hashlib.sha256(collection.encode("utf-8")).hexdigest()[:16]


def view_name(collection: str, kind: str, compressed: bool) -> str:
    """The file name of one part of a collection in a backup's folder (format 3)."""
    return view_stem(collection) + PART_SUFFIX[kind] + (".csv.gz" if compressed else ".csv")
