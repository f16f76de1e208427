"""Audit Log: every backup, restore, clean-up, login and delete, newest first, filterable.

The log is hash-chained: the page checks the chain on every visit and says
where it breaks, if it does. Operations show as two entries (started, then
the outcome); one that never finished is marked interrupted. Times are shown
in the browser's time zone (named in the column header); selecting a row (or
picking its number below the table) shows the whole entry, however long.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backup_core import audit
from backup_core.context import open_store
from webui import common

KNOWN_ACTIONS = {"backup", "restore", "restore_dry_run", "undo", "undo_dry_run", "cleanup", "delete", "login",
                 "logout", "set-password",
                 "change-password", "export", "import", "unlock", "scheduler", "scheduler-config"}
OUTCOMES = ["", "ok", "error", "refused", "started", "interrupted"]
BASE = ("at", "user", "action", "outcome")
HIDDEN = {"seq", "prev", "hash", "kid", "mac", "op", "parent", "host", "pid", "pid_started", "unfinished",
          "interrupted"}


def details_text(entry: dict) -> str:
    """The entry's other fields as ``key: value`` lines, readable (not raw JSON)."""
    lines = []
    for k, v in entry.items():
        if k in BASE or k in HIDDEN or v in (None, "", [], {}):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{ik}={iv}" for ik, iv in v.items())
        elif isinstance(v, list):
            v = ", ".join(str(x) for x in v)
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def _value_lines(key: str, value, indent: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        out = [f"{indent}{key}:"]
        for k, v in value.items():
            out += _value_lines(str(k), v, indent + "  ")
        return out
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [f"{indent}{key}:"] + [f"{indent}  - {json.dumps(v, ensure_ascii=False, default=str)}"
                                      for v in value]
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value) if value else "(none)"
    return [f"{indent}{key}: {value}"]


def entry_text(entry: dict, tz, zone: str) -> str:
    """The whole entry, one field per line, nested values indented; its time in ``zone`` and in UTC."""
    lines = []
    for k, v in entry.items():
        if k == "at" and v:
            v = f"{common.local_time(v, tz)} ({zone}) = {v}"
        lines += _value_lines(k, v)
    return "\n".join(lines)


def entry_label(entry: dict, tz) -> str:
    state = "interrupted" if entry.get("interrupted") else entry.get("outcome", "")
    return (f"#{entry.get('seq')} · {common.local_time(entry.get('at'), tz)} · {entry.get('user', '')} · "
            f"{entry.get('action', '')} · {state}")


st.title("Audit Log")
common.require_login()
settings = common.get_settings()
log = open_store(settings).audit_log()

report = common.run_core(audit.check, settings)  # the chain, and the copies of its head kept elsewhere
if report is not None:
    if report.ok:
        head = report.head or {}
        st.caption(f"Hash chain intact: {common.plural(report.entries, 'entry', 'entries')}"
                   + (f", head seq {head.get("seq")} · {str(head.get("hash"))[:16]}…" if head else "")
                   + f", matching {report.anchors['ok']} copies of its head kept in backups and the metadata "
                     "database.")
    elif (report.broken_at or {}).get("line") is None:  # the file is consistent, its copies elsewhere disagree
        st.error(f"The audit log has been cut, emptied or rewritten: {(report.broken_at or {}).get('reason')}. "
                 f"{common.plural(len(report.problems), 'problem')} in all.")
    else:
        b = report.broken_at or {}
        st.error(f"The audit log has been tampered with: the hash chain breaks at line {b.get('line')} "
                 f"(seq {b.get('seq')}, {b.get('at') or 'no time'}, {b.get('action') or '?'}): {b.get('reason')}. "
                 f"{common.plural(len(report.problems), 'break')} in all; entries from there on cannot be trusted.")

# the filter offers the known actions plus any other the recent log contains
recent = common.run_core(log.read, 2000) or []
ACTIONS = [""] + sorted(KNOWN_ACTIONS | {str(e.get("action")) for e in recent if e.get("action")})

with st.form("audit_filter"):
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
    action = c1.selectbox("Action", ACTIONS, key="audit_action", format_func=lambda a: a or "any")
    user = c2.text_input("User", key="audit_user")
    outcome = c3.selectbox("Outcome", OUTCOMES, key="audit_outcome", format_func=lambda o: o or "any")
    text = c4.text_input("Text (anywhere in the entry)", key="audit_text")
    limit = c5.number_input("Show at most", min_value=1, max_value=10_000, value=200, step=50,
                            key="audit_limit")
    st.form_submit_button("Filter", key="audit_submit")

flt = audit.AuditFilter(action=action or None, user=user.strip() or None, outcome=outcome or None,
                        text=text.strip() or None)
entries = common.run_core(log.read, int(limit), flt)
if entries is not None:
    if not entries:
        st.info("No audit entry matches." if any((action, user, outcome, text)) else "The audit log is empty.")
    else:
        broken_from = (report.broken_at or {}).get("seq") if report is not None and not report.ok else None
        tz, zone = common.local_zone()
        time_col = f"time ({zone})"
        rows = []
        for e in entries:
            state = "interrupted" if e.get("interrupted") else e.get("outcome", "")
            if broken_from is not None and isinstance(e.get("seq"), int) and e["seq"] >= broken_from:
                state += " (chain broken)"
            rows.append({"seq": e.get("seq"), time_col: common.local_time(e.get("at"), tz) or e.get("at", ""),
                         "user": e.get("user", ""), "action": e.get("action", ""), "outcome": state,
                         "details": details_text(e)})
        st.caption(common.plural(len(rows), "entry", "entries") + ", newest first"
                   + (" (limit reached; raise “Show at most” to see more)" if len(rows) >= limit else "")
                   + ". Select a row to see the whole entry.")
        event = st.dataframe(pd.DataFrame(rows), hide_index=True, key="audit_table", width="stretch",
                             on_select="rerun", selection_mode="single-row",
                             column_config={"details": st.column_config.TextColumn(width="large"),
                                            "seq": st.column_config.NumberColumn(width="small"),
                                            time_col: st.column_config.TextColumn(width="medium")})

        # ---- one entry in full: the selected row, or the one picked here
        by_seq = {e.get("seq"): e for e in entries}
        picked_rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
        if picked_rows and picked_rows[0] < len(entries):
            selected = entries[picked_rows[0]].get("seq")
            if st.session_state.get("_audit_last_selected") != selected:  # a new click on the table wins
                st.session_state["_audit_last_selected"] = selected
                st.session_state["audit_entry"] = selected
        if st.session_state.get("audit_entry") not in by_seq:
            st.session_state.pop("audit_entry", None)
        st.subheader("Entry")
        chosen = st.selectbox("Entry", list(by_seq), key="audit_entry", label_visibility="collapsed",
                              format_func=lambda seq: entry_label(by_seq[seq], tz))
        if chosen in by_seq:
            st.code(entry_text(by_seq[chosen], tz, zone), language=None, wrap_lines=True)
