"""Restore: compare a backup with live data, preview, restore, undo; import a backup zip.

The flow follows the admin's questions in order: which backup (day, then
backup), which collections, what differs from live data (counts, indexes and
options, then the documents and fields), what a restore would do (dry run),
and only then the restore itself, behind a confirmation that names the
database and the collections. Every restore takes a safety backup first; the
result offers a one-click Undo. Viewers can compare but not change data.
The flow itself lives in ``webui.restore_flow``.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backup_core import transfer
from backup_core.paged_compare import DIFF_STATUSES
from backup_core.context import open_store
from backup_core.restore import RestoreOptions
from webui import restore_flow as flow
from webui.common import (backup_picker, get_settings, human_bytes, is_admin, local_time, local_zone,
                          require_admin, require_login, run_core)
from webui.progress import PhaseBar

PAGE_SIZE = 50
STATUS_LABELS = {"only_in_backup": "only in backup", "only_in_live": "only in live", "changed": "changed",
                 "identical": "identical"}
STATUS_COLORS = {"only_in_backup": "background-color: #d8f3dc", "only_in_live": "background-color: #ffd6d6",
                 "changed": "background-color: #fff3bf"}
STATUS_BY_LABEL = {label: status for status, label in STATUS_LABELS.items()}
VALUE_WIDTH = 200


def _cell(value) -> str:
    """A value as short readable text for a table cell."""
    if value is None:
        return ""
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag in ("$oid", "$numberLong", "$numberDecimal", "$date") and isinstance(inner, str):
            value = inner  # ObjectId hex, digits, ISO date: how an admin reads them
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 1] + "…"


def _diff_rows(diff) -> list[dict]:
    """One table row per changed field; one row for a document only on one side."""
    label = flow.document_label(diff.live_doc if diff.live_doc is not None else diff.backup_doc)
    base = {"key": _cell(diff.key), "document": label, "status": STATUS_LABELS.get(diff.status, diff.status)}
    if diff.status == "changed" and diff.fields:
        return [dict(base, field=f.path, backup=_cell(f.backup), live=_cell(f.live),
                     backup_type=f.backup_type or "", live_type=f.live_type or "") for f in diff.fields]
    return [dict(base, field="(whole document)", backup=_cell(diff.backup_doc), live=_cell(diff.live_doc),
                 backup_type="document" if diff.backup_doc is not None else "",
                 live_type="document" if diff.live_doc is not None else "")]


def _style_rows(row: pd.Series) -> list[str]:
    color = STATUS_COLORS.get(STATUS_BY_LABEL.get(row["status"], ""), "")
    return [color if col in ("status", "backup", "live") else "" for col in row.index]


def _counts_frame(result) -> pd.DataFrame:
    """Per-collection restore counts; merge-only columns are left out for replace."""
    rows = [dict(collection=n, **c.counts()) for n, c in result.collections.items()]
    frame = pd.DataFrame(rows)
    if result.mode == "replace":
        frame = frame.drop(columns=[c for c in ("skipped", "kept") if c in frame], errors="ignore")
    return frame.rename(columns={"kept": "live-only kept"})


def _schema_notes(collections: dict) -> list[str]:
    """Index and option differences, one line per collection that has any."""
    notes = []
    for name, c in collections.items():
        parts = [f"{what} {verb}: {', '.join(diff[verb])}" for what, diff in (("indexes", c.indexes),
                                                                               ("options", c.options))
                 for verb in ("added", "removed", "changed") if diff[verb]]
        if parts:
            notes.append(f"**{name}**: " + "; ".join(parts))
    return notes


# ---------------------------------------------------------------------------
st.title("Restore")
user = require_login()
settings = get_settings()
store = open_store(settings)
st.caption(f"Live database: **{settings.db_name}** on {settings.uri_display}")

if st.session_state.pop("restore_clear_confirm", False):  # before the widgets are created
    # assigning (not deleting) also resets the value the browser holds for these widgets
    st.session_state["restore_confirm_text"] = ""
    st.session_state["restore_confirm_check"] = False
    st.session_state["restore_allow_other_db"] = False
    st.session_state["restore_allow_destructive"] = False

show_safety = st.toggle("Show safety backups", key="restore_show_safety",
                        help="Every restore first backs up what it changes (a safety backup); restoring one "
                             "undoes that restore. Hidden by default: the latest restore's is under "
                             "**Recent restores** below, with its Undo button.")
info = backup_picker(store, "restore", include_safety=show_safety)
if info is not None:
    # a safety backup records the collections its restore created: restoring it (replace) removes them
    absent = info.absent_collections
    names = list(info.collections) + absent
    collections = st.multiselect("Collections", names, default=names, key="restore_collections",
                                 format_func=lambda n: f"{n} (did not exist: replace removes it)" if n in absent
                                 else n,
                                 help="Compare and restore only these collections of the backup.")
    st.dataframe(pd.DataFrame([{"collection": n, "documents": c.count, "size": human_bytes(c.bytes)}
                               for n, c in info.collections.items()]
                              + [{"collection": n, "documents": 0, "size": "(did not exist)"} for n in absent]),
                 hide_index=True, width="content")
    match_key = st.text_input("Match documents by field", value="_id", key="restore_match_key",
                              help="The unique field that identifies a document in backup and live data.")
    if info.database and info.database != settings.db_name:
        st.warning(f"This backup was taken from database **{info.database}**; the live database is "
                   f"**{settings.db_name}**.")

    # ---- compare with live data -------------------------------------------------
    st.subheader("Compare with live data")
    cmp = None
    if not collections:
        st.info("Choose at least one collection.")
    else:
        asked = st.button("Compare with live data", key="restore_compare_btn")
        with st.spinner("Comparing backup and live data…"):
            cmp = run_core(flow.comparison, settings, info.backup_id, collections, match_key, refresh=asked)
    if cmp is not None:
        st.dataframe(pd.DataFrame([
            {"collection": name, "only in backup": c.only_in_backup, "only in live": c.only_in_live,
             "changed": c.changed, "identical": c.identical} for name, c in cmp.collections.items()]),
            hide_index=True, width="content")
        tz, zone = local_zone()
        st.caption(f"Compared at {local_time(cmp.computed_at, tz)} {zone} (in {cmp.duration_s:.1f} s); "
                   "click Compare again to refresh.")
        for note in _schema_notes(cmp.collections):
            st.markdown("Indexes and options: " + note)
        for name, c in cmp.collections.items():
            for w in c.warnings:
                st.warning(f"{name}: {w}")
        differing = cmp.differing()
        if not differing:
            st.success("The backup and the live data hold the same documents for these collections.")
        else:
            st.markdown("**Documents that differ**")
            f1, f2, f3 = st.columns([2, 4, 3])
            with f1:
                coll = st.selectbox("Collection", differing, key="restore_diff_collection")
            with f2:
                statuses = st.multiselect("Status", list(DIFF_STATUSES), default=list(DIFF_STATUSES),
                                          format_func=STATUS_LABELS.get, key="restore_diff_status")
            with f3:
                needle = st.text_input("Filter text", key="restore_diff_text",
                                       placeholder="key, name or any value").strip()
            page = st.columns([1, 4])[0].number_input("Page", min_value=1, value=1, step=1,
                                                      key="restore_diff_page")
            docs, has_more = (run_core(cmp.page, coll, statuses, needle, int(page) - 1, PAGE_SIZE)
                              if statuses else ([], False)) or ([], False)
            rows = [r for d in docs for r in _diff_rows(d)]
            if rows:
                frame = pd.DataFrame(rows, columns=["key", "document", "status", "field", "backup", "live",
                                                    "backup_type", "live_type"])
                st.dataframe(frame.style.apply(_style_rows, axis=1), hide_index=True, width="stretch",
                             column_config={
                                 "key": st.column_config.TextColumn("key", width=210),
                                 "document": st.column_config.TextColumn("document", width=160),
                                 "status": st.column_config.TextColumn("status", width=120),
                                 "field": st.column_config.TextColumn("field path", width=150),
                                 "backup": st.column_config.TextColumn("backup value", width="medium"),
                                 "live": st.column_config.TextColumn("live value", width="medium"),
                                 "backup_type": st.column_config.TextColumn("backup type", width="small"),
                                 "live_type": st.column_config.TextColumn("live type", width="small"),
                             })
                first = (int(page) - 1) * PAGE_SIZE + 1
                st.caption(f"Documents {first}–{first + len(docs) - 1}"
                           + (" (more on the next page)" if has_more else " (last page)")
                           + ". Green: the restore adds it; red: a replace deletes it; "
                             "yellow: the restore overwrites the live value.")
            else:
                st.info("No documents match this filter on this page.")
    elif collections:
        st.caption("Click **Compare with live data** to see what differs before you restore.")

    # ---- restore ----------------------------------------------------------------
    st.subheader("Restore this backup")
    can_change = require_admin("Restoring or uploading backups")
    if can_change and collections:
        mode = st.radio("Mode", ["replace", "merge"], horizontal=True, key="restore_mode",
                        format_func={"replace": "replace (collections become exactly the backup)",
                                     "merge": "merge (upsert by key, keep other live documents)"}.get)
        strategy = "backup-wins"
        if mode == "merge":
            strategy = st.radio("When a document exists in both", ["backup-wins", "live-wins"],
                                horizontal=True, key="restore_strategy",
                                format_func={"backup-wins": "backup wins (overwrite live)",
                                             "live-wins": "live wins (keep live, skip)"}.get)
        other_db = bool(info.database and info.database != settings.db_name)
        allow_other = other_db and st.checkbox(
            f"Yes, restore data from database {info.database} into {settings.db_name}",
            key="restore_allow_other_db")
        warnings = [w for c in (cmp.collections.values() if cmp else []) for w in c.warnings]
        allow_destructive = bool(warnings) and st.checkbox(
            "Yes, restore although the backup's TTL index or capped size will delete some restored documents",
            key="restore_allow_destructive")

        def options(dry_run: bool, confirmed: bool) -> RestoreOptions:
            return RestoreOptions(mode=mode, collections=list(collections), strategy=strategy, dry_run=dry_run,
                                  confirmed=confirmed, match_field=match_key, allow_other_db=allow_other,
                                  allow_destructive_options=allow_destructive, user=user.name)

        plan_sig = (info.backup_id, tuple(collections), match_key, mode, strategy, allow_other, allow_destructive)
        if st.button("Preview (dry run)", key="restore_preview_btn"):
            with st.spinner("Working out what the restore would change…"):
                plan = run_core(flow.preview, settings, info.backup_id, options(True, False))
            if plan is not None:
                st.session_state[flow.PLAN_KEY] = {"sig": plan_sig, "result": plan}
        plan_state = st.session_state.get(flow.PLAN_KEY)
        if plan_state and plan_state["sig"] == plan_sig:
            st.markdown("**Dry run: this is exactly what the restore will do**")
            st.dataframe(_counts_frame(plan_state["result"]), hide_index=True, width="content")
            for note in _schema_notes(plan_state["result"].collections):
                st.markdown("Indexes and options: " + note)

        names_text = ", ".join(collections)
        if mode == "replace":
            st.warning(f"**Replace** collections **{names_text}** in database **{settings.db_name}** with the "
                       f"contents of backup {info.backup_id}. Live documents that are not in the backup are "
                       "deleted. A safety backup is taken first, so you can undo.")
            typed = st.text_input(f"Type the database name **{settings.db_name}** to confirm",
                                  key="restore_confirm_text")
            confirmed = typed.strip() == settings.db_name
        else:
            st.warning(f"**Merge** backup {info.backup_id} into collections **{names_text}** of database "
                       f"**{settings.db_name}** ({strategy}). A safety backup is taken first, so you can undo.")
            confirmed = st.checkbox(f"I want to merge into {settings.db_name}", key="restore_confirm_check")
        ready = confirmed and (allow_other or not other_db)
        if st.button(f"Restore into {settings.db_name}", type="primary", disabled=not ready,
                     key="restore_run_btn"):
            # comparing, safety backup, writing: documents done / total, rate, time left
            bar = PhaseBar(st.progress(0.0, text="Starting the restore…"))
            res = run_core(flow.restore, settings, info.backup_id, options(False, True), bar.callback)
            bar.element.empty()
            if res is not None:
                st.session_state["restore_clear_confirm"] = True  # no accidental second restore
                st.rerun()
    elif can_change:
        st.info("Choose at least one collection to restore.")

# ---- recent restores, their safety backups, and the Undo of the latest ----------
last = flow.last_restore()
if last and is_admin():  # this session's restore or undo: what it did
    res = last.result
    what = (f"Undid the restore of backup {last.undo_of} (restored safety backup {last.backup_id})"
            if last.undo_of else f"Restored backup {last.backup_id}")
    st.success(f"{what} into {settings.db_name} ({', '.join(last.collections)}) in {res.duration_s:.1f} s. "
               + (f"Safety backup: **{res.safety_backup_id}**" if res.safety_backup_id
                  else "No safety backup was taken, so there is nothing to undo."))
    st.dataframe(_counts_frame(res), hide_index=True, width="content")
    if last.undo_of:
        st.info(f"Undone: the data is back as it was before backup {last.undo_of} was restored.")
restores = run_core(flow.recent_restores, settings)
if restores:
    st.subheader("Recent restores")
    tz, zone = local_zone()
    st.dataframe(pd.DataFrame([{
        "when": local_time(r.at, tz), "user": r.user, "restored backup": r.backup_id, "mode": r.mode,
        "collections": ", ".join(r.collections), "safety backup": r.safety_backup_id or "(none)",
        "undo": (f"undone {local_time(r.undone_at, tz)}" if r.undone_by
                 else "possible" if i == 0 and r.safety_backup_id else ""),
    } for i, r in enumerate(restores)]), hide_index=True, width="stretch")
    st.caption(f"Newest first, times in {zone}. Each restore first took the safety backup shown next to it; "
               "only the latest restore can be undone from here (an older one would also undo the later ones: "
               "restore its safety backup above to do that on purpose).")
    undoable = run_core(flow.latest_undoable, settings)
    # a click reruns the page: undo what the button showed then, which flow.undo checks is still the latest
    offered = st.session_state.get("restore_undo_offered")
    st.session_state["restore_undo_offered"] = undoable
    if undoable is not None and is_admin():
        undoing_undo = any(r.safety_backup_id == undoable.backup_id for r in restores[1:])
        label = (f"Undo the latest restore (backup {undoable.backup_id}, {local_time(undoable.at, tz)}): "
                 f"restore safety backup {undoable.safety_backup_id}")
        if undoing_undo:
            st.caption("The latest restore was itself an undo: undoing it restores the data as the restore "
                       "before left it.")
        if st.button(label, key="restore_undo_btn"):
            with st.spinner("Undoing the restore…"):
                undone = run_core(flow.undo, settings, offered or undoable, user.name)
            if undone is not None:
                st.session_state["restore_clear_confirm"] = True
                st.rerun()

# ---- upload a backup zip ---------------------------------------------------------
st.divider()
st.subheader("Upload a backup (.zip)")
if is_admin():
    limit = settings.import_max_bytes
    uploaded = st.file_uploader(f"Backup zip made by `export` (at most {human_bytes(limit)})", type=["zip"],
                                key="restore_upload")
    if uploaded is not None and st.button("Import this backup", key="restore_import_btn"):
        if uploaded.size > limit:
            st.error(f"{uploaded.name} is {human_bytes(uploaded.size)}; the limit is {human_bytes(limit)}. "
                     "Raise BACKUP_IMPORT_MAX_MB, or use `python -m backup_core import` on the server.")
        else:
            with st.spinner("Checking and importing the archive…"):
                imported = run_core(transfer.import_backup, store, uploaded, max_bytes=limit, user=user.name)
            if imported is not None and imported.already_present:
                st.info(f"Backup **{imported.backup_id}** was already present (identical); nothing was imported.")
            elif imported is not None:
                st.success(f"Imported backup **{imported.backup_id}**; pick it above to compare or restore.")
else:
    st.caption("Uploading backups needs the admin role.")
