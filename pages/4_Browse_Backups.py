"""Browse Backups: every backup by day, one in detail: collections, verify, documents, downloads, delete.

A thin page: the login check, then the section every front-end shares (``webui/sections/browse.py``).
"""

import streamlit as st

from webui import session
from webui.sections import browse

st.title("Browse Backups")
browse.render(session.page_ui())
