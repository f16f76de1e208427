"""Restore: compare a backup with live data, preview, restore, undo; import a backup zip.

The flow follows the admin's questions in order: which backup (day, then
backup), which collections, what differs from live data (counts, indexes and
options, then the documents and fields: ``restore_diff``), what a restore
would do (dry run), and only then the restore itself, behind a confirmation
that names the database and the collections. Every restore takes a safety
backup first; the latest restore (finished or interrupted) can be undone the
same way: Undo shows what it would change per collection (a dry run), then
asks for the database name, and only then puts back the collections that
restore touched. Viewers can compare but not change data. The state and
actions are the page model's (``webui.restore_flow.RestoreFlow``); this
module only draws.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core import transfer
from backup_core.restore import RestoreOptions
from webui.common import human_bytes, run_core
from webui.progress import PhaseBar
from webui.restore_flow import RestoreFlow
from webui.sections.restore_results import counts_frame, last_result, recent_restores
from webui.sections import restore_diff
from webui.ui import Ui
from webui.widgets import backup_picker


def render(ui: Ui) -> None:
    flow = RestoreFlow(ui)
    st.caption(f"Live database: **{ui.settings.db_name}** on {ui.settings.uri_display}")
    flow.clear_confirmation_if_asked()  # before the widgets are created
    show_safety = st.toggle("Show safety backups", key=ui.k("restore_show_safety"),
                            help="Every restore first backs up what it changes (a safety backup); restoring one "
                                 "undoes that restore. Hidden by default: the latest restore's is under "
                                 "**Recent restores** below, with its Undo button.")
    info = backup_picker(ui, "restore", include_safety=show_safety)
    if info is not None:
        _backup(ui, flow, info)
    recent_restores(ui, flow)
    _upload(ui)


def _backup(ui: Ui, flow: RestoreFlow, info) -> None:
    # a safety backup records the collections its restore created: restoring it (replace) removes them
    absent = info.absent_collections
    names = list(info.collections) + absent
    collections = st.multiselect("Collections", names, default=names, key=ui.k("restore_collections"),
                                 format_func=lambda n: f"{n} (did not exist: replace removes it)" if n in absent
                                 else n, help="Compare and restore only these collections of the backup.")
    st.dataframe(pd.DataFrame([{"collection": n, "documents": c.count, "size": human_bytes(c.bytes)}
                               for n, c in info.collections.items()]
                              + [{"collection": n, "documents": 0, "size": "(did not exist)"} for n in absent]),
                 hide_index=True, width="content")
    match_key = st.text_input("Match documents by field", value="_id", key=ui.k("restore_match_key"),
                              help="The unique field that identifies a document in backup and live data.")
    if info.database and info.database != ui.settings.db_name:
        st.warning(f"This backup was taken from database **{info.database}**; the live database is "
                   f"**{ui.settings.db_name}**.")
    st.subheader("Compare with live data")
    cmp = None
    if not collections:
        st.info("Choose at least one collection.")
    else:
        asked = st.button("Compare with live data", key=ui.k("restore_compare_btn"))
        with st.spinner("Comparing backup and live data…"):
            cmp = run_core(flow.comparison, info.backup_id, collections, match_key, refresh=asked)
    if cmp is not None:
        restore_diff.render(ui, cmp)
    elif collections:
        st.caption("Click **Compare with live data** to see what differs before you restore.")
    st.subheader("Restore this backup")
    if not ui.is_admin:
        st.info(f"Restoring needs the admin role; {ui.user.name} ({ui.user.role}) can compare but not restore.")
    elif not collections:
        st.info("Choose at least one collection to restore.")
    else:
        _restore_controls(ui, flow, info, collections, match_key, cmp)
    last_result(ui, flow, "restore")


def _restore_controls(ui: Ui, flow: RestoreFlow, info, collections: list[str], match_key: str, cmp) -> None:
    db_name = ui.settings.db_name
    mode = st.radio("Mode", ["replace", "merge"], horizontal=True, key=ui.k("restore_mode"),
                    format_func={"replace": "replace (collections become exactly the backup)",
                                 "merge": "merge (upsert by key, keep other live documents)"}.get)
    strategy = "backup-wins"
    if mode == "merge":
        strategy = st.radio("When a document exists in both", ["backup-wins", "live-wins"], horizontal=True,
                            key=ui.k("restore_strategy"), format_func={"backup-wins": "backup wins (overwrite live)",
                                                                      "live-wins": "live wins (keep live, skip)"}.get)
    other_db = bool(info.database and info.database != db_name)
    allow_other = other_db and st.checkbox(f"Yes, restore data from database {info.database} into {db_name}",
                                           key=ui.k("restore_allow_other_db"))
    warnings = [w for c in (cmp.collections.values() if cmp else []) for w in c.warnings]
    allow_destructive = bool(warnings) and st.checkbox(
        "Yes, restore although the backup's TTL index or capped size will delete some restored documents",
        key=ui.k("restore_allow_destructive"))

    def options(dry_run: bool) -> RestoreOptions:
        return RestoreOptions(mode=mode, collections=list(collections), strategy=strategy, dry_run=dry_run,
                              confirmed=not dry_run, match_field=match_key, allow_other_db=allow_other,
                              allow_destructive_options=allow_destructive, user=ui.user.name)

    signature = (info.backup_id, tuple(collections), match_key, mode, strategy, allow_other, allow_destructive)
    if st.button("Preview (dry run)", key=ui.k("restore_preview_btn")):
        with st.spinner("Working out what the restore would change…"):
            run_core(flow.preview, info.backup_id, options(True), signature)
    plan = flow.plan(signature)
    if plan is not None:
        st.markdown("**Dry run: this is exactly what the restore will do**")
        st.dataframe(counts_frame(plan), hide_index=True, width="content")
        for note in restore_diff.schema_notes(plan.collections):
            st.markdown("Indexes and options: " + note)
    names_text = ", ".join(collections)
    if mode == "replace":
        st.warning(f"**Replace** collections **{names_text}** in database **{db_name}** with the contents of "
                   f"backup {info.backup_id}. Live documents that are not in the backup are deleted. A safety "
                   "backup is taken first, so you can undo.")
        typed = st.text_input(f"Type the database name **{db_name}** to confirm", key=ui.k("restore_confirm_text"))
        confirmed = typed.strip() == db_name
    else:
        st.warning(f"**Merge** backup {info.backup_id} into collections **{names_text}** of database **{db_name}** "
                   f"({strategy}). A safety backup is taken first, so you can undo.")
        confirmed = st.checkbox(f"I want to merge into {db_name}", key=ui.k("restore_confirm_check"))
    ready = confirmed and (allow_other or not other_db)
    if st.button(f"Restore into {db_name}", type="primary", disabled=not ready, key=ui.k("restore_run_btn")) \
            and ui.allowed("Restoring a backup") and ready:
        # comparing, safety backup, writing: documents done / total, rate, time left
        bar = PhaseBar(st.progress(0.0, text="Starting the restore…"))
        res = run_core(flow.restore, info.backup_id, options(False), bar.callback)
        bar.element.empty()
        if res is not None:
            st.rerun()


def _upload(ui: Ui) -> None:
    st.divider()
    st.subheader("Upload a backup (.zip)")
    if not ui.is_admin:
        st.caption("Uploading backups needs the admin role.")
        return
    limit = ui.settings.import_max_bytes
    uploaded = st.file_uploader(f"Backup zip made by `export` (at most {human_bytes(limit)})", type=["zip"],
                                key=ui.k("restore_upload"))
    if uploaded is None or not st.button("Import this backup", key=ui.k("restore_import_btn")) \
            or not ui.allowed("Uploading a backup"):
        return
    if uploaded.size > limit:
        st.error(f"{uploaded.name} is {human_bytes(uploaded.size)}; the limit is {human_bytes(limit)}. "
                 "Raise BACKUP_IMPORT_MAX_MB, or use `python -m backup_core import` on the server.")
        return
    with st.spinner("Checking and importing the archive…"):
        imported = run_core(transfer.import_backup, ui.store, uploaded, max_bytes=limit, user=ui.user.name)
    if imported is not None and imported.already_present:
        st.info(f"Backup **{imported.backup_id}** was already present (identical); nothing was imported.")
    elif imported is not None:
        st.success(f"Imported backup **{imported.backup_id}**; pick it above to compare or restore.")
