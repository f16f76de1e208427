"""Audit Log: every backup, restore, clean-up, login and delete, newest first, filterable.

The log is hash-chained: the page checks the chain on every visit and says
where it breaks, if it does. Operations show as two entries (started, then
the outcome); one that never finished is marked interrupted.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core import audit
from backup_core.context import open_store
from webui import common

KNOWN_ACTIONS = {"backup", "restore", "restore_dry_run", "cleanup", "delete", "login", "logout", "set-password",
                 "export", "import", "unlock", "scheduler", "scheduler-config"}
OUTCOMES = ["", "ok", "error", "refused", "started", "interrupted"]
BASE = ("at", "user", "action", "outcome")
HIDDEN = {"seq", "prev", "hash", "op", "parent", "host", "pid", "pid_started", "unfinished", "interrupted"}


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


st.title("Audit Log")
common.require_login()
settings = common.get_settings()
log = open_store(settings).audit_log()

report = common.run_core(log.verify)
if report is not None:
    if report.ok:
        head = report.head or {}
        st.caption(f"Hash chain intact: {common.plural(report.entries, 'entry', 'entries')}"
                   + (f", head seq {head.get("seq")} · {str(head.get("hash"))[:16]}…" if head else "")
                   + ". Note the head to notice entries removed from the end later.")
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
        rows = []
        for e in entries:
            state = "interrupted" if e.get("interrupted") else e.get("outcome", "")
            if broken_from is not None and isinstance(e.get("seq"), int) and e["seq"] >= broken_from:
                state += " (chain broken)"
            rows.append({"seq": e.get("seq"), "at": e.get("at", ""), "user": e.get("user", ""),
                         "action": e.get("action", ""), "outcome": state, "details": details_text(e)})
        st.caption(common.plural(len(rows), "entry", "entries") + ", newest first"
                   + (" (limit reached; raise “Show at most” to see more)" if len(rows) >= limit else ""))
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="audit_table", width="stretch",
                     column_config={"details": st.column_config.TextColumn(width="large"),
                                    "seq": st.column_config.NumberColumn(width="small")})
