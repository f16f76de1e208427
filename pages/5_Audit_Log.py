"""Audit Log: every backup, restore, clean-up, login and delete, newest first, filterable."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backup_core import audit
from webui import common

KNOWN_ACTIONS = {"backup", "restore", "cleanup", "delete", "login", "logout", "set-password", "export", "import"}
OUTCOMES = ["", "ok", "error", "refused"]

st.title("Audit Log")
common.require_login()
settings = common.get_settings()
# the filter offers the known actions plus any other the recent log contains
recent = common.run_core(audit.read, settings.backup_root, 2000) or []
ACTIONS = [""] + sorted(KNOWN_ACTIONS | {str(e.get("action")) for e in recent if e.get("action")})

with st.form("audit_filter"):
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
    action = c1.selectbox("Action", ACTIONS, key="audit_action", format_func=lambda a: a or "any")
    user = c2.text_input("User", key="audit_user")
    outcome = c3.selectbox("Outcome", OUTCOMES, key="audit_outcome", format_func=lambda o: o or "any")
    text = c4.text_input("Text (anywhere in the entry)", key="audit_text")
    limit = c5.number_input("Show at most", min_value=10, max_value=10_000, value=200, step=50,
                            key="audit_limit")
    st.form_submit_button("Filter", key="audit_submit")

flt = audit.AuditFilter(action=action or None, user=user.strip() or None, outcome=outcome or None,
                        text=text.strip() or None)
entries = common.run_core(audit.read, settings.backup_root, int(limit), flt)
if entries is not None:
    if not entries:
        st.info("No audit entry matches." if any((action, user, outcome, text)) else "The audit log is empty.")
    else:
        base = ("at", "user", "action", "outcome")
        rows = [{**{k: e.get(k, "") for k in base},
                 "details": json.dumps({k: v for k, v in e.items() if k not in base},
                                       ensure_ascii=False, default=str)} for e in entries]
        st.caption(f"{len(rows)} entries, newest first"
                   + (" (limit reached; raise it to see more)" if len(rows) >= limit else ""))
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="audit_table",
                     column_config={"details": st.column_config.TextColumn(width="large")})
