"""Audit Log: every backup, restore, clean-up, login and delete, one row per operation, newest first.

The log is hash-chained: the section checks the chain on every visit and
says where it breaks, if it does. An operation's two entries (started, then
its outcome) are one row (``backup_core.audit_operations``); one that never
finished says interrupted. The action filter offers every action the log
holds. Times are in the browser's time zone (named in the column header);
selecting a row (or picking it below the table) shows its entries in full.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backup_core import audit
from backup_core.audit_operations import actions, operations
from webui.common import local_time, local_zone, plural, run_core
from webui.ui import Ui

OUTCOMES = ["", "ok", "error", "refused", "interrupted"]


def details_text(details: dict) -> str:
    """Details as ``key: value`` pieces, readable (not raw JSON)."""
    parts = []
    for k, v in details.items():
        if isinstance(v, dict):
            v = ", ".join(f"{ik}={iv}" for ik, iv in v.items())
        elif isinstance(v, list):
            v = ", ".join(str(x) for x in v)
        parts.append(f"{k}: {v}")
    return "\n".join(parts)


def _value_lines(key: str, value, indent: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        out = [f"{indent}{key}:"]
        for k, v in value.items():
            out += _value_lines(str(k), v, indent + "  ")
        return out
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [f"{indent}{key}:"] + [f"{indent}  - {json.dumps(v, ensure_ascii=False, default=str)}" for v in value]
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value) if value else "(none)"
    return [f"{indent}{key}: {value}"]


def entry_text(entry: dict, tz, zone: str) -> str:
    """One entry in full, one field per line, nested values indented; its time in ``zone`` and in UTC."""
    lines = []
    for k, v in entry.items():
        if k == "at" and v:
            v = f"{local_time(v, tz)} ({zone}) = {v}"
        lines += _value_lines(k, v)
    return "\n".join(lines)


def render(ui: Ui) -> None:
    log = ui.store.audit_log()
    report = run_core(audit.check, ui.settings, ui.store)  # the chain, and the copies of its head kept elsewhere
    if report is not None and report.ok:
        anchors = (report.anchors or {}).get("ok", 0)
        st.caption(f"Hash chain intact: {plural(report.entries, 'entry', 'entries')}, none changed or removed "
                   "in between" + (f", matching {plural(anchors, 'copy', 'copies')} of its head kept in backups "
                                   "and the metadata database." if anchors else "."))
        for w in report.warnings:
            st.caption(w)
    elif report is not None and (report.broken_at or {}).get("line") is None:
        # the file is consistent in itself, the copies of its head kept elsewhere disagree
        st.error(f"The audit log has been cut, emptied or rewritten: {(report.broken_at or {}).get('reason')}. "
                 f"{plural(len(report.problems), 'problem')} in all.")
    elif report is not None:
        b = report.broken_at or {}
        st.error(f"The audit log has been tampered with: the hash chain breaks at line {b.get('line')} "
                 f"(seq {b.get('seq')}, {b.get('at') or 'no time'}, {b.get('action') or '?'}): {b.get('reason')}. "
                 f"{plural(len(report.problems), 'break')} in all; entries from there on cannot be trusted.")
    known = run_core(actions, log) or []
    with st.form(ui.k("audit_filter")):
        c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
        action = c1.selectbox("Action", [""] + known, key=ui.k("audit_action"), format_func=lambda a: a or "any")
        user = c2.text_input("User", key=ui.k("audit_user"))
        outcome = c3.selectbox("Outcome", OUTCOMES, key=ui.k("audit_outcome"), format_func=lambda o: o or "any")
        text = c4.text_input("Text (anywhere in the entry)", key=ui.k("audit_text"))
        limit = c5.number_input("Show at most", min_value=1, max_value=10_000, value=200, step=50,
                                key=ui.k("audit_limit"))
        st.form_submit_button("Filter", key=ui.k("audit_submit"))
    flt = audit.AuditFilter(action=action or None, user=user.strip() or None, outcome=outcome or None,
                            text=text.strip() or None)
    entries = run_core(log.read, 2 * int(limit), flt)  # two entries an operation at most
    if entries is None:
        return
    ops = operations(entries)[:int(limit)]
    if not ops:
        st.info("No audit entry matches." if any((action, user, outcome, text)) else "The audit log is empty.")
        return
    broken_from = (report.broken_at or {}).get("seq") if report is not None and not report.ok else None
    _table(ui, ops, broken_from, int(limit))


def _table(ui: Ui, ops, broken_from: int | None, limit: int) -> None:
    tz, zone = local_zone()
    time_col = f"time ({zone})"
    rows = []
    for o in ops:
        state = o.outcome
        if broken_from is not None and any(s >= broken_from for s in o.seqs):
            state += " (chain broken)"
        rows.append({time_col: local_time(o.at, tz) or o.at, "user": o.user, "action": o.action, "outcome": state,
                     "details": details_text(o.details)})
    st.caption(plural(len(rows), "entry", "entries") + ", newest first, one per operation"
               + (" (limit reached; raise “Show at most” to see more)" if len(rows) >= limit else "")
               + ". Select a row to see the whole entry.")
    event = st.dataframe(pd.DataFrame(rows), hide_index=True, key=ui.k("audit_table"), width="stretch",
                         on_select="rerun", selection_mode="single-row",
                         column_config={"details": st.column_config.TextColumn(width="large"),
                                        time_col: st.column_config.TextColumn(width="medium")})
    # ---- one operation in full: the selected row, or the one picked here (by its newest entry's seq)
    by_seq = {o.seq if o.seq is not None else -i: o for i, o in enumerate(ops)}
    seqs = list(by_seq)
    picked_rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    entry_key, last_key = ui.k("audit_entry"), ui.k("_audit_last_selected")
    if picked_rows and picked_rows[0] < len(seqs):
        selected = seqs[picked_rows[0]]
        if st.session_state.get(last_key) != selected:  # a new click on the table wins
            st.session_state[last_key] = selected
            st.session_state[entry_key] = selected
    if st.session_state.get(entry_key) not in by_seq:
        st.session_state.pop(entry_key, None)
    st.subheader("Entry")
    chosen = st.selectbox("Entry", seqs, key=entry_key, label_visibility="collapsed",
                          format_func=lambda q: f"{local_time(by_seq[q].at, tz)} · {by_seq[q].user} · "
                                                f"{by_seq[q].action} · {by_seq[q].outcome}")
    if chosen in by_seq:
        st.code("\n\n".join(entry_text(e, tz, zone) for e in reversed(by_seq[chosen].entries)), language=None,
                wrap_lines=True)
