"""Reading a backup for display and download; deleting one.

The dashboard's document viewer calls :func:`find_documents`. Documents are
streamed from the backup file one at a time (``Store.iter_documents``) and
the scan stops as soon as the requested page plus one look-ahead match is
found, so a large collection is never loaded whole. The search is a
case-insensitive substring match on each document's JSON text (the codec's
lossless dialect), so it looks across every field, nested ones included.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import codec
from .errors import UsageError
from .operation import operation
from .store import BackupInfo, Store, view_name

MAX_PAGE_SIZE = 500


@dataclass
class DocumentPage:
    """One page of matching documents (JSON-dialect dicts) and where the scan stopped."""

    items: list[dict] = field(default_factory=list)
    page: int = 0
    has_more: bool = False
    scanned: int = 0  # documents read from the file (including one look-ahead match)

    def to_json(self) -> dict:
        return {"items": self.items, "page": self.page, "has_more": self.has_more, "scanned": self.scanned}


def find_documents(store: Store, info: BackupInfo, collection: str, query: str = "",
                   page: int = 0, page_size: int = 25) -> DocumentPage:
    """Page ``page`` (0-based) of the documents of ``collection`` whose JSON text contains ``query``."""
    if page < 0:
        raise UsageError(f"page must be 0 or more, not {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"page size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    info.collection(collection)  # a clear error for an unknown collection
    needle = (query or "").strip().casefold()
    scanned = 0

    def matches(raws: Iterator[bytes]) -> Iterator[str]:
        nonlocal scanned
        for raw in raws:
            scanned += 1
            text = codec.to_json_text(raw)
            if not needle or needle in text.casefold():
                yield text

    with contextlib.closing(store.iter_documents(info, collection)) as raws:
        wanted = list(itertools.islice(matches(raws), page * page_size, (page + 1) * page_size + 1))
    has_more = len(wanted) > page_size
    items = [json.loads(t) for t in wanted[:page_size]]
    return DocumentPage(items=items, page=page, has_more=has_more, scanned=scanned)


def display_value(value) -> str | int | float | bool | None:
    """A compact, readable cell for a JSON-dialect value (``{"$oid": x}`` -> x, nested -> JSON)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key in ("$oid", "$numberLong", "$numberDecimal", "$numberInt", "$symbol") and isinstance(inner, str):
            return inner
        if key == "$date":
            return inner if isinstance(inner, str) else json.dumps(inner)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return value


def table_rows(items: list[dict]) -> list[dict]:
    """Documents as flat rows for a table: top-level fields as columns, nested values as JSON text."""
    return [{k: display_value(v) for k, v in doc.items()} for doc in items]


def download_name(info: BackupInfo, collection: str) -> str:
    """The file name a collection's CSV download gets (the plain CSV of all its documents)."""
    if info.manifest.format_version < 3:
        return info.collection(collection).file.removesuffix(".gz")
    return view_name(collection, "full", False)


def csv_download(store: Store, info: BackupInfo, collection: str) -> tuple[str, bytes]:
    """(file name, plain CSV bytes) of one collection as this backup holds it: its full copy, or, for an
    incremental backup, its documents resolved from the full copy and the steps after it, encoded as one
    CSV (the same encoding, so the file restores exactly); a compressed file is served uncompressed."""
    entry = info.collection(collection)
    name = download_name(info, collection)
    if entry.incremental:
        import tempfile

        from .store.csvfile import write_csv

        out = io.BytesIO()
        with tempfile.TemporaryDirectory(prefix="backup-download-") as tmp:
            write_csv(store.iter_documents(info, collection), out, Path(tmp) / "spill", compress=False)
        return name, out.getvalue()
    with store.open_file(info, collection) as fh:
        data = fh.read()
        fh.finish()
    if entry.compressed:
        data = gzip.decompress(data)
    return name, data


@dataclass
class Changes:
    """One collection's increment: counts, and the first documents and ``_id``s (JSON dialect)."""

    changed: int
    deleted: int
    documents: list[dict] = field(default_factory=list)
    deleted_ids: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"changed": self.changed, "deleted": self.deleted, "documents": self.documents,
                "deleted_ids": self.deleted_ids}


def changes_since_previous(store: Store, info: BackupInfo, collection: str, limit: int = 25) -> Changes | None:
    """What one collection's increment holds ("what changed since the previous backup"): the new or
    different documents and the ``_id``s that are gone (at most ``limit`` of each); None when the backup
    holds a full copy."""
    entry = info.collection(collection)
    if not entry.incremental:
        return None
    changes, deleted = entry.own_parts()

    def first(part) -> list[dict]:
        with contextlib.closing(store.part_documents(info, part)) as raws:
            return [json.loads(codec.to_json_text(raw)) for raw in itertools.islice(raws, limit)]

    return Changes(changes.count, deleted.count, first(changes), [d.get("_id") for d in first(deleted)])


def stored_as(info: BackupInfo, collection: str) -> str:
    """How a collection is stored, for people: a full copy, or an increment on one."""
    entry = info.collection(collection)
    if not entry.incremental:
        return "full copy"
    changes, deleted = entry.own_parts()
    return (f"increment: {changes.count} new or changed, {deleted.count} deleted "
            f"(step {(len(entry.parts) - 1) // 2} after a full copy)")


def delete_backup(store: Store, backup_id: str, *, user: str) -> BackupInfo:
    """Delete one backup (an audited, locked operation ``delete``); returns what was deleted."""
    with operation(store, "delete", user=user, details={"backup_id": backup_id}) as op:
        info = store.delete(backup_id)
        op.note(day=info.day, trigger=info.trigger, documents=info.total_documents, bytes=info.total_bytes)
        return info
