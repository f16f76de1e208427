"""Audit Log: the audit log, one row per operation, filterable, with its hash chain checked.

A thin page: the login check, then the section every front-end shares (``webui/sections/audit.py``).
"""

import streamlit as st

from webui import session
from webui.sections import audit

st.title("Audit Log")
audit.render(session.page_ui())
