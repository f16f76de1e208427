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
from webui.common import human_bytes, local_time, local_zone, run_core, show_error
from webui.progress import PhaseBar
from webui.restore_flow import SECTION, RestoreFlow
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
    _recent_restores(ui, flow)
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
    _last_result(ui, flow, "restore")


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


def counts_frame(result) -> pd.DataFrame:
    """Per-collection restore counts; merge-only columns are left out for replace."""
    frame = pd.DataFrame([dict(collection=n, **c.counts()) for n, c in result.collections.items()])
    if result.mode == "replace":
        frame = frame.drop(columns=[c for c in ("skipped", "kept") if c in frame], errors="ignore")
    return frame.rename(columns={"kept": "live-only kept"})


def _last_result(ui: Ui, flow: RestoreFlow, where: str) -> None:
    """This session's last restore or undo, with its counts, next to the button that made it (``where``):
    until the next action of this section."""
    if not ui.is_admin or flow.result_at() != where:
        return
    res = ui.show_result(SECTION)
    if res is not None and res.data is not None:
        st.dataframe(counts_frame(res.data), hide_index=True, width="content")


STATES = {"finished": "finished", "interrupted": "interrupted (its process is gone: partly done)",
          "failed": "failed", "running": "still running"}


def _recent_restores(ui: Ui, flow: RestoreFlow) -> None:
    restores = run_core(flow.recent_restores)
    if not restores:
        return
    st.subheader("Recent restores")
    tz, zone = local_zone()
    target, refusal = flow.undo_target()
    by_op = {r.op: r for r in restores}

    def action(r) -> str:
        if r.action != "undo":
            return "restore"
        undone = by_op.get(r.undo_of or "")
        return f"Undo of {undone.backup_id}" if undone is not None else "undo"

    st.dataframe(pd.DataFrame([{
        "when": local_time(r.at, tz), "user": r.user, "action": action(r), "restored backup": r.backup_id,
        "mode": r.mode, "collections": ", ".join(r.collections), "state": STATES.get(r.state, r.state),
        "safety backup": r.safety_backup_id or "(none)",
        "undo": (f"undone {local_time(r.undone_at, tz)}" if r.undone_by
                 else "possible (latest)" if target is not None and r.op == target.op else ""),
    } for r in restores]), hide_index=True, width="stretch",
        column_config={"when": st.column_config.TextColumn(width=140), "user": st.column_config.TextColumn(width=80),
                       "action": st.column_config.TextColumn(width=150),
                       "restored backup": st.column_config.TextColumn(width=140),
                       "mode": st.column_config.TextColumn(width=65),
                       "collections": st.column_config.TextColumn(width=180),
                       "state": st.column_config.TextColumn(width=90),
                       "safety backup": st.column_config.TextColumn(width=140),
                       "undo": st.column_config.TextColumn(width=150)})
    st.caption(f"Newest first, times in {zone}. Each restore first took the safety backup shown next to it; an "
               "undo restores the safety backup of the restore it undoes (shown under restored backup). Only the "
               "latest restore can be undone from here (an older one would also undo the later ones: restore its "
               "safety backup above to do that on purpose).")
    if ui.is_admin:
        _undo(ui, flow, restores, target, refusal)
    else:
        st.caption("Undoing a restore needs the admin role.")


def _undo(ui: Ui, flow: RestoreFlow, restores, target, refusal) -> None:
    """The latest restore, an Undo button that only shows what it would change, then a typed confirmation."""
    st.subheader("Undo the latest restore")
    tz, zone = local_zone()
    if target is None:
        flow.forget_undo_plan()  # a dry run shown before is history: its restore was undone or went away
        latest = restores[0]
        if latest.action == "undo" and latest.state == "finished":
            st.caption("The latest restore was undone: there is nothing to undo. To redo it, restore the undo's "
                       f"safety backup {latest.safety_backup_id} (Show safety backups, above).")
        elif refusal is not None and latest.state == "running":
            st.info(f"Undo is not available now: {refusal}.")
        elif refusal is not None:
            show_error(refusal)
        _last_result(ui, flow, "undo")
        return
    if any(r.safety_backup_id == target.backup_id for r in restores[1:]):
        st.caption("The latest restore was itself an undo: undoing it restores the data as the restore "
                   "before left it.")
    left, right = st.columns([1, 6], vertical_alignment="center")
    clicked = left.button("Undo", key=ui.k("restore_undo_btn"),
                          help="Shows what the undo would change (a dry run); nothing changes until you confirm.")
    right.markdown(_describe(target, tz, zone))
    if target.error:
        st.caption(target.error)
    if clicked and ui.allowed("Undoing a restore"):
        with st.spinner("Working out what the undo would change…"):
            planned = run_core(flow.plan_undo, target)
        if planned is not None:
            st.rerun()  # the section's last result is drawn above this button: draw the page again without it
    plan, dropped = flow.undo_plan(target)
    if dropped:
        st.info("The dry run shown before was for a restore that is no longer the latest (another restore or "
                "undo happened since), so it was put away and nothing was changed. Click **Undo** to see what "
                "undoing the latest one would change.")
    if plan is not None:
        _confirm_undo(ui, flow, target, plan)
    _last_result(ui, flow, "undo")


def _describe(r, tz, zone: str) -> str:
    """Which restore Undo acts on: its backup, time, user, collections and whether it finished."""
    state = {"finished": "finished", "interrupted": "**interrupted** (its process is gone; the collections may be "
                                                    "partly restored)",
             "failed": "**failed** part way"}.get(r.state, r.state)
    return (f"Latest restore: backup **{r.backup_id}** ({r.mode}) at {local_time(r.at, tz)} ({zone}) by {r.user}, "
            f"collections **{', '.join(r.collections) or 'none'}**, {state}. Its safety backup "
            f"{r.safety_backup_id} holds these collections as they were before it.")


def _confirm_undo(ui: Ui, flow: RestoreFlow, target, plan) -> None:
    db_name = ui.settings.db_name
    names = ", ".join(target.collections) or "no collection"
    st.markdown("**Dry run: this is exactly what the undo will do** (nothing has changed yet)")
    st.dataframe(counts_frame(plan.result), hide_index=True, width="content")
    for note in restore_diff.schema_notes(plan.result.collections):
        st.markdown("Indexes and options: " + note)
    st.warning(f"**Undo**: collections **{names}** of database **{db_name}** become exactly what they were before "
               f"backup {target.backup_id} was restored (safety backup {plan.restored_backup_id}); changes made to "
               "them since are replaced too. No other collection is touched. A safety backup is taken first, so "
               "the undo can be undone as well.")
    typed = st.text_input(f"Type the database name **{db_name}** to confirm the undo",
                          key=ui.k("restore_undo_confirm_text"))
    confirmed = typed.strip() == db_name
    left, right = st.columns([1, 6])
    run = left.button("Undo now", type="primary", disabled=not confirmed, key=ui.k("restore_undo_run_btn"))
    if right.button("Cancel", key=ui.k("restore_undo_cancel_btn")):
        flow.forget_undo_plan()
        st.rerun()
    if not run or not ui.allowed("Undoing a restore"):
        return
    if not confirmed:  # the button is disabled, but a click can still reach the server
        st.error(f"Not undone: type the database name {db_name} to confirm. Nothing was changed.")
        return
    bar = PhaseBar(st.progress(0.0, text="Starting the undo…"))
    done = run_core(flow.undo, target, bar.callback)
    bar.element.empty()
    if done is not None:
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
