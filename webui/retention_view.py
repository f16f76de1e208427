"""The Auto Backup page's clean-up policy: edit it, preview what it keeps and why, then delete what it does not.

The preview is ``retention.preview`` (the same decisions ``cleanup`` takes),
and the delete button passes the ids the person saw (``expect``): if a backup
was made or deleted in between, the core refuses and nothing is deleted.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from backup_core import scheduler
from backup_core.errors import UsageError
from backup_core.retention import TIERS, RetentionPolicy, preview
from backup_core.timeutil import compact_duration, parse_duration
from webui.common import flash, human_bytes, is_admin, local_time, local_zone, plural, run_core

DRAFT = "auto_policy_draft"
SHOWN = "auto_policy_shown"  # the ids the last render marked delete: what a click confirms
COUNTS = [("keep_last", "Keep the last", "The newest N backups, whatever their age."),
          *[(f"keep_{t}", f"Keep {t}", f"The newest backup of each of the last N {unit} that have one.")
            for t, unit in zip(TIERS, ("hours", "days", "ISO weeks", "months"))]]


def _whole(label: str, value) -> int | None:
    if value is None:
        return None
    if float(value) != int(value) or value < 0:
        raise UsageError(f"“{label}” must be a whole number of 0 or more (or empty), got {value:g}")
    return int(value)


def _policy_from_form(values: dict) -> RetentionPolicy:
    """The form's values as a policy; every wrong value is a ``UsageError`` naming its field."""
    kw = {name: _whole(label, values[name]) for name, label, _ in COUNTS}
    within = (values["keep_within"] or "").strip()
    kw["keep_within"] = parse_duration(within, what="“Keep everything within … of the newest”",
                                       default_unit="d") if within else None
    days = values["older_than_days"]
    if days is not None and not days > 0:
        raise UsageError(f"“Keep everything younger than (days)” must be more than 0 (or empty), got {days:g}")
    kw["older_than"] = timedelta(days=days) if days is not None else None
    safety = values["safety_days"]
    if safety is None or safety < 0:
        raise UsageError("“Keep safety backups for (days)” must be 0 or more")
    return RetentionPolicy(**kw, safety_days=float(safety))


def decisions_frame(decisions, tz) -> pd.DataFrame:
    rows = [{"backup": d.backup_id, "created": local_time(d.created_at, tz), "trigger": d.trigger,
             "decision": "keep" if d.keep else "delete", "why": ", ".join(d.reasons) if d.keep else "no rule keeps it",
             "frees": "" if d.keep else human_bytes(d.freed)} for d in decisions]
    return pd.DataFrame(rows, columns=["backup", "created", "trigger", "decision", "why", "frees"])


def _form(policy: RetentionPolicy) -> tuple[bool, bool, dict]:
    with st.form("auto_policy_form"):
        cols = st.columns(len(COUNTS))
        values: dict = {}
        for col, (name, label, help_text) in zip(cols, COUNTS):
            values[name] = col.number_input(label, value=getattr(policy, name), step=1, key=f"auto_{name}",
                                            placeholder="not used", help=help_text + " Empty: not used.")
        left, mid, right = st.columns(3)
        values["keep_within"] = left.text_input(
            "Keep everything within … of the newest", key="auto_keep_within", placeholder="e.g. 2d, 36h",
            value=compact_duration(policy.keep_within) if policy.keep_within else "",
            help="Every backup made within this time before the newest one. Empty: not used.")
        values["older_than_days"] = mid.number_input(
            "Keep everything younger than (days)", key="auto_older_than", placeholder="not used",
            value=policy.older_than.total_seconds() / 86400 if policy.older_than else None, step=1.0,
            help="Every backup younger than this, counted from now. With no rule at all: 7 days.")
        values["safety_days"] = right.number_input(
            "Keep safety backups for (days)", key="auto_safety_days", value=float(policy.safety_days), step=1.0,
            help="The backups restores take before changing data. The undo of the latest restore is always kept.")
        b1, b2 = st.columns(2)
        previewed = b1.form_submit_button("Preview", key="auto_policy_preview",
                                          help="Show below what this policy would keep and delete (saves nothing).")
        saved = b2.form_submit_button("Save policy", key="auto_policy_save", type="primary", disabled=not is_admin())
    return previewed, saved, values


def policy_section(settings, config, user) -> None:
    """The clean-up policy form, its preview, and the confirmed clean-up."""
    from backup_core.context import open_store

    saved_policy = config.retention_policy()
    st.caption(f"Saved policy: {saved_policy.describe()}. The weekly clean-up and **Delete now** below apply it; "
               "data several backups share is freed only with the last backup that needs it.")
    previewed, saved, values = _form(saved_policy)
    if previewed or saved:
        try:
            draft = _policy_from_form(values)
        except UsageError as exc:
            st.error(f"Not saved: {exc}." if saved else f"Cannot preview: {exc}.")
            draft = None
        if draft is not None and saved:
            if run_core(scheduler.save_retention_policy, settings, draft, user=user.name) is not None:
                st.session_state.pop(DRAFT, None)
                flash("success", f"Saved the clean-up policy: {draft.describe()}.")
        elif draft is not None:
            st.session_state[DRAFT] = draft.to_json()
    draft_json = st.session_state.get(DRAFT)
    policy = RetentionPolicy.from_json(draft_json) if draft_json else saved_policy
    decisions = run_core(preview, open_store(settings), policy)
    if decisions is None:
        return
    tz, zone = local_zone()
    doomed = [d for d in decisions if not d.keep]
    freed = sum(d.freed for d in doomed)
    heading = "Preview of the policy above (not saved)" if draft_json else "What the saved policy does now"
    st.markdown(f"**{heading}**: keeps {plural(len(decisions) - len(doomed), 'backup')}, deletes "
                f"{plural(len(doomed), 'backup')}" + (f" and frees {human_bytes(freed)}" if doomed else "")
                + f" (times in {zone}).")
    if decisions:
        st.dataframe(decisions_frame(decisions, tz), hide_index=True, width="stretch", key="auto_policy_table")
    if draft_json:
        if st.button("Back to the saved policy", key="auto_policy_discard"):
            st.session_state.pop(DRAFT, None)
            st.rerun()
        return
    if not is_admin():
        st.caption("Deleting backups needs the admin role.")
        return
    seen = st.session_state.get(SHOWN)  # what the person saw when clicking (this run is the click's rerun)
    st.session_state[SHOWN] = [d.backup_id for d in doomed]
    label = f"Delete {plural(len(doomed), 'backup')} now" if doomed else "Nothing to delete"
    if st.button(label, key="auto_cleanup_now", disabled=not doomed,
                 help="Deletes exactly the backups marked delete above; if the list changed meanwhile, nothing."):
        with st.spinner("Cleaning up…"):
            res = run_core(scheduler.run_cleanup_now, settings, user=user.name,
                           expect=seen if seen is not None else st.session_state[SHOWN])
        if res is not None:
            flash("success", f"Clean-up deleted {plural(len(res.deleted), 'backup')}, kept {res.kept}, "
                             f"freed {human_bytes(res.freed_bytes)}.")
