"""The logged-in user's own password: the "Change password" page and the first-login form.

After a login with the first start's one-time password
(``User.must_change_password``) ``app.py`` shows only :func:`first_login_page`
until a new password is chosen; :func:`change_password_page` is in the
navigation for every user. Both call ``backup_core.auth.change_password``,
then put the returned ``User`` (new password fingerprint) into the session,
so changing one's own password does not end one's own session.
"""

from __future__ import annotations

import streamlit as st

from backup_core import auth
from webui import session
from webui.common import run_core

CHANGED_KEY = "_account_password_changed"       # the Change password page says it worked
FIRST_DONE_KEY = "_account_first_password_set"   # the page after the first-login form says it


def _form(user, *, forced: bool) -> None:
    settings = session.get_settings()
    with st.columns([2, 3])[0], st.form("account_form", clear_on_submit=True):
        current = None if forced else st.text_input("Current password", type="password",
                                                    key="account_current")
        new = st.text_input(f"New password (at least {auth.MIN_PASSWORD_LENGTH} characters)", type="password",
                            key="account_new")
        repeat = st.text_input("Repeat the new password", type="password", key="account_repeat")
        submitted = st.form_submit_button("Change password", key="account_submit", type="primary")
    if not submitted:
        return
    if not forced and not current:
        st.error("Enter your current password.")
        return
    if new != repeat:
        st.error("The two new passwords differ; type the same password twice.")
        return
    changed = run_core(auth.change_password, settings, user, new, current)
    if changed is not None:
        st.session_state[session.AUTH_KEY] = changed
        st.session_state[FIRST_DONE_KEY if forced else CHANGED_KEY] = True
        st.rerun()


def first_login_page() -> None:
    user = session.current_user()
    st.title("Choose your password")
    st.info(f"You logged in as **{user.name}** with the one-time password of the first start. "
            "Choose your own password to continue: the one-time password then stops working "
            "and its file is deleted.")
    _form(user, forced=True)


def change_password_page() -> None:
    user = session.page_ui().user
    st.title("Change password")
    if st.session_state.pop(CHANGED_KEY, False):
        st.success("Your password was changed. Other sessions of this user have been logged out.")
    st.caption(f"For **{user.name}** ({user.role}). Your other sessions end; this one stays open.")
    _form(user, forced=False)


def show_changed_notice() -> None:
    """Once, on the page after the first-login form: say that it worked."""
    if st.session_state.pop(FIRST_DONE_KEY, False):
        st.toast("Your password was set; the one-time password no longer works.", icon=":material/check:")
