"""The Restore section's comparison: counts per collection, then the differing documents, field by field.

A value is shown with its type, and a field that is absent says "(missing)",
never a blank: ``null`` and a missing field (or array element) are different
data and a restore treats them differently.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backup_core.paged_compare import DIFF_STATUSES
from webui.common import document_label, local_time, local_zone, run_core
from webui.ui import Ui

PAGE_SIZE = 50
STATUS_LABELS = {"only_in_backup": "only in backup", "only_in_live": "only in live", "changed": "changed",
                 "identical": "identical"}
STATUS_COLORS = {"only_in_backup": "background-color: #d8f3dc", "only_in_live": "background-color: #ffd6d6",
                 "changed": "background-color: #fff3bf"}
STATUS_BY_LABEL = {label: status for status, label in STATUS_LABELS.items()}
VALUE_WIDTH = 200
COLUMNS = ["key", "document", "status", "field", "backup", "live"]


def cell(value) -> str:
    """A value as short readable text for a table cell."""
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag in ("$oid", "$numberLong", "$numberDecimal", "$date") and isinstance(inner, str):
            value = inner  # ObjectId hex, digits, ISO date: how an admin reads them
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 1] + "…"


def value_text(value, type_name: str) -> str:
    """``20 (int)``, ``null``, ``(missing)``: what a field holds on one side, its type said."""
    if type_name == "missing":
        return "(missing)"
    if type_name == "null":
        return "null"
    return f"{cell(value)} ({type_name})" if type_name else cell(value)


def diff_rows(diff) -> list[dict]:
    """One table row per changed field; one row for a document only on one side."""
    label = document_label(diff.live_doc if diff.live_doc is not None else diff.backup_doc)
    base = {"key": cell(diff.key), "document": label, "status": STATUS_LABELS.get(diff.status, diff.status)}
    if diff.status == "changed" and diff.fields:
        return [dict(base, field=f.path, backup=value_text(f.backup, f.backup_type or ""),
                     live=value_text(f.live, f.live_type or "")) for f in diff.fields]
    return [dict(base, field="(whole document)",
                 backup=cell(diff.backup_doc) if diff.backup_doc is not None else "(missing)",
                 live=cell(diff.live_doc) if diff.live_doc is not None else "(missing)")]


def _style_rows(row: pd.Series) -> list[str]:
    color = STATUS_COLORS.get(STATUS_BY_LABEL.get(row["status"], ""), "")
    return [color if col in ("status", "backup", "live") else "" for col in row.index]


def schema_notes(collections: dict) -> list[str]:
    """Index and option differences, one line per collection that has any."""
    notes = []
    for name, c in collections.items():
        parts = [f"{what} {verb}: {', '.join(diff[verb])}" for what, diff in (("indexes", c.indexes),
                                                                               ("options", c.options))
                 for verb in ("added", "removed", "changed") if diff[verb]]
        if parts:
            notes.append(f"**{name}**: " + "; ".join(parts))
    return notes


def render(ui: Ui, cmp) -> None:
    st.dataframe(pd.DataFrame([
        {"collection": name, "only in backup": c.only_in_backup, "only in live": c.only_in_live,
         "changed": c.changed, "identical": c.identical} for name, c in cmp.collections.items()]),
        hide_index=True, width="content")
    tz, zone = local_zone()
    st.caption(f"Compared at {local_time(cmp.computed_at, tz)} {zone} (in {cmp.duration_s:.1f} s); "
               "click Compare again to refresh.")
    for note in schema_notes(cmp.collections):
        st.markdown("Indexes and options: " + note)
    for name, c in cmp.collections.items():
        for w in c.warnings:
            st.warning(f"{name}: {w}")
    differing = cmp.differing()
    if not differing:
        st.success("The backup and the live data hold the same documents for these collections.")
        return
    st.markdown("**Documents that differ**")
    f1, f2, f3 = st.columns([2, 4, 3])
    coll = f1.selectbox("Collection", differing, key=ui.k("restore_diff_collection"))
    statuses = f2.multiselect("Status", list(DIFF_STATUSES), default=list(DIFF_STATUSES),
                              format_func=STATUS_LABELS.get, key=ui.k("restore_diff_status"))
    needle = f3.text_input("Filter text", key=ui.k("restore_diff_text"), placeholder="key, name or any value").strip()
    page = st.columns([1, 4])[0].number_input("Page", min_value=1, value=1, step=1, key=ui.k("restore_diff_page"))
    docs, has_more = (run_core(cmp.page, coll, statuses, needle, int(page) - 1, PAGE_SIZE)
                      if statuses else ([], False)) or ([], False)
    rows = [r for d in docs for r in diff_rows(d)]
    if not rows:
        st.info("No documents match this filter on this page.")
        return
    frame = pd.DataFrame(rows, columns=COLUMNS)
    # widths that add up to the page's width: the last column (the live value) is never cut off, and a
    # long value is shortened in its cell (hover or widen the column to read it)
    st.dataframe(frame.style.apply(_style_rows, axis=1), hide_index=True, width="stretch",
                 column_config={"key": st.column_config.TextColumn("key", width=195),
                                "document": st.column_config.TextColumn("document", width=140),
                                "status": st.column_config.TextColumn("status", width=100),
                                "field": st.column_config.TextColumn("field path", width=110),
                                "backup": st.column_config.TextColumn("backup value (type)", width=175),
                                "live": st.column_config.TextColumn("live value (type)", width=175)})
    first = (int(page) - 1) * PAGE_SIZE + 1
    st.caption(f"Documents {first}–{first + len(docs) - 1}" + (" (more on the next page)" if has_more else
                                                                 " (last page)")
               + ". Green: the restore adds it; red: a replace deletes it; yellow: the restore overwrites the "
                 "live value. (missing): the field is not there; null: it is there, empty.")
