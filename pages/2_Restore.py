"""Restore: compare a backup with live data, preview, restore, undo; import a backup zip.

The flow follows the admin's questions in order: which backup (day, then
backup), which collections, what differs from live data (counts, then the
documents and fields), what a restore would do (dry run), and only then the
restore itself, behind a confirmation that names the database and the
collections. Every restore takes a safety backup first; the result offers a
one-click Undo that restores it. Viewers can compare but not change data.
"""

from __future__ import annotations

import itertools
import json

import pandas as pd
import streamlit as st

from backup_core import compare, restore, transfer
from backup_core.context import open_context, open_store
from webui.common import (backup_picker, get_settings, human_bytes, is_admin, require_admin,
                          require_login, run_core)

PAGE_SIZE = 50
STATUS_LABELS = {
    "only_in_backup": "only in backup",
    "only_in_live": "only in live",
    "changed": "changed",
    "identical": "identical",
}
STATUS_COLORS = {
    "only_in_backup": "background-color: #d8f3dc",
    "only_in_live": "background-color: #ffd6d6",
    "changed": "background-color: #fff3bf",
}
STATUS_BY_LABEL = {label: status for status, label in STATUS_LABELS.items()}
VALUE_WIDTH = 200


def _with_db(fn, *args, **kwargs):
    """Run one backup_core call with a fresh database connection; errors become st.error."""
    def call():
        with open_context(settings) as ctx:
            return fn(ctx.db, ctx.store, *args, **kwargs)
    return run_core(call)


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
    base = {"key": _cell(diff.key), "status": STATUS_LABELS.get(diff.status, diff.status)}
    if diff.status == "changed" and diff.fields:
        return [dict(base, field=f.path, backup=_cell(f.backup), live=_cell(f.live),
                     backup_type=f.backup_type or "", live_type=f.live_type or "")
                for f in diff.fields]
    return [dict(base, field="(whole document)", backup=_cell(diff.backup_doc), live=_cell(diff.live_doc),
                 backup_type="document" if diff.backup_doc is not None else "",
                 live_type="document" if diff.live_doc is not None else "")]


def _style_rows(row: pd.Series) -> list[str]:
    color = STATUS_COLORS.get(STATUS_BY_LABEL.get(row["status"], ""), "")
    return [color if col in ("status", "backup", "live") else "" for col in row.index]


def _counts_frame(result) -> pd.DataFrame:
    """Per-collection restore counts; merge-only columns are left out for replace."""
    rows = [dict(collection=n, **c.to_json()) for n, c in result.collections.items()]
    frame = pd.DataFrame(rows)
    if result.mode == "replace":
        frame = frame.drop(columns=[c for c in ("skipped", "kept") if c in frame], errors="ignore")
    return frame.rename(columns={"kept": "live-only kept"})


def _matches(diff, needle: str) -> bool:
    if not needle:
        return True
    return any(needle in " ".join(str(v) for v in r.values()).casefold() for r in _diff_rows(diff))


# ---------------------------------------------------------------------------
st.title("Restore")
user = require_login()
settings = get_settings()
store = open_store(settings)

if st.session_state.pop("restore_clear_confirm", False):  # before the widgets are created
    # assigning (not deleting) also resets the value the browser holds for these widgets
    st.session_state["restore_confirm_text"] = ""
    st.session_state["restore_confirm_check"] = False
    st.session_state["restore_allow_other_db"] = False
st.caption(f"Live database: **{settings.db_name}** on {settings.uri_display}")
info = backup_picker(store, "restore")

if info is not None:
    # a safety backup records the collections its restore created: restoring it (replace) removes them
    absent = info.absent_collections
    names = list(info.collections) + absent
    collections = st.multiselect("Collections", names, default=names, key="restore_collections",
                                 format_func=lambda n: f"{n} (did not exist: replace removes it)" if n in absent
                                 else n,
                                 help="Compare and restore only these collections of the backup.")
    st.dataframe(pd.DataFrame([{"collection": n, "documents": c.get("count", 0),
                                "size": human_bytes(c.get("bytes", 0))}
                               for n, c in info.collections.items()]
                              + [{"collection": n, "documents": 0, "size": "(did not exist)"} for n in absent]),
                 hide_index=True, width="content")
    match_key = st.text_input("Match documents by field", value="_id", key="restore_match_key",
                              help="The unique field that identifies a document in backup and live data.")
    signature = (info.backup_id, tuple(collections), match_key)
    if info.database and info.database != settings.db_name:
        st.warning(f"This backup was taken from database **{info.database}**; the live database is "
                   f"**{settings.db_name}**.")

    # ---- compare with live data -------------------------------------------------
    st.subheader("Compare with live data")
    if not collections:
        st.info("Choose at least one collection.")
    elif st.button("Compare with live data", key="restore_compare_btn"):
        with st.spinner("Comparing backup and live data…"):
            result = _with_db(compare.compare_backup, info.backup_id, collections=collections, key=match_key)
        if result is not None:
            st.session_state["restore_compare"] = {"sig": signature, "result": result}

    cmp_state = st.session_state.get("restore_compare")
    if cmp_state and cmp_state["sig"] == signature and collections:
        result = cmp_state["result"]
        st.dataframe(pd.DataFrame([
            {"collection": name, "only in backup": c.only_in_backup, "only in live": c.only_in_live,
             "changed": c.changed, "identical": c.identical}
            for name, c in result.collections.items()]), hide_index=True, width="content")
        differing = [n for n, c in result.collections.items() if c.only_in_backup or c.only_in_live or c.changed]
        st.markdown("  \n".join(
            f"**{n}**: {c.only_in_backup} only in backup · {c.only_in_live} only in live · "
            f"{c.changed} changed · {c.identical} identical" for n, c in result.collections.items()))
        if not differing:
            st.success("The backup and the live data are identical for these collections.")
        else:
            st.markdown("**Documents that differ**")
            f1, f2, f3 = st.columns([2, 4, 3])
            with f1:
                coll = st.selectbox("Collection", differing, key="restore_diff_collection")
            with f2:
                statuses = st.multiselect("Status", ["only_in_backup", "only_in_live", "changed"],
                                          default=["only_in_backup", "only_in_live", "changed"],
                                          format_func=STATUS_LABELS.get, key="restore_diff_status")
            with f3:
                needle = st.text_input("Filter text", key="restore_diff_text",
                                       placeholder="key, field path or value").strip().casefold()
            page = st.columns([1, 4])[0].number_input("Page", min_value=1, value=1, step=1,
                                                      key="restore_diff_page")

            def load_page(db, store_):
                diffs = compare.iter_differences(db, store_, info.backup_id, coll, key=match_key,
                                                 statuses=statuses or None)
                chosen = (d for d in diffs if _matches(d, needle))
                start = (int(page) - 1) * PAGE_SIZE
                return list(itertools.islice(chosen, start, start + PAGE_SIZE + 1))

            docs = _with_db(load_page) if statuses else []
            if docs is not None:
                has_more = len(docs) > PAGE_SIZE
                docs = docs[:PAGE_SIZE]
                rows = [r for d in docs for r in _diff_rows(d)]
                if rows:
                    frame = pd.DataFrame(rows, columns=["key", "status", "field", "backup", "live",
                                                        "backup_type", "live_type"])
                    st.dataframe(frame.style.apply(_style_rows, axis=1), hide_index=True, width="stretch",
                                 column_config={
                                     "key": st.column_config.TextColumn("key", width=210),
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
        allow_other = False
        if other_db:
            allow_other = st.checkbox(
                f"Yes, restore data from database {info.database} into {settings.db_name}",
                key="restore_allow_other_db")

        def options(dry_run: bool, confirmed: bool) -> "restore.RestoreOptions":
            return restore.RestoreOptions(mode=mode, collections=list(collections), strategy=strategy,
                                          dry_run=dry_run, confirmed=confirmed, key=match_key,
                                          allow_other_db=allow_other, user=user.name)

        plan_sig = signature + (mode, strategy, allow_other)
        if st.button("Preview (dry run)", key="restore_preview_btn"):
            with st.spinner("Working out what the restore would change…"):
                plan = _with_db(restore.plan_restore, info.backup_id, options(True, False))
            if plan is not None:
                st.session_state["restore_plan"] = {"sig": plan_sig, "result": plan}
        plan_state = st.session_state.get("restore_plan")
        if plan_state and plan_state["sig"] == plan_sig:
            st.markdown("**Dry run: this is exactly what the restore will do**")
            st.dataframe(_counts_frame(plan_state["result"]), hide_index=True, width="content")

        names = ", ".join(collections)
        if mode == "replace":
            st.warning(f"**Replace** collections **{names}** in database **{settings.db_name}** with the "
                       f"contents of backup {info.backup_id}. Live documents that are not in the backup are "
                       "deleted. A safety backup is taken first, so you can undo.")
            typed = st.text_input(f"Type the database name **{settings.db_name}** to confirm",
                                  key="restore_confirm_text")
            confirmed = typed.strip() == settings.db_name
        else:
            st.warning(f"**Merge** backup {info.backup_id} into collections **{names}** of database "
                       f"**{settings.db_name}** ({strategy}). A safety backup is taken first, so you can undo.")
            confirmed = st.checkbox(f"I want to merge into {settings.db_name}", key="restore_confirm_check")
        ready = confirmed and (allow_other or not other_db)
        if st.button(f"Restore into {settings.db_name}", type="primary", disabled=not ready,
                     key="restore_run_btn"):
            bar = st.progress(0.0, text="Taking a safety backup…")

            def on_progress(*args):
                if len(args) >= 3 and args[2]:
                    name, done, total = args[0], args[1], args[2]
                    bar.progress(min(1.0, done / total), text=f"{name}: {done:,} of {total:,}")

            res = _with_db(restore.restore_backup, info.backup_id, options(False, True), progress=on_progress)
            bar.empty()
            if res is not None:
                st.session_state["restore_last"] = {"result": res, "backup_id": info.backup_id,
                                                    "collections": list(collections), "undone": None}
                st.session_state.pop("restore_compare", None)  # stale now: compare again
                st.session_state.pop("restore_plan", None)
                st.session_state["restore_clear_confirm"] = True  # no accidental second restore
                st.rerun()
    elif can_change:
        st.info("Choose at least one collection to restore.")

# ---- the last restore and its Undo (shown whatever backup is selected now) -----
last = st.session_state.get("restore_last")
if last and is_admin():
    res = last["result"]
    st.subheader("Last restore")
    st.success(f"Restored backup {last['backup_id']} into {settings.db_name} "
               f"({', '.join(last['collections'])}) in {res.duration_s:.1f} s. "
               + (f"Safety backup: **{res.safety_backup_id}**" if res.safety_backup_id
                  else "No safety backup was taken, so there is nothing to undo."))
    st.dataframe(_counts_frame(res), hide_index=True, width="content")
    if last["undone"]:
        st.info(f"Undone: restored safety backup {res.safety_backup_id} "
                f"(its own safety backup is {last['undone']}).")
    elif res.safety_backup_id and st.button(f"Undo (restore safety backup {res.safety_backup_id})",
                                            key="restore_undo_btn"):
        undo_opts = restore.RestoreOptions(mode="replace", collections=last["collections"], confirmed=True,
                                           user=user.name)
        with st.spinner("Undoing the restore…"):
            undo = _with_db(restore.restore_backup, res.safety_backup_id, undo_opts)
        if undo is not None:
            last["undone"] = undo.safety_backup_id or "none"
            st.session_state.pop("restore_compare", None)
            st.session_state["restore_clear_confirm"] = True
            st.rerun()

# ---- upload a backup zip ---------------------------------------------------------
st.divider()
st.subheader("Upload a backup (.zip)")
if is_admin():
    limit = run_core(transfer.default_max_bytes)  # BACKUP_IMPORT_MAX_MB, default 100 MB
    if limit is not None:
        uploaded = st.file_uploader(f"Backup zip made by `export` (at most {human_bytes(limit)})",
                                    type=["zip"], key="restore_upload")
        if uploaded is not None and st.button("Import this backup", key="restore_import_btn"):
            if uploaded.size > limit:
                st.error(f"{uploaded.name} is {human_bytes(uploaded.size)}; the limit is {human_bytes(limit)}. "
                         "Raise BACKUP_IMPORT_MAX_MB, or copy the backup folder into the backup root.")
            else:
                with st.spinner("Checking and importing the archive…"):
                    imported = run_core(transfer.import_backup, store, uploaded, max_bytes=limit,
                                        user=user.name)
                if imported is not None:
                    st.success(f"Imported backup **{imported.backup_id}**; pick it above to compare or restore.")
else:
    st.caption("Uploading backups needs the admin role.")
