"""Create Backup: pick collections, optionally compress, watch each collection's progress.

A thin page: the login check, then the section every front-end shares (``webui/sections/create.py``).
"""

import streamlit as st

from webui import session
from webui.sections import create

st.title("Create Backup")
create.render(session.page_ui())
