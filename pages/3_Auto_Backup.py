"""Auto Backup: the scheduler's state, schedule, clean-up policy, archive rules, notifications, run history.

A thin page: the login check, then the section every front-end shares (``webui/sections/auto_backup.py``).
"""

import streamlit as st

from webui import session
from webui.sections import auto_backup

st.title("Auto Backup")
auto_backup.render(session.page_ui())
