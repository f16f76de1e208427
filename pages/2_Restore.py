"""Restore: compare a backup with live data, preview, restore, undo; import a backup zip.

A thin page: the login check, then the section every front-end shares (``webui/sections/restore.py``).
"""

import streamlit as st

from webui import session
from webui.sections import restore

st.title("Restore")
restore.render(session.page_ui())
