"""The Auto Backup section's clean-up policy: edit it, preview what it keeps and why, then delete what it does not.

The preview is ``retention.preview`` (the same decisions ``cleanup`` takes),
and the delete button passes the ids the person saw (``expect``): if a backup
was made or deleted in between, the core refuses and nothing is deleted.

Every rule field can be emptied ("not used"): a number field holds the saved
value through its session state and is created empty (``value=None``), which
is what makes Streamlit let it be cleared; "younger than 0 days" means the
rule is not used too. So any policy the CLI's ``cleanup --keep-*`` can
express can be built here. A preview that fails to build removes the old
preview, so nothing stale stays under the form.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from backup_core import scheduler
from backup_core.errors import UsageError
from backup_core.retention import TIERS, RetentionPolicy, preview
from backup_core.timeutil import compact_duration, parse_duration
from webui import data
from webui.common import human_bytes, local_time, local_zone, plural, run_core
from webui.ui import Ui

SECTION = "policy"
COUNTS = [("keep_last", "Keep the last", "The newest N backups, whatever their age."),
          *[(f"keep_{t}", f"Keep {t}", f"The newest backup of each of the last N {unit} that have one.")
            for t, unit in zip(TIERS, ("hours", "days", "ISO weeks", "months"))]]


def _whole(label: str, value) -> int | None:
    if value is None:
        return None
    if float(value) != int(value) or value < 0:
        raise UsageError(f"“{label}” must be a whole number of 0 or more (or empty), got {value:g}")
    return int(value)


def policy_from_form(values: dict) -> RetentionPolicy:
    """The form's values as a policy; every wrong value is a ``UsageError`` naming its field."""
    kw = {name: _whole(label, values[name]) for name, label, _ in COUNTS}
    within = (values["keep_within"] or "").strip()
    kw["keep_within"] = parse_duration(within, what="“Keep everything within … of the newest”",
                                       default_unit="d") if within else None
    days = values["older_than_days"]
    if days is not None and not days >= 0:  # also refuses nan
        raise UsageError(f"“Keep everything younger than (days)” must be 0 or more (empty or 0: not used), got {days:g}")
    kw["older_than"] = timedelta(days=days) if days else None
    safety = values["safety_days"]
    if safety is None or not safety >= 0:
        raise UsageError("“Keep safety backups for (days)” must be 0 or more")
    return RetentionPolicy(**kw, safety_days=float(safety))


def _seed(ui: Ui, policy: RetentionPolicy) -> None:
    """Put ``policy`` into the form's fields, unless they hold what the person typed (or what was saved)."""
    if ui.k("auto_safety_days") in st.session_state:
        return
    for name, _, _ in COUNTS:
        st.session_state[ui.k(f"auto_{name}")] = getattr(policy, name)
    st.session_state[ui.k("auto_keep_within")] = compact_duration(policy.keep_within) if policy.keep_within else ""
    st.session_state[ui.k("auto_older_than")] = (policy.older_than.total_seconds() / 86400
                                                 if policy.older_than else None)
    st.session_state[ui.k("auto_safety_days")] = float(policy.safety_days)


def _form(ui: Ui) -> tuple[bool, bool, dict]:
    with st.form(ui.k("auto_policy_form")):
        values: dict = {}
        for col, (name, label, help_text) in zip(st.columns(len(COUNTS)), COUNTS):
            values[name] = col.number_input(label, value=None, min_value=0, step=1, key=ui.k(f"auto_{name}"),
                                            placeholder="not used", help=help_text + " Empty: not used.")
        left, mid, right = st.columns(3)
        values["keep_within"] = left.text_input(
            "Keep everything within … of the newest", key=ui.k("auto_keep_within"), placeholder="e.g. 2d, 36h",
            help="Every backup made within this time before the newest one. Empty: not used.")
        values["older_than_days"] = mid.number_input(
            "Keep everything younger than (days)", value=None, min_value=0.0, step=1.0, key=ui.k("auto_older_than"),
            placeholder="not used",
            help="Every backup younger than this, counted from now. Empty or 0: not used. With no rule at all: "
                 "7 days.")
        values["safety_days"] = right.number_input(
            "Keep safety backups for (days)", value=None, min_value=0.0, step=1.0, key=ui.k("auto_safety_days"),
            help="The backups restores take before changing data. The undo of the latest restore is always kept.")
        b1, b2 = st.columns(2)
        previewed = b1.form_submit_button("Preview", key=ui.k("auto_policy_preview"),
                                          help="Show below what this policy would keep and delete (saves nothing).")
        saved = b2.form_submit_button("Save policy", key=ui.k("auto_policy_save"), type="primary",
                                      disabled=not ui.is_admin)
    return previewed, saved, values


def decisions_frame(decisions, tz, locked=()) -> pd.DataFrame:
    """One row per backup, newest first; ``locked`` backups (key not configured) are left alone, and said so."""
    rows = [(d.created_at, {"backup": d.backup_id, "created": local_time(d.created_at, tz), "trigger": d.trigger,
                            "decision": "keep" if d.keep else "delete",
                            "why": ", ".join(d.reasons) if d.keep else "no rule keeps it",
                            "frees": "" if d.keep else human_bytes(d.freed)}) for d in decisions]
    rows += [(b.created_at, {"backup": b.backup_id, "created": local_time(b.created, tz), "trigger": "?",
                             "decision": "left alone", "why": f"encrypted with key {b.key_fingerprint}, which is not "
                                                              "configured here: the policy cannot judge it",
                             "frees": ""}) for b in locked]
    rows.sort(key=lambda r: (r[0], r[1]["backup"]), reverse=True)
    return pd.DataFrame([r for _, r in rows], columns=["backup", "created", "trigger", "decision", "why", "frees"])


def policy_section(ui: Ui, config) -> None:
    """The clean-up policy form, its preview, and the confirmed clean-up."""
    draft_key = ui.k("auto_policy_draft")
    saved_policy = config.retention_policy()
    st.caption(f"Saved policy: {saved_policy.describe()}. The weekly clean-up and **Delete now** below apply it; "
               "data several backups share is freed only with the last backup that needs it.")
    _seed(ui, saved_policy)
    previewed, saved, values = _form(ui)
    ui.show_result(SECTION, once=True)
    if previewed or (saved and ui.allowed("Saving the clean-up policy")):
        try:
            draft = policy_from_form(values)
        except UsageError as exc:
            st.session_state.pop(draft_key, None)  # no stale preview under a form that does not hold it
            st.error(f"Not saved: {exc}." if saved else f"Cannot preview: {exc}.")
            return
        if saved:
            if run_core(scheduler.save_retention_policy, ui.settings, draft, user=ui.user.name) is not None:
                st.session_state.pop(draft_key, None)  # the fields already hold what was saved
                ui.keep_result(SECTION, "success", f"Saved the clean-up policy: {draft.describe()}.")
            return
        st.session_state[draft_key] = draft.to_json()
    draft_json = st.session_state.get(draft_key)
    _preview(ui, RetentionPolicy.from_json(draft_json) if draft_json else saved_policy, draft=bool(draft_json))


def _preview(ui: Ui, policy: RetentionPolicy, *, draft: bool) -> None:
    decisions = run_core(preview, ui.store, policy)
    if decisions is None:
        return
    tz, zone = local_zone()
    doomed = [d for d in decisions if not d.keep]
    freed = sum(d.freed for d in doomed)
    heading = "Preview of the policy above (not saved)" if draft else "What the saved policy does now"
    st.markdown(f"**{heading}**: keeps {plural(len(decisions) - len(doomed), 'backup')}, deletes "
                f"{plural(len(doomed), 'backup')}" + (f" and frees {human_bytes(freed)}" if doomed else "")
                + f" (times in {zone}).")
    found = run_core(data.listing, ui.store)
    locked = found.locked if found is not None else []
    if decisions or locked:
        st.dataframe(decisions_frame(decisions, tz, locked), hide_index=True, width="stretch",
                     key=ui.k("auto_policy_table"))
    if draft:
        if st.button("Back to the saved policy", key=ui.k("auto_policy_discard")):
            st.session_state.pop(ui.k("auto_policy_draft"), None)
            st.session_state.pop(ui.k("auto_safety_days"), None)  # the fields show the saved policy again
            st.rerun()
        return
    if not ui.is_admin:
        st.caption("Deleting backups needs the admin role.")
        return
    shown_key = ui.k("auto_policy_shown")  # the ids the last render marked delete: what a click confirms
    seen = st.session_state.get(shown_key)
    st.session_state[shown_key] = [d.backup_id for d in doomed]
    label = f"Delete {plural(len(doomed), 'backup')} now" if doomed else "Nothing to delete"
    if st.button(label, key=ui.k("auto_cleanup_now"), disabled=not doomed,
                 help="Deletes exactly the backups marked delete above; if the list changed meanwhile, nothing.") \
            and ui.allowed("Deleting backups"):
        with st.spinner("Cleaning up…"):
            res = run_core(scheduler.run_cleanup_now, ui.settings, user=ui.user.name,
                           expect=seen if seen is not None else st.session_state[shown_key])
        if res is not None:
            ui.keep_result(SECTION, "success", f"Clean-up deleted {plural(len(res.deleted), 'backup')}, kept "
                                               f"{res.kept}, freed {human_bytes(res.freed_bytes)}.")
