"""Streamlit entry point: login gate, navigation and the Home status overview.

Run with ``make run`` (embedded demo database) or
``streamlit run app.py`` with MONGODB_URI / MONGODB_DB / BACKUP_ROOT set.

Nothing is shown before a successful login: until then the only registered
page is the login form (``webui/login.py``), so page URLs and the sidebar
reveal nothing either. Every rerun re-checks the logged-in user against the
user store (``webui.session.current_user`` calls ``backup_core.auth.refresh``):
a user deleted, locked out or given a new password since logging in is
logged out at once, with the reason on the login page, and a changed role
applies at once. User accounts are created with ``python -m backup_core
set-password admin``; with no user at all, the first start creates ``admin``
with a one-time password (``webui/first_start.py``), and logging in with it
leads to a form that sets a new password before anything else is shown.

The pages are thin: each checks the login and draws one section of
``webui.sections``, the same sections a host app embeds with
``webui.backup_restore_ui``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from webui import account, login, session, start_auto_backup
from webui.sections import home

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="MongoDB Backup & Restore", page_icon=":material/database:", layout="wide")

# (file, title, icon)
PAGE_FILES = [
    ("pages/1_Create_Backup.py", "Create Backup", ":material/backup:"),
    ("pages/2_Restore.py", "Restore", ":material/settings_backup_restore:"),
    ("pages/3_Auto_Backup.py", "Auto Backup", ":material/schedule:"),
    ("pages/4_Browse_Backups.py", "Browse Backups", ":material/folder_open:"),
    ("pages/5_Audit_Log.py", "Audit Log", ":material/receipt_long:"),
]


def home_page() -> None:
    st.title("MongoDB Backup & Restore")
    home.render(session.page_ui())


def app_pages() -> list:
    """Home, the section pages, Change password."""
    pages = [st.Page(home_page, title="Home", icon=":material/home:", default=True, url_path="home")]
    pages += [st.Page(rel, title=title, icon=icon) for rel, title, icon in PAGE_FILES]
    pages.append(st.Page(account.change_password_page, title="Change password", icon=":material/key:",
                         url_path="account"))
    return pages


def _sidebar_user(user) -> None:
    with st.sidebar:
        st.markdown(f"Logged in as **{user.name}** ({user.role})")
        if st.button("Log out", key="logout"):
            login.logout()
            st.rerun()


def _aliases(page_fn, title: str) -> list:
    """``page_fn`` under every page's URL: a bookmarked link lands on it (not "page not found"), and after
    it the rerun lands on the page that was asked for (a page's id is its URL path)."""
    return [st.Page(page_fn, title=title, url_path=p.url_path) for p in app_pages() if p.url_path]


def main() -> None:
    # current_user() re-checks the session against the user store first (auth.refresh), before
    # navigation: a user deleted or locked since the last click gets the login page and the reason
    user = session.current_user()
    if user is not None and user.must_change_password:
        # logged in with the one-time password: choosing a new one comes before anything else
        first = st.Page(account.first_login_page, title="Choose your password", icon=":material/key:", default=True)
        page = st.navigation([first, *_aliases(account.first_login_page, "Choose your password")],
                             position="hidden")
        _sidebar_user(user)
        page.run()
        return
    if user is None:
        start = st.Page(login.login_page, title="Log in", icon=":material/login:", default=True)
        st.navigation([start, *_aliases(login.login_page, "Log in")], position="hidden").run()
        return
    page = st.navigation(app_pages())
    # sidebar widgets after st.navigation: their ids then belong to the resolved page,
    # so the first click after logging in is not lost
    _sidebar_user(user)
    account.show_changed_notice()
    with st.sidebar:  # BACKUP_DASHBOARD_SCHEDULER=0 when a separate `backup_core scheduler` runs instead
        start_auto_backup(session.get_settings())
    page.run()


main()
