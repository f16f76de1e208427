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
import itertools
import json
from dataclasses import dataclass, field
from typing import Iterator

from . import codec
from .errors import UsageError
from .operation import operation
from .store import BackupInfo, Store

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


def csv_download(store: Store, info: BackupInfo, collection: str) -> tuple[str, bytes]:
    """(file name, plain CSV bytes) of one collection; a compressed file is served uncompressed."""
    entry = info.collection(collection)
    with store.open_file(info, collection) as fh:
        data = fh.read()
    if entry.compressed:
        data = gzip.decompress(data)
    return entry.file.removesuffix(".gz"), data


def delete_backup(store: Store, backup_id: str, *, user: str) -> BackupInfo:
    """Delete one backup (an audited, locked operation ``delete``); returns what was deleted."""
    with operation(store, "delete", user=user, details={"backup_id": backup_id}) as op:
        info = store.delete(backup_id)
        op.note(day=info.day, trigger=info.trigger, documents=info.total_documents, bytes=info.total_bytes)
        return info
