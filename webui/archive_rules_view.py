"""The Auto Backup section's archive rules: edit them, and confirm or dismiss the archives that wait for an admin.

A rule (``backup_core.archive.ArchiveRule``) names a collection, a date
field and an age: after each scheduled backup the scheduler archives the
documents older than that (backs them up, verifies the backup, deletes
exactly those), at once (``auto``: "purge automatically") or only after an
admin confirms here (``confirm``: "ask an admin first"), see
``backup_core.scheduler.archive_rules``.

Editing works on a draft kept in the session: **Add rule** checks the rule
at once (a wrong field or age is one ``st.error``, nothing added) and says
how many documents it matches now (an archive dry run), **Remove
rule** takes one out, and only **Save rules** stores them (checked again by
the core; a refusal saves nothing). Viewers see the rules and the waiting
archives, and no control. Every action asks ``Ui.allowed`` where it runs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core import scheduler
from backup_core.archive import RULE_MODES, ArchiveOptions, ArchiveRule, run_archive
from backup_core.errors import UsageError
from backup_core.timeutil import parse_iso, utc_now
from webui import data
from webui.common import local_time, local_zone, plural, run_core
from webui.ui import Ui

SECTION = "archive"
MODES = {"auto": "purge automatically", "confirm": "ask an admin first"}  # the labels of RULE_MODES


def rules_section(ui: Ui, config: scheduler.ScheduleConfig) -> None:
    """The rules (a table), the admin's add / remove / save, then the archives waiting for a confirmation."""
    st.caption("After each scheduled backup, a rule archives the documents of a collection whose date field is "
               "older than its number of days: it backs them up, verifies that backup, then deletes exactly those "
               "documents from the live collection (restore the archive backup in merge mode to bring them back). "
               "**Purge automatically** does it at once; **ask an admin first** counts them and waits below until "
               "an admin confirms.")
    ui.show_result(SECTION, once=True)
    saved = run_core(config.rules)
    if saved is None:
        return
    saved_json = [r.to_json() for r in saved]
    draft = st.session_state.get(_draft_key(ui))
    shown = draft if draft is not None else saved_json
    _table(shown, saved_json)
    if not ui.is_admin:
        st.caption("Changing archive rules and confirming archives needs the admin role.")
    else:
        _add_form(ui, shown)
        _remove_and_save(ui, shown, saved_json, changed=draft is not None and draft != saved_json)
    _pending(ui, saved)


def _draft_key(ui: Ui) -> str:
    return ui.k("archive_rules_draft")


def rules_frame(rules: list[dict], saved: list[dict]) -> pd.DataFrame:
    """One row per rule; ``saved`` tells which ones are not saved yet."""
    return pd.DataFrame([{"collection": r["collection"], "date field": r["field"],
                          "older than (days)": r["older_than_days"], "after each scheduled backup": MODES[r["mode"]],
                          "enabled": "yes" if r.get("enabled", True) else "no",
                          "saved": "yes" if r in saved else "not saved yet"} for r in rules],
                        columns=["collection", "date field", "older than (days)", "after each scheduled backup",
                                 "enabled", "saved"])


def _table(rules: list[dict], saved: list[dict]) -> None:
    if not rules:
        st.info("No archive rules: nothing is archived or purged automatically."
                + (" The saved rules were all removed here: click **Save rules** to store that." if saved else ""))
        return
    st.dataframe(rules_frame(rules, saved), hide_index=True, width="content")
    gone = [r for r in saved if r not in rules]
    if rules != saved:
        st.warning("These rules are not saved yet" + (f" ({plural(len(gone), 'saved rule')} removed here)" if gone
                                                       else "") + ": click **Save rules** to store them.")


def _collections(ui: Ui) -> list[str]:
    info = run_core(data.database_overview, ui.settings)
    return sorted((info or {}).get("collections") or {})


def _add_form(ui: Ui, rules: list[dict]) -> None:
    names = _collections(ui)
    with st.form(ui.k("archive_add_form")):
        st.markdown("**Add a rule**")
        c1, c2, c3 = st.columns(3)
        if names:
            collection = c1.selectbox("Collection", names, key=ui.k("archive_collection"))
        else:  # the database cannot be listed, or is empty: the name typed
            collection = c1.text_input("Collection", key=ui.k("archive_collection_text"))
        field = c2.text_input("Date field", key=ui.k("archive_field"), placeholder="e.g. created_at",
                              help="A field holding dates. Documents without it, or with another type in it, are "
                                   "never archived. A nested field is written with dots: meta.created.")
        days = c3.number_input("Older than (days)", min_value=0.0, value=90.0, step=1.0, key=ui.k("archive_days"))
        mode = st.radio("After each scheduled backup", list(RULE_MODES), format_func=MODES.get, horizontal=True,
                        key=ui.k("archive_mode"))
        added = st.form_submit_button("Add rule", key=ui.k("archive_add"))
    if not added or not ui.allowed("Changing the archive rules"):
        return
    try:
        rule = ArchiveRule.from_json({"collection": (collection or "").strip(), "field": (field or "").strip(),
                                      "older_than_days": days, "mode": mode})
    except UsageError as exc:
        st.error(f"Not added: {exc}. Nothing was changed.")
        return
    if any(ArchiveRule.from_json(r).id == rule.id for r in rules):
        st.error(f"Not added: there is a rule for {rule.collection} and field {rule.field} already (one per "
                 "collection and field); remove it first. Nothing was changed.")
        return
    # what it would archive now (a dry run: counts only): a field that holds no date shows up at once
    with st.spinner(f"Counting the documents of {rule.collection} the rule matches now…"):
        now = run_core(run_archive, ui.settings, ArchiveOptions(rule.collection, rule.query(utc_now()),
                                                                dry_run=True, user=ui.user.name))
    if now is None:
        st.error("Not added. Nothing was changed.")
        return
    st.session_state[_draft_key(ui)] = [*rules, rule.to_json()]
    what = "archived after each scheduled backup" if rule.mode == "auto" else "offered for confirmation"
    if now.archived:
        ui.keep_result(SECTION, "info", f"Added (not saved yet): {plural(now.archived, 'document')} of "
                                        f"{rule.collection} match it now and would be {what}.")
    else:
        ui.keep_result(SECTION, "warning", f"Added (not saved yet), but no document of {rule.collection} has a "
                                           f"date in {rule.field} older than {rule.older_than_days:g} days now; "
                                           "check that the field holds dates.")


def _remove_and_save(ui: Ui, rules: list[dict], saved: list[dict], *, changed: bool) -> None:
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    ids = [ArchiveRule.from_json(r).id for r in rules]
    picked = c1.selectbox("Rule to remove", ids, key=ui.k("archive_remove_pick"), disabled=not ids,
                          format_func=lambda i: ArchiveRule.from_json(rules[ids.index(i)]).describe())
    remove = c2.button("Remove rule", key=ui.k("archive_remove"), disabled=not ids)
    save = c3.button("Save rules", key=ui.k("archive_save"), type="primary", disabled=not changed)
    discard = c4.button("Discard changes", key=ui.k("archive_discard"), disabled=not changed)
    if remove and picked in ids and ui.allowed("Changing the archive rules"):
        st.session_state[_draft_key(ui)] = [r for r, i in zip(rules, ids) if i != picked]
        ui.clear_result(SECTION)
        st.rerun()
    if discard:
        st.session_state.pop(_draft_key(ui), None)
        st.rerun()
    if save and ui.allowed("Changing the archive rules"):
        ui.clear_result(SECTION)
        stored = run_core(scheduler.save_archive_rules, ui.settings, rules, user=ui.user.name)
        if stored is not None:  # a refusal is one st.error from run_core, and nothing is saved
            st.session_state.pop(_draft_key(ui), None)
            ui.keep_result(SECTION, "success", f"Saved {plural(len(stored), 'archive rule')}."
                           + ("".join(f"\n- {r.describe()}" for r in stored)))


def _cutoff_text(pending: scheduler.PendingArchive, tz) -> str:
    rule = ArchiveRule.from_json(pending.rule)
    cond = (pending.filter.get(rule.field) or {}).get("$lt") if isinstance(pending.filter, dict) else None
    when = parse_iso(cond.get("$date")) if isinstance(cond, dict) else None
    return local_time(when, tz) if when is not None else f"{rule.older_than_days:g} days before {pending.prepared_at}"


def _pending(ui: Ui, rules: list[ArchiveRule]) -> None:
    st.markdown("**Archives waiting for an admin's confirmation**")
    pending = run_core(scheduler.pending_archives, ui.settings)
    if pending is None:
        return
    tz, zone = local_zone()
    confirm_rules = [r for r in rules if r.mode == "confirm" and r.enabled]
    if not pending:
        st.caption("None." + (" The rules that ask an admin first count their documents after each scheduled "
                              "backup; they appear here then." if confirm_rules else ""))
    else:
        st.dataframe(pd.DataFrame([{
            "collection": p.collection, "date field": ArchiveRule.from_json(p.rule).field,
            f"dated before ({zone})": _cutoff_text(p, tz), "documents": p.matching,
            "counted at": local_time(p.prepared_at, tz), "state": p.state, "last error": p.last_error or ""}
            for p in pending]), hide_index=True, width="content")
    if not ui.is_admin:
        return
    if confirm_rules and st.button("Count now", key=ui.k("archive_prepare"),
                                   help="Count what each saved rule that asks an admin first matches now, and list "
                                        "it here to confirm; nothing is deleted.") \
            and ui.allowed("Preparing archives"):
        _prepare(ui, confirm_rules)
    for p in pending:
        if p.state == "pending":
            _confirm_one(ui, p, tz, zone)


def _prepare(ui: Ui, rules: list[ArchiveRule]) -> None:
    found = []
    for rule in rules:
        with st.spinner(f"Counting the documents of {rule.collection}…"):
            prepared = run_core(scheduler.prepare_archive, ui.settings, rule)
        found.append(f"{rule.collection}: {prepared.matching if prepared else 0}")
    ui.keep_result(SECTION, "info", "Counted now (nothing deleted): " + ", ".join(found) + " document(s).")


def _confirm_one(ui: Ui, p: scheduler.PendingArchive, tz, zone: str) -> None:
    rule = ArchiveRule.from_json(p.rule)
    key = p.id.replace(":", "__")
    with st.container(border=True):
        st.markdown(f"**{p.collection}**: {plural(p.matching, 'document')} with **{rule.field}** before "
                    f"{_cutoff_text(p, tz)} ({zone}), counted {local_time(p.prepared_at, tz)}.")
        st.warning(f"Confirming deletes the **{plural(p.matching, 'document')}** of **{p.collection}** dated "
                   f"before that from the live database (and any added since with such a date), but only after a "
                   "backup of exactly those documents has been written and verified: that archive backup holds "
                   "them, and restoring it in merge mode brings them back. A document changed during the run is "
                   "left alone.")
        ack = st.checkbox(f"Delete these documents from {p.collection} once the archive backup is verified",
                          key=ui.k(f"archive_ack_{key}"))
        c1, c2 = st.columns([1, 4])
        confirm = c1.button("Confirm and purge", key=ui.k(f"archive_confirm_{key}"), type="primary", disabled=not ack)
        dismiss = c2.button("Dismiss", key=ui.k(f"archive_dismiss_{key}"),
                            help="Drop it without deleting anything; the rule counts again after the next "
                                 "scheduled backup.")
    if confirm and ui.allowed("Confirming an archive"):
        if not ack:  # the button is disabled, but a click can still reach the server
            st.error("Not purged: tick the box above to confirm. Nothing was changed.")
            return
        with st.spinner(f"Backing up, verifying and deleting {plural(p.matching, 'document')} of {p.collection}…"):
            res = run_core(scheduler.confirm_archive, ui.settings, p.id, user=ui.user.name)
        if res is not None:
            ui.keep_result(SECTION, "success", _archived_text(res))
    elif dismiss and ui.allowed("Dismissing an archive"):
        gone = run_core(scheduler.dismiss_archive, ui.settings, p.id, user=ui.user.name)
        if gone is not None:
            ui.keep_result(SECTION, "info", f"Dismissed the archive of {gone.describe()}: nothing was deleted. The "
                                            "rule counts again after the next scheduled backup.")


def _archived_text(res) -> str:
    if res.backup_id is None:
        return f"No document of {res.collection} matches any more: nothing was archived or deleted."
    text = (f"Archived {plural(res.archived, 'document')} of {res.collection} in backup {res.backup_id} (verified) "
            f"and deleted {res.deleted} from the live collection in {res.duration_s:.1f} s.")
    if res.changed:
        text += f" {plural(res.changed, 'document')} changed since the backup and were left alone."
    return text + f" Restore {res.backup_id} in merge mode to bring them back."
