"""The Restore section's results: a restore's or an undo's counts, Recent restores, and Undo of the latest
restore (its dry run, a typed confirmation, then the undo with progress); ``sections/restore.py`` draws the
rest of the section."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from webui.common import local_time, local_zone, run_core, show_error
from webui.progress import PhaseBar
from webui.restore_flow import SECTION, RestoreFlow
from webui.sections import restore_diff
from webui.ui import Ui


def counts_frame(result) -> pd.DataFrame:
    """Per-collection restore counts; merge-only columns are left out for replace."""
    frame = pd.DataFrame([dict(collection=n, **c.counts()) for n, c in result.collections.items()])
    if result.mode == "replace":
        frame = frame.drop(columns=[c for c in ("skipped", "kept") if c in frame], errors="ignore")
    return frame.rename(columns={"kept": "live-only kept"})


def last_result(ui: Ui, flow: RestoreFlow, where: str) -> None:
    """This session's last restore or undo, with its counts, next to the button that made it (``where``):
    until the next action of this section."""
    if not ui.is_admin or flow.result_at() != where:
        return
    res = ui.show_result(SECTION)
    if res is not None and res.data is not None:
        st.dataframe(counts_frame(res.data), hide_index=True, width="content")


STATES = {"finished": "finished", "interrupted": "interrupted (its process is gone: partly done)",
          "failed": "failed", "running": "still running"}


def recent_restores(ui: Ui, flow: RestoreFlow) -> None:
    restores = run_core(flow.recent_restores)
    if not restores:
        return
    st.subheader("Recent restores")
    tz, zone = local_zone()
    target, refusal = flow.undo_target()
    by_op = {r.op: r for r in restores}

    def action(r) -> str:
        if r.action != "undo":
            return f"restore ({r.mode})"
        undone = by_op.get(r.undo_of or "")
        return f"Undo of {undone.backup_id}" if undone is not None else "undo"

    # the columns one reads first come first, and together they fit the page (the collections are also
    # in the description under Undo)
    st.dataframe(pd.DataFrame([{
        "when": local_time(r.at, tz), "action": action(r), "restored backup": r.backup_id,
        "safety backup": r.safety_backup_id or "(none)", "state": STATES.get(r.state, r.state),
        "undo": (f"undone {local_time(r.undone_at, tz)}" if r.undone_by
                 else "possible (latest)" if target is not None and r.op == target.op else ""),
        "user": r.user, "collections": ", ".join(r.collections),
    } for r in restores]), hide_index=True, width="stretch",
        column_config={"when": st.column_config.TextColumn(width=130),
                       "action": st.column_config.TextColumn(width=175),
                       "restored backup": st.column_config.TextColumn(width=130),
                       "safety backup": st.column_config.TextColumn(width=130),
                       "state": st.column_config.TextColumn(width=75),
                       "undo": st.column_config.TextColumn(width=175),
                       "user": st.column_config.TextColumn(width=60),
                       "collections": st.column_config.TextColumn(width=110)})
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
        last_result(ui, flow, "undo")
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
    last_result(ui, flow, "undo")


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
