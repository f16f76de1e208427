"""The Restore page's model: compare once, preview, restore, undo; the page only draws.

A comparison is computed once per (backup, collections, key) and kept in the
session as a ``StoredComparison`` (on disk); paging, filtering or any other
click reads it back. It is computed again only when asked, after a restore,
or when the live collections' document counts changed (``live_token``).
Every call that changes data goes through ``open_operation``, so a failure
to reach the database is on the audit record like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from backup_core import undo as undo_log
from backup_core.comparison import StoredComparison, live_token
from backup_core.context import open_context, open_operation, open_store
from backup_core.restore import RestoreOptions, RestoreResult, plan_restore, restore_backup
from backup_core.undo import RestoreRecord

COMPARISON_KEY = "restore_comparison"
PLAN_KEY = "restore_plan"
LAST_KEY = "restore_last"

# fields that name a document for people, in order of preference
LABEL_FIELDS = ("name", "asset_id", "title", "label", "serial", "serial_number", "code", "email", "username",
                "field", "value")


@dataclass
class LastRestore:
    result: RestoreResult
    backup_id: str
    collections: list[str]
    undo_of: str | None = None  # this restore undid the restore of that backup


def comparison(settings, backup_id: str, collections: list[str], key: str, *,
               refresh: bool = False) -> StoredComparison | None:
    """The session's comparison for this choice, computing it only when needed (None: not asked for yet)."""
    signature = (backup_id, tuple(collections), key)
    held = st.session_state.get(COMPARISON_KEY)
    if held is not None and held[0] == signature and not refresh:
        cmp: StoredComparison = held[1]
        with open_context(settings) as ctx:
            if live_token(ctx.db, list(cmp.collections)) == cmp.live_token:
                return cmp
        refresh = True  # documents were added or removed since: the old figures would mislead
    if not refresh:
        return None
    if held is not None:
        held[1].close()
        st.session_state.pop(COMPARISON_KEY, None)
    with open_context(settings) as ctx:
        cmp = StoredComparison.compute(ctx.db, ctx.store, backup_id, collections, key)
    st.session_state[COMPARISON_KEY] = (signature, cmp)
    return cmp


def forget_comparison() -> None:
    held = st.session_state.pop(COMPARISON_KEY, None)
    if held is not None:
        held[1].close()
    st.session_state.pop(PLAN_KEY, None)


def preview(settings, backup_id: str, options: RestoreOptions) -> RestoreResult:
    with open_operation(settings, "restore_dry_run",
                        details={"backup_id": backup_id, "database": settings.db_name,
                                 **options.audit_details()}) as ctx:
        return plan_restore(ctx.db, ctx.store, backup_id, options)


def restore(settings, backup_id: str, options: RestoreOptions,
            progress: Callable[[str, int, int], None] | None = None) -> RestoreResult:
    with open_operation(settings, "restore",
                        details={"backup_id": backup_id, "database": settings.db_name,
                                 **options.audit_details()}) as ctx:
        result = restore_backup(ctx.db, ctx.store, backup_id, options, progress=progress)
    forget_comparison()  # live data changed: compare again
    st.session_state[LAST_KEY] = LastRestore(result, backup_id, list(options.collections or result.collections))
    return result


def undo(settings, record: RestoreRecord, user: str) -> RestoreResult:
    """Undo ``record`` (the latest restore) with ``backup_core.undo``: refused if another restore is the
    latest now; only the collections it touched are put back."""
    with open_operation(settings, "undo", details={"database": settings.db_name}) as ctx:
        done = undo_log.undo(ctx.db, ctx.store, undo_log.UndoOptions(confirmed=True, user=user, expect=record.op))
    forget_comparison()  # live data changed: compare again
    st.session_state[LAST_KEY] = LastRestore(done.result, done.restored_backup_id, list(done.result.collections),
                                             undo_of=record.backup_id)
    return done.result


def last_restore() -> LastRestore | None:
    """This session's last restore or undo, with its counts."""
    return st.session_state.get(LAST_KEY)


def recent_restores(settings, limit: int = 10) -> list[RestoreRecord]:
    """The newest restores of this backup root (every session and host), each with its safety backup."""
    return undo_log.recent_restores(open_store(settings), limit=limit, database=settings.db_name)


def latest_undoable(settings) -> RestoreRecord | None:
    return undo_log.latest_undoable(open_store(settings), settings.db_name)


def document_label(doc: Any) -> str:
    """A field that names a document for people (e.g. its name or asset id), or ''."""
    if not isinstance(doc, dict):
        return ""
    for name in LABEL_FIELDS:
        value = doc.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return f"{name}: {value}"
    for name, value in doc.items():
        if name != "_id" and isinstance(value, str) and 0 < len(value) <= 60:
            return f"{name}: {value}"
    return ""
