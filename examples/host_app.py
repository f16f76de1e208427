"""A host Streamlit app with its own login and its own tabs, plus the backup tab of this product.

Run it like the dashboard (same environment: MONGODB_URI, MONGODB_DB, BACKUP_ROOT, or the embedded demo)::

    .venv/bin/python -m streamlit run examples/host_app.py

It stands for an application that already exists: it logs its users in its
own way (here two demo accounts; set ``HOST_APP_USERS="name:password:role,..."``
to use others) and keeps the result in ``st.session_state["user"]`` and
``["role"]``. The backup tab is two calls: ``start_auto_backup()`` once per
run (it starts the scheduler once per process) and ``backup_restore_ui``
inside the tab, with the host's user and role. An admin sees everything; a
viewer can look and compare, and is shown no control that changes data.
"""

from __future__ import annotations

import hmac
import os

import pandas as pd
import streamlit as st

from backup_core.config import Settings
from backup_core.db import connect
from webui import backup_restore_ui, start_auto_backup

DEMO_USERS = "admin:admin-pw:admin,viewer:viewer-pw:viewer"

st.set_page_config(page_title="Equipment manager", page_icon=":material/inventory_2:", layout="wide")


def _accounts() -> dict[str, tuple[str, str]]:
    accounts = {}
    for item in os.environ.get("HOST_APP_USERS", DEMO_USERS).split(","):
        name, _, rest = item.strip().partition(":")
        password, _, role = rest.rpartition(":")
        if name and password and role:
            accounts[name] = (password, role)
    return accounts


def login() -> None:
    """The host's own login (a stand-in for whatever the application really uses)."""
    st.title("Equipment manager")
    with st.form("host_login"):
        name = st.text_input("User name", key="host_user")
        password = st.text_input("Password", type="password", key="host_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        known = _accounts().get(name)
        if known and hmac.compare_digest(known[0], password):
            st.session_state["user"], st.session_state["role"] = name, known[1]
            st.rerun()
        st.error("Unknown user or wrong password.")


@st.cache_data(ttl=10, show_spinner=False)
def _equipment(uri: str | None, db_name: str, data_dir: str) -> pd.DataFrame:
    settings = Settings.load(uri=uri, db=db_name, data_dir=data_dir)
    with connect(settings) as conn:
        docs = list(conn.db["Equipment"].find({}, {"_id": 0, "name": 1, "category": 1, "status": 1}).limit(200))
    return pd.DataFrame(docs)


def main() -> None:
    if "user" not in st.session_state:
        login()
        return
    user, role = st.session_state["user"], st.session_state["role"]
    with st.sidebar:
        st.write(f"Signed in as **{user}** ({role})")
        if st.button("Sign out", key="host_sign_out"):
            for k in ("user", "role"):
                st.session_state.pop(k, None)
            st.rerun()
    start_auto_backup()
    st.title("Equipment manager")
    settings = Settings.load()
    names = ["Equipment", "Reports"] + (["Backup & Restore"] if role in ("admin", "viewer") else [])
    tabs = st.tabs(names)
    with tabs[0]:
        st.caption("The application's own data (read-only here).")
        try:
            st.dataframe(_equipment(settings.uri, settings.db_name, str(settings.data_dir)), hide_index=True,
                         key="host_equipment")
        except Exception as exc:  # noqa: BLE001 - the host's own page, kept short
            st.error(f"Cannot read the equipment: {exc}")
    with tabs[1]:
        st.text_input("Report title", key="title")  # the host's widget keys stay the host's
        st.caption("The application's own reports would be here.")
    if len(tabs) > 2:
        with tabs[2]:
            backup_restore_ui(user=user, role=role, key="backup")


main()
